//! The command's special modes, one function each: `--erase`, `--reset-mounted-flag`.

use s3backer_config::Config;
use s3backer_store::{Volume, erase::erase as erase_volume};
use std::io::{BufRead, IsTerminal, Write};

/// `--erase`: confirm (unless `--force`), delete every block and the mount token.
pub fn erase(config: &Config) -> Result<(), String> {
    let volume = Volume::open(config).map_err(|e| e.to_string())?;
    let description = volume.description();
    if !config.force {
        eprintln!("s3backer: erase all blocks in {description}?");
        eprintln!("s3backer: this cannot be undone; the mount token is cleared too");
        eprint!("s3backer: is this correct? [y/N] ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .map_err(|e| format!("cannot read the answer: {e}"))?;
        if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            return Err("not confirmed".into());
        }
    }
    let tty = std::io::stderr().is_terminal();
    let quiet = config.quiet;
    let started = std::time::Instant::now();
    let progress = |done: u64, total: u64| {
        if quiet {
            return;
        }
        let secs = started.elapsed().as_secs_f64().max(0.001);
        let line = format!(
            "deleted {done} of {total} blocks ({:.0}%, {:.0} blocks/s)",
            if total == 0 {
                100.0
            } else {
                done as f64 * 100.0 / total as f64
            },
            done as f64 / secs
        );
        if tty {
            eprint!("\rs3backer: {line}");
            if done == total {
                eprintln!();
            }
        }
        // Also in the log (one line per batch of up to 1000 blocks), for syslog and scripts.
        log::info!("{line}");
    };
    let n = erase_volume(&volume, &progress).map_err(|e| e.to_string())?;
    if !quiet {
        eprintln!("s3backer: erased {n} non-zero blocks");
    }
    Ok(())
}

/// `--reset-mounted-flag`: delete the mount token.
pub fn reset_mounted_flag(config: &Config) -> Result<(), String> {
    let volume = Volume::open(config).map_err(|e| e.to_string())?;
    if !config.quiet {
        eprintln!(
            "s3backer: resetting mount token for {}",
            volume.description()
        );
    }
    volume.reset_mount_token().map_err(|e| e.to_string())?;
    if !config.quiet {
        eprintln!("s3backer: done");
    }
    Ok(())
}
