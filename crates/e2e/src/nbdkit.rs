//! Real nbdkit running our plugin on a unix socket, stopped with SIGTERM (the clean path: flush,
//! clear the mount token) on drop.

use crate::tools::{TempDir, plugin_path, system_path, wait_until};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

/// A running nbdkit.
pub struct Nbdkit {
    child: Option<Child>,
    /// The unix socket.
    pub socket: PathBuf,
    dir: TempDir,
}

impl Nbdkit {
    /// Starts `nbdkit -f -U SOCKET <plugin> PARAMS...`; `Err(stderr)` if nbdkit exits instead of
    /// serving (bad parameters, bucket already mounted, ...).
    pub fn start(params: &[String]) -> Result<Nbdkit, String> {
        Self::start_with(&[], params)
    }

    /// Like [`Nbdkit::start`] with extra nbdkit options before the plugin.
    pub fn start_with(nbdkit_opts: &[&str], params: &[String]) -> Result<Nbdkit, String> {
        let dir = TempDir::new("nbdkit");
        let socket = dir.join("nbd.sock");
        let stderr = std::fs::File::create(dir.join("stderr")).expect("stderr file");
        let mut child = Command::new("nbdkit")
            .env("PATH", system_path())
            .args(["-f", "--exit-with-parent", "-U"])
            .arg(&socket)
            .args(nbdkit_opts)
            .arg(plugin_path())
            .args(params)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run nbdkit: {e} (scripts/setup.sh installs it)"));
        let mut exited = None;
        let ready = wait_until(Duration::from_secs(60), || {
            if let Ok(Some(status)) = child.try_wait() {
                exited = Some(status);
                return true;
            }
            socket.exists()
        });
        let log = std::fs::read_to_string(dir.join("stderr")).unwrap_or_default();
        if let Some(status) = exited {
            return Err(format!("nbdkit exited with {status}: {log}"));
        }
        if !ready {
            let _ = child.kill();
            return Err(format!(
                "nbdkit did not create its socket within 60 s: {log}"
            ));
        }
        Ok(Nbdkit {
            child: Some(child),
            socket,
            dir,
        })
    }

    /// The NBD URI clients connect to.
    pub fn uri(&self) -> String {
        format!("nbd+unix:///?socket={}", self.socket.display())
    }

    /// What nbdkit and the plugin wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr")).unwrap_or_default()
    }

    /// SIGTERM, then waits (up to 60 s) for a clean exit; returns the status and stderr.
    pub fn stop(mut self) -> (ExitStatus, String) {
        let status = self.terminate();
        (status, self.stderr())
    }

    /// SIGKILL: a crash. Nothing is flushed, the mount token stays.
    pub fn kill9(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn terminate(&mut self) -> ExitStatus {
        let Some(mut child) = self.child.take() else {
            panic!("nbdkit already stopped");
        };
        // SAFETY: plain kill(2) on our child's pid.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let done = wait_until(Duration::from_secs(60), || {
            matches!(child.try_wait(), Ok(Some(_)))
        });
        if !done {
            let _ = child.kill();
        }
        child.wait().expect("wait nbdkit")
    }
}

impl Drop for Nbdkit {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.terminate();
        }
    }
}
