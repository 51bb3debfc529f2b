//! One test per flag or flag family: good values accepted with their effect, bad values
//! refused with the expected message. `every_flag_has_a_test` keeps this file complete.

use std::time::Duration;

use super::{err, err_exact, no_env, ok, parse_with, plugin};
use crate::flags::FLAGS;
use crate::testutil::TempDir;
use crate::{AuthVersion, ErrorKind, Invocation, Mode, PayloadHash, parse_command_line};

#[test]
fn every_flag_has_a_test() {
    let source = include_str!("flags.rs");
    for f in FLAGS {
        assert!(
            source.contains(&format!("\"--{}", f.name)),
            "no test mentions --{}",
            f.name
        );
    }
}

fn not_supported(list: &[&str]) -> String {
    let mut full = vec!["mybucket", "/mnt"];
    full.extend_from_slice(list);
    let e = parse_with(&full, &no_env()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotSupported, "{e}");
    e.to_string()
}

// ---- Target and geometry ----

#[test]
fn prefix_is_verbatim() {
    assert_eq!(ok(&[]).prefix, "");
    assert_eq!(ok(&["--prefix=disk1/"]).prefix, "disk1/");
    assert_eq!(ok(&["--prefix=disk1"]).prefix, "disk1");
    assert_eq!(ok(&["--prefix="]).prefix, "");
}

#[test]
fn block_hash_prefix() {
    assert!(!ok(&[]).block_hash_prefix);
    assert!(ok(&["--blockHashPrefix"]).block_hash_prefix);
    assert!(!ok(&["--blockHashPrefix=false"]).block_hash_prefix);
}

#[test]
fn block_size() {
    assert_eq!(ok(&[]).block_size, None);
    assert_eq!(ok(&["--blockSize=4k"]).block_size, Some(4096));
    assert_eq!(ok(&["--blockSize=65536"]).block_size, Some(65536));
    assert_eq!(ok(&["--blockSize=2g"]).block_size, Some(1 << 31));
    assert_eq!(
        err(&["--blockSize=3k"]),
        "--blockSize: invalid block size \"3k\": must be a power of two"
    );
    assert_eq!(
        err(&["--blockSize=4g"]),
        "--blockSize: invalid block size \"4g\": must be at most 2g"
    );
    assert_eq!(
        err(&["--blockSize=0"]),
        "--blockSize: invalid size \"0\": must not be zero"
    );
}

#[test]
fn size() {
    assert_eq!(ok(&["--size=1g"]).size, Some(1 << 30));
    assert_eq!(ok(&["--size=1073741824"]).size, Some(1 << 30));
    assert!(err(&["--size=1.5g"]).starts_with("--size: invalid size \"1.5g\": fractions"));
    assert!(err(&["--size=-1"]).contains("negative"));
    assert_eq!(
        err(&["--size=1000", "--blockSize=4k"]),
        "--size=1000 is not a multiple of the block size (4k)"
    );
    assert_eq!(ok(&["--size=4t", "--blockSize=2k"]).size, Some(4 << 40));
    assert_eq!(
        err(&["--size=4t", "--blockSize=1k"]),
        "--size=4t with block size 1k gives 2^32 blocks or more; use a larger block size"
    );
    // Without a block size the bucket may still say; nothing to check yet.
    assert_eq!(ok(&["--size=1000"]).size, Some(1000));
}

#[test]
fn no_auto_detect() {
    let c = ok(&["--noAutoDetect", "--size=1m"]);
    assert!(c.no_auto_detect);
    assert_eq!(
        err(&["--noAutoDetect"]),
        "--size is required with --noAutoDetect (nothing is auto-detected)"
    );
    // The default block size applies, so the size must be a multiple of it.
    assert_eq!(
        err(&["--noAutoDetect", "--size=1000"]),
        "--size=1000 is not a multiple of the block size (4k)"
    );
}

// ---- S3 connection ----

#[test]
fn base_url_region_ssl_and_vhost() {
    let c = ok(&[]);
    assert_eq!(c.s3.base_url, "http://s3.amazonaws.com/");
    assert!(!c.s3.base_url_explicit && !c.s3.vhost);
    assert_eq!(c.s3.region, "us-east-1");

    let c = ok(&["--region=eu-west-1"]);
    assert_eq!(c.s3.base_url, "http://s3.eu-west-1.amazonaws.com/");
    assert_eq!(c.s3.region, "eu-west-1");
    assert!(c.s3.vhost);

    let c = ok(&["--region=us-east-1", "--ssl"]);
    assert_eq!(c.s3.base_url, "https://s3.amazonaws.com/");
    assert!(c.s3.vhost, "an explicit --region turns vhost on");

    let c = ok(&["--region=eu-west-1", "--ssl"]);
    assert_eq!(c.s3.base_url, "https://s3.eu-west-1.amazonaws.com/");

    assert!(err(&["--region=eu/west"]).starts_with("--region: invalid region"));
}

