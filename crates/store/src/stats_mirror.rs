//! `--statsFileMirror`: a copy of the statistics text kept in a regular file, for every front end
//! (FUSE mode and the nbdkit plugin), so monitoring can read the counters without a mount.
//!
//! One thread rewrites the file every `--statsFileMirrorInterval` (facts §8.6): the text goes to
//! `<path>.new`, which is then renamed onto `<path>`, so a reader never sees a half-written file.
//! Deleting the file is the reset request: if the file existed (we wrote it) and is later found
//! missing, the counters are reset before the next copy, as unlinking the FUSE stats file does.
//! An I/O error is logged once and ends the mirroring; the disk keeps serving.
//!
//! The thread is created by [`start`]: call it after any fork (nbdkit's `after_fork`, after the
//! FUSE daemon forked). [`StatsMirror::stop`] (or dropping the handle) wakes the thread at once,
//! writes a last copy and joins it.

use crate::{Disk, StoreError, StoreResult};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The running mirror; stops it when dropped.
pub struct StatsMirror {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

/// Starts mirroring `disk`'s statistics into `path` every `interval` (a zero interval is taken as
/// 1 ms). `disk` is anything that reaches the disk from another thread: an `Arc<Disk>`, or the
/// plugin's `&'static Disk`.
pub fn start<D>(disk: D, path: PathBuf, interval: Duration) -> StoreResult<StatsMirror>
where
    D: Deref<Target = Disk> + Send + 'static,
{
    let stop = Arc::new((Mutex::new(false), Condvar::new()));
    let flag = stop.clone();
    let interval = interval.max(Duration::from_millis(1));
    let thread = std::thread::Builder::new()
        .name("s3b-stats-mirror".into())
        .spawn(move || run(&disk, &path, interval, &flag))
        .map_err(|e| StoreError::io("cannot start the stats mirror thread", e))?;
    Ok(StatsMirror {
        stop,
        thread: Some(thread),
    })
}

impl StatsMirror {
    /// Stops the thread after one last copy, and waits for it.
    pub fn stop(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        let (lock, cvar) = &*self.stop;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cvar.notify_all();
        let _ = thread.join();
    }
}

impl Drop for StatsMirror {
    fn drop(&mut self) {
        self.finish();
    }
}

fn run(disk: &Disk, path: &Path, interval: Duration, stop: &(Mutex<bool>, Condvar)) {
    let mut mirror = Mirror {
        path,
        tmp: tmp_path(path),
        written: false,
    };
    let (lock, cvar) = stop;
    loop {
        if let Err(e) = mirror.update(disk) {
            log::error!(
                "stats file mirror {}: {e}; no longer mirroring",
                path.display()
            );
            return;
        }
        let deadline = Instant::now() + interval;
        let mut stopped = lock.lock().unwrap_or_else(|e| e.into_inner());
        while !*stopped {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            stopped = cvar
                .wait_timeout(stopped, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        if *stopped {
            drop(stopped);
            // A last copy, so the file shows the counters as they were at shutdown.
            if let Err(e) = mirror.update(disk) {
                log::error!("stats file mirror {}: {e}", path.display());
            }
            return;
        }
    }
}

/// `<path>.new`, next to the file (same directory, so the rename stays atomic).
fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".new");
    PathBuf::from(name)
}

struct Mirror<'a> {
    path: &'a Path,
    tmp: PathBuf,
    /// We have written the file at least once (so its absence now is a reset request).
    written: bool,
}

impl Mirror<'_> {
    fn update(&mut self, disk: &Disk) -> std::io::Result<()> {
        if self.written && !self.path.exists() {
            log::info!(
                "stats file mirror {} was removed: resetting the statistics",
                self.path.display()
            );
            disk.reset_stats();
        }
        // 0600: the counters say what a disk does; they are the owner's business.
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&self.tmp)?;
            f.write_all(disk.stats_text().as_bytes())?;
        }
        std::fs::rename(&self.tmp, self.path)?;
        self.written = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::Geometry;
    use crate::backend::memory::MemoryBackend;
    use crate::format::keys::KeyFormat;
    use crate::layers::{Checked, ObjectBlocks};

    fn disk() -> Arc<Disk> {
        let objects = ObjectBlocks::new(
            Arc::new(MemoryBackend::new()),
            KeyFormat {
                prefix: String::new(),
                hashed: false,
            },
            Geometry {
                block_size: 4096,
                num_blocks: 16,
            },
            false,
        );
        let stack = Arc::new(Checked::new(Arc::new(objects)));
        Arc::new(Disk::new(stack, 2, false).unwrap())
    }

    fn counter(text: &str, name: &str) -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().parse().unwrap()))
            .unwrap()
    }

    fn wait_for(mut f: impl FnMut() -> bool) -> bool {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    #[test]
    fn mirrors_updates_and_resets_when_the_file_is_removed() {
        let dir = std::env::temp_dir().join(format!(
            "s3b-stats-mirror-{}-{:x}",
            std::process::id(),
            crate::rand::random_u32()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("stats");
        let disk = disk();
        let mirror = start(disk.clone(), path.clone(), Duration::from_millis(10)).unwrap();
        assert!(wait_for(|| path.exists()));
        disk.write(&[1u8; 4096], 0, false).unwrap();
        assert!(wait_for(|| {
            std::fs::read_to_string(&path)
                .map(|t| counter(&t, "http_normal_blocks_written") == 1)
                .unwrap_or(false)
        }));
        // Removing the file asks for a reset; the next copy shows zero.
        std::fs::remove_file(&path).unwrap();
        assert!(wait_for(|| {
            std::fs::read_to_string(&path)
                .map(|t| counter(&t, "http_normal_blocks_written") == 0)
                .unwrap_or(false)
        }));
        assert_eq!(counter(&disk.stats_text(), "http_normal_blocks_written"), 0);
        // Stopping writes a last copy and leaves no temporary file.
        disk.write(&[2u8; 4096], 4096, false).unwrap();
        mirror.stop();
        assert_eq!(
            counter(
                &std::fs::read_to_string(&path).unwrap(),
                "http_normal_blocks_written"
            ),
            1
        );
        assert!(!tmp_path(&path).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_io_error_stops_mirroring_without_touching_the_disk() {
        let path = PathBuf::from("/nonexistent-dir-s3b/stats");
        let mirror = start(disk(), path, Duration::from_millis(1)).unwrap();
        // The thread ends by itself; stop() must not hang on it.
        std::thread::sleep(Duration::from_millis(20));
        mirror.stop();
    }
}
