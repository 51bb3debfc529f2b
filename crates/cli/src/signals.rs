//! SIGTERM, SIGINT and SIGHUP in FUSE mode: unmount cleanly, like `umount` would. (The `--nbd`
//! supervisor uses [`block_with_children`] and [`wait`] instead: one loop for signals and for
//! its children's exits.)
//!
//! The signals are blocked in the main thread before any thread exists ([`block`]), so every
//! thread inherits the mask and only the signal thread ([`spawn`]) receives them, with
//! `sigwait`: no async-signal-safety constraints, ordinary code runs on a signal.
//!
//! * First signal: unmount the mount point. The FUSE session then ends on its own and the
//!   normal shutdown runs (final flush, mount token released, exit 0). If the mount is busy (a
//!   loop device or an open file still uses the disk file), it is detached instead: it leaves the
//!   namespace at once and is served until its last user closes it, so nothing in flight is lost.
//! * Second signal: stop now. The FUSE connection is aborted through fusectl when it is mounted
//!   (the session ends, the normal shutdown runs); otherwise the disk is flushed, the token
//!   released and the process exits.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const SIGNALS: [libc::c_int; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

fn signal_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset before use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: set is a valid sigset_t.
    unsafe {
        libc::sigemptyset(&mut set);
        for s in SIGNALS {
            libc::sigaddset(&mut set, s);
        }
    }
    set
}

/// Blocks the shutdown signals in the calling thread and every thread it creates later.
pub fn block() -> Result<(), String> {
    let set = signal_set();
    // SAFETY: a valid set; the old mask is not needed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(format!(
            "cannot block signals: {}",
            std::io::Error::from_raw_os_error(rc)
        ));
    }
    Ok(())
}

/// Like [`block`], plus SIGCHLD, so that [`wait`] also wakes when a child exits. Children
/// spawned with `std::process::Command` start with an empty mask (std resets it), so nbdkit and
/// nbd-client still get their signals.
pub fn block_with_children() -> Result<(), String> {
    block()?;
    // SAFETY: sigset_t is plain data, initialised by sigemptyset before use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: a valid set; the old mask is not needed.
    let rc = unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut())
    };
    if rc != 0 {
        return Err(format!(
            "cannot block signals: {}",
            std::io::Error::from_raw_os_error(rc)
        ));
    }
    Ok(())
}

/// Waits up to `timeout` for SIGTERM, SIGINT, SIGHUP or SIGCHLD (blocked beforehand with
/// [`block_with_children`]); `None` when none came.
pub fn wait(timeout: std::time::Duration) -> Option<libc::c_int> {
    let mut set = signal_set();
    // SAFETY: set is a valid sigset_t.
    unsafe { libc::sigaddset(&mut set, libc::SIGCHLD) };
    let ts = libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        // Below 10^9: fits any c_long.
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: a valid set and timeout; the siginfo is not needed.
    let sig = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &ts) };
    (sig > 0).then_some(sig)
}

/// A signal's name for messages.
pub fn name(sig: libc::c_int) -> &'static str {
    match sig {
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGHUP => "SIGHUP",
        libc::SIGCHLD => "SIGCHLD",
        libc::SIGKILL => "SIGKILL",
        _ => "a signal",
    }
}

/// What the signal thread needs to know about the mount.
pub struct Stopper {
    /// The mount point.
    pub mount_point: PathBuf,
    /// The mount's device number, once known (for fusectl).
    pub dev: OnceLock<(u32, u32)>,
    /// Flush, release the token and exit: the last resort of a second signal.
    pub emergency_stop: Box<dyn Fn() + Send + Sync>,
}

/// Starts the thread that turns signals into an unmount.
pub fn spawn(stopper: std::sync::Arc<Stopper>) -> Result<(), String> {
    std::thread::Builder::new()
        .name("s3b-signals".into())
        .spawn(move || wait_loop(&stopper))
        .map(|_| ())
        .map_err(|e| format!("cannot start the signal thread: {e}"))
}

fn wait_loop(stopper: &Stopper) {
    let set = signal_set();
    let mut received = 0;
    loop {
        let mut sig = 0;
        // SAFETY: a valid set and an out-parameter.
        if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
            continue;
        }
        received += 1;
        let name = match sig {
            libc::SIGTERM => "SIGTERM",
            libc::SIGINT => "SIGINT",
            _ => "SIGHUP",
        };
        let mp = &stopper.mount_point;
        if received == 1 {
            log::info!("received {name}: unmounting {}", mp.display());
            unmount_or_detach(mp);
            continue;
        }
        log::warn!("received {name} again: stopping now");
        if let Some(&dev) = stopper.dev.get() {
            match abort_connection(dev) {
                Ok(()) => continue,
                Err(e) => log::warn!("cannot abort the FUSE connection through fusectl: {e}"),
            }
        }
        (stopper.emergency_stop)();
    }
}

/// Unmounts `mp`; when it is busy, detaches it (served until its last user closes the file).
pub fn unmount_or_detach(mp: &Path) {
    match unmount(mp, false) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            // Already unmounted (by umount, or a lazy unmount earlier).
        }
        Err(e) => {
            log::warn!(
                "{} is busy ({e}): detaching it; the disk stays served until its last user \
                 (loop device, open file) closes it; send the signal again to stop at once",
                mp.display()
            );
            if let Err(e) = unmount(mp, true) {
                log::error!("cannot detach {}: {e}", mp.display());
            }
        }
    }
}

/// umount(2) as root (MNT_DETACH when `lazy`), `fusermount3 -u [-z]` otherwise.
pub fn unmount(mp: &Path, lazy: bool) -> std::io::Result<()> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        let path = CString::new(mp.as_os_str().as_bytes())
            .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        let flags = if lazy { libc::MNT_DETACH } else { 0 };
        // SAFETY: a valid C string.
        if unsafe { libc::umount2(path.as_ptr(), flags) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        return Ok(());
    }
    let mut last = std::io::Error::other("fusermount3 not found");
    for tool in ["fusermount3", "fusermount"] {
        let mut cmd = std::process::Command::new(tool);
        cmd.arg("-u").arg("-q");
        if lazy {
            cmd.arg("-z");
        }
        match cmd.arg("--").arg(mp).output() {
            Ok(out) if out.status.success() => return Ok(()),
            Ok(out) => {
                return Err(std::io::Error::other(
                    String::from_utf8_lossy(&out.stderr).trim().to_string(),
                ));
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Aborts the FUSE connection of the mount with device `dev` through fusectl: every pending
/// request fails and the session ends.
fn abort_connection((major, minor): (u32, u32)) -> std::io::Result<()> {
    // fusectl names a connection by the kernel's dev_t of the mount (major << 20 | minor).
    let id = (u64::from(major) << 20) | u64::from(minor);
    std::fs::write(format!("/sys/fs/fuse/connections/{id}/abort"), b"1")
}
