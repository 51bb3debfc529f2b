//! Crash tests of the block cache's durability contract, through real nbdkit on a real Garage
//! bucket: a writer issues random block writes in epochs separated by FLUSH and logs them; the
//! server is killed with SIGKILL at a random moment; after a restart:
//!
//! * every write acknowledged before a completed FLUSH reads back (default durability, and the
//!   local-durability mode with its cache file kept);
//! * with the local-durability cache file deleted after the kill, the bucket alone holds every
//!   epoch before some epoch K whole, and only writes of epoch K beyond that (flush order).
//!
//! Each written block names its epoch, sequence number and block, so the image tells exactly
//! which write every block holds.

use s3backer_e2e::*;
use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

const BLOCKS: u32 = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Write {
    epoch: u32,
    seq: u32,
}

/// Starts the writer against `uri`, epochs from `first_epoch`, logging to `log`.
fn writer(uri: &str, seed: u64, first_epoch: u32, log: &Path) -> Child {
    Command::new("/usr/bin/python3")
        .env("PATH", system_path())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/crash_writer.py"
        ))
        .args([
            uri,
            &BLOCKS.to_string(),
            &seed.to_string(),
            &first_epoch.to_string(),
        ])
        .arg(log)
        .spawn()
        .expect("writer")
}

/// The log: writes (per block, in order) and the last epoch whose FLUSH completed.
fn parse_log(log: &Path) -> (HashMap<u32, Vec<Write>>, u32, u32) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut writes: HashMap<u32, Vec<Write>> = HashMap::new();
    let (mut flushed, mut max_epoch) = (0, 0);
    for line in text.lines() {
        let f: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        match (line.chars().next(), f.as_slice()) {
            (Some('W'), [e, s, b]) => {
                writes.entry(*b as u32).or_default().push(Write {
                    epoch: *e as u32,
                    seq: (*s % (1 << 32)) as u32,
                });
                max_epoch = max_epoch.max(*e as u32);
            }
            (Some('F'), [e]) => flushed = flushed.max(*e as u32),
            _ => {}
        }
    }
    (writes, flushed, max_epoch)
}

/// What each block of the disk holds: `None` for zeros.
fn blocks_of(uri: &str) -> Vec<Option<Write>> {
    let image = nbd_image(uri);
    image
        .chunks(4096)
        .enumerate()
        .map(|(i, b)| {
            if b.iter().all(|&x| x == 0) {
                return None;
            }
            assert_eq!(&b[..8], b"S3BCRASH", "block {i} holds garbage");
            let word = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
            assert_eq!(word(16), i as u32, "block {i} holds another block's data");
            Some(Write {
                epoch: word(8),
                seq: word(12),
            })
        })
        .collect()
}

fn params(bucket: &str, cache: &Path, extra: &[&str]) -> Vec<String> {
    let mut p = Garage::shared().params();
    p.extend([
        format!("bucket={bucket}"),
        "size=1m".into(),
        "blockSize=4k".into(),
        "blockCacheSize=64".into(),
        "blockCacheWriteDelay=30".into(),
        format!("blockCacheFile={}", cache.display()),
        "blockCacheRecoverDirtyBlocks=true".into(),
    ]);
    p.extend(extra.iter().map(|s| s.to_string()));
    p
}

fn kill_at_random(nbd: Nbdkit, mut w: Child) {
    let delay = 150 + random_u64() % 1100;
    std::thread::sleep(Duration::from_millis(delay));
    nbd.kill9();
    let _ = w.wait();
}

#[test]
fn flushed_writes_survive_sigkill() {
    let g = Garage::shared();
    for extra in [&[][..], &["blockCacheLocalFlush=true"][..]] {
        let bucket = g.new_bucket("crash");
        let dir = TempDir::new("crash");
        let cache = dir.join("cache");
        let p = params(&bucket, &cache, extra);
        // What each block is known to hold after the previous cycle's check.
        let mut truth: Vec<Option<Write>> = vec![None; BLOCKS as usize];
        let mut next_epoch = 1;
        let mut nbd = Nbdkit::start(&p).expect("start");
        for cycle in 0..11 {
            let log = dir.join(&format!("log{cycle}"));
            let seed = random_u64();
            let w = writer(&nbd.uri(), seed, next_epoch, &log);
            kill_at_random(nbd, w);
            let (writes, flushed, max_epoch) = parse_log(&log);
            nbd = Nbdkit::start(&p)
                .unwrap_or_else(|e| panic!("cycle {cycle}: restart after kill failed: {e}"));
            let actual = blocks_of(&nbd.uri());
            for b in 0..BLOCKS {
                let ws = writes.get(&b).cloned().unwrap_or_default();
                let committed = ws
                    .iter()
                    .rev()
                    .find(|w| w.epoch <= flushed)
                    .copied()
                    .or(truth[b as usize]);
                let mut allowed: Vec<Option<Write>> = vec![committed];
                allowed.extend(ws.iter().filter(|w| w.epoch > flushed).map(|&w| Some(w)));
                assert!(
                    allowed.contains(&actual[b as usize]),
                    "{extra:?} cycle {cycle} (seed {seed}): block {b} holds {:?}; acknowledged by FLUSH {flushed}: {committed:?}, later: {:?}",
                    actual[b as usize],
                    &allowed[1..]
                );
            }
            truth = actual;
            next_epoch = max_epoch.max(next_epoch) + 1;
        }
        let (status, log) = nbd.stop();
        assert!(status.success(), "{log}");
    }
}

#[test]
fn without_its_cache_file_the_bucket_keeps_flush_order() {
    let g = Garage::shared();
    for cycle in 0..10 {
        let bucket = g.new_bucket("order");
        let dir = TempDir::new("order");
        let cache = dir.join("cache");
        let p = params(&bucket, &cache, &["blockCacheLocalFlush=true"]);
        let nbd = Nbdkit::start(&p).expect("start");
        let log = dir.join("log");
        let seed = random_u64();
        let w = writer(&nbd.uri(), seed, 1, &log);
        kill_at_random(nbd, w);
        // The machine lost its local disk: only the bucket remains.
        std::fs::remove_file(&cache).expect("delete the cache file");
        let mut fresh = params(&bucket, &dir.join("new-cache"), &["force=true"]);
        fresh.retain(|x| x != "blockCacheRecoverDirtyBlocks=true");
        let nbd = Nbdkit::start(&fresh).expect("restart on the bucket alone");
        let actual = blocks_of(&nbd.uri());
        let (writes, flushed, _) = parse_log(&log);
        let k = actual.iter().flatten().map(|w| w.epoch).max().unwrap_or(0);
        for b in 0..BLOCKS {
            let ws = writes.get(&b).cloned().unwrap_or_default();
            let before = ws.iter().rev().find(|w| w.epoch < k).copied();
            let mut allowed = vec![before];
            allowed.extend(ws.iter().filter(|w| w.epoch == k).map(|&w| Some(w)));
            assert!(
                allowed.contains(&actual[b as usize]),
                "cycle {cycle} (seed {seed}): the bucket shows epoch {k} but block {b} holds {:?}, \
                 expected one of {allowed:?} (flushed locally through epoch {flushed})",
                actual[b as usize]
            );
        }
    }
}
