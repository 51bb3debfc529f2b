//! Making `umount` wait for the final flush and the release of the mount token.
//!
//! The kernel sends FUSE_DESTROY only for `fuseblk` mounts; for a plain FUSE mount, umount(2)
//! aborts the connection and returns at once, and the server learns of the unmount afterwards
//! (its read of `/dev/fuse` fails with ENODEV). So a bare umount(2) returns *before* the server
//! has flushed and deleted its mount token: a new mount of the bucket started right then finds
//! the token and refuses. (Measured with the original s3backer as well as ours.)
//!
//! umount(8) waits for one thing: its helper, `/sbin/umount.<type>`. The `s3backer` binary is
//! that helper when called as `umount.fuse.s3backer` (found by `umount -c` and systemd, which
//! look the type up in mountinfo) or `umount.fuse` (found by a plain `umount` as root, which
//! gets the type from statfs(2) and so sees only "fuse"). As the helper it:
//! 1. finds the mount in `/proc/self/mountinfo`; anything that is not `fuse.s3backer` is handed
//!    to `umount -i` unchanged (so installing it as `umount.fuse` is safe for other FUSE
//!    filesystems);
//! 2. connects to the server's socket `/run/s3backer/fuse-<major>-<minor>.sock` (the mount's
//!    device number), before unmounting, so it cannot miss the report;
//! 3. unmounts (`-l`: MNT_DETACH, and then does not wait; `-f`: MNT_FORCE);
//! 4. waits for the server's one-line report: `ok` (exit 0) or `error <why>` (message, exit 32,
//!    umount's "unmount failure").
//!
//! The server side is [`Waiters`]: it listens on that socket from the moment the mount is ready
//! and answers every connection with the outcome of the final flush and token release.

use crate::mountinfo;
use std::ffi::CString;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

const SOCKET_DIR: &str = "/run/s3backer";

/// umount(8)'s exit status for "unmount failed".
const UMOUNT_FAILURE: u8 = 32;

fn socket_path((major, minor): (u32, u32)) -> PathBuf {
    Path::new(SOCKET_DIR).join(format!("fuse-{major}-{minor}.sock"))
}

/// Whether the program was called as an umount helper (`umount.fuse`, `umount.fuse.s3backer`).
pub fn called_as_helper(argv0: &str) -> bool {
    let name = Path::new(argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    name.starts_with("umount.")
}

/// Whether a helper that reaches us is installed where a plain `umount` looks (informational).
pub fn helper_installed() -> bool {
    ["umount.fuse", "umount.fuse.s3backer"].iter().any(|n| {
        std::fs::canonicalize(Path::new("/sbin").join(n))
            .ok()
            .zip(std::env::current_exe().ok())
            .is_some_and(|(a, b)| std::fs::canonicalize(b).is_ok_and(|b| a == b))
    })
}

/// The server side: who is waiting for the final report.
pub struct Waiters {
    listener: Mutex<Option<(UnixListener, PathBuf)>>,
    streams: Mutex<Vec<UnixStream>>,
}

impl Waiters {
    /// Nobody yet, and no socket.
    pub fn new() -> Arc<Waiters> {
        Arc::new(Waiters {
            listener: Mutex::new(None),
            streams: Mutex::new(Vec::new()),
        })
    }

    /// Listens on the socket of the mount with device `dev` (root only: the directory is
    /// root's). Failures only cost the waiting, so they are logged, not fatal.
    pub fn listen(self: &Arc<Self>, dev: (u32, u32)) {
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let path = socket_path(dev);
        let bound = std::fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(SOCKET_DIR)
            .and_then(|()| {
                // A socket left by a server that was killed: its device number is ours now.
                let _ = std::fs::remove_file(&path);
                UnixListener::bind(&path)
            })
            .and_then(|l| {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
                Ok(l)
            });
        let listener = match bound {
            Ok(l) => l,
            Err(e) => {
                log::warn!(
                    "cannot create {} ({e}): umount will not wait for the final flush",
                    path.display()
                );
                return;
            }
        };
        let accepting = match listener.try_clone() {
            Ok(l) => l,
            Err(e) => {
                log::warn!("cannot listen on {}: {e}", path.display());
                return;
            }
        };
        *self.listener.lock().unwrap_or_else(|e| e.into_inner()) = Some((listener, path));
        let me = self.clone();
        let spawned = std::thread::Builder::new()
            .name("s3b-umount-wait".into())
            .spawn(move || {
                for stream in accepting.incoming().flatten() {
                    me.streams
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(stream);
                }
            });
        if let Err(e) = spawned {
            log::warn!("cannot start the umount waiter thread: {e}");
        }
    }

    /// Tells every waiter how the shutdown went, and removes the socket.
    pub fn report(&self, outcome: &Result<(), String>) {
        let line = match outcome {
            Ok(()) => "ok\n".to_string(),
            Err(e) => format!("error {}\n", e.replace('\n', " ")),
        };
        let mut streams =
            std::mem::take(&mut *self.streams.lock().unwrap_or_else(|e| e.into_inner()));
        if let Some((listener, path)) = self
            .listener
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            // Connections the accept thread has not picked up yet.
            if listener.set_nonblocking(true).is_ok() {
                streams.extend(listener.incoming().map_while(Result::ok));
            }
            let _ = std::fs::remove_file(path);
        }
        for mut s in streams {
            let _ = s.write_all(line.as_bytes());
        }
    }
}

