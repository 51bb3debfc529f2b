//! nbdkit `key=value` parameters → a synthetic argument list → the command-line parser.
//!
//! Only the mapping lives here (prefix stripping, `bucket`, boolean values, unknown keys);
//! every value check is the command line's, so both front ends accept exactly the same
//! flags. Unlike s3backer, an unknown key is an error even without the `s3b_` prefix: a
//! mistyped `blocksize=1m` silently ignored would give a disk with the wrong geometry.

use crate::args::{Origin, expand};
use crate::env::Environment;
use crate::error::ConfigError;
use crate::flags::{self, Kind};
use crate::raw::{Front, RawArgs, Sorted};
use crate::resolve::resolve;
use crate::types::Config;

/// Prefix that nbdkit parameters may carry (`s3b_blockSize=1m`); the `--nbd` wrapper uses it.
pub const PARAM_PREFIX: &str = "s3b_";

/// Parses nbdkit plugin parameters into a [`Config`].
///
/// `bucket` (or `s3b_bucket`) gives `bucket[/subdir]`; every other key is an s3backer flag
/// name, optionally prefixed with `s3b_`. Booleans take `true`/`false` (also yes/no/1/0;
/// false = not given); `compress`/`encrypt` take true/false or their value. `configFile=`
/// works as on the command line; FUSE options in such a file are ignored (with a warning)
/// except `-d`, which means `--debug`.
pub fn parse_nbdkit_params(
    params: &[(String, String)],
    env: &Environment,
) -> Result<Config, ConfigError> {
    let mut bucket: Option<(String, Origin)> = None;
    let mut argv: Vec<(String, Origin)> = Vec::new();
    for (key, value) in params {
        let name = key.strip_prefix(PARAM_PREFIX).unwrap_or(key);
        let origin = Origin::Param(key.clone());
        if name == "bucket" {
            if bucket.is_some() {
                return Err(ConfigError::invalid("duplicate bucket parameter"));
            }
            bucket = Some((value.clone(), origin));
            continue;
        }
        let Some(def) = flags::lookup(name) else {
            let hint = flags::suggest(name)
                .map(|s| format!(" (did you mean \"{s}\"?)"))
                .unwrap_or_default();
            return Err(ConfigError::invalid(format!(
                "unknown parameter {key:?}{hint}"
            )));
        };
        let as_bool = match def.kind {
            Kind::Bool => match flags::parse_bool(value) {
                Some(b) => Some(b),
                None => {
                    return Err(ConfigError::invalid(format!(
                        "invalid value {value:?} for {key}: use true or false"
                    )));
                }
            },
            Kind::BoolOrValue => flags::parse_bool_word(value),
            Kind::Value => None,
        };
        // `--flag=false` rather than nothing, so that a later `false` undoes an earlier `true`
        // exactly as on the command line.
        match as_bool {
            Some(true) => argv.push((format!("--{name}"), origin)),
            Some(false) => argv.push((format!("--{name}=false"), origin)),
            None => argv.push((format!("--{name}={value}"), origin)),
        }
    }
    let expanded = expand(argv)?;
    match RawArgs::sort(expanded, Front::Plugin)? {
        Sorted::Args(raw) => resolve(raw, Front::Plugin, bucket, env),
        Sorted::Help | Sorted::Version => Err(ConfigError::invalid(
            "--help and --version are not plugin parameters (found in a config file)",
        )),
    }
}