#[test]
fn explicit_base_url() {
    let c = ok(&["--baseURL=http://localhost:9000/", "--region=garage"]);
    assert_eq!(c.s3.base_url, "http://localhost:9000/");
    assert!(c.s3.base_url_explicit);
    assert_eq!(c.s3.region, "garage");
    assert!(
        ok(&["--baseURL=https://minio.example/s3/", "--ssl"])
            .s3
            .base_url_explicit
    );
    assert_eq!(
        err(&["--baseURL=http://localhost:9000"]),
        "--baseURL: invalid URL \"http://localhost:9000\": must end with '/'"
    );
    assert!(err(&["--baseURL=s3://x/"]).contains("must start with http:// or https://"));
    assert!(err(&["--baseURL=https:///"]).contains("empty host"));
    assert_eq!(
        err(&["--baseURL=http://localhost/", "--ssl"]),
        "--ssl cannot be used with an http:// --baseURL"
    );
}

#[test]
fn vhost_and_no_vhost_last_wins() {
    assert!(ok(&["--vhost"]).s3.vhost);
    assert!(!ok(&["--region=eu-west-1", "--no-vhost"]).s3.vhost);
    assert!(ok(&["--no-vhost", "--vhost"]).s3.vhost);
    assert!(!ok(&["--vhost", "--no-vhost"]).s3.vhost);
    assert!(ok(&["--region=eu-west-1", "--no-vhost=false"]).s3.vhost);
}

#[test]
fn tls_and_connection_switches() {
    let c = ok(&[]);
    assert!(c.s3.cacert.is_none() && !c.s3.insecure && !c.s3.http11 && !c.s3.no_connection_reuse);
    let c = ok(&[
        "--cacert=/etc/ca.pem",
        "--insecure",
        "--http11",
        "--noCurlCache",
    ]);
    assert_eq!(
        c.s3.cacert.as_deref(),
        Some(std::path::Path::new("/etc/ca.pem"))
    );
    assert!(c.s3.insecure && c.s3.http11 && c.s3.no_connection_reuse);
    assert_eq!(err(&["--cacert="]), "--cacert: empty value");
    assert_eq!(
        err(&["--insecure=sometimes"]),
        "--insecure takes no value (or one of true, false, yes, no, 1, 0), not \"sometimes\""
    );
}

#[test]
fn auth_version() {
    assert_eq!(ok(&[]).s3.auth_version, AuthVersion::V4);
    assert_eq!(ok(&["--authVersion=aws2"]).s3.auth_version, AuthVersion::V2);
    assert_eq!(ok(&["--authVersion=aws4"]).s3.auth_version, AuthVersion::V4);
    assert_eq!(
        err(&["--authVersion=aws3"]),
        "--authVersion: invalid value \"aws3\": must be one of aws2, aws4"
    );
}

#[test]
fn body_integrity_switches() {
    let c = ok(&[]);
    assert_eq!(c.s3.payload_hash, PayloadHash::Auto);
    assert!(!c.s3.content_md5);
    assert_eq!(
        ok(&["--payloadHash=sha256"]).s3.payload_hash,
        PayloadHash::Sha256
    );
    assert_eq!(
        ok(&["--payloadHash=unsigned"]).s3.payload_hash,
        PayloadHash::Unsigned
    );
    assert_eq!(
        err(&["--payloadHash=md5"]),
        "--payloadHash: invalid value \"md5\": must be one of auto, sha256, unsigned"
    );
    assert!(ok(&["--contentMD5"]).s3.content_md5);
    assert!(!ok(&["--contentMD5=false"]).s3.content_md5);
}

#[test]
fn ip_tos_is_checked_then_refused() {
    assert_eq!(
        not_supported(&["--ipTOS=lowdelay"]),
        "\"--ipTOS\" is not supported yet by this release (planned: IP type-of-service)"
    );
    not_supported(&["--ipTOS=0x10"]);
    assert_eq!(
        err(&["--ipTOS=300"]),
        "--ipTOS: invalid value \"300\": must be 0..255"
    );
    assert!(err(&["--ipTOS=fast"]).contains("lowdelay, throughput"));
}

// ---- Credentials (precedence in tests/credentials.rs) ----

#[test]
fn credential_flags() {
    let c = ok(&["--accessId=AKID", "--accessKey=SECRET"]);
    let creds = c.s3.credentials.expect("credentials");
    assert_eq!(creds.access_id, "AKID");
    assert_eq!(creds.access_key.expose(), "SECRET");
    assert_eq!(
        err(&["--accessKey=SECRET"]),
        "--accessKey requires --accessId"
    );
    assert_eq!(
        err(&["--accessId=A", "--accessKeyEnv=NOT_SET_HERE"]),
        "environment variable \"NOT_SET_HERE\" named by --accessKeyEnv is not set"
    );
    assert_eq!(err(&["--accessKeyEnv="]), "--accessKeyEnv: empty value");
    assert!(
        err(&["--accessFile=/nonexistent/passwd"])
            .starts_with("cannot read access file \"/nonexistent/passwd\"")
    );
    assert_eq!(
        ok(&["--accessId="]).s3.credentials,
        None,
        "an empty id means anonymous"
    );
}

