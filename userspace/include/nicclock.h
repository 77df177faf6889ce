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
 * every offset and constant against the Rust definitions), with the exact conversion as static
 * inline functions and the rules for reading the page without the library. Part 2 is the library
 * API.
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
/* 1: header.boot_id; 2: NICCLOCK_EVENT_PULSE_MISSED; 3: reference identity;
 * 4: disruption epoch, estimated error, history of past mappings */
#define NICCLOCK_ABI_MINOR 4
#define NICCLOCK_PAGE_SIZE 4096
#define NICCLOCK_EVENT_RING_LEN 64
#define NICCLOCK_HISTORY_LEN 16                   /* history entries (minor 4) */
#define NICCLOCK_HISTORY_SPAN_NS 1000000000ULL    /* an entry covers >= 1 s unless a disruption closes it */
#define NICCLOCK_HISTORY_DEPTH_NS 15000000000ULL  /* past timestamps this old always convert (no disruption) */
#define NICCLOCK_CLOCK_RATE_TOLERANCE_PPM 1000    /* system clock vs page clock rate allowance, past conversions */
#define NICCLOCK_PERIOD_SHIFT 48 /* counter_period = ns per counter tick << 48 */

/* Sanity limits every reader applies (see "Reading the page yourself" below). */
#define NICCLOCK_MAX_EVENT_HEAD 281474976710656ULL /* 2^48: a larger events.head is corrupt */
#define NICCLOCK_TSC_PERIOD_MIN 14073748835532ULL  /* 0.05 ns per tick (20 GHz) << 48 */
#define NICCLOCK_TSC_PERIOD_MAX 2814749767106560ULL /* 10 ns per tick (100 MHz) << 48 */
#define NICCLOCK_MONOTONIC_RAW_PERIOD_MIN 253327479039585ULL /* 0.9 ns per tick << 48 */
#define NICCLOCK_MONOTONIC_RAW_PERIOD_MAX 309622474381715ULL /* 1.1 ns per tick << 48 */
#define NICCLOCK_MAX_COUNTER_BEFORE_ANCHOR_NS 100000 /* how far a counter may precede the anchor */
#define NICCLOCK_STALE_INTERVALS 3              /* stale after 3 update intervals ... */
#define NICCLOCK_STALE_MIN_NS 1000000000ULL     /* ... and never sooner than 1 s */
#define NICCLOCK_WRITER_STUCK_MS 1000           /* give up on a writer mid-update after this */

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
#define NICCLOCK_EVENT_PULSE_MISSED 8   /* magnitude = PPS pulses missed in a row (minor 2) */
/* 0 is never written. A kind not listed here comes from a newer minor's writer: handle it by its
 * urgency (nicclock_wait_event passes its number through, and an urgency not listed reads as
 * NICCLOCK_URGENCY_URGENT). */
#define NICCLOCK_EVENT_UNKNOWN 0

/* reference_kind (minor 3; a page of an older minor has 0 = unknown) */
#define NICCLOCK_REFERENCE_UNKNOWN 0
#define NICCLOCK_REFERENCE_SYSTEM_CLOCK 1
#define NICCLOCK_REFERENCE_PPS 2
#define NICCLOCK_REFERENCE_PTP 3

/* ptp_port_state: IEEE 1588 / linuxptp numbering (1 INITIALIZING ... 4 LISTENING, 6 MASTER,
 * 8 UNCALIBRATED, 9 SLAVE, 10 GRAND_MASTER); 0 when the reference is not PTP */
#define NICCLOCK_PTP_PORT_STATE_SLAVE 9

/* ptp_flags: the Announce's flagField octet 1 as announced */
#define NICCLOCK_PTP_FLAG_LEAP61 0x01
#define NICCLOCK_PTP_FLAG_LEAP59 0x02
#define NICCLOCK_PTP_FLAG_UTC_OFFSET_VALID 0x04
#define NICCLOCK_PTP_FLAG_PTP_TIMESCALE 0x08
#define NICCLOCK_PTP_FLAG_TIME_TRACEABLE 0x10
#define NICCLOCK_PTP_FLAG_FREQUENCY_TRACEABLE 0x20

/* utc_offset_source: where tai_utc_offset_s comes from */
#define NICCLOCK_UTC_OFFSET_SOURCE_UNKNOWN 0   /* page of minor < 3 */
#define NICCLOCK_UTC_OFFSET_SOURCE_HOST 1      /* kernel TAI offset or configuration */
#define NICCLOCK_UTC_OFFSET_SOURCE_REFERENCE 2 /* the PTP master's Announce (offset valid) */

