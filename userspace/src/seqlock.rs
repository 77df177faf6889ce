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

/// How many times a reader retries before it reports the writer as stuck mid-update.
#[cfg(not(loom))]
pub const MAX_READ_ATTEMPTS: u32 = 100_000;
/// Loom explores every interleaving of every retry: keep the model small.
#[cfg(loom)]
pub const MAX_READ_ATTEMPTS: u32 = 3;

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

/// Runs `load` until it observes a consistent copy; `None` if the writer stayed mid-update for
/// [`MAX_READ_ATTEMPTS`] tries (a writer that died inside its write section).
#[inline]
pub fn read<T>(seq: &AtomicU32, mut load: impl FnMut() -> T) -> Option<T> {
    for _ in 0..MAX_READ_ATTEMPTS {
        let before = seq.load(Acquire);
        if before & 1 == 1 {
            spin();
            continue;
        }
        let value = load();
        fence(Acquire);
        if seq.load(Relaxed) == before {
            return Some(value);
        }
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

#[inline]
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
