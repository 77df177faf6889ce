/*
 * A reader written from nicclock.h alone (no library): the page read by the header's rules with
 * its static inline conversion. Used by tests/header_inline.rs.
 *
 *   direct_reader calc          stdin lines "counter_value period anchor counter bound growth",
 *                               stdout "tai since bound" by nicclock_tai_at / nicclock_error_at
 *   direct_reader read PAGE     "now TAI BOUND STATUS" read from the page at this moment
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "nicclock.h"

static int calc(void)
{
	uint64_t cv, period, anchor, counter, bound, growth;
	while (scanf("%" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64, &cv, &period, &anchor,
	             &counter, &bound, &growth) == 6) {
		int64_t since;
		uint64_t tai = nicclock_tai_at(cv, period, anchor, counter, &since);
		uint64_t abs_since = since < 0 ? (uint64_t)0 - (uint64_t)since : (uint64_t)since;
		printf("%" PRIu64 " %" PRId64 " %" PRIu64 "\n", tai, since, nicclock_error_at(bound, (uint32_t)growth, abs_since));
	}
	return 0;
}

static uint64_t counter_now(uint32_t kind)
{
	if (kind == NICCLOCK_COUNTER_TSC) {
#if defined(__x86_64__)
		uint32_t lo, hi;
		__asm__ volatile("lfence; rdtsc" : "=a"(lo), "=d"(hi)::"memory");
		return (uint64_t)hi << 32 | lo;
#else
		fprintf(stderr, "TSC page on a CPU without one\n");
		exit(1);
#endif
	}
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#define LOAD(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)

static int read_page(const char *path)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size != NICCLOCK_PAGE_SIZE) {
		fprintf(stderr, "not a page: %s\n", path);
		return 1;
	}
	const struct nicclock_page *p = mmap(NULL, NICCLOCK_PAGE_SIZE, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED || p->header.magic != NICCLOCK_MAGIC || p->header.abi_major != NICCLOCK_ABI_MAJOR) {
		fprintf(stderr, "not a page: %s\n", path);
		return 1;
	}
	const struct nicclock_clock_data *c = &p->clock;
	uint32_t kind, status, growth;
	uint64_t cv, period, anchor, bound, updated;
	struct timespec start;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		uint32_t s1 = __atomic_load_n(&c->seq, __ATOMIC_ACQUIRE);
		if (!(s1 & 1)) {
			kind = LOAD(c->counter_kind);
			cv = LOAD(c->counter_value);
			period = LOAD(c->counter_period);
			anchor = LOAD(c->anchor_tai_ns);
			bound = LOAD(c->error_bound_ns);
			growth = LOAD(c->error_growth_ppt);
			status = LOAD(c->status);
			updated = LOAD(c->updated_tai_ns);
			__atomic_thread_fence(__ATOMIC_ACQUIRE);
			if (__atomic_load_n(&c->seq, __ATOMIC_RELAXED) == s1)
				break;
		}
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 > NICCLOCK_WRITER_STUCK_MS) {
			fprintf(stderr, "writer stuck\n");
			return 1;
		}
		sched_yield();
	}
	uint64_t counter = counter_now(kind); /* after the copy, as the header says */
	if (status > NICCLOCK_STATUS_HOLDOVER || updated == 0) {
		fprintf(stderr, "no time: status %u\n", status);
		return 1;
	}
	int64_t since;
	uint64_t tai = nicclock_tai_at(cv, period, anchor, counter, &since);
	uint64_t abs_since = since < 0 ? (uint64_t)0 - (uint64_t)since : (uint64_t)since;
	printf("now %" PRIu64 " %" PRIu64 " %u\n", tai, nicclock_error_at(bound, growth, abs_since), status);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "calc") == 0)
		return calc();
	if (argc == 3 && strcmp(argv[1], "read") == 0)
		return read_page(argv[2]);
	fprintf(stderr, "usage: direct_reader calc | read PAGE\n");
	return 2;
}
