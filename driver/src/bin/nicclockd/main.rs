//! nicclockd: drives a NIC's PTP clock from userspace, disciplines it against a reference and
//! publishes it in a nicclock time page. Exit: 0 clean stop, 1 runtime error, 2 usage error,
//! 69 the device disappeared (EX_UNAVAILABLE: a restart will not help until it is back).

mod args;
mod chores;
mod host;
mod logger;
mod netcheck;
mod page_cadence;
mod privileges;
mod probe;
mod ptp;
mod ptp_serve;
mod realtime;
mod ring_wake;
mod run;
mod stats_file;
mod sys;
mod wake;
mod wake_tally;

use std::process::ExitCode;

use clap::Parser;

/// Exit status when the NIC disappeared while running.
pub const EXIT_DEVICE_GONE: u8 = 69;

fn main() -> ExitCode {
    if let Some(code) = nicclock_clidoc::from_env(<args::Cli as clap::CommandFactory>::command, "8") {
        return code; // the packaging's man pages and completions
    }
    let cli = args::Cli::parse(); // usage errors: clap prints them and exits 2
    logger::init(cli.run.log_level);
    let result = match &cli.command {
        Some(args::Command::Probe { device, json, sysfs_root, vfio_container }) => {
            probe::probe(device, sysfs_root, vfio_container, *json)
        }
        Some(args::Command::Netcheck(a)) => netcheck::netcheck(a),
        None => run::run(&cli.run),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            log::error!("{e:#}");
            ExitCode::from(e.downcast_ref::<args::UsageError>().map_or(1, |_| 2))
        }
    }
}
