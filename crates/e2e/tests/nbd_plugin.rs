//! The plugin through real nbdkit and real NBD clients (libnbd/nbdsh, qemu-io, nbdinfo, nbdcopy)
//! against a real Garage server.

use s3backer_e2e::*;
use std::process::Command;

const BS: usize = 64 << 10;

fn params(bucket: &str, extra: &[&str]) -> Vec<String> {
    let mut p = Garage::shared().params();
    p.push(format!("bucket={bucket}"));
    p.extend(extra.iter().map(|s| s.to_string()));
    p
}

fn random_io(uri: &str, size: usize, ops: u32, model: &std::path::Path) -> Vec<u32> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/random_io.py");
    let out = run_ok(
        Command::new("/usr/bin/python3")
            .env("PATH", system_path())
            .env("S3B_BLOCK_SIZE", BS.to_string())
            .arg(script)
            .args([
                uri,
                &size.to_string(),
                &random_u64().to_string(),
                &ops.to_string(),
            ])
            .arg(model),
    );
    let line = out.lines().last().unwrap_or_default();
    let list = line
        .split('[')
        .nth(1)
        .and_then(|s| s.split(']').next())
        .unwrap_or_default();
    list.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().expect("block number"))
        .collect()
}

fn block_keys(bucket: &str, prefix: &str) -> Vec<String> {
    Garage::shared().data_keys(bucket, prefix)
}

#[test]
fn unaligned_random_io_round_trips_and_survives_restart() {
    let g = Garage::shared();
    let bucket = g.new_bucket("rio");
    let size = 32 * BS;
    let dir = TempDir::new("rio");
    let model_path = dir.join("model");
    let nbd = Nbdkit::start(&params(&bucket, &["size=2m", "blockSize=64k"])).expect("start");
    let nonzero = random_io(&nbd.uri(), size, 400, &model_path);
    let (status, log) = nbd.stop();
    assert!(status.success(), "{log}");
    assert!(log.contains("established new mount token"), "{log}");
    let model = std::fs::read(&model_path).expect("model");

    // Exactly the non-zero blocks are objects, named %08x.
    let expected: Vec<String> = nonzero.iter().map(|b| format!("{b:08x}")).collect();
    assert_eq!(block_keys(&bucket, ""), expected);
    assert!(
        g.keys(&bucket, "s3backer-mounted").is_empty(),
        "token cleared on clean shutdown"
    );

    // Restart without size or block size: auto-detected from block 0 (the script leaves it
    // non-zero).
    let nbd = Nbdkit::start(&params(&bucket, &[])).expect("restart");
    assert!(
        nbd.stderr()
            .contains("auto-detected block size=64k and total size=2m"),
        "{}",
        nbd.stderr()
    );
    assert!(
        nbd_image(&nbd.uri()) == model,
        "image after restart differs from the model"
    );
}

#[test]
fn trim_and_write_zeroes_delete_objects() {
    let g = Garage::shared();
    let bucket = g.new_bucket("trim");
    let nbd = Nbdkit::start(&params(&bucket, &["size=512k", "blockSize=64k"])).expect("start");
    let io = |cmd: &str| qemu_io(&nbd.uri(), &[cmd]);
    io("write -P 0xab 0 512k");
    assert_eq!(block_keys(&bucket, "").len(), 8);
    io("discard 64k 128k");
    io("write -z 256k 64k");
    // A partial zero leaves the block (now partly zero) in place.
    io("write -z 400k 1k");
    let keys = block_keys(&bucket, "");
    assert_eq!(
        keys,
        ["00000000", "00000003", "00000005", "00000006", "00000007"]
    );
    io("read -P 0 64k 128k");
    io("read -P 0 256k 64k");
    io("read -P 0 400k 1k");
    io("read -P 0xab 0 64k");
    io("read -P 0xab 401k 111k");
    // Zeroing an unaligned range that covers a whole block deletes that one too.
    io("write -z 190k 140k");
    assert_eq!(
        block_keys(&bucket, ""),
        ["00000000", "00000005", "00000006", "00000007"]
    );
    io("read -P 0 190k 140k");
    io("read -P 0xab 330k 10k");
}

