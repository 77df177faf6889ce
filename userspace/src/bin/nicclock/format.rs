//! Text forms of times, rates and events for the CLI.
//! TAI is printed as RFC 3339 with a " TAI" suffix so it is never mistaken for UTC.

use std::time::{Duration, UNIX_EPOCH};

use nicclock::{Event, EventKind, Status};

/// RFC 3339 with nanoseconds; `utc` false appends " TAI" instead of "Z".
pub fn rfc3339(ns: u64, utc: bool) -> String {
    let t = UNIX_EPOCH + Duration::from_nanos(ns);
    let s = humantime::format_rfc3339_nanos(t).to_string();
    if utc {
        s
    } else {
        format!("{} TAI", s.trim_end_matches('Z'))
    }
}

/// An error bound: "±123 ns", or "±unknown".
pub fn bound(ns: u64) -> String {
    if ns == u64::MAX {
        "±unknown".into()
    } else {
        format!("±{ns} ns")
    }
}

/// ppt as signed ppb with three decimals, as linuxptp prints frequencies.
pub fn ppb(ppt: i64) -> String {
    format!("{:+.3} ppb", ppt as f64 / 1000.0)
}

/// One line for an event.
pub fn event(e: &Event) -> String {
    let what = match e.kind {
        EventKind::Started => format!("writer pid {}", e.detail),
        EventKind::StatusChanged => {
            format!("{} -> {}", status_name(e.detail as i64), status_name(e.magnitude))
        }
        EventKind::Step => format!("step {:+} ns", e.magnitude),
        EventKind::FrequencyJump => format!("frequency {}", ppb(e.magnitude)),
        EventKind::DeviceLost => format!("last read {:#010x}", e.detail),
        EventKind::Stopped => format!("writer pid {}", e.detail),
        EventKind::LeapChanged => format!("leap {} at TAI second {}", e.detail, e.magnitude),
        EventKind::PulseMissed => format!("{} pulses missed in a row", e.magnitude),
        EventKind::Unknown => {
            format!("kind {} from a newer writer: magnitude {} detail {}", e.raw_kind, e.magnitude, e.detail)
        }
    };
    // Events posted before the first update carry time 0: the writer had no time yet.
    let time = if e.tai_ns == 0 { "(before first update)".into() } else { rfc3339(e.tai_ns, false) };
    format!("event {} {time} {} {} {what}", e.seq, e.urgency.name(), e.kind.name())
}

fn status_name(raw: i64) -> &'static str {
    u32::try_from(raw).ok().and_then(Status::from_raw).map_or("UNKNOWN", Status::name)
}
