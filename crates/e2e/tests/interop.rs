//! Interoperability with the original: Debian's s3backer 1.5.4 (FUSE mode) and our plugin share
//! a Garage bucket. Each reads what the other wrote, byte for byte, and each refuses a bucket
//! the other holds. Covers `--prefix`, `bucket/subdir` (1.5.4 gets the equivalent `--prefix`),
//! `--blockHashPrefix`, and two block sizes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use s3backer_e2e::garage::{KEY_ID, REGION, SECRET};
use s3backer_e2e::*;
use std::io::{Read, Seek, SeekFrom, Write};

const SIZE: usize = 4 << 20;

/// One layout of the disk in the bucket, as both programs spell it.
struct Layout {
    block_size: &'static str,
    /// Suffix of our `bucket=` parameter (`/sub/dir` or empty).
    our_subdir: &'static str,
    /// Our extra parameters.
    ours: &'static [&'static str],
    /// The original's extra flags.
    theirs: &'static [&'static str],
}

const LAYOUTS: [Layout; 4] = [
    Layout {
        block_size: "4k",
        our_subdir: "",
        ours: &[],
        theirs: &[],
    },
    Layout {
        block_size: "64k",
        our_subdir: "",
        ours: &["prefix=pfx-"],
        theirs: &["--prefix=pfx-"],
    },
    Layout {
        block_size: "64k",
        our_subdir: "/sub/dir",
        ours: &[],
        theirs: &["--prefix=sub/dir/"],
    },
    Layout {
        block_size: "4k",
        our_subdir: "",
        ours: &["blockHashPrefix=true"],
        theirs: &["--blockHashPrefix"],
    },
];

/// Random data with some all-zero blocks (stored as no object by both).
fn disk_image() -> Vec<u8> {
    let mut data = random_bytes(SIZE);
    for hole in [0x1000..0x3000, 0x20000..0x40000, (SIZE - 0x10000)..SIZE] {
        data[hole].fill(0);
    }
    data
}

fn ours(bucket: &str, layout: &Layout) -> Vec<String> {
    let mut p = Garage::shared().params();
    p.push(format!("bucket={bucket}{}", layout.our_subdir));
    p.push(format!("blockSize={}", layout.block_size));
    p.push("size=4m".into());
    p.extend(layout.ours.iter().map(|s| s.to_string()));
    p
}

fn theirs(layout: &Layout) -> Vec<String> {
    let mut f = Garage::shared().flags();
    f.push(format!("--blockSize={}", layout.block_size));
    f.push("--size=4m".into());
    f.extend(layout.theirs.iter().map(|s| s.to_string()));
    f
}

#[test]
fn original_writes_and_ours_reads() {
    let g = Garage::shared();
    for layout in &LAYOUTS {
        let bucket = g.new_bucket("o2r");
        let data = disk_image();
        let orig = Original::mount(&theirs(layout), &bucket).expect("original mounts");
        {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .open(orig.file())
                .expect("open file");
            f.write_all(&data).expect("write");
            f.sync_all().expect("fsync");
        }
        orig.unmount();
        let nbd = Nbdkit::start(&ours(&bucket, layout)).expect("ours mounts");
        assert!(
            nbd_image(&nbd.uri()) == data,
            "layout {} {:?}: our read differs",
            layout.block_size,
            layout.ours
        );
    }
}

#[test]
fn ours_writes_and_original_reads() {
    let g = Garage::shared();
    for layout in &LAYOUTS {
        let bucket = g.new_bucket("r2o");
        let data = disk_image();
        let nbd = Nbdkit::start(&ours(&bucket, layout)).expect("ours mounts");
        nbd_write_image(&nbd.uri(), &data);
        let (status, log) = nbd.stop();
        assert!(status.success(), "{log}");
        let orig = Original::mount(&theirs(layout), &bucket).expect("original mounts");
        let mut got = Vec::new();
        std::fs::File::open(orig.file())
            .expect("open")
            .read_to_end(&mut got)
            .expect("read");
        orig.unmount();
        assert!(
            got == data,
            "layout {} {:?}: original's read differs",
            layout.block_size,
            layout.theirs
        );
    }
}

