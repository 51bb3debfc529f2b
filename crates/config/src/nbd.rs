//! `s3backer --nbd`: the command-line rules of the wrapper (facts §1.8) and the
//! [`NbdSettings`] it runs with.
//!
//! * `--nbd` is looked for only among the leading dash-arguments (up to the first positional or
//!   `--`), as in s3backer; anywhere else, or in a config file, it is an error (`raw.rs`).
//! * With `--nbd`, the command line holds only `--flag[=value]` flags, `-f`, `-d` and exactly two
//!   positionals (bucket, device): no `-o` lists, no `-F`, no FUSE options. Config files
//!   (`--configFile=FILE`) are still expanded in place, and whatever FUSE options they hold are
//!   ignored with a warning, as the plugin does.
//! * Booleans take the common grammar (`--flag`, `--flag=true|false|yes|no|1|0`), a superset of
//!   s3backer's `--flag` / `--flag=true`.
//! * The flags for the plugin are the resolved settings (config files expanded), so the plugin
//!   sees exactly what the wrapper validated; `--nbd-*` flags stay with the wrapper.

use crate::error::ConfigError;
use crate::flags::{self, Support};
use crate::raw::RawArgs;
use crate::size;
use crate::types::{
    DEFAULT_NBD_CONNECTIONS, DEFAULT_NBD_PLUGIN, DEFAULT_NBD_SECTOR_SIZE, DEFAULT_NBD_TIMEOUT,
    MAX_NBD_CONNECTIONS, MaxRequest, NbdSettings, PluginFlag,
};

/// Takes a leading `--nbd` (or `--nbd=true`) out of the command line; says whether there was one.
pub(crate) fn take_leading_nbd(args: &[String]) -> Result<(Vec<String>, bool), ConfigError> {
    let mut out = Vec::with_capacity(args.len());
    let mut nbd = false;
    let mut leading = true;
    for arg in args {
        if leading && (arg == "--" || !arg.starts_with('-')) {
            leading = false;
        }
        if leading {
            if arg == "--nbd" {
                nbd = true;
                continue;
            }
            if let Some(v) = arg.strip_prefix("--nbd=") {
                match flags::parse_bool(v) {
                    Some(on) => {
                        nbd = on;
                        continue;
                    }
                    None => {
                        return Err(ConfigError::invalid(format!(
                            "--nbd takes no value (or one of true, false, yes, no, 1, 0), not {v:?}"
                        )));
                    }
                }
            }
        }
        out.push(arg.clone());
    }
    Ok((out, nbd))
}

/// With `--nbd`: only `--flag[=value]`, `-f`, `-d` and positionals on the command line.
pub(crate) fn check_wrapper_args(args: &[String]) -> Result<(), ConfigError> {
    for arg in args.iter().take_while(|a| *a != "--") {
        let single_dash = arg.starts_with('-') && !arg.starts_with("--") && arg.len() > 1;
        if single_dash && arg != "-f" && arg != "-d" {
            return Err(ConfigError::invalid(format!(
                "invalid flag {arg:?} with --nbd: only --flag=value flags, -f and -d are accepted (no -o lists, -F or FUSE options)"
            )));
        }
    }
    Ok(())
}

