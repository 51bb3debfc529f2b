//! The command line as a whole: positionals, bucket/subdir/prefix, config files, FUSE
//! options, help and version, `explicit`.

use super::{argv, err, err_exact, no_env, ok, parse_with};
use crate::testutil::TempDir;
use crate::{ErrorKind, Invocation, help_text, parse_command_line, version_text};

#[test]
fn bucket_and_mount_point() {
    let c = ok(&[]);
    assert_eq!(c.bucket, "mybucket");
    assert_eq!(c.mount_point.as_deref(), Some("/mnt"));
    let c = parse_with(&["mybucket"], &no_env()).unwrap();
    assert_eq!(c.mount_point, None);
    assert_eq!(err_exact(&[]), "no bucket specified");
    assert_eq!(
        err(&["extra"]),
        "unexpected argument \"extra\": only a bucket and a mount point are expected"
    );
}

#[test]
fn flags_may_follow_positionals() {
    let c = parse_with(&["mybucket", "--size=1m", "/mnt", "--readOnly"], &no_env()).unwrap();
    assert_eq!(c.size, Some(1 << 20));
    assert!(c.read_only);
    assert_eq!(c.mount_point.as_deref(), Some("/mnt"));
}

#[test]
fn subdirectories() {
    let c = parse_with(&["mybucket/sub/dir", "/mnt"], &no_env()).unwrap();
    assert_eq!(
        (c.bucket.as_str(), c.prefix.as_str()),
        ("mybucket", "sub/dir/")
    );
    let c = parse_with(&["mybucket/x", "/mnt", "--prefix="], &no_env()).unwrap();
    assert_eq!(c.prefix, "x/");
    for bad in ["mybucket/", "mybucket//x", "mybucket/x/", "mybucket/a//b"] {
        let e = err_exact(&[bad, "/mnt"]);
        assert!(e.starts_with("invalid subdirectory"), "{bad}: {e}");
    }
    assert_eq!(
        err_exact(&["mybucket/x", "/mnt", "--prefix=p"]),
        "a subdirectory in the bucket argument (\"mybucket/x\") cannot be combined with --prefix"
    );
}

#[test]
fn bucket_argument_rules() {
    assert_eq!(
        err_exact(&["/data", "/mnt"]),
        "invalid bucket \"/data\": must not start with '/' (a local directory needs --test)"
    );
    assert_eq!(err_exact(&["", "/mnt"]), "empty bucket name");
    assert_eq!(
        err_exact(&["My_Bucket", "/mnt"]),
        "invalid bucket name \"My_Bucket\": may only contain lowercase letters, digits, '.' and '-'"
    );
    assert!(err_exact(&["ab/sub", "/mnt"]).contains("3 to 63"));
}

#[test]
fn fuse_options_are_kept_in_order() {
    let c = ok(&["-o", "allow_other,readOnly,uid=1000", "-s", "-oro", "-f"]);
    assert!(c.read_only && c.foreground);
    assert_eq!(
        c.fuse_args,
        ["-o", "allow_other", "-o", "uid=1000", "-s", "-o", "ro"]
    );
    let c = ok(&["-d"]);
    assert_eq!(c.fuse_args, ["-d"]);
}

#[test]
fn equals_sign_is_required() {
    assert_eq!(
        err_exact(&["mybucket", "--size", "1g"]),
        "--size requires a value: use --size=1g (the '=' is required)"
    );
}

#[test]
fn unknown_flags_suggest_the_right_spelling() {
    assert_eq!(
        err(&["--blocksize=1m"]),
        "unknown flag \"--blocksize\" (did you mean \"--blockSize\"?)"
    );
    assert_eq!(
        err(&["--ss-key-id=x"]),
        "unknown flag \"--ss-key-id\" (did you mean \"--sse-key-id\"?)"
    );
}

#[test]
fn explicit_records_given_flags() {
    let c = ok(&["--size=1m", "--debug", "-o", "readOnly", "--force=false"]);
    let names: Vec<&str> = c.explicit.iter().map(String::as_str).collect();
    assert_eq!(names, ["debug", "readOnly", "size"]);
}

#[test]
fn help_and_version() {
    for h in ["--help", "-h", "-?"] {
        let inv = parse_command_line(&argv(&["--bogus", h]), &no_env()).unwrap();
        assert_eq!(inv, Invocation::Help(help_text()));
    }
    for v in ["--version", "-v"] {
        let inv = parse_command_line(&argv(&[v]), &no_env()).unwrap();
        assert_eq!(inv, Invocation::Version(version_text()));
    }
    let dir = TempDir::new();
    let f = dir.write("h.conf", "--help\n");
    let inv = parse_command_line(&argv(&["-F", &f]), &no_env()).unwrap();
    assert!(matches!(inv, Invocation::Help(_)));
}

