//! s3backer's configuration: flags, `--configFile` files, `-o` option lists and nbdkit
//! `key=value` parameters, all turned into one validated [`Config`].
//!
//! # Brief overview
//!
//! Parsing happens in stages, each in its own module:
//!
//! 1. `args`: raw argv expansion (config files spliced in place, `-o` lists split);
//! 2. `raw`: arguments sorted into flags (looked up in the [`flags`] table), positionals
//!    and FUSE options, as written;
//! 3. `resolve`: every value checked, support status answered, cross-flag rules applied,
//!    credentials read: the result is a [`Config`].
//!
//! [`parse_command_line`] and [`parse_nbdkit_params`] are the two entry points; the nbdkit one
//! builds an argument list and goes through the same stages. `s3backer --nbd` is the command
//! line with the wrapper's rules (`nbd`): its [`Config`] carries [`NbdSettings`]. The [`flags`] table is the one
//! description of every flag: it drives parsing, value checks, [`help_text`] and the
//! "not supported yet" answers. All access to environment variables and `$HOME` goes
//! through [`Environment`], so tests are hermetic. Warnings are returned in
//! [`Config::warnings`]; this crate never prints.
#![deny(missing_docs)]
// Tests may unwrap; the library itself is still checked, since clippy also builds it without
// cfg(test).
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod args;
mod codec;
mod credentials;
mod env;
mod error;
pub mod flags;
mod help;
mod nbd;
mod nbdkit;
mod raw;
mod resolve;
mod size;
mod types;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;

pub use codec::{DEFAULT_CIPHER, MAX_KEY_LENGTH};
pub use credentials::DEFAULT_ACCESS_FILE;
pub use env::Environment;
pub use error::{ConfigError, ErrorKind, Location};
pub use help::{COMPATIBLE_S3BACKER_VERSION, VERSION, help_text, nbdkit_config_help, version_text};
pub use nbdkit::{PARAM_PREFIX, parse_nbdkit_params};
pub use resolve::{DEFAULT_IO_THREADS, DEFAULT_REGION, MAX_IO_THREADS};
pub use size::{MAX_BLOCK_SIZE, format_size, parse_size};
pub use types::*;

use args::{Origin, expand};
use raw::{Front, RawArgs, Sorted};

/// What a command line asks for.
// Built once per process; boxing the Config would only make callers' matches noisier.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invocation {
    /// `--help`, `-h`, `-?`: print this text and exit 0.
    Help(String),
    /// `--version`, `-v`: print this text and exit 0.
    Version(String),
    /// Run with this configuration.
    Run(Config),
}

/// Parses s3backer's command line (`args` without `argv[0]`).
pub fn parse_command_line(args: &[String], env: &Environment) -> Result<Invocation, ConfigError> {
    // Help and version win over any other problem on the command line, config files included.
    for a in args.iter().take_while(|a| *a != "--") {
        match a.as_str() {
            "--help" | "-h" | "-?" => return Ok(Invocation::Help(help_text())),
            "--version" | "-v" => return Ok(Invocation::Version(version_text())),
            _ => {}
        }
    }
    let (args, nbd) = nbd::take_leading_nbd(args)?;
    if nbd {
        nbd::check_wrapper_args(&args)?;
    }
    let argv = args.into_iter().map(|a| (a, Origin::Arg)).collect();
    match RawArgs::sort(expand(argv)?, Front::CommandLine)? {
        Sorted::Help => Ok(Invocation::Help(help_text())),
        Sorted::Version => Ok(Invocation::Version(version_text())),
        Sorted::Args(mut raw) => {
            raw.nbd = nbd;
            resolve::resolve(raw, Front::CommandLine, None, env).map(Invocation::Run)
        }
    }
}
