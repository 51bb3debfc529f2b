//! Compression and encryption on a real Garage bucket: byte-compatible with Debian's s3backer
//! 1.5.4 in both directions, and every kind of damage to an encoded object is an I/O error,
//! never wrong data.

use s3backer_e2e::*;
use s3backer_s3client::{GetOutcome, GetRequest, PutRequest};

const SIZE: usize = 2 << 20;
const PASSWORD: &str = "correct horse battery staple";

/// One encoding setup, as both programs spell it.
struct Setup {
    name: &'static str,
    block_size: &'static str,
    ours: &'static [&'static str],
    theirs: &'static [&'static str],
    /// Content-Encoding every stored block must carry.
    encoding: &'static str,
}

const SETUPS: [Setup; 5] = [
    Setup {
        name: "deflate",
        block_size: "4k",
        ours: &["compress=true"],
        theirs: &["--compress"],
        encoding: "deflate",
    },
    Setup {
        name: "aes128",
        block_size: "64k",
        ours: &["encrypt=true"],
        theirs: &["--encrypt"],
        encoding: "deflate, encrypt-AES-128-CBC",
    },
    Setup {
        name: "aes256+deflate9",
        block_size: "16k",
        ours: &[
            "encrypt=AES-256-CBC",
            "compress=deflate",
            "compress-level=9",
        ],
        theirs: &["--encrypt=AES-256-CBC", "--compress=9"],
        encoding: "deflate, encrypt-AES-256-CBC",
    },
    Setup {
        name: "aes128+prefix",
        block_size: "4k",
        ours: &["encrypt=true", "prefix=enc/"],
        theirs: &["--encrypt", "--prefix=enc/"],
        encoding: "deflate, encrypt-AES-128-CBC",
    },
    Setup {
        name: "aes128+hash",
        block_size: "4k",
        ours: &["encrypt=true", "blockHashPrefix=true"],
        theirs: &["--encrypt", "--blockHashPrefix"],
        encoding: "deflate, encrypt-AES-128-CBC",
    },
];

fn needs_password(setup: &Setup) -> bool {
    setup.ours.iter().any(|o| o.starts_with("encrypt"))
}

fn ours(bucket: &str, setup: &Setup, password: &str) -> Vec<String> {
    let mut p = Garage::shared().params();
    p.extend([
        format!("bucket={bucket}"),
        format!("blockSize={}", setup.block_size),
        format!("size={}", SIZE),
    ]);
    p.extend(setup.ours.iter().map(|s| s.to_string()));
    if needs_password(setup) {
        p.push(format!("password={password}"));
    }
    p
}

fn theirs(setup: &Setup) -> Vec<String> {
    let mut f = Garage::shared().flags();
    f.extend([
        format!("--blockSize={}", setup.block_size),
        format!("--size={}", SIZE),
    ]);
    f.extend(setup.theirs.iter().map(|s| s.to_string()));
    if needs_password(setup) {
        f.push(format!("--password={PASSWORD}"));
    }
    f
}

/// Half random, half compressible text, with an all-zero stretch (no objects there).
fn disk_image() -> Vec<u8> {
    let mut data = random_bytes(SIZE);
    let text = b"s3backer stores each block of the disk as one object. ";
    for (i, b) in data[SIZE / 2..].iter_mut().enumerate() {
        *b = text[i % text.len()];
    }
    data[0x40000..0x60000].fill(0);
    data
}

fn check_encodings(bucket: &str, setup: &Setup) {
    let g = Garage::shared();
    let client = g.client(bucket);
    let keys: Vec<String> = g
        .keys(bucket, "")
        .into_iter()
        .filter(|k| !k.ends_with("s3backer-mounted"))
        .collect();
    assert!(!keys.is_empty());
    for key in keys.iter().step_by(7) {
        match client.get_object(key, &GetRequest::default()).expect("get") {
            GetOutcome::Found(o) => {
                assert_eq!(
                    o.content_encoding.as_deref(),
                    Some(setup.encoding),
                    "{} {key}",
                    setup.name
                );
                let hmac = o
                    .meta
                    .iter()
                    .find(|(k, _)| k == "s3backer-hmac")
                    .map(|(_, v)| v.clone());
                assert_eq!(
                    hmac.is_some(),
                    needs_password(setup),
                    "{} {key}: {hmac:?}",
                    setup.name
                );
            }
            other => panic!("{key}: {other:?}"),
        }
    }
}

#[test]
fn original_writes_and_ours_reads() {
    let g = Garage::shared();
    for setup in &SETUPS {
        let bucket = g.new_bucket("c-o2r");
        let data = disk_image();
        let orig = Original::mount(&theirs(setup), &bucket).expect("original mounts");
        std::fs::write(orig.file(), &data).expect("write through the original");
        orig.unmount();
        check_encodings(&bucket, setup);
        let nbd = Nbdkit::start(&ours(&bucket, setup, PASSWORD)).expect("ours mounts");
        assert!(
            nbd_image(&nbd.uri()) == data,
            "{}: our read of the original's blocks differs",
            setup.name
        );
    }
}

