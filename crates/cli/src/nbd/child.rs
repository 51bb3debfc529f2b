//! Running nbdkit and nbd-client: secret pipes, and their output, read line by line by a thread
//! that forwards it to our log (stderr in the foreground, syslog once daemonized) and keeps the
//! last lines, so a failure can be reported as the one line that says why.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, PipeReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Lines kept for error messages.
const KEPT_LINES: usize = 50;

/// A pipe holding `contents`, write end already closed; the read end is inheritable (no
/// `FD_CLOEXEC`), for the child to open as `/dev/fd/N`. Made while no other thread spawns
/// processes, and closed right after nbdkit starts, so only nbdkit inherits it.
pub fn secret_pipe(contents: &[u8]) -> std::io::Result<OwnedFd> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 just returned these descriptors, owned by nobody else.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // A pipe holds 64 KiB before a write blocks; a password or a key line is far smaller.
    if contents.len() >= 4096 {
        return Err(std::io::Error::other("secret too long"));
    }
    std::fs::File::from(write_end).write_all(contents)?;
    // SAFETY: plain fcntl on a descriptor we own.
    if unsafe { libc::fcntl(read_end.as_raw_fd(), libc::F_SETFD, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(read_end)
}

/// How a child's lines reach the user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forward {
    /// Foreground: nbdkit's lines as they are (the plugin's carry our log format already).
    Verbatim,
    /// Daemonized: through our logger (syslog), at the level the line carries.
    Log,
    /// Only kept, logged at debug level (nbd-client's chatter).
    Debug,
}

/// A child's combined stdout and stderr, read by a thread.
pub struct Output {
    name: &'static str,
    lines: Arc<Mutex<Kept>>,
    thread: Option<JoinHandle<()>>,
}

/// The last lines, and how many there were in all.
#[derive(Default)]
struct Kept {
    last: VecDeque<String>,
    total: usize,
}

impl Output {
    /// Points `cmd`'s stdout and stderr at one pipe; [`Output::start`] reads it once spawned.
    pub fn pipe(cmd: &mut Command) -> std::io::Result<PipeReader> {
        let (reader, writer) = std::io::pipe()?;
        cmd.stdout(writer.try_clone()?).stderr(writer);
        Ok(reader)
    }

    pub fn start(
        name: &'static str,
        reader: PipeReader,
        forward: Forward,
    ) -> std::io::Result<Output> {
        let lines = Arc::new(Mutex::new(Kept::default()));
        let kept = lines.clone();
        let thread = std::thread::Builder::new()
            .name(format!("s3b-{name}-log"))
            .spawn(move || {
                for line in BufReader::new(reader).lines() {
                    let Ok(line) = line else { break };
                    forward_line(name, &line, forward);
                    let mut k = kept.lock().unwrap_or_else(|e| e.into_inner());
                    if k.last.len() == KEPT_LINES {
                        k.last.pop_front();
                    }
                    k.last.push_back(line);
                    k.total += 1;
                }
            })?;
        Ok(Output {
            name,
            lines,
            thread: Some(thread),
        })
    }

    /// Waits until everything the child wrote is read (call after it exited: the pipe closes
    /// with its last holder).
    pub fn finish(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// The line that best says why the child failed to start: the last error it printed,
    /// else its last line (a usage message, say).
    pub fn reason(&self) -> Option<String> {
        let k = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        reason(self.name, k.last.iter().map(String::as_str))
    }

    /// The last error line it printed, if any (for a child that died later: its last line is
    /// then usually unrelated).
    pub fn last_error(&self) -> Option<String> {
        self.error_since(0)
    }

    /// How many lines were read so far (a mark for [`Output::error_since`]).
    pub fn mark(&self) -> usize {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).total
    }

    /// The last error line printed after `mark` (nbdkit exits 0 even when the plugin's
    /// final flush failed; the plugin says so in an error line).
    pub fn error_since(&self, mark: usize) -> Option<String> {
        let k = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let new = k.total.saturating_sub(mark).min(k.last.len());
        let recent = k.last.iter().skip(k.last.len() - new);
        let errors: Vec<&str> = recent
            .map(String::as_str)
            .filter(|l| classify(l).0 == log::Level::Error)
            .collect();
        reason(self.name, errors.into_iter())
    }
}

/// Picks the error message out of a child's lines.
fn reason<'a>(name: &str, lines: impl DoubleEndedIterator<Item = &'a str>) -> Option<String> {
    let lines: Vec<&str> = lines.filter(|l| !l.trim().is_empty()).collect();
    let error = lines.iter().rev().find_map(|l| {
        // nbdkit: "nbdkit: error: ..." / "nbdkit: s3backer[1]: error: ..."; the plugin's own
        // lines: "2025-01-01 12:00:00 ERROR: ..."; nbd-client: "Error: ...".
        l.split_once("error: ")
            .or_else(|| l.split_once("ERROR: "))
            .or_else(|| l.split_once("Error: "))
            .map(|(_, msg)| msg.trim().to_owned())
    });
    error
        .or_else(|| lines.last().map(|l| l.trim().to_owned()))
        .map(|msg| {
            msg.strip_prefix(&format!("{name}: "))
                .unwrap_or(&msg)
                .to_owned()
        })
}

