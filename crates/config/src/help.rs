//! `--help`, `--version` and the nbdkit `config_help` text, generated from the flag table.

use crate::flags::{FLAGS, FlagDef, Group, Kind, Support};

/// Version of this crate (the workspace version).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The s3backer release whose flags and on-bucket format we follow.
pub const COMPATIBLE_S3BACKER_VERSION: &str = "2.1.6";

const USAGE: &str = "\
Usage:
  s3backer [options] bucket[/subdir] /mount/point          the disk as a file (FUSE)
  s3backer --nbd [options] bucket[/subdir] /dev/nbdX       the disk as a kernel block device (nbdkit + nbd-client)
  s3backer --test [options] dir /mount/point               a local directory instead of a bucket (FUSE)
  s3backer --erase [options] bucket[/subdir]               delete every block, then exit
  s3backer --reset-mounted-flag [options] bucket[/subdir]  clear the \"already mounted\" flag
  nbdkit [nbdkit options] s3backer bucket=bucket[/subdir] [s3b_]flag=value ...
  s3backer --help | --version

Flags are written --flag=value (the '=' is required), or --flag for on/off flags, which also
accept --flag=true|false|yes|no|1|0. The same flags work as -o flag=value,flag2 lists and as
lines of a config file (one argument per line, # comments). As nbdkit parameters they are
flag=value, optionally prefixed with s3b_, and on/off flags take true or false.
Sizes are a byte count or a number with one suffix k, m, g, t, p, e (powers of two): 4k, 1g.
";

const GENERAL_OPTIONS: [(&str, &str); 6] = [
    ("-f", "stay in the foreground, log to stderr"),
    (
        "-d",
        "FUSE debug output (with --nbd: nbdkit --verbose); implies -f and --debug",
    ),
    ("-F FILE", "same as --configFile=FILE"),
    (
        "-o OPTION[,OPTION...]",
        "s3backer flags, or options passed to FUSE (allow_other, ...)",
    ),
    ("-h, -?, --help", "show this help"),
    ("-v, --version", "show the version"),
];

fn synopsis(f: &FlagDef) -> String {
    match f.kind {
        Kind::Bool => format!("--{}", f.name),
        Kind::Value => format!("--{}={}", f.name, f.arg),
        Kind::BoolOrValue => format!("--{}[={}]", f.name, f.arg),
    }
}

/// The full `--help` text.
pub fn help_text() -> String {
    let width = FLAGS.iter().map(|f| synopsis(f).len()).max().unwrap_or(0) + 2;
    let mut out = format!(
        "s3backer-rs {VERSION}: an S3 bucket as a virtual disk, compatible with s3backer {COMPATIBLE_S3BACKER_VERSION}\n\n{USAGE}"
    );
    out.push_str("\nGeneral options:\n");
    for (synopsis, help) in GENERAL_OPTIONS {
        out.push_str(&format!("  {synopsis:<width$} {help}\n"));
    }
    for group in Group::ALL {
        let title = group.title();
        out.push('\n');
        out.push_str(title);
        out.push_str(":\n");
        for f in FLAGS.iter().filter(|f| f.group == group) {
            let mut line = format!("  {:<width$} {}", synopsis(f), f.help);
            if let Some(default) = f.default {
                line.push_str(&format!(" [default: {default}]"));
            }
            if matches!(f.support, Support::NotYet { .. }) && !title.contains("not supported yet") {
                line.push_str(" [not supported yet]");
            }
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// The `--version` text.
pub fn version_text() -> String {
    format!(
        "s3backer-rs version {VERSION}\n\
         compatible with the flags and on-bucket format of s3backer {COMPATIBLE_S3BACKER_VERSION}\n"
    )
}

/// Parameter summary for the nbdkit plugin's `config_help`.
pub fn nbdkit_config_help() -> String {
    "bucket=<BUCKET>[/<SUBDIR>]   the bucket (with --test: a directory) and optional subdirectory\n\
     [s3b_]<FLAG>=<VALUE>         any s3backer flag, e.g. blockSize=1m, readOnly=true\n\
     configFile=<FILE>            read more flags from FILE, one per line\n\
     (run `s3backer --help` for the list of flags)"
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_lists_every_flag_with_its_group() {
        let help = help_text();
        for f in FLAGS {
            let line = help
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("{} ", synopsis(f))))
                .unwrap_or_else(|| panic!("--{} missing from help", f.name));
            assert!(line.contains(f.help), "{line}");
            if let Some(d) = f.default {
                assert!(line.contains(&format!("[default: {d}]")), "{line}");
            }
        }
        for g in Group::ALL {
            assert!(help.contains(&format!("\n{}:\n", g.title())), "{g:?}");
        }
        for form in [
            "--nbd",
            "--test",
            "--erase",
            "--reset-mounted-flag",
            "nbdkit",
        ] {
            assert!(help.contains(form), "{form}");
        }
    }

    #[test]
    fn help_marks_unsupported_flags_outside_unsupported_groups() {
        let help = help_text();
        let line = |name: &str| {
            help.lines()
                .find(|l| l.contains(&format!("--{name}=")) || l.contains(&format!("--{name} ")))
                .unwrap_or_default()
                .to_owned()
        };
        assert!(line("ipTOS").ends_with("[not supported yet]"));
        assert!(line("accessEC2IAM").ends_with("[not supported yet]"));
        assert!(!line("blockCacheSize").contains("[not supported yet]"));
        assert!(!line("size").contains("[not supported yet]"));
    }

    #[test]
    fn synopses() {
        let by_name = |n: &str| FLAGS.iter().find(|f| f.name == n).map(synopsis);
        assert_eq!(by_name("size").as_deref(), Some("--size=SIZE"));
        assert_eq!(by_name("readOnly").as_deref(), Some("--readOnly"));
        assert_eq!(
            by_name("compress").as_deref(),
            Some("--compress[=ALG|LEVEL]")
        );
    }

    #[test]
    fn version_mentions_compatibility() {
        let v = version_text();
        assert!(v.starts_with(&format!("s3backer-rs version {VERSION}\n")));
        assert!(v.contains("compatible"));
    }
}
