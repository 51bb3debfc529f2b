//! The disk under an unreliable object store: real nbdkit with our plugin, talking to the real
//! Garage server through the fault-injecting proxy (`s3backer_e2e::faults`), under a verifying
//! load (random whole and partial block writes, zeroing, verified reads, FLUSH, and a read-back
//! of everything against a model), with and without the block cache.
//!
//! * Transient faults (10 % of requests: 500, 503 SlowDown, resets, truncated bodies, stalls
//!   past `--timeout`; 3 % more over a slow link) never reach the client and never corrupt a
//!   byte; the bucket, read back
//!   without the proxy and without a cache, holds exactly the model.
//! * An outage longer than the retry budget is a clean EIO for the requests that need the
//!   server, in bounded time, and everything works again once the server is back.
//! * "PUT applied, reply lost" is retried harmlessly.
//! * A corrupted GET body or a wrong ETag is caught and the block fetched again, for plain,
//!   zstd, deflate and encrypted blocks.
//! * A write into a block cache full of unwritten blocks fails like any request that needs the
//!   server (EIO after the retry budget), instead of waiting for the server's return (found by
//!   this test; fixed in `BlockCache::write`).
//!
//! Every test prints its numbers (`--nocapture` shows them): faults injected, bytes verified.

use s3backer_e2e::faults::{FaultCounts, Reply, assert_image_matches_model};
use s3backer_e2e::garage::{KEY_ID, SECRET};
use s3backer_e2e::*;
use std::time::{Duration, Instant};

/// Block size of the test disks: small, so a load makes many requests.
const BS: u32 = 16 * 1024;
/// Blocks the load writes and verifies. The disk has twice as many: blocks past the load's
/// area are never touched, so a read of one always needs the server.
const LOAD_BLOCKS: u32 = 128;
/// A block outside the load's area.
const UNTOUCHED: u32 = 200;
/// Seconds per attempt (`--timeout`): injected stalls last longer.
const TIMEOUT_SECS: u64 = 2;

fn params(endpoint: &str, bucket: &str, cache: bool, extra: &[String]) -> Vec<String> {
    let mut p = vec![
        format!("baseURL={endpoint}"),
        format!("accessId={KEY_ID}"),
        format!("accessKey={SECRET}"),
        format!("bucket={bucket}"),
        format!("size={}", 2 * LOAD_BLOCKS * BS),
        format!("blockSize={BS}"),
        format!("timeout={TIMEOUT_SECS}"),
        "initialRetryPause=50".into(),
        // Room for several retries and a 503's one-second Retry-After.
        "maxRetryPause=10000".into(),
    ];
    if cache {
        // A cache much smaller than the load's area: blocks are evicted and read again, so
        // GETs go through the proxy too, not only uploads.
        p.extend([
            "blockCacheSize=24".into(),
            "blockCacheWriteDelay=200".into(),
            "blockCacheThreads=4".into(),
        ]);
    } else {
        p.push("blockCacheSize=0".into());
    }
    p.extend(extra.iter().cloned());
    p
}

/// Runs a load command that must succeed; on failure, shows what the plugin logged.
fn must(load: &mut VerifyingLoad, nbd: &Nbdkit, command: &str) -> Reply {
    let r = load.cmd(command);
    if !r.is_ok() {
        let log = nbd.stderr();
        let lines: Vec<&str> = log.lines().filter(|l| !l.contains(" DEBUG: ")).collect();
        panic!(
            "`{command}`: {} {}\nthe plugin's log, last 40 lines:\n{}",
            r.status,
            r.msg,
            lines[lines.len().saturating_sub(40)..].join("\n")
        );
    }
    r
}

/// `name value` lines of s3backer's stats format.
fn stat(stats: &str, name: &str) -> u64 {
    stats
        .lines()
        .find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some(name))
                .then(|| w.next().and_then(|v| v.parse().ok()))
                .flatten()
        })
        .unwrap_or_else(|| panic!("no {name} in the stats:\n{stats}"))
}