#[test]
fn ec2_iam_is_not_supported_yet() {
    assert_eq!(
        not_supported(&["--accessEC2IAM=role"]),
        "\"--accessEC2IAM\" is not supported yet by this release (planned: EC2 IAM credentials)"
    );
    not_supported(&["--accessEC2IAM-IMDSv2"]);
    ok(&["--accessEC2IAM-IMDSv2=false"]);
    assert_eq!(err(&["--accessEC2IAM="]), "--accessEC2IAM: empty value");
}

// ---- Requests and retries ----

#[test]
fn timeout() {
    assert_eq!(ok(&[]).s3.timeout, Duration::from_secs(30));
    assert_eq!(ok(&["--timeout=5"]).s3.timeout, Duration::from_secs(5));
    assert_eq!(
        err(&["--timeout=0"]),
        "--timeout: invalid value \"0\": must be at least 1"
    );
    assert_eq!(
        err(&["--timeout=5s"]),
        "--timeout: invalid value \"5s\": expected an unsigned decimal integer"
    );
}

#[test]
fn retry_pauses() {
    let c = ok(&[]);
    assert_eq!(c.s3.initial_retry_pause, Duration::from_millis(200));
    assert_eq!(c.s3.max_retry_pause, Duration::from_millis(30_000));
    let c = ok(&["--initialRetryPause=50", "--maxRetryPause=1000"]);
    assert_eq!(c.s3.initial_retry_pause, Duration::from_millis(50));
    assert_eq!(c.s3.max_retry_pause, Duration::from_millis(1000));
    assert_eq!(
        err(&["--initialRetryPause=500", "--maxRetryPause=100"]),
        "--initialRetryPause (500 ms) must not be more than --maxRetryPause (100 ms)"
    );
    assert!(err(&["--initialRetryPause=0"]).contains("would retry forever"));
    let c = ok(&["--initialRetryPause=0", "--maxRetryPause=0"]);
    assert_eq!(c.s3.max_retry_pause, Duration::ZERO);
    assert!(err(&["--maxRetryPause=-1"]).contains("unsigned decimal"));
}

#[test]
fn speed_limits_are_bits_per_second() {
    let c = ok(&["--maxUploadSpeed=1m", "--maxDownloadSpeed=8000000"]);
    assert_eq!(c.s3.max_upload_speed, Some(1 << 20));
    assert_eq!(c.s3.max_download_speed, Some(8_000_000));
    assert_eq!(ok(&[]).s3.max_upload_speed, None);
    assert_eq!(
        err(&["--maxDownloadSpeed=7"]),
        "--maxDownloadSpeed=7 is too slow: less than one byte per second"
    );
    // 1 MiB blocks at 1 KiB/s take 1024 s, longer than the 30 s timeout.
    assert_eq!(
        err(&["--blockSize=1m", "--maxUploadSpeed=8k"]),
        "--maxUploadSpeed=8k is too slow: one 1m block takes 1024 s or more, which reaches the 30 s --timeout"
    );
    ok(&["--blockSize=1m", "--maxUploadSpeed=8k", "--timeout=2000"]);
    assert!(err(&["--maxUploadSpeed=fast"]).starts_with("--maxUploadSpeed: invalid size"));
}

#[test]
fn io_threads() {
    assert_eq!(ok(&[]).io_threads, 32);
    assert_eq!(ok(&["--ioThreads=4"]).io_threads, 4);
    assert_eq!(
        err(&["--ioThreads=0"]),
        "--ioThreads: invalid value \"0\": must be at least 1"
    );
    assert_eq!(err(&["--ioThreads=5000"]), "--ioThreads=5000: at most 1024");
}

// ---- Object options ----

#[test]
fn access_type() {
    assert_eq!(ok(&[]).s3.access_type, "private");
    assert_eq!(
        ok(&["--accessType=public-read"]).s3.access_type,
        "public-read"
    );
    assert_eq!(
        err(&["--accessType=public"]),
        "--accessType: invalid value \"public\": must be one of private, public-read, public-read-write, authenticated-read"
    );
}