/// The level and message of one line, for the logger: the plugin's lines carry our own format
/// (`YYYY-MM-DD HH:MM:SS LEVEL: message`), nbdkit's say `error:` or `debug:`.
fn classify(line: &str) -> (log::Level, &str) {
    let bytes = line.as_bytes();
    let stamped = bytes.len() > 20
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes[10] == b' '
        && bytes[13] == b':'
        && bytes[16] == b':'
        && bytes[19] == b' ';
    if stamped && let Some((level, msg)) = line[20..].split_once(": ") {
        let level = match level {
            "ERROR" => log::Level::Error,
            "WARNING" => log::Level::Warn,
            "DEBUG" => log::Level::Debug,
            _ => log::Level::Info,
        };
        return (level, msg);
    }
    if line.contains("error:") {
        (log::Level::Error, line)
    } else if line.contains("debug:") {
        (log::Level::Debug, line)
    } else {
        (log::Level::Info, line)
    }
}

fn forward_line(name: &str, line: &str, forward: Forward) {
    match forward {
        Forward::Verbatim => {
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        }
        Forward::Log => {
            let (level, msg) = classify(line);
            // Our logger keeps other targets' lines only when they are warnings or worse.
            log::log!(target: "s3backer::nbdkit", level, "{msg}");
        }
        Forward::Debug => log::debug!("{name}: {line}"),
    }
}

/// Spawns `cmd` in a process group of its own: a Ctrl-C on the terminal reaches only the
/// wrapper, which then stops the children in the right order.
pub fn spawn(cmd: &mut Command, what: &str) -> Result<Child, String> {
    cmd.stdin(Stdio::null())
        .process_group(0)
        // Ours, not theirs: a child must not report readiness or take over socket activation.
        .env_remove("NOTIFY_SOCKET")
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_FDNAMES");
    cmd.spawn().map_err(|e| format!("cannot run {what}: {e}"))
}

/// Sends `sig` to a child that has not been waited for (so its pid is still its own).
pub fn signal(child: &Child, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: plain kill(2) of our own unreaped child.
        unsafe { libc::kill(pid, sig) };
    }
}

/// How a child ended, for messages.
pub fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by {}", crate::signals::name(sig)),
        _ => status.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons() {
        let r = |lines: &[&str]| reason("nbdkit", lines.iter().copied());
        assert_eq!(
            r(&[
                "2026-11-26 04:51:26 INFO: auto-detecting block size and total file size...",
                "nbdkit: error: the disk in this directory is in use by another s3backer process",
            ])
            .as_deref(),
            Some("the disk in this directory is in use by another s3backer process")
        );
        assert_eq!(
            r(&["2026-11-26 04:51:26 ERROR: flush failed", "nbdkit: exiting"]).as_deref(),
            Some("flush failed")
        );
        assert_eq!(
            r(&["nbdkit: s3backer[1]: error: bucket is mounted", ""]).as_deref(),
            Some("bucket is mounted")
        );
        assert_eq!(
            r(&["nbdkit: something odd"]).as_deref(),
            Some("something odd")
        );
        assert_eq!(r(&[]), None);
        let n = reason(
            "nbd-client",
            ["Negotiation: ..", "Error: CONNECT failed"].into_iter(),
        );
        assert_eq!(n.as_deref(), Some("CONNECT failed"));
    }

    #[test]
    fn classification() {
        assert_eq!(
            classify("2026-11-26 04:51:26 WARNING: slow"),
            (log::Level::Warn, "slow")
        );
        assert_eq!(
            classify("2026-11-26 04:51:26 INFO: a: b"),
            (log::Level::Info, "a: b")
        );
        assert_eq!(classify("nbdkit: error: x").0, log::Level::Error);
        assert_eq!(classify("nbdkit: debug: x").0, log::Level::Debug);
        assert_eq!(classify("short").0, log::Level::Info);
    }

    #[test]
    fn secret_pipe_reads_back_once_through_dev_fd() {
        let fd = secret_pipe(b"pw\n").expect("pipe");
        let text = std::fs::read_to_string(format!("/dev/fd/{}", fd.as_raw_fd())).expect("read");
        assert_eq!(text, "pw\n");
        // SAFETY: fcntl F_GETFD on our descriptor.
        let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
        assert_eq!(flags & libc::FD_CLOEXEC, 0, "inheritable");
    }
}
