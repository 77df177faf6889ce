/*
 * The C library against hostile pages (tests/hostile.rs): one call, its result on stdout.
 *
 *   hostile_reader DIR NAME now                   "time S.N ERR STATUS" | "open RC MSG" | "gettime RC MSG"
 *   hostile_reader DIR NAME events TIMEOUT_MS N   per event "event SEQ KIND MISSED"; then "timeout" or
 *                                                 "wait RC MSG"
 *   hostile_reader DIR NAME until MAX_NS TIMEOUT_MS "reached ERR" | "timeout ERR" | "until RC MSG"
 *   hostile_reader DIR NAME after TIMEOUT_MS      commit-wait for a time 1 s ahead: "passed" |
 *                                                 "timeout" | "after RC MSG"
 * Exit 0 when every call succeeded, 1 otherwise.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nicclock.h"

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: hostile_reader DIR NAME now | events TIMEOUT_MS N | until MAX_NS TIMEOUT_MS | after TIMEOUT_MS\n");
		return 2;
	}
	nicclock_t *c;
	int rc = nicclock_open_in(argv[1], argv[2], &c);
	if (rc < 0) {
		printf("open %d %s\n", rc, nicclock_last_error());
		return 1;
	}
	if (strcmp(argv[3], "now") == 0) {
		struct timespec ts;
		uint64_t err;
		rc = nicclock_gettime(c, &ts, &err);
		if (rc < 0) {
			printf("gettime %d %s\n", rc, nicclock_last_error());
			return 1;
		}
		printf("time %lld.%09ld %" PRIu64 " %s\n", (long long)ts.tv_sec, ts.tv_nsec, err, nicclock_status_name(rc));
		return 0;
	}
	if (strcmp(argv[3], "events") == 0 && argc == 6) {
		int timeout_ms = atoi(argv[4]), n = atoi(argv[5]);
		for (int i = 0; i < n; i++) {
			struct nicclock_event ev;
			rc = nicclock_wait_event(c, timeout_ms, &ev);
			if (rc == 0) {
				printf("timeout\n");
				return 1;
			}
			if (rc < 0) {
				printf("wait %d %s\n", rc, nicclock_last_error());
				return 1;
			}
			printf("event %" PRIu64 " %u %" PRIu64 "\n", ev.seq, ev.kind, ev.missed);
			fflush(stdout);
		}
		return 0;
	}
	if (strcmp(argv[3], "until") == 0 && argc == 6) {
		uint64_t err = 0;
		rc = nicclock_wait_until(c, strtoull(argv[4], NULL, 10), atoi(argv[5]), &err);
		if (rc < 0) {
			printf("until %d %s\n", rc, nicclock_last_error());
			return 1;
		}
		printf("%s %" PRIu64 "\n", rc == 1 ? "reached" : "timeout", err);
		return rc == 1 ? 0 : 1;
	}
	if (strcmp(argv[3], "after") == 0 && argc == 5) {
		struct nicclock_interval iv = {0, 0};
		rc = nicclock_now_interval(c, &iv);
		if (rc < 0) {
			printf("after %d %s\n", rc, nicclock_last_error());
			return 1;
		}
		rc = nicclock_wait_until_after(c, iv.latest_ns + 1000000000ULL, atoi(argv[4]), &iv);
		if (rc < 0) {
			printf("after %d %s\n", rc, nicclock_last_error());
			return 1;
		}
		printf("%s\n", rc == 1 ? "passed" : "timeout");
		return rc == 1 ? 0 : 1;
	}
	fprintf(stderr, "unknown operation %s\n", argv[3]);
	return 2;
}