#[test]
fn storage_class() {
    assert_eq!(ok(&[]).s3.storage_class, None);
    assert_eq!(
        ok(&["--storageClass=STANDARD_IA"])
            .s3
            .storage_class
            .as_deref(),
        Some("STANDARD_IA")
    );
    assert!(err(&["--storageClass=standard"]).contains("must be one of STANDARD, STANDARD_IA"));
    // s3backer 1.x's --rrs still works (config files written for Debian's 1.5.4 keep working).
    let c = ok(&["--rrs"]);
    assert_eq!(c.s3.storage_class.as_deref(), Some("REDUCED_REDUNDANCY"));
    assert!(
        c.warnings.iter().any(|w| w.contains("--rrs is deprecated")),
        "{:?}",
        c.warnings
    );
    let c = ok(&["--rrs", "--storageClass=STANDARD"]);
    assert_eq!(c.s3.storage_class.as_deref(), Some("STANDARD"));
}

#[test]
fn server_side_encryption() {
    let c = ok(&["--sse=AES256"]);
    assert_eq!(c.s3.sse.as_deref(), Some("AES256"));
    let c = ok(&["--sse=aws:kms", "--sse-key-id=key-1"]);
    assert_eq!(c.s3.sse_key_id.as_deref(), Some("key-1"));
    assert_eq!(
        err(&["--sse=aws:kms"]),
        "--sse=aws:kms requires --sse-key-id"
    );
    assert_eq!(
        err(&["--sse-key-id=key-1"]),
        "--sse-key-id is only used with --sse=aws:kms"
    );
    assert_eq!(
        err(&["--sse=AES256", "--sse-key-id=k"]),
        "--sse-key-id is only used with --sse=aws:kms"
    );
    assert!(err(&["--sse=aes256"]).contains("must be one of AES256, aws:kms"));
}

// ---- Modes ----

#[test]
fn read_only_and_force() {
    let c = ok(&["--readOnly", "--force"]);
    assert!(c.read_only && c.force);
    let c = ok(&[]);
    assert!(!c.read_only && !c.force);
}

#[test]
fn erase_and_reset_mounted_flag() {
    let erase = parse_with(&["mybucket", "--erase"], &no_env()).unwrap();
    assert_eq!(erase.mode, Mode::Erase);
    assert_eq!(erase.mount_point, None);
    let reset = parse_with(&["--reset-mounted-flag", "mybucket"], &no_env()).unwrap();
    assert_eq!(reset.mode, Mode::ResetMountedFlag);
    assert_eq!(ok(&[]).mode, Mode::Serve);
    assert_eq!(
        err(&["--erase"]),
        "no mount point should be specified with --erase"
    );
    assert_eq!(
        err(&["--reset-mounted-flag"]),
        "no mount point should be specified with --reset-mounted-flag"
    );
    assert_eq!(
        err_exact(&["mybucket", "--erase", "--reset-mounted-flag"]),
        "--erase and --reset-mounted-flag cannot be used together"
    );
}

#[test]
fn test_mode_uses_a_directory() {
    let dir = TempDir::new();
    let path = dir.path().display().to_string();
    let c = parse_with(
        &["--test", &path, "/mnt", "--size=1m", "--prefix=p-"],
        &no_env(),
    )
    .unwrap();
    assert!(c.test_mode);
    assert_eq!(c.bucket, path, "never split at '/'");
    assert_eq!(c.prefix, "p-");
    assert_eq!(c.s3.credentials, None);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);

    let missing = format!("{path}/missing");
    let e = parse_with(&["--test", &missing, "--size=1m"], &no_env()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io);
    assert!(
        e.to_string()
            .starts_with(&format!("test directory {missing:?}: ")),
        "{e}"
    );

    let file = dir.write("f", "");
    assert_eq!(
        err_exact(&["--test", &file, "--size=1m"]),
        format!("test directory {file:?} is not a directory")
    );
    assert_eq!(
        err_exact(&["--test", &path]),
        "--size is required with --test (nothing is auto-detected)"
    );
    // Relative paths are fine; "." always exists.
    assert_eq!(
        parse_with(&["--test", ".", "--size=1m"], &no_env())
            .unwrap()
            .bucket,
        "."
    );
}

#[test]
fn test_mode_switches() {
    let dir = TempDir::new();
    let path = dir.path().display().to_string();
    let c = parse_with(
        &[
            "--test",
            &path,
            "--size=1m",
            "--test-delays",
            "--test-discard",
            "--test-errors",
        ],
        &no_env(),
    )
    .unwrap();
    assert!(c.test_delays && c.test_discard);
    assert_eq!(c.warnings, ["--test-errors has no effect (as in s3backer)"]);
    let c = ok(&["--test-delays", "--readOnly"]);
    assert_eq!(c.warnings, ["--test-delays has no effect without --test"]);
}

#[test]
fn config_file_flag() {
    let dir = TempDir::new();
    let f = dir.write("c.conf", "--readOnly\n");
    let c = ok(&[&format!("--configFile={f}")]);
    assert!(c.read_only);
    assert!(c.explicit.contains("configFile"));
    assert_eq!(
        err(&["--configFile="]),
        "--configFile requires a non-empty file name"
    );
}

