//! Tests through the public entry points: one test per flag or flag family (`flags.rs`),
//! the command line as a whole (`command_line.rs`), credential precedence
//! (`credentials.rs`), the `--nbd` wrapper's rules (`nbd.rs`) and nbdkit parameters (`nbdkit.rs`).

mod command_line;
mod credentials;
mod flags;
mod nbd;
mod nbdkit;

use crate::{
    Config, ConfigError, Environment, Invocation, parse_command_line, parse_nbdkit_params,
};

/// An environment with no `$HOME` and no variables: nothing leaks in from the machine.
fn no_env() -> Environment {
    Environment::default()
}

fn argv(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn parse_with(list: &[&str], env: &Environment) -> Result<Config, ConfigError> {
    match parse_command_line(&argv(list), env)? {
        Invocation::Run(c) => Ok(c),
        other => panic!("expected a configuration, got {other:?}"),
    }
}

/// `list` after `mybucket /mnt`, which must parse.
fn ok(list: &[&str]) -> Config {
    let mut full = vec!["mybucket", "/mnt"];
    full.extend_from_slice(list);
    parse_with(&full, &no_env()).unwrap_or_else(|e| panic!("{list:?}: {e}"))
}

/// `list` after `mybucket /mnt`, which must fail; the error as displayed.
fn err(list: &[&str]) -> String {
    let mut full = vec!["mybucket", "/mnt"];
    full.extend_from_slice(list);
    match parse_with(&full, &no_env()) {
        Ok(c) => panic!("{list:?} was accepted: {c:?}"),
        Err(e) => e.to_string(),
    }
}

/// The full argument list must fail; the error as displayed.
fn err_exact(list: &[&str]) -> String {
    match parse_with(list, &no_env()) {
        Ok(c) => panic!("{list:?} was accepted: {c:?}"),
        Err(e) => e.to_string(),
    }
}

fn params(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn plugin(list: &[(&str, &str)]) -> Result<Config, ConfigError> {
    parse_nbdkit_params(&params(list), &no_env())
}