#[test]
fn nbdinfo_shows_size_hints_and_capabilities() {
    let g = Garage::shared();
    let bucket = g.new_bucket("info");
    let nbd = Nbdkit::start(&params(&bucket, &["size=1g", "blockSize=256k"])).expect("start");
    let json = nbdinfo_json(&nbd.uri());
    for want in [
        "\"export-size\":1073741824",
        "\"block_size_minimum\":1",
        "\"block_size_preferred\":262144",
        "\"can_multi_conn\":true",
        "\"can_fua\":true",
        "\"can_trim\":true",
        "\"can_zero\":true",
        "\"can_flush\":true",
        "\"is_read_only\":false",
    ] {
        assert!(json.contains(want), "{want} not in {json}");
    }
}

#[test]
fn nbdcopy_with_several_connections_round_trips() {
    let g = Garage::shared();
    let bucket = g.new_bucket("copy");
    let nbd = Nbdkit::start(&params(&bucket, &["size=16m", "blockSize=256k"])).expect("start");
    let dir = TempDir::new("copy");
    let src = dir.join("src.img");
    let data = random_bytes(16 << 20);
    std::fs::write(&src, &data).expect("write src");
    run_ok(
        Command::new("nbdcopy")
            .env("PATH", system_path())
            .args(["--connections=4", "--requests=16", "--flush"])
            .arg(&src)
            .arg(nbd.uri()),
    );
    // Flushed: everything is in the bucket.
    assert_eq!(block_keys(&bucket, "").len(), 64);
    assert!(nbd_image(&nbd.uri()) == data, "copy out differs");
}

#[test]
fn mount_token_guards_the_bucket() {
    let g = Garage::shared();
    let bucket = g.new_bucket("token");
    let p = params(&bucket, &["size=1m", "blockSize=64k"]);
    let first = Nbdkit::start(&p).expect("first");
    assert_eq!(g.keys(&bucket, ""), ["s3backer-mounted"]);
    let err = Nbdkit::start(&p).err().expect("second mount refused");
    assert!(err.contains("appears to be already mounted"), "{err}");
    assert!(err.contains("--reset-mounted-flag"), "{err}");

    // A crash leaves the token; restart is refused until it is reset or forced.
    first.kill9();
    assert!(Nbdkit::start(&p).is_err());
    let forced = Nbdkit::start(&params(
        &bucket,
        &["size=1m", "blockSize=64k", "force=true"],
    ))
    .expect("forced");
    assert!(
        forced.stderr().contains("continuing because of --force"),
        "{}",
        forced.stderr()
    );
    let (status, _) = forced.stop();
    assert!(status.success());
    assert!(
        !g.has_token(&bucket, ""),
        "forced mount cleared its own token"
    );

    let crashed = Nbdkit::start(&p).expect("mount");
    crashed.kill9();
    let mut cmd = Command::new(s3backer_bin());
    cmd.arg("--reset-mounted-flag")
        .args(g.flags())
        .arg("--size=1m")
        .arg("--blockSize=64k")
        .arg(&bucket);
    run_ok(&mut cmd);
    assert!(!g.has_token(&bucket, ""), "token reset");
    Nbdkit::start(&p).expect("mountable again");
}

#[test]
fn read_only_writes_nothing() {
    let g = Garage::shared();
    let bucket = g.new_bucket("ro");
    let nbd = Nbdkit::start(&params(
        &bucket,
        &["size=1m", "blockSize=64k", "readOnly=true"],
    ))
    .expect("start");
    let json = nbdinfo_json(&nbd.uri());
    assert!(json.contains("\"is_read_only\":true"), "{json}");
    let out = run(Command::new("qemu-io")
        .args(["-f", "raw", "-c", "write -P 1 0 4k"])
        .arg(nbd.uri()));
    assert!(!out.status.success() || String::from_utf8_lossy(&out.stdout).contains("failed"));
    drop(nbd);
    assert!(
        g.keys(&bucket, "").is_empty(),
        "read-only mount wrote {:?}",
        g.keys(&bucket, "")
    );
}

#[test]
fn subdir_prefix_and_hashed_names() {
    let g = Garage::shared();
    let bucket = g.new_bucket("names");
    let nbd = Nbdkit::start(&params(
        &format!("{bucket}/vol/one"),
        &["size=256k", "blockSize=64k"],
    ))
    .expect("subdir");
    qemu_io(&nbd.uri(), &["write -P 7 64k 64k"]);
    drop(nbd);
    let nbd = Nbdkit::start(&params(
        &bucket,
        &[
            "size=256k",
            "blockSize=64k",
            "prefix=h-",
            "blockHashPrefix=true",
        ],
    ))
    .expect("hashed");
    qemu_io(&nbd.uri(), &["write -P 7 0 128k"]);
    drop(nbd);
    assert_eq!(
        g.data_keys(&bucket, ""),
        [
            "h-c448b72c-00000000",
            "h-d211cad9-00000001",
            "vol/one/00000001"
        ]
    );
}

