/* wake-floor HZ: the lab's floor for a daemon's idle CPU. It sleeps to absolute deadlines
 * HZ times a second on CLOCK_MONOTONIC and does nothing else: no reads, no work, until killed.
 * Under QEMU TCG its CPU is what the wake-ups alone cost at that rate (scenario ptp-slave). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv) {
  char *end = NULL;
  double hz = argc == 2 ? strtod(argv[1], &end) : 0;
  if (argc != 2 || end == argv[1] || *end != '\0' || !(hz >= 0.1 && hz <= 10000)) {
    fprintf(stderr, "usage: wake-floor HZ (0.1-10000 wake-ups a second; runs until killed)\n");
    return 2;
  }
  long long period_ns = (long long)(1e9 / hz);
  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  for (;;) {
    long long ns = next.tv_nsec + period_ns;
    next.tv_sec += ns / 1000000000LL;
    next.tv_nsec = ns % 1000000000LL;
    int rc;
    while ((rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL)) == EINTR) {
    }
    if (rc != 0) {
      fprintf(stderr, "wake-floor: clock_nanosleep failed (error %d)\n", rc);
      return 1;
    }
  }
}