/// After the test: the bucket alone, read by a fresh server straight from Garage without a
/// cache, holds exactly what the load's model says. Returns the bytes compared.
fn bucket_matches_model(bucket: &str, model: &std::path::Path) -> usize {
    let g = Garage::shared();
    let nbd = Nbdkit::start(&params(&g.endpoint, bucket, false, &[]))
        .expect("a fresh server on the bucket");
    let compared = assert_image_matches_model(&nbd_image(&nbd.uri()), model, BS);
    let (status, log) = nbd.stop();
    assert!(status.success(), "{log}");
    compared
}

fn describe(c: &FaultCounts) -> String {
    format!(
        "{} requests, {} forwarded, {} faults injected (500: {}, 503: {}, reset before: {}, \
         reset after: {}, stall: {}, truncated: {}, corrupted: {}, wrong ETag: {}), {} slow \
         answers, {} refused while down; server answers: {} length-framed, {} chunked, {} \
         close-delimited",
        c.requests,
        c.forwarded,
        c.injected(),
        c.error_500,
        c.error_503,
        c.reset_before,
        c.reset_after,
        c.stall,
        c.truncate,
        c.corrupt_body,
        c.wrong_etag,
        c.slow,
        c.refused,
        c.length_framed,
        c.chunked,
        c.close_delimited
    )
}

/// 10 % of all requests fail transiently; 3 % more are answered over a slow link.
fn transient_mix() -> FaultPlan {
    FaultPlan {
        error_500: 2.0,
        error_503: 1.5,
        reset_before: 1.5,
        reset_after: 1.5,
        // Only successful answers with a body can be cut (GETs of stored blocks, about a
        // third of the requests): a larger share.
        truncate: 2.5,
        stall: 1.0,
        stall_for: Duration::from_secs(TIMEOUT_SECS + 1),
        // Not a failure: a slow link that stays within `--timeout` (16 KiB in 0.25 s).
        slow: 3.0,
        slow_bytes_per_sec: 64 * 1024,
        ..FaultPlan::none()
    }
}

fn transient_faults(cache: bool) {
    let g = Garage::shared();
    let bucket = g.new_bucket(if cache {
        "faults-cache"
    } else {
        "faults-direct"
    });
    let proxy = FaultProxy::start(&g.endpoint);
    let dir = TempDir::new("faults");
    let mirror = dir.join("stats");
    let extra = [
        format!("statsFileMirror={}", mirror.display()),
        "statsFileMirrorInterval=200".into(),
    ];
    let nbd = Nbdkit::start(&params(&proxy.endpoint, &bucket, cache, &extra)).expect("start");
    let started = Instant::now();
    proxy.set_plan(transient_mix());
    let mut load = VerifyingLoad::start(&nbd.uri(), LOAD_BLOCKS, BS, 4);
    // `bench/faults.sh` runs many more rounds (about 170 requests each).
    let rounds: u32 = std::env::var("S3B_FAULT_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    for _ in 0..rounds {
        must(&mut load, &nbd, "load 120");
        must(&mut load, &nbd, "flush");
    }
    must(&mut load, &nbd, "verify");
    let model = dir.join("model");
    load.save_model(&model);
    let totals = load.finish();
    let before_stop = proxy.counts();
    // The final write-back and the release of the mount token go through the faults too.
    let (status, log) = nbd.stop();
    assert!(status.success(), "a clean stop under faults: {log}");
    let elapsed = started.elapsed();
    let counts = proxy.counts();
    let journal = proxy.journal();
    drop(proxy);
    let compared = bucket_matches_model(&bucket, &model);

    let stats = std::fs::read_to_string(&mirror).expect("stats mirror");
    let retries = stat(&stats, "http_num_retries");
    eprintln!(
        "transient faults, cache {cache}: {} in {elapsed:.1?}; load: {} writes, {} partial \
         writes, {} zeroings, {} verified reads, {} flushes, {} bytes written, {} bytes \
         verified through the plugin, {compared} bytes of the bucket compared; client \
         retries: {retries}",
        describe(&counts),
        totals.num("writes"),
        totals.num("partial_writes"),
        totals.num("zeroings"),
        totals.num("reads"),
        totals.num("flushes"),
        totals.num("bytes_written"),
        totals.num("bytes_verified"),
    );
    // The faults really happened, each kind, at about the planned rate.
    let faulted = counts.injected() as f64 / counts.requests as f64;
    assert!(
        (0.06..0.14).contains(&faulted),
        "{:.1} % of requests faulted, planned 10 %: {}",
        faulted * 100.0,
        describe(&counts)
    );
    for (kind, n) in [
        ("500", counts.error_500),
        ("503", counts.error_503),
        ("reset before", counts.reset_before),
        ("reset after", counts.reset_after),
        ("truncated", counts.truncate),
        ("stall", counts.stall),
        ("slow", counts.slow),
    ] {
        assert!(n > 0, "no {kind} fault was injected: {}", describe(&counts));
    }
    assert!(
        counts.injected() >= 50,
        "too few faults to mean anything: {}",
        describe(&counts)
    );
    // Every fault cost the client one retry (stalls outlast its timeout), none was absorbed
    // anywhere else. The stats mirror's last copy is written when the disk stops, after the
    // final flush and before the mount token is released: every fault from before the stop,
    // including those whose retry waited out a `Retry-After` during the shutdown, is in it.
    assert!(
        retries >= before_stop.injected(),
        "fewer retries ({retries}) than faults before the stop: {}\n{stats}\n{}",
        describe(&before_stop),
        journal.join("\n")
    );
    assert!(totals.num("bytes_verified") > 0 && totals.num("writes") > 0);
    // Garage frames every answer to our requests with Content-Length: what the truncation
    // fault relies on to be noticed by the client.
    assert_eq!(
        counts.chunked + counts.close_delimited,
        0,
        "{}",
        describe(&counts)
    );
}

