//! The `s3backer` command's special modes against a real Garage bucket.

use s3backer_e2e::*;
use std::io::Write;
use std::process::{Command, Stdio};

fn fill(bucket: &str, blocks: usize) {
    let mut p = Garage::shared().params();
    p.extend([
        format!("bucket={bucket}"),
        "size=8m".into(),
        "blockSize=4k".into(),
    ]);
    let nbd = Nbdkit::start(&p).expect("start");
    qemu_io(&nbd.uri(), &[&format!("write -P 5 0 {}", blocks * 4096)]);
    nbd.kill9(); // leave the mount token behind too
}

fn erase(bucket: &str, extra: &[&str], answer: Option<&str>) -> (bool, String) {
    let mut cmd = Command::new(s3backer_bin());
    cmd.arg("--erase")
        .args(Garage::shared().flags())
        .args(extra)
        .arg(bucket);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    if let Some(a) = answer {
        child
            .stdin
            .as_mut()
            .expect("stdin")
            .write_all(a.as_bytes())
            .expect("answer");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("wait");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn erase_asks_then_deletes_every_block_and_the_token() {
    let g = Garage::shared();
    let bucket = g.new_bucket("erase");
    fill(&bucket, 1500);
    let foreign = g.client(&bucket);
    foreign
        .put_object("not-ours.txt", b"keep me", &Default::default())
        .expect("put");
    assert_eq!(g.keys(&bucket, "").len(), 1500 + 2);

    let (ok, err) = erase(&bucket, &[], Some("n\n"));
    assert!(!ok, "declined erase must fail: {err}");
    assert!(err.contains("is this correct? [y/N]"), "{err}");
    assert_eq!(
        g.keys(&bucket, "").len(),
        1502,
        "declined erase deleted something"
    );

    let (ok, err) = erase(&bucket, &[], Some("yes\n"));
    assert!(ok, "{err}");
    assert!(err.contains("erased 1500 non-zero blocks"), "{err}");
    assert!(
        err.contains("deleted 1500 of 1500 blocks (100%,"),
        "progress with a rate: {err}"
    );
    assert_eq!(g.keys(&bucket, ""), ["not-ours.txt"]);
}

#[test]
fn erase_with_force_does_not_ask() {
    let g = Garage::shared();
    let bucket = g.new_bucket("erasef");
    fill(&bucket, 10);
    let (ok, err) = erase(&bucket, &["--force"], None);
    assert!(ok, "{err}");
    assert!(!err.contains("is this correct"), "{err}");
    assert!(g.keys(&bucket, "").is_empty());
}
