//! The man pages and completions `nicclock` writes from its clap definition
//! (NICCLOCK_GENERATE_DOCS=DIR): one page per subcommand, the options in them, three shells.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_nicclock");

#[test]
fn writes_man_pages_and_completions_from_the_cli_definition() {
    let dir = std::env::temp_dir().join(format!("nicclock-docs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(BIN).env("NICCLOCK_GENERATE_DOCS", &dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed = String::from_utf8_lossy(&out.stdout);
    for sub in ["list", "now", "status", "watch", "events", "compare", "wait", "stats", "plot", "metrics"] {
        let page = dir.join(format!("man/nicclock-{sub}.1"));
        assert!(listed.contains(page.to_str().unwrap()), "{page:?} not listed in {listed}");
        let text = std::fs::read_to_string(&page).unwrap();
        assert!(
            text.starts_with(".ie") || text.contains(&format!(".TH nicclock-{sub} 1")),
            "{page:?}: {text}"
        );
    }
    let main = std::fs::read_to_string(dir.join("man/nicclock.1")).unwrap();
    assert!(main.contains(".TH nicclock 1") && main.contains("metrics"), "{main}");
    let metrics = std::fs::read_to_string(dir.join("man/nicclock-metrics.1")).unwrap();
    assert!(metrics.contains("listen") && metrics.contains("127.0.0.1:9469"), "{metrics}");
    for (file, must) in
        [("nicclock.bash", "--lock-threshold"), ("_nicclock", "--listen"), ("nicclock.fish", "plot")]
    {
        let text = std::fs::read_to_string(dir.join("completions").join(file)).unwrap();
        assert!(text.contains(must), "{file} lacks {must}");
    }
    std::fs::remove_dir_all(&dir).unwrap();

    // A place it cannot write is exit 1 with the reason, not a panic.
    let out = Command::new(BIN).env("NICCLOCK_GENERATE_DOCS", "/proc/nicclock-docs").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("NICCLOCK_GENERATE_DOCS=/proc/nicclock-docs: cannot write the docs there"), "{err}");
}
