//! The `s3backer` command. Glue only: parse, pick the mode (FUSE, `--nbd`, `--erase`,
//! `--reset-mounted-flag`), map the outcome to s3backer's exit statuses (0 success, 1 any
//! error) with one `s3backer: message` line on stderr.
//!
//! Called as `umount.fuse` or `umount.fuse.s3backer` (a symlink in /sbin), it is umount(8)'s
//! helper that waits for the final flush ([`umount_helper`]).

mod daemon;
mod fuse_mode;
mod modes;
mod mountinfo;
mod nbd;
mod notify;
mod signals;
mod umount_helper;

use s3backer_config::{Environment, Invocation, Mode, parse_command_line};
use s3backer_store::logging;
use std::process::ExitCode;

fn main() -> ExitCode {
    let argv0 = std::env::args_os()
        .next()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if umount_helper::called_as_helper(&argv0) {
        return umount_helper::main(&args);
    }
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
    if config.mode == Mode::Serve && config.mount_point.is_none() {
        return Err("no mount point specified".into());
    }
    logging::init(config.debug);
    for w in &config.warnings {
        log::warn!("{w}");
    }
    log::debug!("configuration: {config:?}");
    if let Some(nbd) = &config.nbd {
        nbd::run(&config, nbd)
    } else if let (Mode::Serve, Some(mount_point)) = (&config.mode, &config.mount_point) {
        fuse_mode::run(&config, mount_point)
    } else if config.mode == Mode::Erase {
        modes::erase(&config)
    } else {
        modes::reset_mounted_flag(&config)
    }
}
