//! Crash loops with a real filesystem: ext4 on a loop device over our FUSE file, a writer that
//! fsyncs files and records them only once fsync returned, and our process killed with SIGKILL
//! at a random moment, cycle after cycle with the cache file on. After every restart (which
//! recovers the cache file's dirty blocks), mounting ext4 replays its journal, every recorded
//! file reads back with its checksum, and `e2fsck -fn` finds the filesystem clean.
//!
//! `S3B_CRASH_CYCLES` sets the number of cycles (default 8 here; `bench/crash-loop.sh` runs 50).

use s3backer_e2e::fuse::*;
use s3backer_e2e::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn sha(data: &[u8]) -> String {
    // Content identity for the check: length plus a cheap FNV over the bytes (the data is
    // random, so a collision would need a coincidence, not a bug).
    let mut h: u64 = 0xcbf29ce484222325;
    for &b in data {
        h = (h ^ u64::from(b)).wrapping_mul(0x100000001b3);
    }
    format!("{}:{h:016x}", data.len())
}

fn sys_ok(cmd: &str, args: &[&str]) {
    run_ok(Command::new(cmd).env("PATH", system_path()).args(args));
}

/// Writes files with fsync until told to stop or an error (the disk died); records each file
/// only after its fsync returned.
fn writer(
    dir: PathBuf,
    cycle: usize,
    stop: Arc<AtomicBool>,
    done: Arc<Mutex<Vec<(PathBuf, String)>>>,
) {
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let path = dir.join(format!("c{cycle:02}-f{n:04}"));
        let data = random_bytes(4096 + (random_u64() % (512 * 1024)) as usize);
        let ok = std::fs::File::create(&path)
            .and_then(|mut f| {
                f.write_all(&data)?;
                f.sync_all()
            })
            .is_ok();
        if !ok {
            return;
        }
        done.lock().expect("lock").push((
            path.file_name().map(PathBuf::from).unwrap_or_default(),
            sha(&data),
        ));
    }
}

fn verify(dir: &Path, files: &[(PathBuf, String)], cycle: usize) {
    for (name, want) in files {
        let got = std::fs::read(dir.join(name)).map(|d| sha(&d));
        assert_eq!(
            got.as_ref().ok(),
            Some(want),
            "cycle {cycle}: fsync'd file {} lost or changed: {got:?}",
            name.display()
        );
    }
}

#[test]
fn ext4_survives_repeated_sigkill_with_the_cache_file() {
    let cycles: usize = std::env::var("S3B_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let g = Garage::shared();
    let bucket = g.new_bucket("crash-ext4");
    let dir = TempDir::new("crash-ext4");
    let mut flags = g.flags();
    flags.extend([
        "--size=128m".to_string(),
        "--blockSize=64k".to_string(),
        "--blockCacheSize=512".to_string(),
        "--blockCacheWriteDelay=200".to_string(),
        format!("--blockCacheFile={}", dir.join("cache").display()),
        "--blockCacheRecoverDirtyBlocks".to_string(),
    ]);
    let recorded: Arc<Mutex<Vec<(PathBuf, String)>>> = Arc::default();
    for cycle in 0..cycles {
        let m = FuseMount::start(&flags, &bucket)
            .unwrap_or_else(|e| panic!("cycle {cycle}: start: {e}"));
        let lo = LoopDev::attach(&m.file());
        if cycle == 0 {
            sys_ok("mkfs.ext4", &["-q", &lo.dev]);
        }
        {
            // Mounting replays the journal left by the previous crash.
            let fs = Mounted::mount(&lo.dev, &[]);
            verify(fs.dir.path(), &recorded.lock().expect("lock"), cycle);
            let stop = Arc::new(AtomicBool::new(false));
            let w = {
                let (d, s, r) = (fs.dir.path().to_path_buf(), stop.clone(), recorded.clone());
                std::thread::spawn(move || writer(d, cycle, s, r))
            };
            std::thread::sleep(Duration::from_millis(300 + random_u64() % 1500));
            let log = m.kill9();
            stop.store(true, Ordering::Relaxed);
            let _ = w.join();
            assert!(
                !log.contains("ERROR"),
                "cycle {cycle}: errors before the kill:\n{log}"
            );
            drop(fs);
        }
        drop(lo);
        // The next cycle's start recovers; between cycles the filesystem must check clean.
        let m = FuseMount::start(&flags, &bucket)
            .unwrap_or_else(|e| panic!("cycle {cycle}: restart: {e}"));
        assert!(
            m.log().contains("recovering from unclean shutdown"),
            "cycle {cycle}: {}",
            m.log()
        );
        let lo = LoopDev::attach(&m.file());
        {
            let fs = Mounted::mount(&lo.dev, &[]);
            verify(fs.dir.path(), &recorded.lock().expect("lock"), cycle);
        }
        sys_ok("e2fsck", &["-fn", &lo.dev]);
        drop(lo);
        let (status, log) = m.unmount();
        assert!(status.success(), "cycle {cycle}: clean unmount: {log}");
    }
    let files = recorded.lock().expect("lock").len();
    assert!(
        files > cycles,
        "the writer wrote only {files} files in {cycles} cycles"
    );
    eprintln!("{cycles} SIGKILL cycles, {files} fsync'd files verified after every restart");
}
