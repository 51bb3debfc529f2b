//! Our `s3backer` in FUSE mode: a foreground process whose log the test can read, a daemonized
//! start, loop devices, and umount(8)'s helper.
//!
//! [`install_umount_helper`] puts `/sbin/umount.fuse.s3backer` and `/sbin/umount.fuse` symlinks
//! to the built binary (root; existing files that are not such symlinks are left alone), so a
//! plain `umount` waits for the final flush and the token release, as the tests check. The links
//! stay after the tests: once the build they point to is gone they dangle, and umount(8) then
//! simply finds no helper.

use crate::tools::{TempDir, run, run_ok, s3backer_bin, system_path, wait_until};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Once;
use std::time::Duration;

/// Whether `path` is a mount point now.
pub fn is_mounted(path: &Path) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|m| {
            let p = path.display().to_string();
            m.lines()
                .any(|l| l.split_whitespace().nth(4) == Some(p.as_str()))
        })
        .unwrap_or(false)
}

/// Makes umount(8) call our binary as its helper for FUSE mounts (see the module doc).
pub fn install_umount_helper() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let bin = s3backer_bin();
        for name in ["umount.fuse.s3backer", "umount.fuse"] {
            let link = Path::new("/sbin").join(name);
            match std::fs::symlink_metadata(&link) {
                Ok(m) if !m.file_type().is_symlink() => {
                    panic!("{} exists and is not our symlink", link.display())
                }
                Ok(_) => {
                    let target = std::fs::read_link(&link).unwrap_or_default();
                    if target == bin {
                        continue;
                    }
                    let ours = target.file_name().is_some_and(|n| n == "s3backer");
                    assert!(ours, "{} points to {}", link.display(), target.display());
                    std::fs::remove_file(&link).expect("remove old helper link");
                }
                Err(_) => {}
            }
            std::os::unix::fs::symlink(&bin, &link)
                .unwrap_or_else(|e| panic!("symlink {}: {e}", link.display()));
        }
    });
}

/// `umount PATH` through umount(8) (and so through our helper); returns its output.
pub fn umount(path: &Path) -> std::process::Output {
    install_umount_helper();
    run(Command::new("umount").env("PATH", system_path()).arg(path))
}

/// Our s3backer, mounted in the foreground (`-f`), logging to a file.
pub struct FuseMount {
    child: Option<Child>,
    /// The mount point.
    pub mountpoint: TempDir,
    log: PathBuf,
    _logdir: TempDir,
}

impl FuseMount {
    /// `s3backer -f FLAGS BUCKET MOUNTPOINT`; returns once the mount serves requests (its
    /// "mounted" line), or `Err(log)` if the process exits instead.
    pub fn start(flags: &[String], bucket: &str) -> Result<FuseMount, String> {
        install_umount_helper();
        let mountpoint = TempDir::new("fuse-mnt");
        let logdir = TempDir::new("fuse-log");
        let log = logdir.join("stderr");
        let stderr = std::fs::File::create(&log).expect("log file");
        let mut child = Command::new(s3backer_bin())
            .env("PATH", system_path())
            .arg("-f")
            .args(flags)
            .arg(bucket)
            .arg(mountpoint.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("run s3backer");
        let mut exited = None;
        let ready = wait_until(Duration::from_secs(60), || {
            if let Ok(Some(s)) = child.try_wait() {
                exited = Some(s);
                return true;
            }
            std::fs::read_to_string(&log).is_ok_and(|l| l.contains(" INFO: mounted "))
        });
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(s) = exited {
            return Err(format!("s3backer exited with {s}: {text}"));
        }
        if !ready {
            let _ = child.kill();
            let _ = child.wait();
            run(Command::new("umount").arg("-l").arg(mountpoint.path()));
            panic!("s3backer did not mount within 60 s: {text}");
        }
        Ok(FuseMount {
            child: Some(child),
            mountpoint,
            log,
            _logdir: logdir,
        })
    }

    /// The disk file.
    pub fn file(&self) -> PathBuf {
        self.mountpoint.join("file")
    }

    /// The stats file.
    pub fn stats(&self) -> PathBuf {
        self.mountpoint.join("stats")
    }

    /// What the process logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The server's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// `umount` (asserted to succeed, and to have waited: the process has exited by then);
    /// returns the process's exit status and log.
    pub fn unmount(mut self) -> (ExitStatus, String) {
        let out = umount(self.mountpoint.path());
        assert!(
            out.status.success(),
            "umount failed: {}{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        let mut child = self.child.take().expect("running");
        // The helper returned after the server's report; the exit follows within moments.
        let done = wait_until(Duration::from_secs(10), || {
            matches!(child.try_wait(), Ok(Some(_)))
        });
        assert!(done, "s3backer still running after umount returned");
        (child.wait().expect("wait"), self.log())
    }

    /// Sends `signal` to the server.
    pub fn send(&self, signal: i32) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.pid() as libc::pid_t, signal) };
    }

    /// Whether the server is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Waits (up to `timeout`) for the server to exit; returns its status and log.
    pub fn wait_exit(mut self, timeout: Duration) -> (ExitStatus, String) {
        let mut child = self.child.take().expect("running");
        let done = wait_until(timeout, || matches!(child.try_wait(), Ok(Some(_))));
        if !done {
            let _ = child.kill();
            run(Command::new("umount")
                .args(["-i", "-l"])
                .arg(self.mountpoint.path()));
        }
        (child.wait().expect("wait"), self.log())
    }

    /// SIGKILL: a crash. Nothing is flushed or released; the dead mount is detached.
    pub fn kill9(mut self) -> String {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        run(Command::new("umount").arg("-l").arg(self.mountpoint.path()));
        self.log()
    }
}

impl Drop for FuseMount {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A failing test: do not wait for anything.
            run(Command::new("umount")
                .args(["-i", "-l"])
                .arg(self.mountpoint.path()));
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A loop device over a file, detached on drop.
pub struct LoopDev {
    /// `/dev/loopN`.
    pub dev: String,
}

impl LoopDev {
    /// `losetup -f --show FILE`.
    pub fn attach(file: &Path) -> LoopDev {
        let dev = run_ok(
            Command::new("losetup")
                .env("PATH", system_path())
                .args(["-f", "--show"])
                .arg(file),
        )
        .trim()
        .to_string();
        LoopDev { dev }
    }
}

impl Drop for LoopDev {
    fn drop(&mut self) {
        let _ = run(Command::new("losetup")
            .env("PATH", system_path())
            .args(["-d", &self.dev]));
    }
}

/// A filesystem mounted on a directory of its own, unmounted on drop.
pub struct Mounted {
    /// Where.
    pub dir: TempDir,
}

impl Mounted {
    /// `mount [OPTIONS] DEV DIR`.
    pub fn mount(dev: &str, options: &[&str]) -> Mounted {
        let dir = TempDir::new("mnt");
        run_ok(
            Command::new("mount")
                .env("PATH", system_path())
                .args(options)
                .arg(dev)
                .arg(dir.path()),
        );
        Mounted { dir }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let out = run(Command::new("umount").arg(self.dir.path()));
        if !out.status.success() {
            run(Command::new("umount").arg("-l").arg(self.dir.path()));
        }
    }
}