#[test]
fn transient_faults_are_invisible_without_cache() {
    transient_faults(false);
}

#[test]
fn transient_faults_are_invisible_with_cache() {
    transient_faults(true);
}

/// Asserts a clean I/O error in bounded time: the retry budget (2 s here) plus an attempt's
/// timeout, not a hang, and not an immediate failure that skipped the retries.
fn assert_clean_eio(r: &Reply) {
    assert_eq!(r.status, "err", "`{}` should fail: {}", r.command, r.msg);
    assert_eq!(r.errno(), libc::EIO, "`{}`: {}", r.command, r.msg);
    assert!(
        (1.5..2.0 + 3.0 * TIMEOUT_SECS as f64).contains(&r.secs()),
        "`{}` failed after {:.2} s: not within the retry budget",
        r.command,
        r.secs()
    );
}

fn outage(cache: bool) {
    let g = Garage::shared();
    let bucket = g.new_bucket(if cache {
        "outage-cache"
    } else {
        "outage-direct"
    });
    let proxy = FaultProxy::start(&g.endpoint);
    // Retry budget 2 s: 50, 100, 200, 400, 800, 450 ms, then the error.
    let p = params(
        &proxy.endpoint,
        &bucket,
        cache,
        &["maxRetryPause=2000".to_string()],
    );
    let nbd = Nbdkit::start(&p).expect("start");
    let mut load = VerifyingLoad::start(&nbd.uri(), LOAD_BLOCKS, BS, 4);
    must(&mut load, &nbd, "load 200");
    must(&mut load, &nbd, "flush");
    must(&mut load, &nbd, "verify");

    proxy.set_down(true);
    let down_at = Instant::now();
    // A read the cache cannot serve needs the server: EIO once the budget is spent.
    assert_clean_eio(&load.cmd(&format!("read {UNTOUCHED}")));
    let write = load.cmd("write 7");
    if cache {
        // The write is taken by the cache; the FLUSH that needs it in the bucket fails.
        assert!(
            write.is_ok(),
            "a cached write during the outage: {}",
            write.msg
        );
        assert!(
            write.secs() < 1.0,
            "the cached write waited {:.2} s",
            write.secs()
        );
        assert_clean_eio(&load.cmd("flush"));
    } else {
        assert_clean_eio(&write);
    }
    // Still down: the next request fails the same way (nothing wedged).
    assert_clean_eio(&load.cmd(&format!("read {}", UNTOUCHED + 1)));
    let down_for = down_at.elapsed();
    proxy.set_down(false);

    // Back: the failed write (either version of block 7 is allowed until verified), the
    // cached data, new writes, FLUSH and a full read-back all work.
    let first = load.cmd(&format!("read {UNTOUCHED}"));
    assert!(
        first.is_ok(),
        "read after recovery: {} {}",
        first.status,
        first.msg
    );
    let first_flush = must(&mut load, &nbd, "flush");
    must(&mut load, &nbd, "load 100");
    must(&mut load, &nbd, "flush");
    let verified = must(&mut load, &nbd, "verify");
    if cache {
        // The write the cache took during the outage reached the bucket after it.
        let r = load.cmd("read 7");
        assert!(r.is_ok(), "{}", r.msg);
    }
    let dir = TempDir::new("outage");
    let model = dir.join("model");
    load.save_model(&model);
    let totals = load.finish();
    let (status, log) = nbd.stop();
    assert!(status.success(), "{log}");
    if cache {
        assert!(
            log.contains("will retry"),
            "the cache should log its failed upload: {log}"
        );
    }
    let compared = bucket_matches_model(&bucket, &model);
    eprintln!(
        "outage, cache {cache}: down for {down_for:.1?}; back up: first read {:.3} s, first \
         FLUSH {:.3} s; {} bytes verified after recovery, {} in all, {compared} bytes of the \
         bucket compared",
        first.secs(),
        first_flush.secs(),
        verified.num("bytes"),
        totals.num("bytes_verified"),
    );
}

