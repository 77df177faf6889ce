/*
 * nicclock.h - read nicclockd's disciplined NIC PTP-clock time without a syscall.
 *
 * nicclockd (root) disciplines a NIC's hardware clock and publishes a counter->TAI mapping in a
 * read-only shared page, /dev/shm/nicclock-<name>. Link with -lnicclock and read it:
 *
 *     nicclock_t *c;
 *     if (nicclock_open("eth0", &c) < 0) { fprintf(stderr, "%s\n", nicclock_last_error()); ... }
 *     struct timespec tai; uint64_t err_ns;
 *     int st = nicclock_gettime(c, &tai, &err_ns);   // >= 0: NICCLOCK_STATUS_*, < 0: NICCLOCK_E*
 *
 * Part 1 is the page ABI (mirrors userspace/src/abi.rs; a test compiles this header and checks
 * every offset and constant against the Rust definitions). Part 2 is the library API.
 */
#ifndef NICCLOCK_H
#define NICCLOCK_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------ */
/* Part 1: the page ABI                                                                        */
/* ------------------------------------------------------------------------------------------ */

#define NICCLOCK_MAGIC 0x4b434f4c4343494eULL /* "NICCLOCK" read as a little-endian u64 */
#define NICCLOCK_ABI_MAJOR 1
#define NICCLOCK_ABI_MINOR 0
#define NICCLOCK_PAGE_SIZE 4096
#define NICCLOCK_EVENT_RING_LEN 64
#define NICCLOCK_PERIOD_SHIFT 48 /* counter_period = ns per counter tick << 48 */

/* counter_kind */
#define NICCLOCK_COUNTER_TSC 1           /* x86 invariant TSC (rdtsc) */
#define NICCLOCK_COUNTER_MONOTONIC_RAW 2 /* CLOCK_MONOTONIC_RAW, ns */

/* status */
#define NICCLOCK_STATUS_UNSYNCHRONIZED 0
#define NICCLOCK_STATUS_LOCKING 1
#define NICCLOCK_STATUS_LOCKED 2
#define NICCLOCK_STATUS_HOLDOVER 3
#define NICCLOCK_STATUS_DEVICE_LOST 4
#define NICCLOCK_STATUS_STOPPED 5

/* leap */
#define NICCLOCK_LEAP_NONE 0
#define NICCLOCK_LEAP_INSERT 1
#define NICCLOCK_LEAP_DELETE 2

/* event kinds */
#define NICCLOCK_EVENT_STARTED 1        /* detail = writer pid */
#define NICCLOCK_EVENT_STATUS_CHANGED 2 /* detail = old status, magnitude = new status */
#define NICCLOCK_EVENT_STEP 3           /* magnitude = step, ns */
#define NICCLOCK_EVENT_FREQUENCY_JUMP 4 /* magnitude = change of servo_freq_ppt, ppt */
#define NICCLOCK_EVENT_DEVICE_LOST 5    /* detail = last register value read */
#define NICCLOCK_EVENT_STOPPED 6        /* detail = writer pid */
#define NICCLOCK_EVENT_LEAP_CHANGED 7   /* detail = leap, magnitude = TAI second it applies */

/* event urgency */
#define NICCLOCK_URGENCY_INFO 0
#define NICCLOCK_URGENCY_NOTICE 1
#define NICCLOCK_URGENCY_URGENT 2

/* Written once before the page appears; immutable but for writer_pid. */
struct nicclock_header {
	uint64_t magic;
	uint16_t abi_major;
	uint16_t abi_minor;
	uint32_t page_size;
	uint32_t clock_offset;
	uint32_t event_control_offset;
	uint32_t event_ring_offset;
	uint32_t event_ring_len;
	uint32_t writer_pid;
	uint32_t _reserved0;
	uint8_t clock_id[8];     /* EUI-64 from the NIC's MAC */
	char model[32];          /* NUL-padded, e.g. "82576" */
	char pci_address[16];    /* NUL-padded, e.g. "0000:01:00.0" */
	char name[64];           /* page name */
	uint8_t _reserved[96];
};

/*
 * Seqlock-protected: read seq (acquire), skip if odd; copy fields; acquire fence; retry if seq
 * changed. tai_ns = anchor_tai_ns + ((int64_t)(counter - counter_value) * counter_period >> 48).
 */
struct nicclock_clock_data {
	/* first cache line: everything nicclock_gettime() needs */
	uint32_t seq;
	uint32_t counter_kind;
	uint64_t counter_value;
	uint64_t counter_period;
	uint64_t anchor_tai_ns;
	uint64_t error_bound_ns;     /* UINT64_MAX: unknown */
	uint32_t error_growth_ppt;   /* ps per s */
	uint32_t status;
	uint64_t updated_tai_ns;     /* 0: no time published yet */
	uint64_t update_interval_ns;
	/* second cache line: for displays */
	uint64_t update_count;
	int32_t tai_utc_offset_s;
	uint32_t leap;
	uint64_t leap_tai_s;
	int64_t servo_offset_ns;
	int64_t servo_freq_ppt;      /* ppt, linuxptp's sign: NIC's estimated error, + = fast */
	uint64_t servo_delay_ns;
	uint32_t servo_state;
	uint32_t _reserved0;
	uint64_t _reserved[17];
};