#[test]
fn anonymous_access_warns_unless_deliberate() {
    let warning = "no credentials found (--accessId, access file or AWS_ACCESS_KEY_ID): requests will not be signed";
    assert_eq!(ok(&[]).warnings, [warning]);
    assert!(ok(&["--readOnly"]).warnings.is_empty());
    assert!(ok(&["--accessId="]).warnings.is_empty());
    assert!(ok(&["--baseURL=http://localhost/"]).warnings.is_empty());
}

// ---- Config files ----

#[test]
fn config_file_holds_flags_bucket_and_mount_point() {
    let dir = TempDir::new();
    let f = dir.write(
        "s3b.conf",
        "# my disk\n--size=1g\n\n  --blockSize=1m\n-o\nreadOnly\nmybucket/vm1\n/mnt/disk\n",
    );
    let arg = format!("--configFile={f}");
    let c = parse_with(&[&arg], &no_env()).unwrap();
    assert_eq!(c.size, Some(1 << 30));
    assert_eq!(c.block_size, Some(1 << 20));
    assert!(c.read_only);
    assert_eq!((c.bucket.as_str(), c.prefix.as_str()), ("mybucket", "vm1/"));
    assert_eq!(c.mount_point.as_deref(), Some("/mnt/disk"));
}

#[test]
fn config_file_is_expanded_in_place() {
    let dir = TempDir::new();
    let f = dir.write("c.conf", "--size=2m\n");
    // Later arguments override the file, the file overrides earlier ones.
    let c = ok(&["--size=1m", "-F", &f]);
    assert_eq!(c.size, Some(2 << 20));
    let c = ok(&["-F", &f, "--size=1m"]);
    assert_eq!(c.size, Some(1 << 20));
    let c = ok(&["-o", &format!("size=4m,configFile={f},debug")]);
    assert_eq!(c.size, Some(2 << 20));
    assert!(c.debug);
}

#[test]
fn errors_in_config_files_name_file_and_line() {
    let dir = TempDir::new();
    let f = dir.write("bad.conf", "# comment\n--size=1.5g\n");
    let e = parse_with(&["mybucket", "-F", &f], &no_env()).unwrap_err();
    assert_eq!(e.location().map(|l| l.line), Some(2));
    assert!(
        e.to_string()
            .starts_with(&format!("{f}:2: --size: invalid size \"1.5g\"")),
        "{e}"
    );
    let f = dir.write("space.conf", "--size 1g\n");
    assert_eq!(
        err(&["-F", &f]),
        format!("{f}:1: \"--size 1g\": use --size=1g (the '=' is required)")
    );
    let f = dir.write("unknown.conf", "\n\n--readonly\n");
    assert_eq!(
        err(&["-F", &f]),
        format!("{f}:3: unknown flag \"--readonly\" (did you mean \"--readOnly\"?)")
    );
    let f = dir.write("unsupported.conf", "--sharedDiskMode\n");
    let e = parse_with(&["mybucket", "-F", &f], &no_env()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotSupported);
    assert!(e.to_string().starts_with(&format!("{f}:1: ")), "{e}");
    let f = dir.write("mount.conf", "mybucket\n/mnt\n");
    assert_eq!(
        err_exact(&["--erase", "-F", &f]),
        format!("{f}:2: no mount point should be specified with --erase")
    );
    let f = dir.write("bucket.conf", "Bad_Bucket\n");
    assert!(err_exact(&["-F", &f]).starts_with(&format!("{f}:1: invalid bucket name")));
}

#[test]
fn config_file_nesting_limit_and_missing_file() {
    let dir = TempDir::new();
    let path = dir.path().join("loop.conf").display().to_string();
    std::fs::write(&path, format!("-o configFile={path}\n")).unwrap();
    assert_eq!(
        err(&["-F", &path]),
        format!("{path}:1: too many levels of \"--configFile\" nesting")
    );
    let e = parse_with(&["mybucket", "--configFile=/nonexistent/c.conf"], &no_env()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io);
    assert!(
        e.to_string()
            .starts_with("cannot read config file \"/nonexistent/c.conf\": ")
    );
}

#[test]
fn double_dash_ends_options() {
    let c = parse_with(&["--", "mybucket", "/mnt"], &no_env()).unwrap();
    assert_eq!(c.mount_point.as_deref(), Some("/mnt"));
    assert_eq!(
        err_exact(&["mybucket", "/mnt", "--", "--size=1m"]),
        "unexpected argument \"--size=1m\": only a bucket and a mount point are expected"
    );
}
