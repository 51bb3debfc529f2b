//! Going to the background with a readiness pipe: the command the user ran exits only once the
//! mount is live and usable (status 0), or with the background process's one-line reason
//! (status 1). mount(8), systemd and scripts can therefore trust the exit status, and a `ls` right
//! after it sees the disk file.
//!
//! Under systemd, `Type=forking` needs nothing more; for `Type=notify`, readiness is also sent as
//! `READY=1` ([`crate::notify`]): by the process itself in the foreground, by the parent (with
//! `MAINPID=` of the background process) when it daemonizes.
//!
//! [`daemonize`] must run before any thread exists: `fork` copies only the calling thread, so a
//! pool or a lock held by another thread would be lost or stuck in the child. The store's I/O
//! pool, the FUSE threads and the signal thread are all created afterwards, in the child.

use crate::notify;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The child's end of the readiness pipe.
pub struct Readiness {
    pipe: Option<File>,
}

impl Readiness {
    /// No pipe: the foreground process reports through its logs (and to systemd).
    pub fn foreground() -> Readiness {
        Readiness { pipe: None }
    }

    /// Whether we are the background process of a daemonized start.
    pub fn daemonized(&self) -> bool {
        self.pipe.is_some()
    }

    /// The mount is usable: let the parent exit 0, and detach from its terminal. In the
    /// foreground, tell systemd (`Type=notify`); the parent of a background process does that.
    pub fn ready(&mut self) {
        match self.pipe.take() {
            Some(mut pipe) => {
                let _ = pipe.write_all(b"ok\n");
                redirect_stdio_to_null();
            }
            None => notify::notify("READY=1"),
        }
    }

    /// Startup failed: the parent prints `msg` and exits 1.
    pub fn fail(&mut self, msg: &str) {
        if let Some(mut pipe) = self.pipe.take() {
            let _ = pipe.write_all(format!("error {}\n", msg.replace('\n', " ")).as_bytes());
        }
    }

    /// The end of a run that began as `daemonized` (asked before [`Readiness::ready`], which
    /// drops the pipe). In the background, an error reaches the user through the pipe if still
    /// starting and syslog in any case, and the process exits here: the user's command has
    /// printed the outcome already, on a terminal that is no longer ours. In the foreground the
    /// outcome is returned for main to print.
    pub fn conclude(
        &mut self,
        daemonized: bool,
        outcome: Result<(), String>,
    ) -> Result<(), String> {
        if !daemonized {
            return outcome;
        }
        if let Err(e) = &outcome {
            self.fail(e);
            log::error!("{e}");
        }
        std::process::exit(i32::from(outcome.is_err()));
    }
}

/// Forks. In the parent, waits for the child's report and exits the process; in the child,
/// returns the pipe to report on (in a new session, with `/` as working directory).
pub fn daemonize() -> Result<Readiness, String> {
    // The contract above, checked: a thread here would be a hang later, not an error.
    let threads = std::fs::read_dir("/proc/self/task").map_or(1, |d| d.count());
    if threads > 1 {
        return Err(format!(
            "internal error: {threads} threads exist before going to the background"
        ));
    }
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!(
            "cannot create a pipe: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: pipe2 just returned these descriptors, owned by nobody else.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let _ = std::io::stderr().flush();
    let _ = std::io::stdout().flush();
    // SAFETY: no other thread exists yet (the caller's contract), so the child is complete.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("cannot fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        drop(read_end);
        // A session of our own: no SIGHUP/SIGINT from the terminal we were started on.
        // SAFETY: plain calls; failures are harmless here.
        unsafe {
            libc::setsid();
            libc::chdir(c"/".as_ptr());
        }
        return Ok(Readiness {
            pipe: Some(File::from(write_end)),
        });
    }
    drop(write_end);
    let mut report = String::new();
    let _ = File::from(read_end).read_to_string(&mut report);
    let report = report.trim_end();
    if report == "ok" {
        // systemd accepts this from the main process (us), which the message then hands over.
        notify::notify(&format!("MAINPID={pid}\nREADY=1"));
        std::process::exit(0);
    }
    let msg = match report.strip_prefix("error ") {
        Some(msg) => msg.to_string(),
        None => {
            // The child died without a word (a crash, SIGKILL): say how.
            let mut status = 0;
            // SAFETY: waiting for our own child.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            if libc::WIFSIGNALED(status) {
                format!(
                    "the background process was killed by signal {} during startup",
                    libc::WTERMSIG(status)
                )
            } else {
                format!(
                    "the background process exited with status {} during startup",
                    libc::WEXITSTATUS(status)
                )
            }
        }
    };
    eprintln!("s3backer: {msg}");
    std::process::exit(1);
}

/// stdin, stdout and stderr on /dev/null: the terminal (or mount(8)'s pipes) may be gone.
fn redirect_stdio_to_null() {
    let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    else {
        return;
    };
    for fd in 0..3 {
        // SAFETY: dup2 onto the standard descriptors, which we own.
        unsafe { libc::dup2(null.as_raw_fd(), fd) };
    }
}
