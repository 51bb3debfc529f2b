//! `s3backer --nbd`: the command-line rules of facts §1.8 and what is handed to the plugin.

use super::{argv, no_env, parse_with};
use crate::testutil::TempDir;
use crate::{Config, ConfigError, PluginFlag, parse_command_line};

fn nbd(list: &[&str]) -> Result<Config, ConfigError> {
    parse_with(list, &no_env())
}

fn nbd_err(list: &[&str]) -> String {
    match nbd(list) {
        Ok(c) => panic!("{list:?} was accepted: {c:?}"),
        Err(e) => e.to_string(),
    }
}

fn flags(c: &Config) -> Vec<(String, Option<String>)> {
    c.nbd
        .as_ref()
        .expect("nbd settings")
        .plugin_flags
        .iter()
        .map(|f| (f.name.to_owned(), f.value.clone()))
        .collect()
}

fn pair(name: &str, value: Option<&str>) -> (String, Option<String>) {
    (name.to_owned(), value.map(str::to_owned))
}

#[test]
fn nbd_is_recognised_only_among_the_leading_dash_arguments() {
    let c = nbd(&["--size=1g", "--nbd", "-f", "mybucket", "/dev/nbd0"]).unwrap();
    assert!(c.nbd.is_some() && c.foreground);
    assert_eq!(
        nbd_err(&["mybucket", "--nbd", "/dev/nbd0"]),
        "--nbd must come first, before the bucket and device arguments: s3backer --nbd [flags] bucket[/subdir] /dev/nbdX"
    );
    // After `--` it is a positional like any other.
    assert!(nbd_err(&["--", "--nbd", "/mnt"]).starts_with("invalid bucket name \"--nbd\""));
}

#[test]
fn only_double_dash_flags_f_and_d() {
    for bad in ["-o", "-F", "-s", "-oallow_other"] {
        let e = nbd_err(&["--nbd", bad, "x", "mybucket", "/dev/nbd0"]);
        assert!(
            e.starts_with(&format!("invalid flag {bad:?} with --nbd")),
            "{e}"
        );
    }
    // Also after the positionals (flags may follow them).
    let e = nbd_err(&["--nbd", "mybucket", "/dev/nbd0", "-o", "size=1g"]);
    assert!(e.starts_with("invalid flag \"-o\" with --nbd"), "{e}");
    // -d: foreground and debug, and debug reaches the plugin.
    let c = nbd(&["--nbd", "-d", "mybucket", "/dev/nbd0"]).unwrap();
    assert!(c.foreground && c.debug);
    assert_eq!(flags(&c), [pair("debug", None)]);
}

#[test]
fn exactly_two_positionals() {
    for list in [
        &["--nbd", "mybucket"][..],
        &["--nbd", "mybucket", "/dev/nbd0", "extra"],
        &["--nbd"],
    ] {
        assert!(
            nbd_err(list).starts_with("--nbd needs two arguments, bucket[/subdir] and the device"),
            "{list:?}"
        );
    }
}

#[test]
fn booleans_bare_or_true_values_checked_value_flags_need_values() {
    let c = nbd(&[
        "--nbd",
        "--readOnly",
        "--force=true",
        "--listBlocks=TRUE",
        "--debug=false",
        "mybucket",
        "/dev/nbd0",
    ])
    .unwrap();
    assert_eq!(
        flags(&c),
        [
            pair("readOnly", None),
            pair("force", None),
            pair("listBlocks", None)
        ]
    );
    assert!(
        nbd_err(&["--nbd", "--readOnly=maybe", "mybucket", "/dev/nbd0"]).contains("takes no value")
    );
    assert!(nbd_err(&["--nbd", "--size", "mybucket", "/dev/nbd0"]).contains("requires a value"));
    assert!(nbd_err(&["--nbd", "--frobnicate", "mybucket", "/dev/nbd0"]).contains("unknown flag"));
}

#[test]
fn erase_and_reset_are_refused() {
    assert_eq!(
        nbd_err(&["--nbd", "--erase", "mybucket", "/dev/nbd0"]),
        "--erase cannot be used with --nbd"
    );
    assert_eq!(
        nbd_err(&["--nbd", "--reset-mounted-flag", "mybucket", "/dev/nbd0"]),
        "--reset-mounted-flag cannot be used with --nbd"
    );
}

#[test]
fn nbd_in_a_config_file_is_refused() {
    let dir = TempDir::new();
    let f = dir.write("nbd.conf", "--size=1g\n--nbd\n");
    let e = nbd(&[
        "--nbd",
        &format!("--configFile={f}"),
        "mybucket",
        "/dev/nbd0",
    ])
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{f}:2: --nbd is not supported in config files: give it first on the command line")
    );
    // Also without --nbd on the command line.
    assert!(
        nbd_err(&[&format!("--configFile={f}"), "mybucket", "/mnt"])
            .ends_with("--nbd is not supported in config files: give it first on the command line")
    );
}

#[test]
fn config_files_are_expanded_for_the_plugin_and_may_hold_nbd_flags() {
    let dir = TempDir::new();
    let f = dir.write(
        "disk.conf",
        "--blockSize=64k\n-o size=1g,allow_other\n--nbd-connections=8\n--filename=disk\n--prefix=a b\n",
    );
    let c = nbd(&[
        "--nbd",
        &format!("--configFile={f}"),
        "--prefix=c",
        "mybucket",
        "/dev/nbd0",
    ])
    .unwrap();
    let n = c.nbd.as_ref().expect("nbd");
    assert_eq!(n.connections, 8);
    // In order of last appearance; the wrapper's and FUSE's own flags stay out.
    assert_eq!(
        flags(&c),
        [
            pair("blockSize", Some("64k")),
            pair("size", Some("1g")),
            pair("prefix", Some("c"))
        ]
    );
    assert!(
        c.warnings
            .iter()
            .any(|w| w == "--filename only applies to FUSE mounts: ignored with --nbd"),
        "{:?}",
        c.warnings
    );
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("ignoring FUSE option \"allow_other\"")),
        "{:?}",
        c.warnings
    );
}

#[test]
fn hostile_values_stay_whole() {
    let c = nbd(&[
        "--nbd",
        "--prefix=a b",
        "--statsFileMirror=/tmp/x;rm -rf /",
        "--baseURL=http://h/a=b/",
        "--defaultContentEncoding=--verbose",
        "--password=pa ss\nword",
        "--test",
        "--size=1m",
        "/tmp",
        "/dev/nbd0",
    ])
    .unwrap();
    let f = flags(&c);
    assert!(f.contains(&pair("prefix", Some("a b"))));
    assert!(f.contains(&pair("statsFileMirror", Some("/tmp/x;rm -rf /"))));
    assert!(f.contains(&pair("baseURL", Some("http://h/a=b/"))));
    assert!(f.contains(&pair("defaultContentEncoding", Some("--verbose"))));
    // Secrets never show in Debug output (the configuration is logged with --debug).
    let shown = format!("{c:?}");
    assert!(!shown.contains("pa ss"), "{shown}");
    assert!(shown.contains("password=***"), "{shown}");
}

#[test]
fn secret_flags_are_marked() {
    let p = |name| PluginFlag {
        name,
        value: Some("x".into()),
    };
    assert!(p("password").is_secret() && p("accessKey").is_secret());
    assert!(!p("accessId").is_secret() && !p("passwordFile").is_secret());
}

#[test]
fn help_and_version_still_win() {
    let r = parse_command_line(&argv(&["--nbd", "-o", "x", "--help"]), &no_env()).unwrap();
    assert!(matches!(r, crate::Invocation::Help(_)));
}