/* event urgency */
#define NICCLOCK_URGENCY_INFO 0
#define NICCLOCK_URGENCY_NOTICE 1
#define NICCLOCK_URGENCY_URGENT 2

/* Written once before the page appears; immutable but for writer_pid, and boot_id then
 * abi_minor, which a writer taking over an existing page rewrites. */
struct nicclock_header {
	uint64_t magic;
	uint16_t abi_major;
	uint16_t abi_minor;
	uint32_t page_size;
	uint32_t clock_offset;
	uint32_t event_control_offset;
	uint32_t event_ring_offset;
	uint32_t event_ring_len;
	uint32_t writer_pid;     /* informational: do not use it to judge liveness (see below) */
	uint32_t _reserved0;
	uint8_t clock_id[8];     /* EUI-64 from the NIC's MAC */
	char model[32];          /* NUL-padded, e.g. "82576" */
	char pci_address[16];    /* NUL-padded, e.g. "0000:01:00.0" */
	char name[64];           /* page name */
	uint8_t boot_id[16];     /* minor >= 1: /proc/sys/kernel/random/boot_id, 32 hex digits in order */
	uint8_t _reserved[80];
};

/*
 * Seqlock-protected: every field after seq. tai_ns = anchor_tai_ns + (counter - counter_value) *
 * counter_period / 2^48, computed exactly (the product needs 128 bits) by nicclock_tai_at() below.
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
	/* reference identity (minor 3; zero on older pages): read under seq with the mapping */
	uint32_t reference_kind;     /* NICCLOCK_REFERENCE_* */
	uint8_t gm_identity[8];      /* PTP grandmaster EUI-64, wire order; zero unless PTP */
	uint32_t ptp_steps_removed;
	uint32_t ptp_port_state;     /* linuxptp numbering, 9 = SLAVE; 0 unless PTP */
	uint32_t ptp_flags;          /* NICCLOCK_PTP_FLAG_*, as announced */
	uint32_t utc_offset_source;  /* NICCLOCK_UTC_OFFSET_SOURCE_* */
	uint32_t gm_clock_accuracy;  /* announced clockAccuracy code (0x20 = 25 ns, 0xFE unknown) */
	uint32_t _reserved1;
	uint64_t gm_accuracy_ns;     /* bound share implied by it, in error_bound_ns; UINT64_MAX unknown (not counted) */
	/* minor 4 (header abi_minor < 4 or disruption_epoch 0: an older writer, none of these are live) */
	uint32_t disruption_epoch;     /* bumped at every step, writer start, reference or device change */
	uint32_t est_error_growth_ppt; /* the rate's own estimated error, ps per s */
	uint64_t est_error_ns;         /* estimated (statistical) error at the anchor, <= error_bound_ns */
	uint64_t history_head;         /* history entries ever opened; entry n in history[(n - 1) % 16] */
	uint64_t _reserved[9];
};

/* One past mapping (minor 4), valid for counter values in [counter_start, counter_end), guarded by
 * its own seq (odd while written). max_error_ns / est_error_ns hold anywhere inside it. */
