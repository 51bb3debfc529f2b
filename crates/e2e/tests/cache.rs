//! Block cache behaviour through real nbdkit on a real Garage bucket. Requests are counted from
//! the plugin's `--debug` log (one `METHOD URL -> status` line per request).

use s3backer_e2e::*;
use std::time::Duration;

fn params(bucket: &str, extra: &[&str]) -> Vec<String> {
    let mut p = Garage::shared().params();
    p.extend([
        format!("bucket={bucket}"),
        "size=4m".into(),
        "blockSize=64k".into(),
        "debug=true".into(),
    ]);
    p.extend(extra.iter().map(|s| s.to_string()));
    p
}

fn requests(log: &str, method: &str) -> usize {
    log.lines()
        .filter(|l| l.contains(&format!("DEBUG: {method} http")))
        .count()
}

#[test]
fn read_hits_and_delayed_write_back() {
    let g = Garage::shared();
    let bucket = g.new_bucket("cache-hits");
    let nbd = Nbdkit::start(&params(&bucket, &["blockCacheWriteDelay=60000"])).expect("start");
    // libnbd, not qemu-io: qemu-io flushes when it closes the image.
    nbd_python(
        "import nbd,sys\nh=nbd.NBD()\nh.connect_uri(sys.argv[1])\nh.pwrite(b'\\x04'*(1<<20),0)\nh.shutdown()\n",
        &[&nbd.uri()],
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        requests(&nbd.stderr(), "PUT") - 1,
        0,
        "nothing uploaded before the delay or a FLUSH"
    );
    qemu_io(&nbd.uri(), &["flush"]);
    assert_eq!(
        requests(&nbd.stderr(), "PUT") - 1,
        16,
        "FLUSH uploads every dirty block once"
    );
    assert_eq!(g.data_keys(&bucket, "").len(), 16);
    let gets = requests(&nbd.stderr(), "GET");
    for _ in 0..5 {
        qemu_io(&nbd.uri(), &["read -P 4 0 1m"]);
    }
    assert_eq!(
        requests(&nbd.stderr(), "GET"),
        gets,
        "read hits never reach the bucket"
    );
}

#[test]
fn cache_file_blocks_are_verified_after_a_restart() {
    let g = Garage::shared();
    let bucket = g.new_bucket("cache-verify");
    let dir = TempDir::new("cache-verify");
    let file = format!("blockCacheFile={}", dir.join("cache").display());
    let nbd = Nbdkit::start(&params(&bucket, &[&file])).expect("start");
    let log = nbd.stderr();
    assert!(log.contains("reading meta-data from cache file"), "{log}");
    assert!(log.contains("with 64 free and 0 used blocks"), "{log}");
    qemu_io(&nbd.uri(), &["write -P 1 0 256k"]);
    let (status, log) = nbd.stop();
    assert!(status.success(), "{log}");
    // Another writer changes block 2 while we are stopped.
    let client = g.client(&bucket);
    let req = s3backer_s3client::PutRequest {
        content_type: Some("application/x-s3backer-block".into()),
        ..Default::default()
    };
    client
        .put_object("00000002", &vec![9u8; 65536], &req)
        .expect("foreign write");
    let nbd = Nbdkit::start(&params(&bucket, &[&file])).expect("restart");
    assert!(
        nbd.stderr().contains("with 60 free and 4 used blocks"),
        "{}",
        nbd.stderr()
    );
    qemu_io(
        &nbd.uri(),
        &[
            "read -P 1 0 128k",
            "read -P 9 128k 64k",
            "read -P 1 192k 64k",
        ],
    );
    let log = nbd.stderr();
    assert!(
        log.contains("block 00000002 changed in the bucket since it was cached"),
        "{log}"
    );
}

#[test]
fn dirty_blocks_left_by_a_crash_need_the_recover_flag() {
    let g = Garage::shared();
    let bucket = g.new_bucket("cache-dirty");
    let dir = TempDir::new("cache-dirty");
    let file = format!("blockCacheFile={}", dir.join("cache").display());
    let p = params(
        &bucket,
        &[
            &file,
            "blockCacheWriteDelay=60000",
            "blockCacheLocalFlush=true",
        ],
    );
    let nbd = Nbdkit::start(&p).expect("start");
    qemu_io(&nbd.uri(), &["write -P 7 0 128k", "flush"]);
    nbd.kill9();
    assert!(
        g.data_keys(&bucket, "").is_empty(),
        "local flush: nothing uploaded yet"
    );
    let err = Nbdkit::start(&p).err().expect("refused without the flag");
    assert!(err.contains("--blockCacheRecoverDirtyBlocks"), "{err}");
    let mut recover = p.clone();
    recover.push("blockCacheRecoverDirtyBlocks=true".into());
    let nbd = Nbdkit::start(&recover).expect("recovers");
    let log = nbd.stderr();
    assert!(log.contains("recovering from unclean shutdown"), "{log}");
    assert!(log.contains("2 dirty blocks in cache file"), "{log}");
    qemu_io(&nbd.uri(), &["read -P 7 0 128k", "flush"]);
    assert_eq!(
        g.data_keys(&bucket, "").len(),
        2,
        "recovered blocks uploaded"
    );
}