/// What umount(8) passed to the helper.
#[derive(Debug, Default, PartialEq, Eq)]
struct HelperArgs {
    target: Option<String>,
    lazy: bool,
    force: bool,
    verbose: bool,
    namespace: bool,
}

fn parse_helper_args(args: &[String]) -> HelperArgs {
    let mut h = HelperArgs::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-l" => h.lazy = true,
            "-f" => h.force = true,
            "-v" => h.verbose = true,
            "-n" | "-r" => {}
            "-t" => {
                it.next();
            }
            "-N" => {
                h.namespace = true;
                it.next();
            }
            a if a.starts_with('-') => {
                // Combined flags (-lf): umount(8) never sends them, but be lenient.
                h.lazy |= a.contains('l');
                h.force |= a.contains('f');
                h.verbose |= a.contains('v');
            }
            a if h.target.is_none() => h.target = Some(a.to_string()),
            _ => {}
        }
    }
    h
}

/// Runs as umount(8)'s helper; `args` excludes argv[0].
pub fn main(args: &[String]) -> ExitCode {
    let h = parse_helper_args(args);
    let Some(target) = h.target.clone() else {
        eprintln!("umount: s3backer helper: no mount point given");
        return ExitCode::from(1);
    };
    let entry = mountinfo::mounted_at(Path::new(&target));
    let ours = entry.as_ref().is_some_and(|e| e.fstype == "fuse.s3backer");
    if !ours || h.namespace {
        // Not ours (another FUSE filesystem, or in another mount namespace): plain umount,
        // without helpers (-i), so this does not come back here.
        let err = std::process::Command::new("umount")
            .arg("-i")
            .args(args)
            .exec();
        eprintln!("umount: s3backer helper: cannot run umount: {err}");
        return ExitCode::from(1);
    }
    let dev = entry.map(|e| e.dev).unwrap_or_default();
    // Connect first: once unmounted, the server may report and exit at any moment.
    let waiter = if h.lazy {
        None
    } else {
        UnixStream::connect(socket_path(dev)).ok()
    };
    let Ok(path) = CString::new(Path::new(&target).as_os_str().as_bytes()) else {
        eprintln!("umount: {target}: invalid path");
        return ExitCode::from(1);
    };
    let flags = if h.lazy {
        libc::MNT_DETACH
    } else if h.force {
        libc::MNT_FORCE
    } else {
        0
    };
    // SAFETY: a valid C string.
    if unsafe { libc::umount2(path.as_ptr(), flags) } != 0 {
        let e = std::io::Error::last_os_error();
        let why = match e.raw_os_error() {
            Some(libc::EBUSY) => "target is busy.".to_string(),
            _ => e.to_string(),
        };
        eprintln!("umount: {target}: {why}");
        return ExitCode::from(UMOUNT_FAILURE);
    }
    let Some(stream) = waiter else {
        if h.verbose {
            eprintln!("umount: {target} unmounted");
        }
        return ExitCode::SUCCESS;
    };
    let mut line = String::new();
    let _ = BufReader::new(stream).read_line(&mut line);
    match line.trim_end() {
        "ok" => {
            if h.verbose {
                eprintln!("umount: {target} unmounted (flushed, mount token released)");
            }
            ExitCode::SUCCESS
        }
        l => {
            let why = l
                .strip_prefix("error ")
                .unwrap_or("the s3backer process ended without reporting its final flush");
            eprintln!("umount: {target}: unmounted, but s3backer's shutdown failed: {why}");
            ExitCode::from(UMOUNT_FAILURE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn helper_names_and_arguments() {
        assert!(called_as_helper("/sbin/umount.fuse"));
        assert!(called_as_helper("umount.fuse.s3backer"));
        assert!(!called_as_helper("/usr/bin/s3backer"));
        let h = parse_helper_args(&args(&["/mnt/x", "-n", "-l", "-t", "fuse.s3backer"]));
        assert_eq!(
            h,
            HelperArgs {
                target: Some("/mnt/x".into()),
                lazy: true,
                ..Default::default()
            }
        );
        let h = parse_helper_args(&args(&["/mnt/x", "-f", "-v", "-N", "/proc/1/ns/mnt"]));
        assert!(h.force && h.verbose && h.namespace);
    }

    #[test]
    fn the_report_reaches_a_waiter_connected_before_it() {
        let dir = std::env::temp_dir().join(format!("s3b-waiters-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("s.sock");
        let listener = UnixListener::bind(&path).expect("bind");
        let waiters = Waiters::new();
        *waiters.listener.lock().expect("lock") = Some((listener, path.clone()));
        // Not accepted by any thread: report() must still find it.
        let client = UnixStream::connect(&path).expect("connect");
        waiters.report(&Err("flush failed".into()));
        let mut line = String::new();
        BufReader::new(client).read_line(&mut line).expect("read");
        assert_eq!(line, "error flush failed\n");
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
