//! `parse_nbdkit_params` on arbitrary `key=value` parameters.
//!
//! Input: `KEY=VALUE \0 KEY=VALUE ... [\x1e CONFIG-FILE]` (lossy UTF-8; an item without `=`
//! is a key with an empty value). Markers as in `config_args` (`configFile=@CONF`, ...).
//!
//! Properties: never panics; errors and warnings are one line; no fixture secret in them or in
//! the Config's Debug; parsing again gives the same result.
#![no_main]

mod common;
mod config_common;

use libfuzzer_sys::fuzz_target;
use s3backer_config::parse_nbdkit_params;

use config_common::{check_result, prepare};

fuzz_target!(|data: &[u8]| {
    let Some((text, fx, params_part)) = prepare(data) else {
        return;
    };
    let params: Vec<(String, String)> = if params_part.is_empty() {
        Vec::new()
    } else {
        params_part
            .split('\0')
            .map(|item| {
                let (k, v) = item.split_once('=').unwrap_or((item, ""));
                (fx.substitute(k), fx.substitute(v))
            })
            .collect()
    };

    let first = parse_nbdkit_params(&params, &fx.env);
    let second = parse_nbdkit_params(&params, &fx.env);
    assert_eq!(
        first, second,
        "parsing {params:?} twice gave different results"
    );
    if std::env::var_os("S3B_FUZZ_DEBUG").is_some() {
        eprintln!("{params:?}\n=> {first:?}");
    }
    check_result(&first, &text);
});