#[test]
fn outage_beyond_the_retry_budget_is_a_clean_eio_then_recovers_without_cache() {
    outage(false);
}

#[test]
fn outage_beyond_the_retry_budget_is_a_clean_eio_then_recovers_with_cache() {
    outage(true);
}

fn reply_lost(cache: bool) {
    let g = Garage::shared();
    let bucket = g.new_bucket(if cache { "lost-cache" } else { "lost-direct" });
    let proxy = FaultProxy::start(&g.endpoint);
    let nbd = Nbdkit::start(&params(&proxy.endpoint, &bucket, cache, &[])).expect("start");
    // One PUT or DELETE in five is applied by the server and its answer lost. (At one in
    // three, all 9 attempts of some request failed about once in 30 runs (0.33^9 per
    // request): seen once, a correct EIO, but that is the outage test's subject.)
    proxy.set_plan(FaultPlan {
        reset_after: 20.0,
        methods: vec!["PUT", "DELETE"],
        ..FaultPlan::none()
    });
    let mut load = VerifyingLoad::start(&nbd.uri(), LOAD_BLOCKS, BS, 4);
    for _ in 0..3 {
        must(&mut load, &nbd, "load 100");
        must(&mut load, &nbd, "flush");
    }
    must(&mut load, &nbd, "verify");
    let dir = TempDir::new("lost");
    let model = dir.join("model");
    load.save_model(&model);
    let totals = load.finish();
    let (status, log) = nbd.stop();
    assert!(status.success(), "{log}");
    let counts = proxy.counts();
    drop(proxy);
    let compared = bucket_matches_model(&bucket, &model);
    eprintln!(
        "reply lost, cache {cache}: {}; {} bytes verified, {compared} bytes of the bucket compared",
        describe(&counts),
        totals.num("bytes_verified")
    );
    assert!(
        counts.reset_after >= 20,
        "too few lost replies: {}",
        describe(&counts)
    );
}

#[test]
fn put_applied_reply_lost_is_harmless_without_cache() {
    reply_lost(false);
}

#[test]
fn put_applied_reply_lost_is_harmless_with_cache() {
    reply_lost(true);
}

/// Reads everything back several times while `pct` % of GET bodies are corrupted in transit.
/// Returns the verification replies and the counts.
fn read_through_corruption(extra: &[String], pct: f64, rounds: u32) -> (Vec<Reply>, FaultCounts) {
    let g = Garage::shared();
    let bucket = g.new_bucket("corrupt");
    let proxy = FaultProxy::start(&g.endpoint);
    let nbd = Nbdkit::start(&params(&proxy.endpoint, &bucket, false, extra)).expect("start");
    let mut load = VerifyingLoad::start(&nbd.uri(), LOAD_BLOCKS, BS, 4);
    for b in 0..LOAD_BLOCKS {
        assert!(load.cmd(&format!("write {b}")).is_ok());
    }
    must(&mut load, &nbd, "flush");
    proxy.set_plan(FaultPlan {
        corrupt_body: pct,
        wrong_etag: pct / 2.0,
        methods: vec!["GET"],
        ..FaultPlan::none()
    });
    let replies = (0..rounds).map(|_| load.cmd("verify")).collect();
    let counts = proxy.counts();
    drop(load);
    let (status, log) = nbd.stop();
    assert!(status.success(), "{log}");
    (replies, counts)
}

