//! nbdkit plugin parameters.

use super::{no_env, params, plugin};
use crate::testutil::TempDir;
use crate::{Mode, parse_nbdkit_params};

fn plugin_err(list: &[(&str, &str)]) -> String {
    match plugin(list) {
        Ok(c) => panic!("{list:?} was accepted: {c:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bucket_and_flags() {
    let c = plugin(&[
        ("bucket", "mybucket/sub"),
        ("size", "1g"),
        ("s3b_blockSize", "1m"),
    ])
    .unwrap();
    assert_eq!((c.bucket.as_str(), c.prefix.as_str()), ("mybucket", "sub/"));
    assert_eq!(c.size, Some(1 << 30));
    assert_eq!(c.block_size, Some(1 << 20));
    assert_eq!(c.mode, Mode::Serve);
    assert_eq!(c.mount_point, None);
    assert!(c.fuse_args.is_empty());
    let c = plugin(&[("s3b_bucket", "mybucket")]).unwrap();
    assert_eq!(c.bucket, "mybucket");
}

#[test]
fn bucket_is_required_once() {
    assert_eq!(plugin_err(&[("size", "1g")]), "missing bucket parameter");
    assert_eq!(
        plugin_err(&[("bucket", "mybucket"), ("s3b_bucket", "other")]),
        "duplicate bucket parameter"
    );
}

#[test]
fn booleans_take_true_or_false() {
    let c = plugin(&[
        ("bucket", "mybucket"),
        ("readOnly", "TRUE"),
        ("force", "yes"),
        ("debug", "false"),
    ])
    .unwrap();
    assert!(c.read_only && c.force && !c.debug);
    let c = plugin(&[
        ("bucket", "mybucket"),
        ("readOnly", "true"),
        ("s3b_readOnly", "0"),
    ])
    .unwrap();
    assert!(!c.read_only, "a later false undoes an earlier true");
    assert_eq!(
        plugin_err(&[("bucket", "mybucket"), ("readOnly", "")]),
        "invalid value \"\" for readOnly: use true or false"
    );
    assert_eq!(
        plugin_err(&[("bucket", "mybucket"), ("s3b_vhost", "on")]),
        "invalid value \"on\" for s3b_vhost: use true or false"
    );
}

#[test]
fn unknown_parameters_are_errors_with_suggestions() {
    assert_eq!(
        plugin_err(&[("bucket", "mybucket"), ("blocksize", "1m")]),
        "unknown parameter \"blocksize\" (did you mean \"blockSize\"?)"
    );
    assert_eq!(
        plugin_err(&[("bucket", "mybucket"), ("s3b_readonly", "true")]),
        "unknown parameter \"s3b_readonly\" (did you mean \"readOnly\"?)"
    );
    assert_eq!(
        plugin_err(&[("bucket", "mybucket"), ("frobnicate", "1")]),
        "unknown parameter \"frobnicate\""
    );
}

#[test]
fn values_are_checked_like_the_command_line() {
    assert_eq!(
        plugin_err(&[("bucket", "mybucket"), ("s3b_size", "1.5g")]),
        "s3b_size: invalid size \"1.5g\": fractions are not allowed (use a smaller unit, e.g. 1536m for 1.5g)"
    );
    assert_eq!(
        plugin_err(&[("bucket", "mybucket"), ("timeout", "0")]),
        "timeout: invalid value \"0\": must be at least 1"
    );
    assert_eq!(
        plugin_err(&[("bucket", "mybucket"), ("noAutoDetect", "true")]),
        "size is required with noAutoDetect (nothing is auto-detected)"
    );
}

#[test]
fn compress_and_encrypt() {
    plugin(&[
        ("bucket", "mybucket"),
        ("compress", "false"),
        ("encrypt", "False"),
    ])
    .unwrap();
    let c = plugin(&[("bucket", "mybucket"), ("compress", "true")]).unwrap();
    assert!(c.codec.compression.is_some());
    let c = plugin(&[
        ("bucket", "mybucket"),
        ("s3b_encrypt", "AES-256-CBC"),
        ("password", "pw"),
    ])
    .unwrap();
    assert_eq!(
        c.codec.encryption.map(|e| e.cipher),
        Some("AES-256-CBC".into())
    );
    assert!(plugin_err(&[("bucket", "mybucket"), ("encrypt", "true")]).contains("password"));
}

#[test]
fn noop_values_of_unsupported_features() {
    plugin(&[
        ("bucket", "mybucket"),
        ("blockCacheSize", "0"),
        ("readAhead", "0"),
        ("listBlocks", "false"),
    ])
    .unwrap();
    assert!(
        plugin_err(&[("bucket", "mybucket"), ("md5CacheSize", "100")])
            .contains("(planned: MD5 cache)")
    );
}

#[test]
fn command_line_modes_are_refused() {
    assert_eq!(
        plugin_err(&[("bucket", "mybucket"), ("erase", "true")]),
        "erase cannot be used with the nbdkit plugin (it is a mode of the s3backer command)"
    );
    plugin(&[("bucket", "mybucket"), ("erase", "false")]).unwrap();
    assert_eq!(
        plugin_err(&[("bucket", "mybucket"), ("nbd", "true")]),
        "nbd cannot be used with the nbdkit plugin (run `s3backer --nbd ...` to attach a device)"
    );
}

#[test]
fn config_files() {
    let dir = TempDir::new();
    let f = dir.write(
        "p.conf",
        "--size=1g\n-o\nallow_other,readOnly\n-f\n-d\nmybucket\n/mnt/ignored\n",
    );
    let c = parse_nbdkit_params(&params(&[("configFile", &f)]), &no_env()).unwrap();
    assert_eq!(c.bucket, "mybucket");
    assert_eq!(c.size, Some(1 << 30));
    assert!(c.read_only && c.debug && !c.foreground);
    assert_eq!(c.mount_point, None);
    assert!(c.fuse_args.is_empty());
    assert_eq!(
        c.warnings,
        [
            "ignoring mount point \"/mnt/ignored\" from the config file (not used by the nbdkit plugin)",
            "ignoring FUSE option \"-o allow_other\" (the nbdkit plugin has no FUSE mount)",
            "ignoring FUSE option \"-f\" (the nbdkit plugin has no FUSE mount)",
        ]
    );
    assert!(c.explicit.contains("configFile"));

    // With a bucket parameter, the file's first positional is the (ignored) mount point.
    let g = dir.write("q.conf", "/mnt/x\n");
    let c = parse_nbdkit_params(
        &params(&[("bucket", "other1"), ("s3b_configFile", &g)]),
        &no_env(),
    )
    .unwrap();
    assert_eq!(c.bucket, "other1");

    let h = dir.write("r.conf", "one1\ntwo\nthree\n");
    let e = parse_nbdkit_params(&params(&[("configFile", &h)]), &no_env()).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{h}:3: unexpected argument \"three\": only a bucket and a mount point are expected"
        )
    );
}

#[test]
fn fuse_only_flags_are_inert() {
    let c = plugin(&[
        ("bucket", "mybucket"),
        ("statsFilename", "s"),
        ("filename", "f"),
    ])
    .unwrap();
    assert!(c.explicit.contains("filename"));
    assert!(
        plugin_err(&[("bucket", "mybucket"), ("filename", "a/b")])
            .starts_with("filename: invalid file name")
    );
}