#[test]
fn corrupt_object_is_an_io_error_not_data() {
    let g = Garage::shared();
    let bucket = g.new_bucket("corrupt");
    let nbd = Nbdkit::start(&params(&bucket, &["size=256k", "blockSize=64k"])).expect("start");
    qemu_io(&nbd.uri(), &["write -P 3 0 256k"]);
    drop(nbd);
    // Another writer replaces block 2 with a short object; a fresh start (empty cache) reads it.
    let client = g.client(&bucket);
    let req = s3backer_s3client::PutRequest::default();
    client.put_object("00000002", b"short", &req).expect("put");
    let nbd = Nbdkit::start(&params(&bucket, &[])).expect("restart");
    let script = r#"
import nbd, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
try:
    h.pread(4096, 2 * 65536)
    print("read succeeded")
except nbd.Error as e:
    print("errno", e.errno)
assert h.pread(4096, 0) == b"\x03" * 4096
"#;
    let out = nbd_python(script, &[&nbd.uri()]);
    assert_eq!(out.trim(), "errno EIO", "{out}");
    let log = nbd.stderr();
    assert!(
        log.contains("object 00000002: block data is 5 bytes, expected 65536"),
        "{log}"
    );
}

#[test]
fn directory_backend_stores_raw_blocks() {
    let dir = TempDir::new("testmode");
    let p = vec![
        format!("bucket={}", dir.path().display()),
        "test=true".into(),
        "size=256k".into(),
        "blockSize=64k".into(),
    ];
    let nbd = Nbdkit::start(&p).expect("start");
    qemu_io(&nbd.uri(), &["write -P 9 64k 64k", "flush"]);
    let err = Nbdkit::start(&p).err().expect("second server refused");
    assert!(err.contains("in use by another s3backer"), "{err}");
    let block = std::fs::read(dir.join("00000001")).expect("block file");
    assert_eq!(block, vec![9u8; 64 << 10]);
    assert!(!dir.join("00000000").exists(), "zero block has no file");
}

#[test]
fn flags_that_disagree_with_the_bucket_need_force() {
    let g = Garage::shared();
    let bucket = g.new_bucket("detect");
    let nbd = Nbdkit::start(&params(&bucket, &["size=1m", "blockSize=64k"])).expect("start");
    qemu_io(&nbd.uri(), &["write -P 1 0 4k"]);
    drop(nbd);
    let err = Nbdkit::start(&params(&bucket, &["blockSize=4k"]))
        .err()
        .expect("block size mismatch");
    assert!(
        err.contains("configured block size 4k does not match the block size 64k recorded in the bucket (use --force"),
        "{err}"
    );
    let err = Nbdkit::start(&params(&bucket, &["size=2m"]))
        .err()
        .expect("size mismatch");
    assert!(
        err.contains("configured size 2m does not match the size 1m"),
        "{err}"
    );
    let nbd = Nbdkit::start(&params(&bucket, &["size=2m", "force=true"])).expect("forced");
    assert!(
        nbd.stderr().contains("using 2m because of --force"),
        "{}",
        nbd.stderr()
    );
    let json = nbdinfo_json(&nbd.uri());
    assert!(json.contains("\"export-size\":2097152"), "{json}");
}

#[test]
fn config_file_and_s3b_prefixed_parameters() {
    let g = Garage::shared();
    let bucket = g.new_bucket("conf");
    let dir = TempDir::new("conf");
    let conf = dir.join("s3backer.conf");
    let mut text = String::from("# options for either FUSE or NBD mode\n\n");
    for f in g.flags() {
        text.push_str(&format!("  {f}\n"));
    }
    text.push_str("--blockSize=64k\n# the prefix, as an -o option\n-o prefix=cf-\n");
    std::fs::write(&conf, text).expect("conf");
    let p = vec![
        format!("bucket={bucket}"),
        format!("configFile={}", conf.display()),
        "s3b_size=256k".into(),
    ];
    let nbd = Nbdkit::start(&p).expect("start");
    qemu_io(&nbd.uri(), &["write -P 2 64k 64k"]);
    drop(nbd);
    assert_eq!(g.keys(&bucket, ""), ["cf-00000001", "cf-s3backer-zeromap"]);
}