#[test]
fn shared_disk_mode_is_not_supported_yet() {
    assert_eq!(
        not_supported(&["--sharedDiskMode"]),
        "\"--sharedDiskMode\" is not supported yet by this release (planned: shared disk mode)"
    );
}

// ---- Logging ----

#[test]
fn logging_switches() {
    let c = ok(&["--debug", "--debug-http", "--quiet"]);
    assert!(c.debug && c.s3.debug_http && c.quiet);
    let c = ok(&[]);
    assert!(!c.debug && !c.s3.debug_http && !c.quiet);
    let c = ok(&["-d"]);
    assert!(c.debug && c.foreground);
}

// ---- FUSE mount ----

#[test]
fn fuse_only_flags_are_checked_and_inert() {
    let c = ok(&[
        "--filename=disk.img",
        "--statsFilename=",
        "--fileMode=0644",
        "--directIO",
    ]);
    assert_eq!(
        (
            c.fuse.filename.as_str(),
            c.fuse.stats_filename.as_str(),
            c.fuse.file_mode,
            c.fuse.direct_io
        ),
        ("disk.img", "", 0o644, true)
    );
    let d = ok(&[]).fuse;
    assert_eq!(
        (
            d.filename.as_str(),
            d.stats_filename.as_str(),
            d.file_mode,
            d.direct_io
        ),
        ("file", "stats", 0o600, false)
    );
    assert_eq!(ok(&["--readOnly"]).fuse.file_mode, 0o400);
    assert_eq!(
        err(&["--filename=a/b"]),
        "--filename: invalid file name \"a/b\": must be non-empty and contain no '/'"
    );
    assert!(err(&["--filename="]).contains("non-empty"));
    assert!(err(&["--statsFilename=x/y"]).contains("must not contain '/'"));
    assert!(err(&["--fileMode=644x"]).contains("octal"));
    assert!(err(&["--fileMode=0999"]).contains("octal"));
    let c = plugin(&[
        ("bucket", "mybucket"),
        ("filename", "x"),
        ("fileMode", "0600"),
        ("directIO", "true"),
    ]);
    assert!(c.is_ok(), "{c:?}");
}

// ---- Compression and encryption ----

#[test]
fn compression() {
    use crate::{CompressionAlgorithm::*, CompressionSettings};
    let c = |list: &[&str]| ok(list).codec.compression;
    assert_eq!(c(&[]), None);
    assert_eq!(
        c(&["--compress"]),
        Some(CompressionSettings {
            algorithm: Deflate,
            level: None
        })
    );
    assert_eq!(
        c(&["--compress=ZSTD"]),
        Some(CompressionSettings {
            algorithm: Zstd,
            level: None
        })
    );
    assert_eq!(
        c(&["-o", "compress=deflate"]),
        Some(CompressionSettings {
            algorithm: Deflate,
            level: None
        })
    );
    // The original's --compress=LEVEL is deflate at that level.
    assert_eq!(
        c(&["--compress=0"]),
        Some(CompressionSettings {
            algorithm: Deflate,
            level: Some(0)
        })
    );
    assert_eq!(
        c(&["--compress=zstd", "--compress-level=19"]),
        Some(CompressionSettings {
            algorithm: Zstd,
            level: Some(19)
        })
    );
    assert_eq!(
        c(&["--compress=deflate", "--compress-level=-1"]),
        Some(CompressionSettings {
            algorithm: Deflate,
            level: Some(-1)
        })
    );
    assert!(err(&["--compress=10"]).contains("a deflate level is -1 or 0..9"));
    assert!(err(&["--compress=lz4"]).contains("unknown compression algorithm"));
    assert!(err(&["--compress-level=3"]).contains("needs --compress=deflate or --compress=zstd"));
    assert!(err(&["--compress", "--compress-level=3"]).contains("not a bare --compress"));
    assert!(err(&["--compress=5", "--compress-level=3"]).contains("not --compress=5"));
    assert!(err(&["--compress=deflate", "--compress-level=10"]).contains("out of range"));
    assert!(err(&["--compress=zstd", "--compress-level=23"]).contains("out of range"));
    assert!(err(&["--compress-level=high"]).contains("decimal integer"));
    let c = ok(&["--compress=false", "--compress=no"]);
    assert!(!c.explicit.contains("compress"));
    assert_eq!(c.codec.compression, None);
    assert_eq!(
        ok(&["--defaultContentEncoding=deflate"])
            .codec
            .default_content_encoding
            .as_deref(),
        Some("deflate")
    );
}