struct nicclock_history_entry {
	uint32_t seq;
	uint32_t epoch;          /* disruption epoch of the updates it stands for */
	uint64_t number;         /* entry number, 1-based; 0 never written */
	uint64_t counter_start;
	uint64_t counter_end;
	uint64_t anchor_tai_ns;  /* TAI at counter_start */
	uint64_t counter_period;
	uint64_t max_error_ns;   /* UINT64_MAX: unknown */
	uint64_t est_error_ns;   /* UINT64_MAX: unknown */
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
	uint8_t _reserved0[192];
	uint32_t event_epochs[NICCLOCK_EVENT_RING_LEN]; /* minor 4: epoch of ring[i]'s event, under its seq */
	struct nicclock_event_slot ring[NICCLOCK_EVENT_RING_LEN];
	struct nicclock_history_entry history[NICCLOCK_HISTORY_LEN]; /* minor 4 */
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
_Static_assert(offsetof(struct nicclock_page, event_epochs) == 768, "event_epochs offset");
_Static_assert(offsetof(struct nicclock_page, history) == 3072, "history offset");
_Static_assert(sizeof(struct nicclock_history_entry) == 64, "nicclock_history_entry size");
#endif

/*
 * Reading the page yourself (what the library does; every rule here is one it applies)
 *
 * Byte order and atomicity: every integer is little-endian (the page never leaves the host that
 * writes it) and naturally aligned; load the ones the writer changes (clock data, events,
 * writer_pid, boot_id, abi_minor) as atomics (__atomic_load_n / C11 atomics; relaxed inside a
 * sequence check), never as plain memory the compiler may re-read or tear.
 *
 * Opening: O_RDONLY|O_NOFOLLOW|O_NONBLOCK, fstat says a regular file of exactly 4096 bytes, mmap
 * PROT_READ, MAP_SHARED. Then: magic; abi_major == NICCLOCK_ABI_MAJOR (a higher abi_minor only adds
 * fields: accept it); page_size, event_ring_len and the three offsets as in this header;
 * events.head <= NICCLOCK_MAX_EVENT_HEAD. abi_minor >= 1: boot_id must be non-zero and equal to
 * this boot's (/proc/sys/kernel/random/boot_id, 36 characters; its 32 hex digits in order are the
 * 16 bytes): a page from another boot (a page directory on disk) maps a counter that restarted.
 * abi_minor == 0 (a writer older than boot ids) has no boot id: accepted, the negative-age check
 * below being its only guard. If published (updated_tai_ns != 0), counter_period must be in range.
 *
 * The clock block: its sequence word `seq` covers every other field of struct
 * nicclock_clock_data. s1 = load-acquire(seq); if s1 is odd the writer is mid-update: retry; copy
 * the fields (relaxed loads); acquire fence; if load-relaxed(seq) != s1 retry. Spin a little,
 * then sched_yield(): a writer preempted mid-update resumes within milliseconds. After
 * NICCLOCK_WRITER_STUCK_MS of odd or changing sequences give up (the library's NICCLOCK_EBUSY):
 * the writer died mid-update.
 *
 * The counter: NICCLOCK_COUNTER_TSC is `lfence; rdtsc` (what the kernel's rdtsc_ordered() does;
 * `rdtscp` also works), never a bare `rdtsc`, which the CPU may run before earlier loads.
 * NICCLOCK_COUNTER_MONOTONIC_RAW is clock_gettime(CLOCK_MONOTONIC_RAW) as tv_sec * 1e9 + tv_nsec.
 * Read it after the copy (the library reads the TSC before and retries once with a read after the
 * copy when the result is out of range, which saves it a wait on the page's cache line).
 *
 * Each reading, in this order: status is known and neither DEVICE_LOST nor STOPPED (else that is
 * the answer); updated_tai_ns != 0 (else no time yet) and below 2^63 (else corrupt: no time so
 * far from 1970 is real); counter_period lies in the kind's
 * NICCLOCK_*_PERIOD_MIN..MAX (else corrupt); tai = nicclock_tai_at(..., &since); age = tai -
 * updated_tai_ns, signed. Stale when age > max_age, max_age = max(NICCLOCK_STALE_INTERVALS *
 * update_interval_ns, NICCLOCK_STALE_MIN_NS) unless the application sets its own: the writer is
 * stuck or dead (writer_pid is no liveness test: pids are reused and live in namespaces; a page's
 * age is). Invalid when age or since is below -NICCLOCK_MAX_COUNTER_BEFORE_ANCHOR_NS: the mapping
 * lies ahead of this machine's counter (another boot, a broken writer).
 *
 * The bound: the true TAI lies within tai +- nicclock_error_at(error_bound_ns, error_growth_ppt,
 * |since|), the anchor's bound grown by error_growth_ppt picoseconds per second of distance from
 * the anchor (either side). UINT64_MAX is unknown and stays so.
 *
 * TAI and UTC: tai is ns since 1970-01-01 00:00:00 TAI, i.e. the epoch of Linux's CLOCK_TAI
 * (= CLOCK_REALTIME + TAI-UTC). UTC ns = tai - offset * 1e9, offset = tai_utc_offset_s, plus 1 (leap
 * INSERT) or minus 1 (leap DELETE) once tai / 1e9 >= leap_tai_s, the TAI second from which the new
 * offset holds. UTC so computed has no 23:59:60: across an inserted second it reads one second
 * twice, across a deleted one it skips one, as CLOCK_REALTIME does.
 *
 * The reference (abi_minor >= 3): reference_kind and the fields after it in the clock block are
 * copied under the same sequence check, so they describe the reference of the mapping read with
 * them. A page of an older minor has them zero: reference unknown, UTC offset source unknown (not
 * an error). Under NICCLOCK_REFERENCE_PTP, gm_identity is the grandmaster's clockIdentity in wire
 * order (ptp4l prints it as 001122.fffe.334455), ptp_flags the Announce's flags as sent, and the
 * announced accuracy is part of error_bound_ns (gm_accuracy_ns says how much); an accuracy the
 * master announces as unknown (UINT64_MAX) is not: the bound is then relative to its clock. A
 * reference_kind or utc_offset_source above the known values is corrupt (or a newer writer's).
 *
 * Events: events.head counts the events ever written; event n sits in ring[(n - 1) % 64]. Read it
 * like the clock block, with the event number as the sequence: load-acquire(slot.seq) == n, copy,
 * acquire fence, load-relaxed(slot.seq) == n. A slot holding a larger number was overwritten
 * (events lost: re-read head; the oldest still there is head - 63). A slot holding 0 is being
 * written (for event n + 64 when n is the oldest): wait at most NICCLOCK_WRITER_STUCK_MS for head
 * to move; if it does not, the writer died mid-post: the oldest slot's event is lost, any other
 * slot means a corrupt page. To wait, FUTEX_WAIT (shared: no FUTEX_PRIVATE_FLAG) on events.futex
 * with the value loaded before head; the writer bumps it and FUTEX_WAKEs after every event. Give
 * the wait a timeout no longer than the page has left before it goes stale, and check staleness
 * on waking: a killed writer wakes nobody.
 *
 * The disruption epoch and the estimated error (abi_minor >= 4: with a smaller abi_minor in the
 * header, or disruption_epoch 0, the writer published none of this; an older writer taking over
 * a newer one's page leaves that one's values behind, so check the header's minor): disruption_epoch is read under seq with the mapping. Two readings
 * with the same epoch lie on one timeline (no step, restart, reference or device change between);
 * an event's epoch is event_epochs[i] of its slot, read inside the slot's sequence check. The
 * estimated error grows like the bound: nicclock_error_at(est_error_ns, est_error_growth_ppt, |since|).
 *
 * Past mappings (abi_minor >= 4): to convert a counter value c read earlier, read the clock block
 * (mapping, disruption_epoch, history_head h). c at or after counter_value: the current mapping.
 * Else look at entries h, h-1, ... h-15: read history[(n - 1) % 16] under its own seq (as the clock
 * block) and require number == n (else it was overwritten: too old); the first with
 * counter_start <= c < counter_end holds c: tai = nicclock_tai_at(counter_start, counter_period,
 * anchor_tai_ns, c, NULL) +- max_error_ns (estimated: est_error_ns). Its epoch must equal the clock
 * block's disruption_epoch: an older epoch means c was read before a step (or restart, reference
 * change): refuse it. No entry: older than the history, refuse it.
 *
 * Waiting for an update: FUTEX_WAIT (shared) on clock.seq with the value loaded before reading the
 * block; the writer FUTEX_WAKEs it after every update and status change (writers older than this
 * header's library do not: bound the wait as for events and look again on waking).
 */

/* Signed counter ticks x counter_period / 2^48, rounded to the nearest ns (ties away from zero),
 * saturating at +-INT64_MAX: the 64x64-bit product needs 128 bits. */
static inline int64_t nicclock_ticks_to_ns(int64_t ticks, uint64_t counter_period)
{
	uint64_t mag = ticks < 0 ? (uint64_t)0 - (uint64_t)ticks : (uint64_t)ticks;
	uint64_t ns;
#if defined(__SIZEOF_INT128__) && !defined(NICCLOCK_NO_INT128)
	__extension__ typedef unsigned __int128 nicclock_u128;
	nicclock_u128 q = ((nicclock_u128)mag * counter_period + ((nicclock_u128)1 << (NICCLOCK_PERIOD_SHIFT - 1)))
	                  >> NICCLOCK_PERIOD_SHIFT;
	ns = q > (nicclock_u128)INT64_MAX ? (uint64_t)INT64_MAX : (uint64_t)q;
#else
	/* 128-bit product hi:lo from four 32x32-bit products, then + 2^47 and >> 48. */
	uint64_t ml = mag & 0xffffffffu, mh = mag >> 32, pl = counter_period & 0xffffffffu, ph = counter_period >> 32;
	uint64_t ll = ml * pl, lh = ml * ph, hl = mh * pl, hh = mh * ph;
	uint64_t mid = (ll >> 32) + (lh & 0xffffffffu) + (hl & 0xffffffffu);
	uint64_t lo = (mid << 32) | (ll & 0xffffffffu);
	uint64_t hi = hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
	uint64_t rounded = lo + ((uint64_t)1 << (NICCLOCK_PERIOD_SHIFT - 1));
	hi += rounded < lo;
	lo = rounded;
	ns = (hi >> (NICCLOCK_PERIOD_SHIFT - 1)) != 0 ? (uint64_t)INT64_MAX
	                                                : (hi << (64 - NICCLOCK_PERIOD_SHIFT)) | (lo >> NICCLOCK_PERIOD_SHIFT);
#endif
	return ticks < 0 ? -(int64_t)ns : (int64_t)ns;
}

/* TAI ns at counter value `counter` by the mapping (counter_value, counter_period, anchor_tai_ns),
 * saturating at 0 and UINT64_MAX; *since_ns (if not NULL) gets the signed distance from the anchor
 * in ns. The counter difference wraps like the counter: a reading a little before the anchor is
 * a little earlier time, not a wrap. */
static inline uint64_t nicclock_tai_at(uint64_t counter_value, uint64_t counter_period, uint64_t anchor_tai_ns,
                                       uint64_t counter, int64_t *since_ns)
{
	int64_t since = nicclock_ticks_to_ns((int64_t)(counter - counter_value), counter_period);
	if (since_ns)
		*since_ns = since;
	if (since >= 0)
		return anchor_tai_ns > UINT64_MAX - (uint64_t)since ? UINT64_MAX : anchor_tai_ns + (uint64_t)since;
	return anchor_tai_ns < (uint64_t)0 - (uint64_t)since ? 0 : anchor_tai_ns - ((uint64_t)0 - (uint64_t)since);
}

/* The error bound (ns) |since_ns| from the anchor: error_bound_ns + since x growth_ppt / 10^12
 * (floor), saturating; UINT64_MAX (unknown) stays UINT64_MAX. */
static inline uint64_t nicclock_error_at(uint64_t error_bound_ns, uint32_t growth_ppt, uint64_t since_abs_ns)
{
	const uint64_t tera = 1000000000000ULL;
	uint64_t growth;
	if (error_bound_ns == UINT64_MAX)
		return UINT64_MAX;
	/* since = a * 10^12 + b: a * ppt fits in 64 bits (a < 2^25), and b * ppt / 10^12 is taken in
	 * two 16-bit halves of ppt so that no intermediate passes 2^57. */
	{
		uint64_t a = since_abs_ns / tera, b = since_abs_ns % tera;
		uint64_t x = b * (growth_ppt >> 16), y = b * (growth_ppt & 0xffffu);
		uint64_t qx = x / tera, rx = x % tera;
		growth = a * growth_ppt + (qx << 16) + ((rx << 16) + y) / tera;
	}
	return error_bound_ns > UINT64_MAX - growth ? UINT64_MAX : error_bound_ns + growth;
}

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
#define NICCLOCK_EWIDE -13    /* an interval wider than the caller's cap (nicclock_interval_midpoint) */
#define NICCLOCK_EDISRUPTED -14 /* a past timestamp from before a step/restart/reference change (epoch) */
#define NICCLOCK_ETOOOLD -15  /* a past timestamp older than the page's history (or a page without one) */

struct nicclock_event {
	uint64_t seq;         /* event number, 1-based */
	uint32_t kind;        /* NICCLOCK_EVENT_* */
	uint32_t urgency;     /* NICCLOCK_URGENCY_* */
	struct timespec time; /* TAI */
	int64_t magnitude;
	uint32_t detail;
	uint32_t epoch;       /* disruption epoch when posted (0: older writer); a STEP carries the one it begins */
	uint64_t missed;      /* events lost to ring overflow just before this one */
};

/* A reading with both errors (ABI minor 4). The maximum error is the bound nicclockd can stand
 * behind; the estimated error is what its servo believes (statistical, about one standard
 * deviation: RMS of the recent offsets and the mapping's jitter, grown by the rate's estimated
 * error), never above the maximum, equal to it on a page of an older writer. Readers choose. */
struct nicclock_reading {
	struct timespec time;  /* TAI, or UTC when asked */
	uint64_t max_error_ns; /* UINT64_MAX: unknown */
	uint64_t est_error_ns; /* UINT64_MAX: unknown */
	uint32_t status;       /* NICCLOCK_STATUS_* */
	uint32_t epoch;        /* disruption epoch: equal epochs = one timeline (0: older writer) */
};

/* [earliest_ns, latest_ns]: the TAI ns since 1970 the true time lies in, both ends included. A
 * reading with an unknown bound is [0, UINT64_MAX], which orders against nothing. */
struct nicclock_interval {
	uint64_t earliest_ns;
	uint64_t latest_ns;
};

/*
 * Threads. A handle may be shared by any number of threads: nicclock_gettime, nicclock_gettime_utc,
 * nicclock_bounds, nicclock_status, nicclock_now_interval, nicclock_wait_until,
 * nicclock_wait_until_after, nicclock_read and nicclock_convert_* take a const handle and may run
 * on it concurrently, with no lock (each reading is a lock-free copy of the page). nicclock_wait_event advances the handle's event
 * cursor: one thread at a time per handle (give each event-waiting thread its own handle).
 * nicclock_close ends the handle: no call on it may be running or follow. nicclock_last_error is
 * per thread; the interval functions and the name/strerror functions touch no handle.
 */

/* Open /dev/shm/nicclock-<name> (or <dir>/nicclock-<name>; dir NULL = /dev/shm) read-only.
 * NICCLOCK_EINVAL: a name that is not [A-Za-z0-9._:-]{1,63} or starts with '.'; NICCLOCK_EBADPAGE: a
 * file that fails the checks above; NICCLOCK_ESTALE: a page from another boot. */
int nicclock_open(const char *name, nicclock_t **out);
int nicclock_open_in(const char *dir, const char *name, nicclock_t **out);

/* TAI (or UTC) now and its error bound in ns; either pointer may be NULL.
 * Returns the status (NICCLOCK_STATUS_*) or a negative error. No syscall on x86 with TSC. The
 * bound is worked out only when error_ns is not NULL (one multiply more): pass NULL when only the
 * time is wanted. */
int nicclock_gettime(const nicclock_t *c, struct timespec *tai, uint64_t *error_ns);
int nicclock_gettime_utc(const nicclock_t *c, struct timespec *utc, uint64_t *error_ns);

/* The TAI interval the true time lies in. Returns the status or a negative error. */
int nicclock_bounds(const nicclock_t *c, struct timespec *earliest, struct timespec *latest);

/* The page status, or NICCLOCK_ESTALE for a page not updated within its max age. */
int nicclock_status(const nicclock_t *c);

/* Block (futex, no polling) until the next event; timeout_ms < 0 waits forever (the timeout holds
 * for the whole call). Returns 1 with *ev filled, 0 on timeout, or a negative error: NICCLOCK_ESTALE
 * when the page goes stale while waiting (nicclockd killed or hung), NICCLOCK_EBUSY when an event
 * slot stays mid-write past NICCLOCK_WRITER_STUCK_MS (not the oldest: that one counts as missed),
 * NICCLOCK_EBADPAGE for a corrupt ring. One thread per handle. */
int nicclock_wait_event(nicclock_t *c, int timeout_ms, struct nicclock_event *ev);

/* Waiting for sync: blocks until the page says LOCKED and the error bound, as nicclock_gettime
 * computes it at that moment, is <= max_error_ns. timeout_ms < 0 waits forever. Returns 1 when
 * reached (*error_ns, if not NULL, gets that bound), 0 on timeout (*error_ns gets the last bound
 * read, UINT64_MAX when no time was published yet), or a negative error, at once when it happens:
 * NICCLOCK_ESTOPPED / NICCLOCK_EDEVLOST when nicclockd stops or loses the NIC, NICCLOCK_ESTALE
 * when the page goes stale while waited on (nicclockd killed or hung), NICCLOCK_EBUSY,
 * NICCLOCK_EBADPAGE. Other statuses and "no time yet" are waited through. It sleeps on the futex
 * nicclockd wakes at every update (the only moment the bound can shrink: between updates it only
 * grows), so once reached the condition holds until the bound grows past max_error_ns or an
 * update widens it: it was true at that reading, not promised for later. Thread-safe. */
int nicclock_wait_until(const nicclock_t *c, uint64_t max_error_ns, int timeout_ms, uint64_t *error_ns);

/* TAI now as an interval into *out (may be NULL): nicclock_bounds in ns. Returns the status or a
 * negative error. Costs what nicclock_gettime costs. */
int nicclock_now_interval(const nicclock_t *c, struct nicclock_interval *out);

/* 1 when every instant of *a lies before (after) every instant of *b, else 0 (overlapping or
 * touching intervals order neither way); NICCLOCK_EINVAL for a NULL interval. To compare a reading
 * with a timestamp t, pass {t, t}. */
int nicclock_definitely_before(const struct nicclock_interval *a, const struct nicclock_interval *b);
int nicclock_definitely_after(const struct nicclock_interval *a, const struct nicclock_interval *b);

/* The middle of *i into *mid_ns (may be NULL) when *i is at most max_width_ns wide (latest -
 * earliest, twice the error bound): returns 0; else NICCLOCK_EWIDE and *mid_ns is left alone. */
int nicclock_interval_midpoint(const struct nicclock_interval *i, uint64_t max_width_ns, uint64_t *mid_ns);

/* Commit-wait: blocks until the earliest possible TAI is after t_ns, so that any reading anyone
 * takes afterwards is certainly later than t_ns. Sleeps for the time still to go (on the update
 * futex: an update narrowing the bound ends it early), never spins; timeout_ms < 0 waits forever.
 * Returns 1 passed (*out, if not NULL, gets that reading's interval), 0 on timeout (*out gets the
 * last reading's, untouched without one; an unknown bound never passes), or a negative error as
 * nicclock_wait_until's. Thread-safe. */
int nicclock_wait_until_after(const nicclock_t *c, uint64_t t_ns, int timeout_ms, struct nicclock_interval *out);

/* Now (TAI; UTC when utc != 0) with both errors and the disruption epoch into *out (may be NULL).
 * Returns the status or a negative error, as nicclock_gettime. Thread-safe. */
int nicclock_read(const nicclock_t *c, int utc, struct nicclock_reading *out);

/* Past timestamps (ABI minor 4). Convert a timestamp taken up to NICCLOCK_HISTORY_DEPTH_NS (15 s)
 * ago with the mapping that was in force then, not today's, into *out (may be NULL); returns the
 * status or a negative error. Thread-safe; costs about a nicclock_read (a counter) or one
 * clock_gettime more (a timespec).
 *
 * nicclock_convert_counter: a value of the page's counter (rdtsc on a NICCLOCK_COUNTER_TSC page,
 * CLOCK_MONOTONIC_RAW ns on a NICCLOCK_COUNTER_MONOTONIC_RAW page).
 * nicclock_convert_timespec: a CLOCK_MONOTONIC (what V4L2 stamps frames with),
 * CLOCK_MONOTONIC_RAW or CLOCK_REALTIME timestamp. The library carries it to the counter with a
 * bracketed reading of that clock now and adds what that can get wrong to both errors: half the
 * bracket, and the timestamp's age x NICCLOCK_CLOCK_RATE_TOLERANCE_PPM (the system clock's rate
 * may differ from the page's clock's: NTP frequency and slew). A CLOCK_REALTIME timestamp from
 * before a step of the system clock (settimeofday) converts wrongly: prefer CLOCK_MONOTONIC.
 * Another clock id, a NULL or malformed ts: NICCLOCK_EINVAL.
 *
 * Refused, never guessed: NICCLOCK_EDISRUPTED for a timestamp from an older disruption epoch
 * (before a step, a restart of nicclockd, a reference or device change, or within the update
 * interval in which it happened); NICCLOCK_ETOOOLD for one older than the history, or any but the
 * newest interval's on a page of an older writer (no history); NICCLOCK_EINVAL for one in the
 * future. The page must be usable now (as for nicclock_gettime). */
int nicclock_convert_counter(const nicclock_t *c, uint64_t counter, int utc, struct nicclock_reading *out);
int nicclock_convert_timespec(const nicclock_t *c, int clock, const struct timespec *ts, int utc,
                              struct nicclock_reading *out); /* clock: a clockid_t (int on Linux) */

void nicclock_close(nicclock_t *c);

const char *nicclock_strerror(int code);
const char *nicclock_last_error(void);
const char *nicclock_status_name(int status);

#ifdef __cplusplus
}
#endif

#endif /* NICCLOCK_H */
