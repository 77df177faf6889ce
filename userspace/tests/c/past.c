/*
 * past.c - a C reader of the ABI 1.4 calls, built against nicclock.h and the library by
 * tests/c_abi.rs: nicclock_read (both errors, epoch), nicclock_convert_counter and
 * nicclock_convert_timespec (past timestamps). One call per run, its result on one line:
 *   past DIR NAME read | counter N | mono SEC NSEC | realtime SEC NSEC | bad
 * prints "rc R [tai SEC.NSEC max M est E status S epoch P]"; "bad" prints the codes of the
 * malformed calls (another clock, NULL ts, a negative tv_nsec).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nicclock.h"

static void print(int rc, const struct nicclock_reading *r)
{
	if (rc < 0) {
		printf("rc %d %s\n", rc, nicclock_last_error());
		return;
	}
	printf("rc %d tai %lld.%09ld max %" PRIu64 " est %" PRIu64 " status %u epoch %u\n", rc,
	       (long long)r->time.tv_sec, r->time.tv_nsec, r->max_error_ns, r->est_error_ns, r->status, r->epoch);
}

int main(int argc, char **argv)
{
	if (argc < 4)
		return 2;
	nicclock_t *c;
	if (nicclock_open_in(argv[1], argv[2], &c) < 0) {
		fprintf(stderr, "past: %s\n", nicclock_last_error());
		return 1;
	}
	struct nicclock_reading r;
	const char *what = argv[3];
	if (!strcmp(what, "read")) {
		print(nicclock_read(c, 0, &r), &r);
	} else if (!strcmp(what, "counter") && argc == 5) {
		print(nicclock_convert_counter(c, strtoull(argv[4], NULL, 10), 0, &r), &r);
	} else if ((!strcmp(what, "mono") || !strcmp(what, "realtime")) && argc == 6) {
		struct timespec ts = { (time_t)strtoll(argv[4], NULL, 10), strtol(argv[5], NULL, 10) };
		clockid_t id = !strcmp(what, "mono") ? CLOCK_MONOTONIC : CLOCK_REALTIME;
		print(nicclock_convert_timespec(c, id, &ts, 0, &r), &r);
	} else if (!strcmp(what, "bad")) {
		struct timespec ts = { 1, 0 }, neg = { 1, -5 };
		printf("boottime %d null %d negative %d nullhandle %d\n",
		       nicclock_convert_timespec(c, CLOCK_BOOTTIME, &ts, 0, &r),
		       nicclock_convert_timespec(c, CLOCK_MONOTONIC, NULL, 0, &r),
		       nicclock_convert_timespec(c, CLOCK_MONOTONIC, &neg, 0, &r),
		       nicclock_convert_counter(NULL, 0, 0, &r));
	} else {
		return 2;
	}
	nicclock_close(c);
	return 0;
}
