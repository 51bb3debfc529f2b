//! Debian's s3backer 1.5.4 (the C original) in FUSE mode, for interoperability tests: it mounts
//! the bucket as `<mountpoint>/file`; unmounting makes it flush and exit.

use crate::tools::{TempDir, run, system_path, wait_until};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running original s3backer.
pub struct Original {
    child: Option<Child>,
    /// The mount point.
    pub mountpoint: TempDir,
    log: PathBuf,
    _logdir: TempDir,
}

fn mounted(path: &std::path::Path) -> bool {
    std::fs::read_to_string("/proc/mounts")
        .map(|m| {
            m.lines()
                .any(|l| l.split_whitespace().nth(1) == Some(&path.display().to_string()))
        })
        .unwrap_or(false)
}

impl Original {
    /// `s3backer -f FLAGS BUCKET MOUNTPOINT`; `Err(stderr)` if it exits instead of mounting.
    pub fn mount(flags: &[String], bucket: &str) -> Result<Original, String> {
        let mountpoint = TempDir::new("orig-mnt");
        let logdir = TempDir::new("orig-log");
        let log = logdir.join("stderr");
        let stderr = std::fs::File::create(&log).expect("log");
        let mut child = Command::new("/usr/bin/s3backer")
            .env("PATH", system_path())
            .arg("-f")
            .args(flags)
            .arg(bucket)
            .arg(mountpoint.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run /usr/bin/s3backer: {e} (apt-get install s3backer)")
            });
        let mut exited = None;
        let ok = wait_until(Duration::from_secs(60), || {
            if let Ok(Some(s)) = child.try_wait() {
                exited = Some(s);
                return true;
            }
            mounted(mountpoint.path())
        });
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(s) = exited {
            return Err(format!("s3backer 1.5.4 exited with {s}: {text}"));
        }
        assert!(ok, "s3backer 1.5.4 did not mount within 60 s: {text}");
        Ok(Original {
            child: Some(child),
            mountpoint,
            log,
            _logdir: logdir,
        })
    }

    /// The disk file inside the mount.
    pub fn file(&self) -> PathBuf {
        self.mountpoint.join("file")
    }

    /// Unmounts and waits for the process to flush and exit; returns its stderr.
    pub fn unmount(mut self) -> String {
        self.finish()
    }

    fn finish(&mut self) -> String {
        let Some(mut child) = self.child.take() else {
            return String::new();
        };
        let out = run(Command::new("fusermount")
            .arg("-u")
            .arg(self.mountpoint.path()));
        if !out.status.success() {
            run(Command::new("umount").arg("-l").arg(self.mountpoint.path()));
        }
        let done = wait_until(Duration::from_secs(120), || {
            matches!(child.try_wait(), Ok(Some(_)))
        });
        if !done {
            let _ = child.kill();
        }
        let status = child.wait().expect("wait s3backer");
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        assert!(
            status.success(),
            "s3backer 1.5.4 exited with {status}: {text}"
        );
        text
    }
}

impl Drop for Original {
    fn drop(&mut self) {
        if self.child.is_some() && !std::thread::panicking() {
            self.finish();
        } else if let Some(mut child) = self.child.take() {
            run(Command::new("umount").arg("-l").arg(self.mountpoint.path()));
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
