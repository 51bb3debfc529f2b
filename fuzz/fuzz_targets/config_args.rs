//! `parse_command_line` on an arbitrary argv and config file.
//!
//! Input: `ARG \0 ARG \0 ... [\x1e CONFIG-FILE]` (lossy UTF-8). The markers `@CONF` (the
//! config file), `@ACCESS`, `@PASS`, `@EMPTY` (fixture files) and `@DIR` (a directory) are
//! replaced by paths, in the arguments and in the file.
//!
//! Properties: never panics; an error is one line; warnings are one line; no fixture secret in
//! an error, a warning or a Config's Debug; parsing the same input again gives the same result
//! (same Config, or same error).
#![no_main]

mod common;
mod config_common;

use libfuzzer_sys::fuzz_target;
use s3backer_config::{Invocation, parse_command_line};

use config_common::{check_result, prepare};

fuzz_target!(|data: &[u8]| {
    let Some((text, fx, args_part)) = prepare(data) else {
        return;
    };
    let args: Vec<String> = if args_part.is_empty() {
        Vec::new()
    } else {
        args_part.split('\0').map(|a| fx.substitute(a)).collect()
    };

    let first = parse_command_line(&args, &fx.env);
    let second = parse_command_line(&args, &fx.env);
    assert_eq!(
        first, second,
        "parsing {args:?} twice gave different results"
    );
    if std::env::var_os("S3B_FUZZ_DEBUG").is_some() {
        eprintln!("{args:?}\n=> {first:?}");
    }
    match first {
        Ok(Invocation::Run(c)) => check_result(&Ok(c), &text),
        Ok(Invocation::Help(h)) => assert!(h.contains("--")),
        Ok(Invocation::Version(v)) => assert!(!v.is_empty()),
        Err(e) => check_result(&Err(e), &text),
    }
});