#[test]
fn encryption() {
    let dir = TempDir::new();
    let pw = dir.write("pw", "s3cret\nsecond line ignored\n");
    let c = ok(&["--encrypt", &format!("--passwordFile={pw}")]);
    let e = c.codec.encryption.expect("encryption");
    assert_eq!(
        (e.cipher.as_str(), e.password.expose(), e.key_length),
        ("AES-128-CBC", "s3cret", None)
    );
    let c = ok(&["--encrypt=aes-256-cbc", "--password=x", "--keyLength=48"]);
    let e = c.codec.encryption.expect("encryption");
    assert_eq!((e.cipher.as_str(), e.key_length), ("AES-256-CBC", Some(48)));
    assert_eq!(
        ok(&["--encrypt", "--password=x", "--keyLength=0"])
            .codec
            .encryption
            .and_then(|e| e.key_length),
        None
    );
    assert!(err(&["--encrypt", "--password=x", "--keyLength=65"]).contains("at most 64"));
    assert!(
        err(&["--encrypt", "--password=x", &format!("--passwordFile={pw}")])
            .contains("cannot be used together")
    );
    assert!(err(&["--encrypt", "--password="]).contains("the password is empty"));
    assert!(
        err(&["--encrypt", "--passwordFile=/nonexistent/pw"])
            .contains("cannot read /nonexistent/pw")
    );
    let empty = dir.write("empty", "\nx\n");
    assert!(err(&["--encrypt", &format!("--passwordFile={empty}")]).contains("first line"));
    // No password and no terminal to ask on.
    assert!(
        err(&["--encrypt"]).contains(
            "encryption needs a password: give --passwordFile=FILE or --password=PASSWORD"
        )
    );
    assert_eq!(ok(&["--encrypt=false"]).codec.encryption, None);
    // The password never appears in Debug output.
    let c = ok(&["--encrypt", "--password=hunter2hunter2"]);
    assert!(!format!("{c:?}").contains("hunter2"));
    // --test stores raw blocks: codec flags are ignored, with a warning.
    let d = dir.path().display().to_string();
    let t = parse_with(
        &["--test", "--size=1m", "--compress", "--encrypt", &d, "/mnt"],
        &no_env(),
    )
    .unwrap();
    assert_eq!(t.codec, Default::default());
    assert!(
        t.warnings.iter().any(|w| w.contains("ignored with --test")),
        "{:?}",
        t.warnings
    );
}

#[test]
fn password_flags_without_encrypt_only_warn() {
    let c = ok(&[
        "--password=x",
        "--passwordFile=/nonexistent",
        "--keyLength=16",
        "--readOnly",
    ]);
    assert_eq!(
        c.warnings,
        [
            "--password has no effect without --encrypt",
            "--passwordFile has no effect without --encrypt",
            "--keyLength has no effect without --encrypt",
        ]
    );
    assert!(err(&["--keyLength=x"]).contains("unsigned decimal"));
}

// ---- Cache (not supported yet, except values that mean "no cache") ----

#[test]
fn block_cache_flags() {
    let c = ok(&[]).cache;
    assert_eq!(
        (
            c.size,
            c.threads,
            c.write_delay,
            c.timeout,
            c.max_dirty,
            c.sync,
            c.num_protected
        ),
        (1000, 20, Duration::from_millis(250), None, None, false, 0),
        "s3backer's defaults"
    );
    assert_eq!(
        (
            c.file,
            c.recover_dirty,
            c.no_verify,
            c.file_advise,
            c.local_flush
        ),
        (None, false, false, false, false)
    );
    assert_eq!(ok(&["--blockCacheSize=0"]).cache.size, 0);
    let c = ok(&[
        "--blockCacheSize=20000",
        "--blockCacheThreads=4",
        "--blockCacheWriteDelay=15000",
        "--blockCacheTimeout=60000",
        "--blockCacheMaxDirty=500",
        "--blockCacheNumProtected=1000",
        "--blockCacheFile=/var/cache/s3b",
        "--blockCacheRecoverDirtyBlocks",
        "--blockCacheNoVerify",
        "--blockCacheFileAdvise",
        "--blockCacheLocalFlush",
    ])
    .cache;
    assert_eq!(
        (c.size, c.threads, c.write_delay),
        (20000, 4, Duration::from_millis(15000))
    );
    assert_eq!(
        (c.timeout, c.max_dirty, c.num_protected),
        (Some(Duration::from_secs(60)), Some(500), 1000)
    );
    assert_eq!(
        c.file.as_deref(),
        Some(std::path::Path::new("/var/cache/s3b"))
    );
    assert!(c.recover_dirty && c.no_verify && c.file_advise && c.local_flush);
    // The original's rule: synchronous writes need a zero write delay, given explicitly.
    assert!(err(&["--blockCacheSync"]).contains("requires --blockCacheWriteDelay=0"));
    assert!(
        ok(&["--blockCacheSync", "--blockCacheWriteDelay=0"])
            .cache
            .sync
    );
    assert!(err(&["--blockCacheRecoverDirtyBlocks"]).contains("requires --blockCacheFile=FILE"));
    assert!(err(&["--blockCacheLocalFlush"]).contains("requires --blockCacheFile=FILE"));
    assert!(err(&["--blockCacheSize=0", "--blockCacheFile=/x"]).contains("needs a block cache"));
    assert!(err(&["--blockCacheThreads=0"]).contains("--blockCacheThreads"));
    assert!(err(&["--blockCacheSize=lots"]).contains("unsigned decimal"));
    let w = ok(&["--blockCacheSize=10", "--blockCacheNumProtected=20"]).warnings;
    assert!(
        w.iter().any(|w| w.contains("more than the cache holds")),
        "{w:?}"
    );
}

