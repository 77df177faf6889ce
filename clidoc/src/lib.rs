//! Man pages and shell completions written from a binary's clap definition, so that they never
//! drift from `--help`: each binary calls [`from_env`] first thing, so that
//! `NICCLOCK_GENERATE_DOCS=DIR nicclockd` writes them (the packaging does; see README "Man pages").

use std::fs;
use std::io;
use std::path::Path;

use clap::Command;
use clap_complete::Shell;

/// The variable naming the directory to write the pages and completions into.
pub const ENV: &str = "NICCLOCK_GENERATE_DOCS";

/// When [`ENV`] is set: writes the docs of `cmd()` into it, prints the files written and returns
/// the exit code for `main` to return (1 when writing failed); `None` when it is not set. An
/// environment variable, not a hidden subcommand: clap_complete lists hidden subcommands too.
pub fn from_env(cmd: impl FnOnce() -> Command, section: &'static str) -> Option<std::process::ExitCode> {
    let dir = std::env::var_os(ENV)?;
    match generate(cmd(), section, Path::new(&dir)) {
        Ok(files) => {
            use std::io::Write;
            let mut out = io::stdout().lock();
            for f in files {
                // A closed stdout (`| head`) is no failure: the files are written.
                let _ = writeln!(out, "{}", Path::new(&dir).join(f).display());
            }
            Some(std::process::ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{ENV}={}: cannot write the docs there: {e}", Path::new(&dir).display());
            Some(std::process::ExitCode::from(1))
        }
    }
}

/// Writes into `dir`: `man/NAME.SECTION` plus `man/NAME-SUB.SECTION` for each visible
/// subcommand, and `completions/{NAME.bash, _NAME, NAME.fish}` (bash, zsh, fish). Returns the
/// files written, relative to `dir`.
pub fn generate(cmd: Command, section: &'static str, dir: &Path) -> io::Result<Vec<String>> {
    let mut cmd = cmd;
    cmd.build();
    let name = cmd.get_name().to_string();
    let man = dir.join("man");
    let completions = dir.join("completions");
    fs::create_dir_all(&man)?;
    fs::create_dir_all(&completions)?;
    let mut written = Vec::new();

    let mut page = |cmd: Command, file: String| -> io::Result<()> {
        let mut buf = Vec::new();
        clap_mangen::Man::new(cmd).section(section).render(&mut buf)?;
        fs::write(man.join(&file), buf)?;
        written.push(format!("man/{file}"));
        Ok(())
    };
    page(cmd.clone(), format!("{name}.{section}"))?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
        let full = format!("{name}-{}", sub.get_name());
        let bin = format!("{name} {}", sub.get_name());
        page(sub.clone().display_name(full.clone()).bin_name(bin), format!("{full}.{section}"))?;
    }

    for (shell, file) in [
        (Shell::Bash, format!("{name}.bash")),
        (Shell::Zsh, format!("_{name}")),
        (Shell::Fish, format!("{name}.fish")),
    ] {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd, &name, &mut buf);
        fs::write(completions.join(&file), buf)?;
        written.push(format!("completions/{file}"));
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_page_per_visible_subcommand_and_three_completions() {
        let cmd = Command::new("demo")
            .about("A demo")
            .subcommand(Command::new("run").about("Runs").arg(clap::Arg::new("fast").long("fast")));
        let dir = std::env::temp_dir().join(format!("clidoc-test-{}", std::process::id()));
        let mut files = generate(cmd, "8", &dir).unwrap();
        files.sort();
        assert_eq!(
            files,
            [
                "completions/_demo",
                "completions/demo.bash",
                "completions/demo.fish",
                "man/demo-run.8",
                "man/demo.8"
            ]
        );
        let page = fs::read_to_string(dir.join("man/demo-run.8")).unwrap();
        assert!(page.contains(".TH demo-run 8") && page.contains("demo run"), "{page}");
        let bash = fs::read_to_string(dir.join("completions/demo.bash")).unwrap();
        assert!(bash.contains("run") && bash.contains("--fast"), "{bash}");
        fs::remove_dir_all(dir).unwrap();
    }
}
