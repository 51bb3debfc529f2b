//! The zero map on a real Garage bucket: the background survey, holes visible to NBD clients
//! (block status), the zero map saved at unmount, and the requests all this saves. Requests are
//! counted from the plugin's own `--debug` log, which has one `METHOD URL -> status` line per
//! request.

use s3backer_e2e::*;
use std::process::Command;
use std::time::Duration;

fn params(bucket: &str, extra: &[&str]) -> Vec<String> {
    let mut p = Garage::shared().params();
    p.push(format!("bucket={bucket}"));
    p.push("debug=true".into());
    p.extend(extra.iter().map(|s| s.to_string()));
    p
}

/// Requests of `method` logged after the first line containing `after` (or from the start).
fn requests(log: &str, method: &str, after: Option<&str>) -> usize {
    let start = after.and_then(|a| log.find(a)).unwrap_or(0);
    let needle = format!("DEBUG: {method} http");
    log[start..].lines().filter(|l| l.contains(&needle)).count()
}

fn wait_for(nbd: &Nbdkit, text: &str) -> String {
    let found = wait_until(Duration::from_secs(120), || nbd.stderr().contains(text));
    let log = nbd.stderr();
    assert!(found, "{text:?} never logged:\n{log}");
    log
}

const SURVEY_DONE: &str = "non-zero block survey completed";

#[test]
fn after_the_survey_an_empty_disk_costs_no_requests() {
    let g = Garage::shared();
    let bucket = g.new_bucket("zm-empty");
    let nbd = Nbdkit::start(&params(
        &bucket,
        &["size=64m", "blockSize=64k", "listBlocks=true"],
    ))
    .expect("start");
    let log = wait_for(&nbd, SURVEY_DONE);
    assert!(log.contains("starting non-zero block survey"), "{log}");
    assert!(
        log.contains("non-zero block survey completed (0 non-zero blocks reported)"),
        "{log}"
    );
    // Read it all, discard it all (mkfs-style), write into a hole.
    let image = nbd_image(&nbd.uri());
    assert!(image.iter().all(|&b| b == 0));
    nbd_python(
        "import nbd,sys\nh=nbd.NBD()\nh.connect_uri(sys.argv[1])\nh.trim(h.get_size(),0)\nh.zero(1<<20,4096)\n",
        &[&nbd.uri()],
    );
    let log = nbd.stderr();
    for method in ["GET", "PUT", "DELETE", "POST"] {
        assert_eq!(
            requests(&log, method, Some(SURVEY_DONE)),
            0,
            "{method} after the survey:\n{log}"
        );
    }
    qemu_io(&nbd.uri(), &["write -P 0x33 1000 100"]);
    let log = nbd.stderr();
    assert_eq!(
        requests(&log, "GET", Some(SURVEY_DONE)),
        0,
        "a partial write into a hole reads nothing"
    );
    assert_eq!(
        requests(&log, "PUT", Some(SURVEY_DONE)),
        1,
        "it writes the block once"
    );
}

#[test]
fn block_status_shows_exactly_the_written_blocks() {
    let g = Garage::shared();
    let bucket = g.new_bucket("zm-map");
    let p = params(&bucket, &["size=16m", "blockSize=64k"]);
    let nbd = Nbdkit::start(&p).expect("start");
    qemu_io(
        &nbd.uri(),
        &[
            "write -P 1 0 64k",
            "write -P 2 1m 128k",
            "write -P 3 15m 1k",
        ],
    );
    nbd.kill9(); // no saved map: the survey is the only source
    let mut p = params(
        &bucket,
        &["listBlocks=true", "listBlocksThreads=3", "force=true"],
    );
    p.retain(|x| x != "debug=true");
    let nbd = Nbdkit::start(&p).expect("restart");
    let log = wait_for(&nbd, SURVEY_DONE);
    assert!(log.contains("(4 non-zero blocks reported)"), "{log}");
    let map = run_ok(
        Command::new("nbdinfo")
            .env("PATH", system_path())
            .arg("--map")
            .arg(nbd.uri()),
    );
    let rows: Vec<Vec<String>> = map
        .lines()
        .map(|l| l.split_whitespace().take(3).map(str::to_owned).collect())
        .collect();
    let expect = [
        ["0", "65536", "0"],
        ["65536", "983040", "3"],
        ["1048576", "131072", "0"],
        ["1179648", "14548992", "3"],
        ["15728640", "65536", "0"],
        ["15794176", "983040", "3"],
    ];
    assert_eq!(rows, expect.map(|r| r.map(str::to_owned)).to_vec(), "{map}");
    let qmap = run_ok(
        Command::new("qemu-img")
            .args(["map", "--output=json", "-f", "raw"])
            .arg(nbd.uri()),
    );
    let data_runs = qmap.matches("\"data\": true").count();
    assert_eq!(data_runs, 3, "{qmap}");
}

