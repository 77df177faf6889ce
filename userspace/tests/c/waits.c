/* A C application of nicclock.h's waiting, interval and threading calls (built and driven by
 * tests/c_abi.rs). Usage: waits DIR NAME until MAX_ERROR_NS TIMEOUT_MS
 *                        waits DIR NAME after AHEAD_MS TIMEOUT_MS
 *                        waits DIR NAME intervals
 *                        waits DIR NAME threads THREADS CALLS
 * Prints one result line per check; exit 0 unless a check it makes itself fails (then 1). */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nicclock.h"

static int failed;

static void check(int ok, const char *what)
{
	if (!ok) {
		printf("FAIL %s\n", what);
		failed = 1;
	}
}

struct worker {
	const nicclock_t *clock;
	long calls;
	long errors;
	long locked;
};

/* One shared handle, no lock: every thread reads through it at once. */
static void *read_loop(void *arg)
{
	struct worker *w = arg;
	for (long i = 0; i < w->calls; i++) {
		struct nicclock_interval iv;
		struct timespec tai;
		int a = nicclock_now_interval(w->clock, &iv), b = nicclock_gettime(w->clock, &tai, NULL);
		if (a < 0 || b < 0)
			w->errors++;
		else if (a == NICCLOCK_STATUS_LOCKED && b == NICCLOCK_STATUS_LOCKED && iv.earliest_ns < iv.latest_ns)
			w->locked++;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 4)
		return 2;
	nicclock_t *c;
	if (nicclock_open_in(argv[1], argv[2], &c) < 0) {
		fprintf(stderr, "%s\n", nicclock_last_error());
		return 1;
	}
	const char *mode = argv[3];
	if (!strcmp(mode, "until") && argc == 6) {
		uint64_t err = 0;
		int rc = nicclock_wait_until(c, strtoull(argv[4], NULL, 10), atoi(argv[5]), &err);
		printf("until rc %d error %" PRIu64 " %s\n", rc, err, rc < 0 ? nicclock_last_error() : "");
	} else if (!strcmp(mode, "after") && argc == 6) {
		struct nicclock_interval now, out;
		check(nicclock_now_interval(c, &now) >= 0, "now_interval");
		uint64_t t = now.latest_ns + strtoull(argv[4], NULL, 10) * 1000000ULL;
		int rc = nicclock_wait_until_after(c, t, atoi(argv[5]), &out);
		struct nicclock_interval later, point = {t, t};
		check(nicclock_now_interval(c, &later) >= 0, "now_interval after");
		printf("after rc %d earliest_past_t %d later_definitely_after %d\n", rc, out.earliest_ns > t,
		       nicclock_definitely_after(&later, &point));
	} else if (!strcmp(mode, "intervals") && argc == 4) {
		struct nicclock_interval iv;
		struct timespec e, l;
		int st = nicclock_now_interval(c, &iv);
		check(st == NICCLOCK_STATUS_LOCKED, "status");
		check(nicclock_bounds(c, &e, &l) >= 0, "bounds");
		struct nicclock_interval before = {iv.earliest_ns - 2, iv.earliest_ns - 1};
		struct nicclock_interval touching = {iv.latest_ns, iv.latest_ns + 5};
		printf("width %" PRIu64 "\n", iv.latest_ns - iv.earliest_ns);
		printf("before %d %d after %d %d touching %d %d\n", nicclock_definitely_before(&before, &iv),
		       nicclock_definitely_before(&iv, &before), nicclock_definitely_after(&iv, &before),
		       nicclock_definitely_after(&before, &iv), nicclock_definitely_before(&iv, &touching),
		       nicclock_definitely_after(&touching, &iv));
		uint64_t mid = 0, width = iv.latest_ns - iv.earliest_ns;
		int ok = nicclock_interval_midpoint(&iv, width, &mid);
		printf("midpoint rc %d centred %d\n", ok, mid == iv.earliest_ns + width / 2);
		int wide = nicclock_interval_midpoint(&iv, width - 1, &mid);
		printf("narrow cap rc %d %s: %s\n", wide, nicclock_strerror(wide), nicclock_last_error());
		printf("null rc %d %d\n", nicclock_definitely_before(NULL, &iv), nicclock_wait_until(NULL, 1, 0, NULL));
	} else if (!strcmp(mode, "threads") && argc == 6) {
		int n = atoi(argv[4]);
		pthread_t threads[64];
		struct worker workers[64];
		if (n < 1 || n > 64)
			return 2;
		for (int i = 0; i < n; i++) {
			workers[i] = (struct worker){c, atol(argv[5]), 0, 0};
			pthread_create(&threads[i], NULL, read_loop, &workers[i]);
		}
		long errors = 0, locked = 0;
		for (int i = 0; i < n; i++) {
			pthread_join(threads[i], NULL);
			errors += workers[i].errors;
			locked += workers[i].locked;
		}
		printf("threads %d errors %ld locked %ld\n", n, errors, locked);
	} else {
		return 2;
	}
	nicclock_close(c);
	return failed;
}
