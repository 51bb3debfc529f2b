//! The disk on a distributed object store: a 3-node Garage cluster on loopback (replication
//! factor 3, consistent mode; `s3backer_e2e::cluster`), real nbdkit with our plugin, and a
//! verifying load running in a loop of random writes, zeroing, verified reads and FLUSH.
//!
//! * Talking to one node, the disk rides through the SIGKILL of another node, its restart, and
//!   the SIGKILL of a third: no client error, every read matches the model, and at the end the
//!   bucket, read through another node with the first one killed, holds exactly the model.
//! * Behind a failover front over all three S3 endpoints (the test proxy with no faults
//!   planned, standing in for a load balancer), it also survives losing the very node it was
//!   talking to, with the block cache on.
//! * With two nodes of three gone (no quorum), a request fails with a clean EIO once the retry
//!   budget is spent, and I/O resumes as soon as a second node is back.
//!
//! The tests run one after the other (each with its own cluster): two clusters at once on two
//! cores would measure the machine, not the disk.

use s3backer_e2e::faults::{Reply, assert_image_matches_model};
use s3backer_e2e::*;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const BS: u32 = 16 * 1024;
const BLOCKS: u32 = 128;

/// How long a killed node stays down under the load. Whole rounds must complete in that
/// window; one round is well under a second, but a kill has been seen to stretch one to 5 s
/// on a loaded machine.
const NODE_DOWN_FOR: Duration = Duration::from_secs(8);

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn params(endpoint: &str, bucket: &str, extra: &[&str]) -> Vec<String> {
    let mut p = Cluster::params_for(endpoint);
    p.extend([
        format!("bucket={bucket}"),
        format!("size={}", BLOCKS * BS),
        format!("blockSize={BS}"),
        "timeout=10".into(),
    ]);
    p.extend(extra.iter().map(|s| s.to_string()));
    p
}

/// One round of the background load: `load` then `flush`, with when it ran.
struct Round {
    start: Instant,
    end: Instant,
    load: Reply,
    flush: Reply,
}

struct Background {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(VerifyingLoad, Vec<Round>)>,
}

/// Runs rounds of `ops` operations and a FLUSH until stopped.
fn background(mut load: VerifyingLoad, ops: u32) -> Background {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let thread = std::thread::spawn(move || {
        let mut rounds = Vec::new();
        while !s.load(Ordering::SeqCst) {
            let start = Instant::now();
            let l = load.cmd(&format!("load {ops}"));
            let f = load.cmd("flush");
            rounds.push(Round {
                start,
                end: Instant::now(),
                load: l,
                flush: f,
            });
        }
        (load, rounds)
    });
    Background { stop, thread }
}

impl Background {
    fn finish(self) -> (VerifyingLoad, Vec<Round>) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().expect("load thread")
    }
}

/// What happened to the cluster, and when.
struct Timeline(Vec<(Instant, String)>);

impl Timeline {
    fn mark(&mut self, what: String) {
        eprintln!("cluster: {what}");
        self.0.push((Instant::now(), what));
    }
}

/// Asserts every round succeeded, and that whole rounds (writes, verified reads and a FLUSH)
/// completed inside each window a node was down. Returns a summary.
fn check_rounds(rounds: &[Round], down: &[(usize, Instant, Instant)]) -> String {
    for (i, r) in rounds.iter().enumerate() {
        assert!(
            r.load.is_ok(),
            "round {i}: the load failed: {} {}",
            r.load.status,
            r.load.msg
        );
        assert!(
            r.flush.is_ok(),
            "round {i}: FLUSH failed: {} {}",
            r.flush.status,
            r.flush.msg
        );
    }
    let mut summary = Vec::new();
    for &(node, from, to) in down {
        let inside: Vec<&Round> = rounds
            .iter()
            .filter(|r| r.start >= from && r.end <= to)
            .collect();
        assert!(
            inside.len() >= 2,
            "only {} whole rounds ran while node {node} was down",
            inside.len()
        );
        let longest = rounds
            .iter()
            .filter(|r| r.end >= from && r.start <= to)
            .map(|r| r.end - r.start)
            .max()
            .unwrap_or_default();
        summary.push(format!(
            "node {node} down {:.1?}: {} whole rounds, {} writes, longest round {longest:.1?}",
            to - from,
            inside.len(),
            inside
                .iter()
                .map(|r| r.load.num("writes") + r.load.num("partial_writes"))
                .sum::<u64>(),
        ));
    }
    summary.join("; ")
}