#[test]
fn saved_zero_map_is_used_and_a_changed_block_0_invalidates_it() {
    let g = Garage::shared();
    let bucket = g.new_bucket("zm-saved");
    let nbd = Nbdkit::start(&params(&bucket, &["size=8m", "blockSize=64k"])).expect("start");
    qemu_io(&nbd.uri(), &["write -P 5 0 64k", "write -z 64k 1m"]);
    let (status, log) = nbd.stop();
    assert!(status.success(), "{log}");
    assert!(log.contains("saved zero map"), "{log}");
    assert!(
        g.keys(&bucket, "")
            .contains(&"s3backer-zeromap".to_string())
    );

    let nbd = Nbdkit::start(&params(&bucket, &[])).expect("restart");
    let log = nbd.stderr();
    assert!(
        log.contains("loaded zero map: 16 of 128 blocks known to be empty"),
        "{log}"
    );
    assert!(
        !g.keys(&bucket, "")
            .contains(&"s3backer-zeromap".to_string()),
        "deleted while mounted"
    );
    let before = requests(&nbd.stderr(), "GET", None);
    qemu_io(&nbd.uri(), &["read -P 0 64k 1m"]);
    assert_eq!(
        requests(&nbd.stderr(), "GET", None),
        before,
        "known holes are read without requests"
    );
    drop(nbd);

    // Another writer changes block 0 behind our back: the saved map must not be trusted.
    let client = g.client(&bucket);
    let req = s3backer_s3client::PutRequest {
        content_type: Some("application/x-s3backer-block".into()),
        content_encoding: None,
        meta: vec![
            ("s3backer-blocksize".into(), "65536".into()),
            ("s3backer-filesize".into(), "8388608".into()),
        ],
        crc32: None,
    };
    client
        .put_object("00000000", &vec![6u8; 65536], &req)
        .expect("foreign write");
    client
        .put_object("00000003", &vec![6u8; 65536], &req)
        .expect("foreign write");
    let nbd = Nbdkit::start(&params(&bucket, &[])).expect("restart");
    assert!(
        nbd.stderr()
            .contains("ignoring the saved zero map: block 0 changed"),
        "{}",
        nbd.stderr()
    );
    qemu_io(&nbd.uri(), &["read -P 6 192k 64k"]);
}

#[test]
fn a_mostly_empty_64g_disk_copies_and_compares_through_its_holes() {
    let g = Garage::shared();
    let bucket = g.new_bucket("zm-64g");
    let nbd = Nbdkit::start(&params(
        &bucket,
        &["size=64g", "blockSize=256k", "listBlocks=true"],
    ))
    .expect("start");
    wait_for(&nbd, SURVEY_DONE);
    qemu_io(
        &nbd.uri(),
        &[
            "write -P 9 0 1m",
            "write -P 8 40g 300k",
            "write -P 7 63g 4k",
        ],
    );
    let dir = TempDir::new("zm-64g");
    let out = dir.join("copy.raw");
    run_ok(
        Command::new("qemu-img")
            .args(["convert", "-f", "raw", "-O", "raw"])
            .arg(nbd.uri())
            .arg(&out),
    );
    let cmp = run(Command::new("qemu-img")
        .args(["compare", "-f", "raw", "-F", "raw"])
        .arg(&out)
        .arg(nbd.uri()));
    assert!(
        cmp.status.success(),
        "{}",
        String::from_utf8_lossy(&cmp.stdout)
    );
    let log = nbd.stderr();
    // Only the 7 blocks with data are ever fetched (by the copy and by the compare; without a
    // cache, each read request of a block fetches it again).
    let data_blocks = [
        "00000000", "00000001", "00000002", "00000003", "00028000", "00028001", "0003f000",
    ];
    let start = log.find(SURVEY_DONE).unwrap_or(0);
    for line in log[start..]
        .lines()
        .filter(|l| l.contains("DEBUG: GET http"))
    {
        assert!(
            data_blocks.iter().any(|b| line.contains(&format!("/{b} "))),
            "a hole was fetched: {line}"
        );
    }
    let allocated = std::fs::metadata(&out)
        .map(|m| std::os::unix::fs::MetadataExt::blocks(&m) * 512)
        .unwrap_or(u64::MAX);
    assert!(
        allocated < 64 << 20,
        "the copy is sparse: {allocated} bytes allocated"
    );
}
