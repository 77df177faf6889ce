//! The sequence lock that guards the page's clock block and each event slot.
//! One writer, any number of readers that never block it; model-checked with loom (`--cfg loom`).
//!
//! Protocol (Boehm, "Can seqlocks get along with programming language memory models?"): every
//! protected field is an atomic accessed `Relaxed`; the writer makes the sequence odd, issues a
//! release fence, stores the fields, then stores the next even value with release; a reader loads
//! the sequence with acquire, loads the fields, issues an acquire fence and checks the sequence is
//! unchanged. No plain-memory data race exists, so the Rust reader is sound.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU32, AtomicU64};

use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

/// Attempts a reader makes, spinning, before it leaves the inlined fast path.
#[cfg(not(loom))]
const FAST_ATTEMPTS: u32 = 64;
/// Loom explores every interleaving of every retry: keep the model small.
#[cfg(loom)]
const FAST_ATTEMPTS: u32 = 2;

/// How long a writer may stay mid-update before a reader reports it stuck. A writer preempted
/// inside its write section (a loaded machine with more runnable threads than cores) is off the
/// CPU for a scheduler slice or a few, i.e. milliseconds; only a writer that died or was stopped
/// mid-update stays there for a second, and by then its page is stale anyway.
#[cfg(not(loom))]
pub const WRITER_STUCK_AFTER: std::time::Duration =
    std::time::Duration::from_millis(crate::abi::WRITER_STUCK_MS);

/// Runs `update` as a write section guarded by `seq`. Only one writer may exist per `seq`.
#[inline]
pub fn write<R>(seq: &AtomicU32, update: impl FnOnce() -> R) -> R {
    let start = seq.load(Relaxed);
    // An odd value left by a writer that died mid-update is completed by this one.
    let odd = start | 1;
    seq.store(odd, Relaxed);
    fence(Release);
    let result = update();
    seq.store(odd.wrapping_add(1), Release);
    result
}

/// One read attempt: the value if `seq` was even and unchanged around `load`.
#[inline(always)]
fn attempt<T>(seq: &AtomicU32, load: &mut impl FnMut() -> T) -> Result<T, bool> {
    let before = seq.load(Acquire);
    if before & 1 == 1 {
        return Err(true);
    }
    let value = load();
    fence(Acquire);
    if seq.load(Relaxed) == before {
        Ok(value)
    } else {
        Err(false)
    }
}

/// One attempt, never waiting: `None` while the writer is mid-update.
#[inline]
pub fn try_read<T>(seq: &AtomicU32, mut load: impl FnMut() -> T) -> Option<T> {
    attempt(seq, &mut load).ok()
}

/// Runs `load` until it observes a consistent copy; `None` if the writer stayed mid-update for
/// [`WRITER_STUCK_AFTER`] (a writer that died or was stopped inside its write section). Always
/// inlined: it is the reader's hot path (the contended part is out of line).
#[inline(always)]
pub fn read<T>(seq: &AtomicU32, mut load: impl FnMut() -> T) -> Option<T> {
    for _ in 0..FAST_ATTEMPTS {
        match attempt(seq, &mut load) {
            Ok(value) => return Some(value),
            Err(_) => spin(),
        }
    }
    read_contended(seq, load)
}

/// The slow path: the writer is mid-update (perhaps preempted there). Spin a little longer, then
/// give the CPU away so that a writer sharing it can finish, then sleep in short naps (a writer
/// off the CPU that long is descheduled or dead: spinning on would only burn a core), until the
/// deadline.
#[cfg(not(loom))]
#[cold]
#[inline(never)]
fn read_contended<T>(seq: &AtomicU32, mut load: impl FnMut() -> T) -> Option<T> {
    const SPINS_BEFORE_YIELD: u32 = 1_000;
    const YIELDS_BEFORE_NAPS: u32 = 100;
    const NAP: std::time::Duration = std::time::Duration::from_micros(100);
    let start = std::time::Instant::now();
    let mut tries = 0u32;
    loop {
        if let Ok(value) = attempt(seq, &mut load) {
            return Some(value);
        }
        tries = tries.saturating_add(1);
        if tries < SPINS_BEFORE_YIELD {
            std::hint::spin_loop();
        } else if start.elapsed() >= WRITER_STUCK_AFTER {
            return None;
        } else if tries < SPINS_BEFORE_YIELD + YIELDS_BEFORE_NAPS {
            std::thread::yield_now();
        } else {
            std::thread::sleep(NAP);
        }
    }
}