/// The bucket, read through `endpoint` by a fresh server without a cache, holds the model.
fn bucket_matches(endpoint: &str, bucket: &str, model: &std::path::Path) -> usize {
    let nbd = Nbdkit::start(&params(endpoint, bucket, &["blockCacheSize=0"]))
        .expect("a fresh server on the bucket");
    let compared = assert_image_matches_model(&nbd_image(&nbd.uri()), model, BS);
    let (status, log) = nbd.stop();
    assert!(status.success(), "{log}");
    compared
}

/// Under the running load: after 3 s, each of `nodes` in turn is killed, stays down for
/// [`NODE_DOWN_FOR`], and is restarted, 3 s apart. Returns (node, killed, restarted) for
/// [`check_rounds`].
fn kill_and_restart_in_turn(
    cluster: &Cluster,
    nodes: &[usize],
    t: &mut Timeline,
) -> Vec<(usize, Instant, Instant)> {
    let mut down = Vec::new();
    std::thread::sleep(Duration::from_secs(3));
    for &node in nodes {
        cluster.kill(node);
        let killed = Instant::now();
        t.mark(format!("node {node} killed"));
        std::thread::sleep(NODE_DOWN_FOR);
        let restarting = Instant::now();
        down.push((node, killed, restarting));
        cluster.restart(node);
        t.mark(format!(
            "node {node} back, cluster healthy after {:.1?}",
            restarting.elapsed()
        ));
        std::thread::sleep(Duration::from_secs(3));
    }
    down
}

#[test]
fn killing_other_nodes_under_load_loses_nothing() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let cluster = Cluster::start();
    let bucket = cluster.new_bucket("cluster");
    let mut t = Timeline(Vec::new());
    t.mark(format!("up in {:.1?}", started.elapsed()));
    // No cache: every write and FLUSH goes to the cluster at once.
    let nbd = Nbdkit::start(&params(
        &cluster.endpoint(0),
        &bucket,
        &["blockCacheSize=0"],
    ))
    .expect("start on node 0");
    let load = VerifyingLoad::start(&nbd.uri(), BLOCKS, BS, 4);
    let bg = background(load, 40);
    let down = kill_and_restart_in_turn(&cluster, &[1, 2], &mut t);
    let (mut load, rounds) = bg.finish();
    let summary = check_rounds(&rounds, &down);
    let verified = load.verify_ok();
    let dir = TempDir::new("cluster");
    let model = dir.join("model");
    load.save_model(&model);
    let totals = load.finish();
    t.mark("verified".into());
    let (status, log) = nbd.stop();
    assert!(status.success(), "{log}");
    t.mark("stopped".into());

    // The node the disk talked to dies: the other two hold everything.
    cluster.kill(0);
    t.mark("node 0 killed; reading the bucket through node 1".into());
    let compared = bucket_matches(&cluster.endpoint(1), &bucket, &model);
    t.mark("read back".into());
    eprintln!(
        "cluster, one endpoint, no cache: {} rounds in {:.1?}; {summary}; {} writes, {} partial \
         writes, {} zeroings, {} flushes, {} bytes written, {} bytes verified through the plugin \
         (final read-back {}), {compared} bytes read back through node 1 with node 0 down",
        rounds.len(),
        started.elapsed(),
        totals.num("writes"),
        totals.num("partial_writes"),
        totals.num("zeroings"),
        totals.num("flushes"),
        totals.num("bytes_written"),
        totals.num("bytes_verified"),
        verified.num("bytes"),
    );
}

