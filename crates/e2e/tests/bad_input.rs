//! Bad input ends with one clear error line and a non-zero exit, and writes nothing to the bucket:
//! through nbdkit (the plugin's `config_complete`) and through the `s3backer` command.

use s3backer_e2e::*;
use std::process::Command;

/// Starts nbdkit with `params` on a fresh bucket; asserts it fails with exactly one error line
/// containing `want`, and that the bucket is still empty.
fn plugin_refuses(extra: &[String], want: &str) {
    let g = Garage::shared();
    let bucket = g.new_bucket("bad");
    let mut p = vec![format!("bucket={bucket}")];
    p.extend(extra.iter().cloned());
    let err = Nbdkit::start(&p)
        .err()
        .unwrap_or_else(|| panic!("nbdkit accepted {extra:?}"));
    // Progress lines (INFO, e.g. retries) may precede it; the error itself is one line.
    let errors: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("error:") || l.contains("ERROR"))
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "one error line expected for {extra:?}, got:\n{err}"
    );
    assert!(errors[0].contains(want), "{want:?} not in {:?}", errors[0]);
    assert!(
        g.keys(&bucket, "").is_empty(),
        "{extra:?} wrote to the bucket"
    );
}

fn with_server(extra: &[&str]) -> Vec<String> {
    let mut p = Garage::shared().params();
    p.extend(extra.iter().map(|s| s.to_string()));
    p
}

#[test]
fn unknown_parameter_is_refused_with_a_suggestion() {
    plugin_refuses(
        &with_server(&["size=1m", "blocksize=4k"]),
        "did you mean \"blockSize\"",
    );
}

#[test]
fn invalid_sizes_are_refused() {
    plugin_refuses(&with_server(&["size=1.5g"]), "size");
    plugin_refuses(&with_server(&["size=1m", "blockSize=3k"]), "power of two");
    plugin_refuses(&with_server(&["size=1000", "blockSize=4k"]), "multiple");
    plugin_refuses(&with_server(&["size=0"]), "size");
}

#[test]
fn missing_size_on_a_fresh_bucket_is_refused() {
    plugin_refuses(&with_server(&[]), "please specify --size");
}

#[test]
fn missing_credential_file_is_refused() {
    let g = Garage::shared();
    let p = vec![
        format!("baseURL={}", g.endpoint),
        "accessFile=/nonexistent/s3b-passwd".into(),
        "size=1m".into(),
    ];
    plugin_refuses(&p, "/nonexistent/s3b-passwd");
}

#[test]
fn wrong_secret_is_refused_at_once() {
    let g = Garage::shared();
    let p = vec![
        format!("baseURL={}", g.endpoint),
        format!("accessId={}", garage::KEY_ID),
        "accessKey=0000000000000000000000000000000000000000000000000000000000000000".into(),
        "size=1m".into(),
    ];
    let start = std::time::Instant::now();
    plugin_refuses(&p, "403");
    assert!(
        start.elapsed() < std::time::Duration::from_secs(20),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn wrong_region_is_refused() {
    plugin_refuses(
        &with_server(&["size=1m", "region=eu-west-7", "no-vhost=true"]),
        "check the access key and secret, --region",
    );
}

#[test]
fn unreachable_endpoint_is_refused() {
    let p = vec![
        "baseURL=http://127.0.0.1:9/".into(),
        "accessId=x".into(),
        "accessKey=y".into(),
        "size=1m".into(),
        "maxRetryPause=500".into(),
    ];
    plugin_refuses(&p, "127.0.0.1:9");
}

#[test]
fn not_yet_supported_flags_are_refused_not_ignored() {
    plugin_refuses(
        &with_server(&["size=1m", "md5CacheSize=100"]),
        "not supported yet",
    );
    plugin_refuses(
        &with_server(&["size=1m", "ipTOS=lowdelay"]),
        "not supported yet",
    );
    plugin_refuses(
        &with_server(&["size=1m", "sharedDiskMode=true"]),
        "not supported yet",
    );
}

#[test]
fn encryption_without_a_password_is_refused() {
    plugin_refuses(
        &with_server(&["size=1m", "encrypt=true"]),
        "encryption needs a password",
    );
    plugin_refuses(
        &with_server(&["size=1m", "encrypt=AES256", "password=x"]),
        "give the canonical name \"AES-256-CBC\"",
    );
}

#[test]
fn cache_flag_rules_are_enforced() {
    plugin_refuses(
        &with_server(&["size=1m", "blockCacheRecoverDirtyBlocks=true"]),
        "requires blockCacheFile=FILE",
    );
    plugin_refuses(
        &with_server(&["size=1m", "blockCacheSync=true"]),
        "requires blockCacheWriteDelay=0",
    );
}

#[test]
fn invalid_bucket_name_is_refused() {
    let g = Garage::shared();
    let mut p = with_server(&["size=1m"]);
    p.push("bucket=Bad_Bucket".into());
    let err = Nbdkit::start(&p).err().expect("refused");
    assert!(err.contains("Bad_Bucket"), "{err}");
    let _ = g;
}

/// Runs the command; asserts exit status 1 and a single `s3backer: ...` line containing `want`.
fn cli_refuses(args: &[&str], want: &str) {
    let out = run(Command::new(s3backer_bin()).args(args));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "{args:?}: one line expected, got:\n{stderr}"
    );
    assert!(
        lines[0].starts_with("s3backer: ") && lines[0].contains(want),
        "{want:?} not in {:?}",
        lines[0]
    );
}

#[test]
fn command_line_errors_are_one_line() {
    cli_refuses(&["--blockSiz=4k", "--erase", "bucket"], "blockSiz");
    cli_refuses(&["--size", "1g", "--erase", "bucket"], "--size=");
    cli_refuses(&["--erase", "--size=1g", "bucket", "/mnt"], "mount point");
    cli_refuses(&["--size=1g", "bucket"], "no mount point");
    cli_refuses(
        &["--nbd", "-o", "x", "bucket", "/dev/nbd0"],
        "invalid flag \"-o\" with --nbd",
    );
    cli_refuses(
        &["--configFile=/nonexistent/s3b.conf", "bucket"],
        "/nonexistent/s3b.conf",
    );
}

#[test]
fn help_and_version_exit_zero() {
    for flag in ["--help", "--version"] {
        let out = run(Command::new(s3backer_bin()).arg(flag));
        assert!(out.status.success(), "{flag}");
        assert!(
            !out.stderr.is_empty(),
            "{flag} prints to stderr like the original"
        );
    }
    let help = String::from_utf8_lossy(&run(Command::new(s3backer_bin()).arg("--help")).stderr)
        .into_owned();
    for flag in [
        "--blockSize",
        "--accessFile",
        "--blockHashPrefix",
        "--reset-mounted-flag",
        "--ioThreads",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
}