/// Under loom the give-up is by count: the model has no wall clock.
#[cfg(loom)]
fn read_contended<T>(seq: &AtomicU32, mut load: impl FnMut() -> T) -> Option<T> {
    for _ in 0..FAST_ATTEMPTS {
        if let Ok(value) = attempt(seq, &mut load) {
            return Some(value);
        }
        spin();
    }
    None
}

/// Event slots use the same protocol with the event number as the sequence: 0 while writing.
#[inline]
pub fn write_slot(seq: &AtomicU64, number: u64, store: impl FnOnce()) {
    seq.store(0, Relaxed);
    fence(Release);
    store();
    seq.store(number, Release);
}

/// Reads slot `number`: `None` when the slot holds another event (overwritten, or being written).
#[inline]
pub fn read_slot<T>(seq: &AtomicU64, number: u64, load: impl FnOnce() -> T) -> Option<T> {
    if seq.load(Acquire) != number {
        return None;
    }
    let value = load();
    fence(Acquire);
    (seq.load(Relaxed) == number).then_some(value)
}

#[inline(always)]
fn spin() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}

#[cfg(all(test, loom))]
mod loom_model {
    //! Run with `RUSTFLAGS="--cfg loom" cargo test -p nicclock --lib --release loom_model`.
    use super::*;
    use loom::sync::Arc;

    /// Two fields that must always be read as a matching pair.
    struct Block {
        seq: AtomicU32,
        a: AtomicU64,
        b: AtomicU64,
    }

    #[test]
    fn readers_never_see_a_torn_block() {
        loom::model(|| {
            let block =
                Arc::new(Block { seq: AtomicU32::new(0), a: AtomicU64::new(0), b: AtomicU64::new(0) });
            let writer = {
                let block = block.clone();
                loom::thread::spawn(move || {
                    for g in 1..=2u64 {
                        write(&block.seq, || {
                            block.a.store(g, Relaxed);
                            block.b.store(g * 1000, Relaxed);
                        });
                    }
                })
            };
            // A reader may give up (None) only after many retries; loom bounds spins, so accept None
            // but never a torn pair.
            if let Some((a, b)) = read(&block.seq, || (block.a.load(Relaxed), block.b.load(Relaxed))) {
                assert_eq!(a * 1000, b, "torn read: a={a} b={b}");
            }
            writer.join().unwrap();
            let (a, b) = read(&block.seq, || (block.a.load(Relaxed), block.b.load(Relaxed))).unwrap();
            assert_eq!((a, b), (2, 2000));
        });
    }

    #[test]
    fn event_slots_are_never_torn() {
        loom::model(|| {
            let slot = Arc::new((AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)));
            let writer = {
                let slot = slot.clone();
                loom::thread::spawn(move || {
                    for n in [1u64, 65] {
                        write_slot(&slot.0, n, || {
                            slot.1.store(n * 3, Relaxed);
                            slot.2.store(n * 7, Relaxed);
                        });
                    }
                })
            };
            for n in [1u64, 65] {
                if let Some((x, y)) = read_slot(&slot.0, n, || (slot.1.load(Relaxed), slot.2.load(Relaxed))) {
                    assert_eq!((x, y), (n * 3, n * 7), "torn slot {n}");
                }
            }
            writer.join().unwrap();
        });
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    #[test]
    fn a_writer_preempted_mid_update_is_waited_for() {
        // The CI failure this guards against: a writer descheduled inside its write section for
        // milliseconds made readers report it stuck.
        let seq = Arc::new(AtomicU32::new(0));
        let value = Arc::new(AtomicU64::new(1));
        let (entered_tx, entered_rx) = std::sync::mpsc::channel();
        let writer = std::thread::spawn({
            let (seq, value) = (seq.clone(), value.clone());
            move || {
                write(&seq, || {
                    entered_tx.send(()).unwrap();
                    std::thread::sleep(Duration::from_millis(100));
                    value.store(2, Relaxed);
                })
            }
        });
        entered_rx.recv().unwrap();
        let start = Instant::now();
        let got = read(&seq, || value.load(Relaxed));
        assert_eq!(got, Some(2), "the reader must wait for the update, not give up or see the old value");
        assert!(start.elapsed() >= Duration::from_millis(50), "the reader did not wait for the writer");
        writer.join().unwrap();
    }

    #[test]
    fn a_writer_that_died_mid_update_is_reported_after_the_deadline() {
        let seq = AtomicU32::new(7); // odd: a write section that never ended
        let start = Instant::now();
        assert_eq!(read(&seq, || 42), None);
        let waited = start.elapsed();
        assert!(waited >= WRITER_STUCK_AFTER, "gave up after {waited:?}");
        assert!(waited < WRITER_STUCK_AFTER * 3, "took {waited:?} to give up");
    }
}
