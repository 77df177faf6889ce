/*
 * camera.c - stamps 30 "frames" per second with nicclock time and its error bounds, as a camera app
 * would, while a second thread reports clock events (steps, state changes, device lost) as they
 * happen. Like V4L2, the "capture" hands over a CLOCK_MONOTONIC timestamp taken earlier (here 1 ms
 * before the frame is dequeued); the frame gets the TAI of that instant, converted with the mapping
 * in force then (nicclock_convert_timespec), not the time it was processed. A frame captured before
 * a clock step is refused (NICCLOCK_EDISRUPTED) rather than stamped on the wrong timeline.
 * Build: cc -I userspace/include camera.c -L target/debug -lnicclock -lpthread
 *
 * usage: camera [--page NAME] [--dir DIR] [--frames N] [--fps N]
 * Exit status: 0 when every frame was stamped, 1 otherwise, 2 for usage errors.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nicclock.h"

struct options {
	const char *page;
	const char *dir;
	long frames;
	long fps;
};

static int usage(const char *msg)
{
	fprintf(stderr, "camera: %s\nusage: camera [--page NAME] [--dir DIR] [--frames N] [--fps N]\n", msg);
	return 2;
}

static int parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* Reports clock events as they happen; blocks in the kernel in between (no polling). */
static void *event_thread(void *arg)
{
	nicclock_t *events = arg;
	struct nicclock_event ev;
	for (;;) {
		int rc = nicclock_wait_event(events, -1, &ev);
		if (rc < 0) {
			fprintf(stderr, "camera: events: %s\n", nicclock_last_error());
			return NULL;
		}
		if (ev.missed)
			printf("event: missed %" PRIu64 " events\n", ev.missed);
		printf("event %" PRIu64 " kind %u urgency %u magnitude %" PRId64 " epoch %u\n", ev.seq, ev.kind,
		       ev.urgency, ev.magnitude, ev.epoch);
		fflush(stdout);
	}
}

int main(int argc, char **argv)
{
	struct options o = { .page = "system", .dir = NULL, .frames = 30, .fps = 30 };
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (i + 1 >= argc)
			return usage("every option takes a value");
		const char *v = argv[++i];
		if (!strcmp(a, "--page"))
			o.page = v;
		else if (!strcmp(a, "--dir"))
			o.dir = v;
		else if (!strcmp(a, "--frames")) {
			if (parse_long(v, 1, 1000000, &o.frames))
				return usage("--frames takes a number from 1 to 1000000");
		} else if (!strcmp(a, "--fps")) {
			if (parse_long(v, 1, 1000, &o.fps))
				return usage("--fps takes a number from 1 to 1000");
		} else
			return usage("unknown option");
	}

	nicclock_t *clock, *events;
	if (nicclock_open_in(o.dir, o.page, &clock) < 0 || nicclock_open_in(o.dir, o.page, &events) < 0) {
		fprintf(stderr, "camera: %s\n", nicclock_last_error());
		return 1;
	}
	pthread_t t;
	if (pthread_create(&t, NULL, event_thread, events) != 0) {
		fprintf(stderr, "camera: cannot start the event thread\n");
		return 1;
	}
	pthread_detach(t);

	long period_ns = 1000000000L / o.fps, unstamped = 0;
	struct timespec next;
	clock_gettime(CLOCK_MONOTONIC, &next);
	for (long frame = 0; frame < o.frames; frame++) {
		next.tv_nsec += period_ns;
		while (next.tv_nsec >= 1000000000L) {
			next.tv_nsec -= 1000000000L;
			next.tv_sec++;
		}
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);

		/* The capture instant, as the driver stamps it, and the frame handed over 1 ms later. */
		struct timespec captured, latency = { 0, 1000000 };
		clock_gettime(CLOCK_MONOTONIC, &captured);
		clock_nanosleep(CLOCK_MONOTONIC, 0, &latency, NULL);

		struct nicclock_reading r;
		int st = nicclock_convert_timespec(clock, CLOCK_MONOTONIC, &captured, 0, &r);
		if (st == NICCLOCK_EDISRUPTED) {
			printf("frame %ld refused: captured before a clock step: %s\n", frame, nicclock_last_error());
			unstamped++;
		} else if (st < 0) {
			printf("frame %ld unstamped: %s\n", frame, nicclock_last_error());
			unstamped++;
		} else {
			printf("frame %ld tai %lld.%09ld err %" PRIu64 " ns %s est %" PRIu64 " epoch %u\n", frame,
			       (long long)r.time.tv_sec, r.time.tv_nsec, r.max_error_ns, nicclock_status_name(st),
			       r.est_error_ns, r.epoch);
		}
		fflush(stdout);
	}
	nicclock_close(clock);
	printf("%ld frames, %ld unstamped\n", o.frames, unstamped);
	return unstamped ? 1 : 0;
}
