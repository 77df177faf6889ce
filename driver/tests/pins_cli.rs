//! nicclockd's pin options as a process: `--pps-out` and `--reference pps:` on a model without
//! pins, a bad pin, and one pin for both are usage errors (exit 2) saying what to do, with no page made.

#[path = "../../userspace/tests/common/mod.rs"]
mod common;
mod support;

use common::PageDir;
use support::{run, stderr};

#[test]
fn pin_options_refused_with_a_usage_error_naming_the_models_with_pins() {
    let dir = PageDir::new("nicclockd-pins");
    let d = format!("--page-dir={}", dir.path.display());
    let cases: [(&[&str], &str); 7] = [
        (&["--device", "sim", "--pps-out", "SDP0"], "--pps-out: the 82576 has no timing pins"),
        (
            &["--device", "sim:model=82574", "--reference", "pps:SDP2"],
            "--reference pps:SDP2: the 82574 has no timing pins",
        ),
        (&["--device", "sim", "--reference", "pps:SDP1"], "only the 82580/i350/i354 and i210/i211 have them"),
        (&["--device", "sim", "--pps-out", "SDP4"], "use SDP0, SDP1, SDP2 or SDP3"),
        (&["--device", "sim", "--reference", "pps:GPIO1"], "use SDP0, SDP1, SDP2 or SDP3"),
        (&["--device", "sim", "--reference", "gps"], "use realtime, tai or pps:SDP0..SDP3"),
        (&["--device", "sim", "--pps-out", "SDP1", "--reference", "pps:SDP1"], "SDP1 cannot be both"),
    ];
    for (args, want) in cases {
        let mut args = args.to_vec();
        args.push(&d);
        let out = run(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: want {want:?} in {err:?}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    let pages: Vec<_> = std::fs::read_dir(&dir.path).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(!pages.iter().any(|n| n.to_string_lossy().starts_with("nicclock-")), "no page made: {pages:?}");
}

#[test]
fn realtime_and_tai_still_parse() {
    for reference in ["realtime", "tai"] {
        let out = run(&["--device", "sim", "--reference", reference, "--page-dir=/nonexistent-nicclock-dir"]);
        // Past the argument parser: the missing page directory is what stops it (a runtime error).
        assert_eq!(out.status.code(), Some(1), "{reference}: {}", stderr(&out));
    }
}