#[test]
fn each_refuses_a_bucket_the_other_holds() {
    let g = Garage::shared();
    let layout = &LAYOUTS[1];
    let bucket = g.new_bucket("excl");

    let nbd = Nbdkit::start(&ours(&bucket, layout)).expect("ours mounts");
    let err = Original::mount(&theirs(layout), &bucket)
        .err()
        .expect("original must refuse");
    assert!(err.contains("already mounted"), "{err}");
    drop(nbd);

    let orig = Original::mount(&theirs(layout), &bucket).expect("original mounts");
    let err = Nbdkit::start(&ours(&bucket, layout))
        .err()
        .expect("ours must refuse");
    assert!(err.contains("appears to be already mounted"), "{err}");
    // Partial writes through the original's file land in our format too.
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(orig.file())
            .expect("open");
        f.seek(SeekFrom::Start(70_000)).expect("seek");
        f.write_all(b"hello from 1.5.4").expect("write");
    }
    orig.unmount();
    let nbd = Nbdkit::start(&ours(&bucket, layout)).expect("ours mounts after unmount");
    let image = nbd_image(&nbd.uri());
    assert_eq!(&image[70_000..70_016], b"hello from 1.5.4");
}

/// Runs curl with SigV4 against the shared Garage: `(HTTP status, response headers, body)`.
fn curl_sigv4(args: &[&str], url: &str) -> (u16, String, Vec<u8>) {
    let dir = TempDir::new("curl");
    let (head, body) = (dir.join("head"), dir.join("body"));
    let user = format!("{KEY_ID}:{SECRET}");
    let sigv4 = format!("aws:amz:{REGION}:s3");
    let out = std::process::Command::new("curl")
        .args(["-sS", "--aws-sigv4", &sigv4, "--user", &user])
        .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", "-D"])
        .arg(&head)
        .arg("-o")
        .arg(&body)
        .args(["-w", "%{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("status");
    (
        status,
        std::fs::read_to_string(&head).unwrap_or_default(),
        std::fs::read(&body).unwrap_or_default(),
    )
}

fn header_value(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}

/// Our PUTs carry `x-amz-checksum-crc32` (one cheap checksum instead of `Content-MD5`): the
/// server keeps it and hands it back with `x-amz-checksum-mode`, which is what our reads check
/// bodies against; and the server refuses a body whose CRC does not match.
#[test]
fn the_server_stores_and_checks_our_crc32() {
    let g = Garage::shared();
    let bucket = g.new_bucket("crc");
    let nbd = Nbdkit::start(&ours(&bucket, &LAYOUTS[0])).expect("ours mounts");
    nbd_write_image(&nbd.uri(), &disk_image());
    let (status, log) = nbd.stop();
    assert!(status.success(), "{log}");
    // Garage returned our CRC on the first PUT, so the blocks went out unsigned (plain HTTP,
    // `--payloadHash=auto`) and arrived intact (checked below).
    assert!(log.contains("the server checks CRC-32 checksums"), "{log}");
    let keys = g.data_keys(&bucket, "");
    assert!(keys.len() > 100, "{} blocks stored", keys.len());
    let url = format!("{}{bucket}/{}", g.endpoint, keys[7]);

    let (code, head, body) = curl_sigv4(&["-H", "x-amz-checksum-mode: ENABLED"], &url);
    assert_eq!(code, 200, "{head}{}", String::from_utf8_lossy(&body));
    let crc = crc32fast::hash(&body).to_be_bytes();
    let expected = BASE64.encode(crc);
    assert_eq!(
        header_value(&head, "x-amz-checksum-crc32").as_deref(),
        Some(expected.as_str()),
        "{head}"
    );

    // A PUT whose CRC does not match its body is refused and changes nothing.
    let dir = TempDir::new("crc-put");
    let file = dir.join("body");
    let mut damaged = body.clone();
    damaged[0] ^= 1;
    std::fs::write(&file, &damaged).expect("write body");
    let data = format!("@{}", file.display());
    let crc_header = format!("x-amz-checksum-crc32: {expected}");
    let (code, head, reply) = curl_sigv4(
        &["-X", "PUT", "--data-binary", &data, "-H", &crc_header],
        &url,
    );
    assert_eq!(code, 400, "{head}{}", String::from_utf8_lossy(&reply));
    let (code, _, after) = curl_sigv4(&[], &url);
    assert_eq!(code, 200);
    assert!(after == body, "the object changed");

    // A PUT whose CRC matches is answered with that CRC: what tells our client the server
    // checks it (and lets `--payloadHash=auto` stop signing the body over plain HTTP).
    std::fs::write(&file, &body).expect("write body");
    let (code, head, reply) = curl_sigv4(
        &["-X", "PUT", "--data-binary", &data, "-H", &crc_header],
        &url,
    );
    assert_eq!(code, 200, "{head}{}", String::from_utf8_lossy(&reply));
    assert_eq!(
        header_value(&head, "x-amz-checksum-crc32").as_deref(),
        Some(expected.as_str()),
        "{head}"
    );
}