#[test]
fn behind_a_failover_front_the_disk_survives_losing_its_own_node() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let cluster = Cluster::start();
    let bucket = cluster.new_bucket("failover");
    let endpoints = cluster.endpoints();
    let refs: Vec<&str> = endpoints.iter().map(String::as_str).collect();
    // New connections go to node 0 while it accepts them, else node 1, else node 2.
    let front = FaultProxy::start_failover(&refs);
    let mut t = Timeline(Vec::new());
    t.mark(format!("up in {:.1?}", started.elapsed()));
    let nbd = Nbdkit::start(&params(
        &front.endpoint,
        &bucket,
        &["blockCacheSize=24", "blockCacheWriteDelay=200"],
    ))
    .expect("start behind the front");
    let load = VerifyingLoad::start(&nbd.uri(), BLOCKS, BS, 4);
    let bg = background(load, 40);
    let down = kill_and_restart_in_turn(&cluster, &[0, 1], &mut t);
    let (mut load, rounds) = bg.finish();
    let summary = check_rounds(&rounds, &down);
    load.verify_ok();
    let dir = TempDir::new("failover");
    let model = dir.join("model");
    load.save_model(&model);
    let totals = load.finish();
    let (status, log) = nbd.stop();
    assert!(status.success(), "{log}");
    let counts = front.counts();
    drop(front);
    cluster.kill(2);
    t.mark("node 2 killed; reading the bucket through node 0".into());
    let compared = bucket_matches(&cluster.endpoint(0), &bucket, &model);
    eprintln!(
        "cluster, failover front, cache: {} rounds in {:.1?}; {summary}; {} requests through \
         the front; {} bytes written, {} bytes verified through the plugin, {compared} bytes \
         read back through node 0 with node 2 down",
        rounds.len(),
        started.elapsed(),
        counts.requests,
        totals.num("bytes_written"),
        totals.num("bytes_verified"),
    );
}

#[test]
fn losing_quorum_is_a_clean_eio_and_a_returning_node_ends_it() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let cluster = Cluster::start();
    let bucket = cluster.new_bucket("quorum");
    // A 5 s retry budget, so the test does not wait the default 30 s.
    let nbd = Nbdkit::start(&params(
        &cluster.endpoint(0),
        &bucket,
        &["blockCacheSize=0", "maxRetryPause=5000"],
    ))
    .expect("start on node 0");
    let mut load = VerifyingLoad::start(&nbd.uri(), BLOCKS, BS, 4);
    load.load_ok(200);
    // Block 9 holds data (the load may have zeroed any block, and a block known to be zero
    // is read without a request).
    assert!(load.cmd("write 9").is_ok());
    load.flush_ok();
    cluster.kill(1);
    cluster.kill(2);
    // One node of three: Garage answers 503 "Could not reach quorum"; the client retries for
    // its budget, then the request fails cleanly.
    let write = load.cmd("write 3");
    let read = load.cmd("read 9");
    for r in [&write, &read] {
        assert_eq!(r.status, "err", "`{}` without quorum: {}", r.command, r.msg);
        assert_eq!(r.errno(), libc::EIO, "`{}`: {}", r.command, r.msg);
        assert!(
            (5.0..30.0).contains(&r.secs()),
            "`{}` failed after {:.1} s: not after the retry budget, or a hang",
            r.command,
            r.secs()
        );
    }
    assert!(
        nbd.stderr().contains("Could not reach quorum"),
        "the log should say why: {}",
        nbd.stderr()
    );
    // Two of three again: everything works, and everything written before is there.
    cluster.restart(1);
    let back = Instant::now();
    let w = load.cmd("write 3");
    assert!(w.is_ok(), "write with quorum back: {}", w.msg);
    load.load_ok(100);
    load.flush_ok();
    let verified = load.verify_ok();
    let dir = TempDir::new("quorum");
    let model = dir.join("model");
    load.save_model(&model);
    load.finish();
    let (status, log) = nbd.stop();
    assert!(status.success(), "{log}");
    eprintln!(
        "cluster, quorum lost: write failed after {:.1} s, read after {:.1} s (EIO); with \
         node 1 back, I/O resumed at once ({:.1?} for the first write), {} bytes verified",
        write.secs(),
        read.secs(),
        back.elapsed(),
        verified.num("bytes")
    );
}