#[test]
fn read_ahead() {
    let c = ok(&[]).cache;
    assert_eq!(
        (c.read_ahead, c.read_ahead_trigger),
        (4, 2),
        "FUSE defaults"
    );
    let c = ok(&["--readAhead=0", "--readAheadTrigger=0"]).cache;
    assert_eq!((c.read_ahead, c.read_ahead_trigger), (0, 0));
    let c = plugin(&[("bucket", "mybucket")]).unwrap().cache;
    assert_eq!(
        (c.read_ahead, c.read_ahead_trigger),
        (0, 0),
        "nbdkit defaults"
    );
}

#[test]
fn md5_cache_zero_is_accepted() {
    let c = ok(&["--md5CacheSize=0", "--md5CacheTime=0", "--minWriteDelay=00"]);
    assert!(c.explicit.contains("md5CacheSize"));
    assert_eq!(
        not_supported(&["--md5CacheSize=10"]),
        "\"--md5CacheSize\" is not supported yet by this release (planned: MD5 cache)"
    );
    not_supported(&["--md5CacheTime=1000"]);
    not_supported(&["--minWriteDelay=500"]);
}

// ---- Survey and stats file ----

#[test]
fn list_blocks() {
    let c = ok(&[]);
    assert_eq!((c.survey.list_blocks, c.survey.threads), (false, 16));
    assert!(!ok(&["--listBlocks=false"]).survey.list_blocks);
    let c = ok(&["--listBlocks", "--listBlocksThreads=4"]);
    assert_eq!((c.survey.list_blocks, c.survey.threads), (true, 4));
    assert!(err(&["--listBlocksThreads=0"]).contains("--listBlocksThreads"));
}

#[test]
fn stats_file_mirror() {
    let c = ok(&[]);
    assert_eq!(c.stats.mirror, None);
    let c = ok(&[
        "--statsFileMirror=/run/s3b.stats",
        "--statsFileMirrorInterval=250",
    ]);
    assert_eq!(
        c.stats.mirror.as_deref(),
        Some(std::path::Path::new("/run/s3b.stats"))
    );
    assert_eq!(c.stats.mirror_interval, Duration::from_millis(250));
    assert!(err(&["--statsFileMirrorInterval=0"]).contains("--statsFileMirrorInterval"));
}

// ---- NBD device ----

/// `s3backer --nbd [list] mybucket /dev/nbd0`, which must parse.
fn nbd_ok(list: &[&str]) -> crate::NbdSettings {
    let mut full = vec!["--nbd"];
    full.extend_from_slice(list);
    full.extend(["mybucket", "/dev/nbd0"]);
    let c = parse_with(&full, &no_env()).unwrap_or_else(|e| panic!("{list:?}: {e}"));
    c.nbd.expect("nbd settings")
}

fn nbd_err(list: &[&str]) -> String {
    let mut full = vec!["--nbd"];
    full.extend_from_slice(list);
    full.extend(["mybucket", "/dev/nbd0"]);
    parse_with(&full, &no_env()).unwrap_err().to_string()
}