struct nicclock_event_control {
	uint32_t futex; /* bumped and FUTEX_WAKEd after every event */
	uint32_t _reserved0;
	uint64_t head;  /* events ever written; event n sits in ring[(n - 1) % 64] */
	uint64_t _reserved[6];
};

struct nicclock_event_slot {
	uint64_t seq; /* event number; 0 while being written */
	uint64_t tai_ns;
	int64_t magnitude;
	uint16_t kind;
	uint16_t urgency;
	uint32_t detail;
};

struct nicclock_page {
	struct nicclock_header header;
	struct nicclock_clock_data clock;
	struct nicclock_event_control events;
	uint8_t _reserved0[448];
	struct nicclock_event_slot ring[NICCLOCK_EVENT_RING_LEN];
	uint8_t _reserved1[1024];
};

#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
_Static_assert(sizeof(struct nicclock_header) == 256, "nicclock_header size");
_Static_assert(sizeof(struct nicclock_clock_data) == 256, "nicclock_clock_data size");
_Static_assert(sizeof(struct nicclock_event_control) == 64, "nicclock_event_control size");
_Static_assert(sizeof(struct nicclock_event_slot) == 32, "nicclock_event_slot size");
_Static_assert(sizeof(struct nicclock_page) == NICCLOCK_PAGE_SIZE, "nicclock_page size");
_Static_assert(offsetof(struct nicclock_page, clock) == 256, "clock offset");
_Static_assert(offsetof(struct nicclock_page, events) == 512, "events offset");
_Static_assert(offsetof(struct nicclock_page, ring) == 1024, "ring offset");
#endif

/* ------------------------------------------------------------------------------------------ */
/* Part 2: the library                                                                         */
/* ------------------------------------------------------------------------------------------ */

typedef struct nicclock nicclock_t;

/* Errors: every call returns >= 0 on success or one of these. nicclock_last_error() has the
 * full message (what was wrong and what to do). */
#define NICCLOCK_ENOENT -1    /* no page: nicclockd is probably not running */
#define NICCLOCK_EACCES -2    /* page not readable by this user */
#define NICCLOCK_EBADPAGE -3  /* not a nicclock page, or corrupt */
#define NICCLOCK_EABI -4      /* page from an incompatible ABI major */
#define NICCLOCK_ESTALE -5    /* no update within the max age: daemon stuck or killed */
#define NICCLOCK_EDEVLOST -6  /* the NIC disappeared */
#define NICCLOCK_ESTOPPED -7  /* nicclockd shut down */
#define NICCLOCK_ENOTIME -8   /* no time published yet */
#define NICCLOCK_EBUSY -9     /* writer stuck mid-update */
#define NICCLOCK_ECOUNTER -10 /* the page's counter cannot be read on this machine */
#define NICCLOCK_EIO -11      /* other I/O error */
#define NICCLOCK_EINVAL -12   /* bad argument (NULL handle, ...) */

struct nicclock_event {
	uint64_t seq;         /* event number, 1-based */
	uint32_t kind;        /* NICCLOCK_EVENT_* */
	uint32_t urgency;     /* NICCLOCK_URGENCY_* */
	struct timespec time; /* TAI */
	int64_t magnitude;
	uint32_t detail;
	uint32_t _pad;
	uint64_t missed;      /* events lost to ring overflow just before this one */
};

/* Open /dev/shm/nicclock-<name> (or <dir>/nicclock-<name>; dir NULL = /dev/shm) read-only. */
int nicclock_open(const char *name, nicclock_t **out);
int nicclock_open_in(const char *dir, const char *name, nicclock_t **out);

/* TAI (or UTC) now and its error bound in ns; either pointer may be NULL.
 * Returns the status (NICCLOCK_STATUS_*) or a negative error. No syscall on x86 with TSC. */
int nicclock_gettime(const nicclock_t *c, struct timespec *tai, uint64_t *error_ns);
int nicclock_gettime_utc(const nicclock_t *c, struct timespec *utc, uint64_t *error_ns);

/* The TAI interval the true time lies in. Returns the status or a negative error. */
int nicclock_bounds(const nicclock_t *c, struct timespec *earliest, struct timespec *latest);

/* The page status, or NICCLOCK_ESTALE for a page not updated within its max age. */
int nicclock_status(const nicclock_t *c);

/* Block (futex, no polling) until the next event; timeout_ms < 0 waits forever.
 * Returns 1 with *ev filled, 0 on timeout, or a negative error. One thread per handle. */
int nicclock_wait_event(nicclock_t *c, int timeout_ms, struct nicclock_event *ev);

void nicclock_close(nicclock_t *c);

const char *nicclock_strerror(int code);
const char *nicclock_last_error(void);
const char *nicclock_status_name(int status);

#ifdef __cplusplus
}
#endif

#endif /* NICCLOCK_H */
