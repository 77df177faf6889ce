//! One discipline update onto the page: the snapshot, then its events (steps, frequency jumps),
//! each with the urgency readers wake for. nicclockd and the tests of the publish path share it.

use nicclock::{EventKind, Urgency, Writer};

use crate::discipline::Update;

/// How urgent an event of `kind` is for readers.
pub fn urgency(kind: EventKind) -> Urgency {
    match kind {
        EventKind::Step | EventKind::FrequencyJump | EventKind::PulseMissed => Urgency::Notice,
        EventKind::DeviceLost => Urgency::Urgent,
        _ => Urgency::Info,
    }
}

/// Publishes `update`'s snapshot, then posts its events stamped with the update's anchor. An
/// update with a STEP (the discipline's or PTP's) begins a new disruption epoch: readers refuse
/// past timestamps from before it, and the STEP event carries the new epoch.
pub fn publish(writer: &mut Writer, update: &Update) {
    if update.events.iter().any(|(kind, _)| *kind == EventKind::Step) {
        writer.mark_disruption();
    }
    writer.publish(&update.snapshot);
    for &(kind, magnitude) in &update.events {
        writer.post(kind, urgency(kind), magnitude, 0, update.snapshot.anchor_tai_ns);
    }
}