#[test]
fn nbd_wrapper() {
    let e = parse_command_line(&super::argv(&["--nbd", "mybucket", "/dev/nbd0"]), &no_env());
    let Ok(Invocation::Run(c)) = e else {
        panic!("{e:?}")
    };
    let nbd = c.nbd.expect("nbd settings");
    assert_eq!(
        (nbd.bucket_arg.as_str(), nbd.device.as_str()),
        ("mybucket", "/dev/nbd0")
    );
    assert_eq!(c.mount_point.as_deref(), Some("/dev/nbd0"));
    assert!(ok(&[]).nbd.is_none());
    // Wrapper-only flags without --nbd, and as plugin parameters.
    for flag in [
        "--nbd-flag=--verbose",
        "--nbd-param=x",
        "--nbd-plugin=p",
        "--nbd-connections=2",
    ] {
        let name = flag.split('=').next().unwrap_or_default();
        assert_eq!(err(&[flag]), format!("{flag} can only be used with --nbd"));
        let key = &name[2..];
        let e = plugin(&[("bucket", "mybucket"), (key, "1")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot be used with the nbdkit plugin"), "{e}");
    }
    assert_eq!(err(&["--nbd-flag="]), "--nbd-flag: empty value");
}

#[test]
fn nbd_flag_and_param_are_repeatable_and_kept_raw() {
    let n = nbd_ok(&[
        "--nbd-flag=--threads=32",
        "--nbd-param=--foo bar",
        "--nbd-flag=--filter=cow",
        "--nbd-param=x=y;z",
    ]);
    assert_eq!(n.nbdkit_flags, ["--threads=32", "--filter=cow"]);
    assert_eq!(n.nbdkit_params, ["--foo bar", "x=y;z"]);
    assert!(n.plugin_flags.is_empty(), "{:?}", n.plugin_flags);
}

#[test]
fn nbd_plugin() {
    assert_eq!(nbd_ok(&[]).plugin, "s3backer");
    assert_eq!(
        nbd_ok(&["--nbd-plugin=/opt/nbdkit-s3backer-plugin.so"]).plugin,
        "/opt/nbdkit-s3backer-plugin.so"
    );
    assert_eq!(
        nbd_err(&["--nbd-plugin=-x"]),
        "--nbd-plugin=-x: must not start with '-'"
    );
}

#[test]
fn nbd_connections() {
    assert_eq!(nbd_ok(&[]).connections, 4);
    assert_eq!(nbd_ok(&["--nbd-connections=1"]).connections, 1);
    assert_eq!(nbd_ok(&["--nbd-connections=64"]).connections, 64);
    assert_eq!(
        nbd_err(&["--nbd-connections=65"]),
        "--nbd-connections=65: at most 64"
    );
    assert!(nbd_err(&["--nbd-connections=0"]).contains("must be at least 1"));
}

#[test]
fn nbd_timeout() {
    assert_eq!(nbd_ok(&[]).timeout, Some(600));
    assert_eq!(nbd_ok(&["--nbd-timeout=30"]).timeout, Some(30));
    assert_eq!(nbd_ok(&["--nbd-timeout=0"]).timeout, None);
    assert!(nbd_err(&["--nbd-timeout=-1"]).starts_with("--nbd-timeout: invalid value"));
}

#[test]
fn nbd_sector_size() {
    assert_eq!(nbd_ok(&[]).sector_size, 4096);
    assert_eq!(nbd_ok(&["--nbd-sector-size=512"]).sector_size, 512);
    assert_eq!(
        nbd_err(&["--nbd-sector-size=8192"]),
        "--nbd-sector-size: invalid value \"8192\": must be one of 512, 1024, 2048, 4096"
    );
}

#[test]
fn nbd_max_request() {
    use crate::MaxRequest;
    assert_eq!(nbd_ok(&[]).max_request, MaxRequest::BlockSize);
    assert_eq!(
        nbd_ok(&["--nbd-max-request=0"]).max_request,
        MaxRequest::Kernel
    );
    assert_eq!(
        nbd_ok(&["--nbd-max-request=1m"]).max_request,
        MaxRequest::Bytes(1 << 20)
    );
    for bad in ["1k", "6000", "4g"] {
        assert!(
            nbd_err(&[&format!("--nbd-max-request={bad}")]).contains("must be a multiple of 1k"),
            "{bad}"
        );
    }
    assert!(nbd_err(&["--nbd-max-request=x"]).contains("invalid size"));
}

#[test]
fn secrets_in_files_open_to_others_and_insecure_tls_warn() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new();
    let pw = dir.write("pw", "s3cret\n");
    let keys = dir.write("keys", "AKID:SECRET\n");
    let set_mode = |p: &str, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod")
    };
    let exposed = |c: &crate::Config, what: &str| {
        c.warnings
            .iter()
            .any(|w| w.contains(what) && w.contains("accessible by other users"))
    };
    let args_pw = ["--encrypt".to_string(), format!("--passwordFile={pw}")];
    let args_pw: Vec<&str> = args_pw.iter().map(String::as_str).collect();
    let args_keys = format!("--accessFile={keys}");

    set_mode(&pw, 0o644);
    let c = ok(&args_pw);
    assert!(exposed(&c, "password file"), "{:?}", c.warnings);
    assert!(c.warnings.iter().all(|w| !w.contains("s3cret")));
    set_mode(&pw, 0o600);
    assert!(!exposed(&ok(&args_pw), "password file"));

    set_mode(&keys, 0o640);
    let c = ok(&[&args_keys]);
    assert!(exposed(&c, "access file"), "{:?}", c.warnings);
    assert!(c.warnings.iter().all(|w| !w.contains("SECRET")));
    set_mode(&keys, 0o400);
    assert!(!exposed(&ok(&[&args_keys]), "access file"));

    let c = ok(&["--accessId=", "--insecure"]);
    assert!(
        c.warnings
            .iter()
            .any(|w| w.starts_with("--insecure:") && w.contains("NOT verified")),
        "{:?}",
        c.warnings
    );
    assert!(ok(&["--accessId="]).warnings.is_empty());
}
