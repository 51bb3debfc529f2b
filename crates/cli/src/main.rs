//! The `s3backer` command. Glue only: parse, pick the mode, map the outcome to s3backer's exit
//! statuses (0 success, 1 any error) with one `s3backer: message` line on stderr.

mod modes;

use s3backer_config::{Environment, Invocation, Mode, parse_command_line};
use s3backer_store::logging;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("s3backer: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let config =
        match parse_command_line(args, &Environment::from_process()).map_err(|e| e.to_string())? {
            Invocation::Help(text) | Invocation::Version(text) => {
                eprint!("{text}");
                return Ok(());
            }
            Invocation::Run(config) => config,
        };
    // Usage errors first, before any warning about the configuration is printed.
    if config.mode == Mode::Serve {
        return match config.mount_point {
            None => Err("no mount point specified".into()),
            Some(_) => Err(
                "FUSE mode is not supported yet by this release; serve the disk with nbdkit instead: \
                 nbdkit s3backer bucket=BUCKET [KEY=VALUE...] (see README.md)"
                    .into(),
            ),
        };
    }
    logging::init(config.debug);
    for w in &config.warnings {
        log::warn!("{w}");
    }
    log::debug!("configuration: {config:?}");
    if config.mode == Mode::Erase {
        modes::erase(&config)
    } else {
        modes::reset_mounted_flag(&config)
    }
}