/// The wrapper's settings; `warnings` gets one line per ignored FUSE-only flag or option.
pub(crate) fn settings(
    raw: &RawArgs,
    bucket_arg: &str,
    device: &str,
    warnings: &mut Vec<String>,
) -> Result<NbdSettings, ConfigError> {
    let mut given: Vec<_> = raw.settings.values().collect();
    given.sort_by_key(|s| s.seq);
    let mut plugin_flags = Vec::new();
    for s in given {
        match s.def.support {
            Support::NbdOnly => {}
            Support::FuseOnly => warnings.push(format!(
                "{} only applies to FUSE mounts: ignored with --nbd",
                s.flag_ref()
            )),
            _ => plugin_flags.push(PluginFlag {
                name: s.def.name,
                value: s.value.clone(),
            }),
        }
    }
    // `-d` means `--debug` for the plugin too (facts §1.2).
    if raw.fuse_debug && !raw.has("debug") {
        plugin_flags.push(PluginFlag {
            name: "debug",
            value: None,
        });
    }
    for arg in raw.fuse_args.iter().filter(|a| *a != "-d") {
        if arg != "-o" {
            warnings.push(format!(
                "ignoring FUSE option {arg:?} from the config file (there is no FUSE mount with --nbd)"
            ));
        }
    }

    let uint = |name: &str| -> Result<Option<u32>, ConfigError> {
        match raw.get(name) {
            None => Ok(None),
            Some(s) => flags::parse_uint(s.value.as_deref().unwrap_or_default())
                .map(Some)
                .map_err(|e| s.error(format!("{}: {e}", s.flag_ref()))),
        }
    };
    let connections = uint("nbd-connections")?.unwrap_or(DEFAULT_NBD_CONNECTIONS);
    if connections > MAX_NBD_CONNECTIONS
        && let Some(s) = raw.get("nbd-connections")
    {
        return Err(s.error(format!("{}: at most {MAX_NBD_CONNECTIONS}", s.shown())));
    }
    let timeout = match uint("nbd-timeout")? {
        None => Some(DEFAULT_NBD_TIMEOUT),
        Some(0) => None,
        Some(t) => Some(t),
    };
    let sector_size = uint("nbd-sector-size")?.unwrap_or(DEFAULT_NBD_SECTOR_SIZE);
    let max_request = match raw.get("nbd-max-request") {
        None => MaxRequest::BlockSize,
        Some(s) => {
            let v = s.value.as_deref().unwrap_or_default();
            if v == "0" {
                MaxRequest::Kernel
            } else {
                let bytes = size::parse_size(v).map_err(|e| {
                    s.error(format!("{}: {e} (or 0 for the kernel's)", s.flag_ref()))
                })?;
                // max_sectors_kb counts KiB and cannot go below a page.
                if bytes % 1024 != 0 || !(4096..=1 << 31).contains(&bytes) {
                    return Err(s.error(format!(
                        "{}: must be a multiple of 1k between 4k and 2g (or 0 for the kernel's)",
                        s.shown()
                    )));
                }
                MaxRequest::Bytes(bytes)
            }
        }
    };
    let plugin = raw
        .text("nbd-plugin")
        .unwrap_or(DEFAULT_NBD_PLUGIN)
        .to_owned();
    if plugin.starts_with('-')
        && let Some(s) = raw.get("nbd-plugin")
    {
        // nbdkit would read it as one of its own options.
        return Err(s.error(format!("{}: must not start with '-'", s.shown())));
    }
    Ok(NbdSettings {
        device: device.to_owned(),
        bucket_arg: bucket_arg.to_owned(),
        plugin_flags,
        nbdkit_flags: raw.nbd_flags.clone(),
        nbdkit_params: raw.nbd_params.clone(),
        plugin,
        connections,
        timeout,
        sector_size,
        max_request,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_leading_nbd_counts() {
        let (rest, nbd) =
            take_leading_nbd(&argv(&["--size=1g", "--nbd", "b", "/dev/nbd0"])).unwrap();
        assert!(nbd);
        assert_eq!(rest, argv(&["--size=1g", "b", "/dev/nbd0"]));
        let (rest, nbd) = take_leading_nbd(&argv(&["b", "--nbd", "/dev/nbd0"])).unwrap();
        assert!(!nbd);
        assert_eq!(rest, argv(&["b", "--nbd", "/dev/nbd0"]));
        let (_, nbd) = take_leading_nbd(&argv(&["--", "--nbd"])).unwrap();
        assert!(!nbd);
        let (_, nbd) = take_leading_nbd(&argv(&["--nbd=TRUE", "b", "d"])).unwrap();
        assert!(nbd);
        let (rest, nbd) = take_leading_nbd(&argv(&["--nbd=false", "b", "d"])).unwrap();
        assert!(!nbd);
        assert_eq!(rest, argv(&["b", "d"]));
        assert!(
            take_leading_nbd(&argv(&["--nbd=maybe"]))
                .unwrap_err()
                .to_string()
                .contains("--nbd takes no value")
        );
    }

    #[test]
    fn wrapper_accepts_double_dash_flags_f_and_d_only() {
        check_wrapper_args(&argv(&[
            "--size=1g",
            "-f",
            "-d",
            "b",
            "/dev/nbd0",
            "--",
            "-o",
        ]))
        .unwrap();
        for bad in ["-o", "-oallow_other", "-F", "-s", "-x"] {
            let e = check_wrapper_args(&argv(&[bad, "b", "d"])).unwrap_err();
            assert!(
                e.to_string()
                    .starts_with(&format!("invalid flag {bad:?} with --nbd")),
                "{e}"
            );
        }
    }
}