#[test]
fn ours_writes_and_original_reads() {
    let g = Garage::shared();
    for setup in &SETUPS {
        let bucket = g.new_bucket("c-r2o");
        let data = disk_image();
        let nbd = Nbdkit::start(&ours(&bucket, setup, PASSWORD)).expect("ours mounts");
        nbd_write_image(&nbd.uri(), &data);
        let (status, log) = nbd.stop();
        assert!(status.success(), "{log}");
        check_encodings(&bucket, setup);
        let orig = Original::mount(&theirs(setup), &bucket).expect("original mounts");
        let got = std::fs::read(orig.file()).expect("read through the original");
        orig.unmount();
        assert!(
            got == data,
            "{}: the original's read of our blocks differs",
            setup.name
        );
    }
}

/// Rewrites one stored object through `change(body, meta)`, keeping its Content-Encoding.
fn tamper(bucket: &str, key: &str, change: impl FnOnce(&mut Vec<u8>, &mut Vec<(String, String)>)) {
    let client = Garage::shared().client(bucket);
    let GetOutcome::Found(mut o) = client.get_object(key, &GetRequest::default()).expect("get")
    else {
        panic!("{key} missing");
    };
    change(&mut o.body, &mut o.meta);
    let req = PutRequest {
        content_type: Some("application/x-s3backer-block".into()),
        content_encoding: o.content_encoding.clone(),
        meta: o.meta.clone(),
        crc32: None,
    };
    client.put_object(key, &o.body, &req).expect("put");
}

/// Reads 4 KiB at `offset` through libnbd: the errno name, or "ok" with the data's first byte.
fn read_result(uri: &str, offset: u64) -> String {
    let script = r#"
import nbd, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
try:
    d = h.pread(4096, int(sys.argv[2]))
    print("ok", d[0])
except nbd.Error as e:
    print(e.errno)
"#;
    nbd_python(script, &[uri, &offset.to_string()])
        .trim()
        .to_string()
}

#[test]
fn damaged_objects_are_io_errors_not_data() {
    let g = Garage::shared();
    let setup = &SETUPS[1];
    let bucket = g.new_bucket("c-bad");
    let nbd = Nbdkit::start(&ours(&bucket, setup, PASSWORD)).expect("ours mounts");
    qemu_io(&nbd.uri(), &["write -P 0x5c 0 512k"]);
    drop(nbd);

    tamper(&bucket, "00000001", |body, _| body[17] ^= 0x01);
    tamper(&bucket, "00000002", |_, meta| {
        meta.retain(|(k, _)| k != "s3backer-hmac")
    });
    tamper(&bucket, "00000003", |body, _| {
        body.truncate(body.len() - 16)
    });
    tamper(&bucket, "00000004", |body, _| body.truncate(5));

    let nbd = Nbdkit::start(&ours(&bucket, setup, PASSWORD)).expect("ours mounts");
    assert_eq!(read_result(&nbd.uri(), 0), "ok 92", "an intact block reads");
    for block in 1..=4u64 {
        assert_eq!(
            read_result(&nbd.uri(), block * 65536),
            "EIO",
            "block {block}"
        );
    }
    assert_eq!(read_result(&nbd.uri(), 5 * 65536), "ok 92");
    let log = nbd.stderr();
    assert!(log.contains("HMAC does not verify"), "{log}");
    assert!(
        log.to_lowercase().contains("hmac") && log.contains("00000002"),
        "{log}"
    );
    assert!(!log.contains(PASSWORD), "the password must never be logged");
}

#[test]
fn wrong_or_missing_password_is_refused_before_anything_is_written() {
    let g = Garage::shared();
    let setup = &SETUPS[1];
    let bucket = g.new_bucket("c-pw");
    let nbd = Nbdkit::start(&ours(&bucket, setup, PASSWORD)).expect("ours mounts");
    qemu_io(&nbd.uri(), &["write -P 0x77 0 256k"]);
    drop(nbd);
    let before = g.keys(&bucket, "");

    let err = Nbdkit::start(&ours(&bucket, setup, "not the password"))
        .err()
        .expect("wrong password refused");
    assert!(err.contains("wrong password"), "{err}");
    assert!(
        !err.contains("not the password"),
        "the password must never be shown: {err}"
    );

    let mut plain = g.params();
    plain.extend([format!("bucket={bucket}")]);
    let err = Nbdkit::start(&plain)
        .err()
        .expect("encrypted disk without --encrypt refused");
    assert!(
        err.contains("encrypted") && err.contains("encrypt"),
        "{err}"
    );

    let mut alias = ours(&bucket, setup, PASSWORD);
    alias.retain(|p| !p.starts_with("encrypt"));
    alias.push("encrypt=AES128".into());
    let err = Nbdkit::start(&alias).err().expect("cipher alias refused");
    assert!(err.contains("AES-128-CBC"), "{err}");

    assert_eq!(
        g.keys(&bucket, ""),
        before,
        "a refused start wrote to the bucket"
    );
}