/// A corrupted GET body is caught by the client (its CRC-32 against the `x-amz-checksum-crc32`
/// the server stored with our PUT; for an object without one, its MD5 against the ETag) and
/// fetched again: never returned, and never an error either. Answers whose ETag was replaced
/// are in the mix too (they carry the right body: nothing wrong may come of them). For every encoding, because plain and
/// zstd blocks have no check of their own (our zstd frames carry no checksum, and random data
/// is stored in raw zstd blocks): before the client checked the ETag (commit 24ec90c), this
/// test measured plain and zstd blocks coming back with the flipped bit in 4 of 4 read-backs,
/// and deflate and encrypted ones failing with EIO (Adler-32 or HMAC caught the damage, and a
/// decoding failure is not retried).
#[test]
fn corrupted_get_bodies_are_detected_and_retried() {
    let mut failures = Vec::new();
    for (name, extra) in [
        ("plain", vec![]),
        ("zstd", vec!["compress=zstd".to_string()]),
        ("deflate", vec!["compress=deflate".to_string()]),
        (
            "encrypted",
            vec![
                "encrypt=true".to_string(),
                "password=fault-test".to_string(),
            ],
        ),
    ] {
        let (replies, counts) = read_through_corruption(&extra, 5.0, 3);
        let returned = replies.iter().filter(|r| r.status == "corrupt").count();
        let failed = replies.iter().filter(|r| r.status == "err").count();
        let line = format!(
            "{name}: {} bodies corrupted, {} wrong ETags in {} GETs; of {} full read-backs \
             {returned} returned wrong data, {failed} failed",
            counts.corrupt_body,
            counts.wrong_etag,
            counts.forwarded,
            replies.len()
        );
        eprintln!("corrupted GET bodies, {line}");
        assert!(
            counts.corrupt_body > 0 && counts.wrong_etag > 0,
            "{name}: nothing was damaged"
        );
        if let Some(r) = replies.iter().find(|r| !r.is_ok()) {
            failures.push(format!("{line} (first: {} {})", r.status, r.msg));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// During an outage the block cache takes writes until every slot holds an unwritten block;
/// the next write needs a free slot, and none frees while uploads fail. It should fail like
/// any other request that needs the server (EIO once the retry budget is spent), not wait for
/// the server's return.
#[test]
fn a_write_into_a_cache_full_of_unwritten_blocks_fails_cleanly_during_an_outage() {
    let g = Garage::shared();
    let bucket = g.new_bucket("full-cache");
    let proxy = FaultProxy::start(&g.endpoint);
    let p = params(
        &proxy.endpoint,
        &bucket,
        true,
        &["maxRetryPause=2000".to_string()],
    );
    let nbd = Nbdkit::start(&p).expect("start");
    let mut load = VerifyingLoad::start(&nbd.uri(), LOAD_BLOCKS, BS, 4);
    must(&mut load, &nbd, "load 100");
    must(&mut load, &nbd, "flush");
    proxy.set_down(true);
    // 24 slots (`params`): these are taken at memory speed.
    for b in 0..24 {
        let r = load.cmd(&format!("write {b}"));
        assert!(
            r.is_ok() && r.secs() < 1.0,
            "write {b}: {} {:.2} s",
            r.msg,
            r.secs()
        );
    }
    load.send("write 24");
    let limit = Duration::from_secs(2 + 3 * TIMEOUT_SECS + 10);
    let Some(r) = load.reply_within("write 24", limit) else {
        proxy.set_down(false);
        let late = load.reply_within("write 24", Duration::from_secs(60));
        panic!(
            "a write into the full cache did not return within {limit:?} of an outage; with the \
             server back it returned {:?}",
            late.map(|r| (r.status.clone(), r.secs()))
        );
    };
    assert_clean_eio(&r);
    proxy.set_down(false);
    must(&mut load, &nbd, "flush");
    must(&mut load, &nbd, "verify");
    load.finish();
    let (status, log) = nbd.stop();
    assert!(status.success(), "{log}");
}
