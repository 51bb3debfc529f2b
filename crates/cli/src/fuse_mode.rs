//! FUSE mode, `s3backer [flags] bucket[/subdir] /mount/point`: the process around the
//! filesystem of the `s3backer-fuse` crate.
//!
//! ```text
//! checks            mount point (exists, directory, nothing mounted there), /dev/fuse, root or
//!                   fusermount3; the FUSE options                      (no network, no threads)
//! Volume::open      connect, auto-detect, mount-token check           (no threads)
//! daemonize         unless -f/-d: fork; the parent waits on the readiness pipe
//! block signals     before any thread, so only the signal thread receives them
//! establish_mount   write our mount token
//! build_disk        the I/O pool (first threads)
//! stats mirror      --statsFileMirror thread
//! mount             mount(2) + FUSE handshake
//! probe thread      stat the disk file through the mount; open the umount helper's socket;
//!                   report "ready" (the parent exits 0)
//! Session::run      serve until unmounted (umount, fusermount -u, or a signal)
//! shutdown          flush; release the token only if the flush succeeded; tell umount helpers
//! ```
//! Every error before "ready" reaches the user as one `s3backer: ...` line and exit status 1,
//! from the background process through the pipe. A failure after the token was written and
//! before the mount worked releases the token again (nothing was written through the disk).

use crate::daemon::{self, Readiness};
use crate::mountinfo;
use crate::signals::{self, Stopper};
use crate::umount_helper::{self, Waiters};
use s3backer_config::Config;
use s3backer_fuse::{DiskFs, FuseOptions};
use s3backer_store::stats_mirror::{self, StatsMirror};
use s3backer_store::{Disk, Volume, logging};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// Runs FUSE mode to the end (unmount). In the background case the calling process exits inside
/// (with the child's startup outcome) and only the child returns from here.
pub fn run(config: &Config, mount_point: &str) -> Result<(), String> {
    let mount_point = check_mount_point(mount_point)?;
    check_fuse_available()?;
    DiskFs::check_names(&config.fuse)?;
    // The FUSE options, checked before any request goes out (fsname comes with the volume).
    FuseOptions::parse(&config.fuse_args, "", config.read_only)?;
    let volume = Volume::open(config).map_err(|e| e.to_string())?;
    let opts = FuseOptions::parse(&config.fuse_args, &volume.description(), config.read_only)?;
    let mut readiness = if config.foreground {
        Readiness::foreground()
    } else {
        daemon::daemonize()?
    };
    if readiness.daemonized() {
        logging::use_syslog();
    }
    let daemonized = readiness.daemonized();
    let outcome = serve(config, volume, &mount_point, opts, &mut readiness);
    readiness.conclude(daemonized, outcome)
}

/// The mount point, canonical; one clear line for each way it can be wrong.
fn check_mount_point(mp: &str) -> Result<PathBuf, String> {
    let path = Path::new(mp);
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("mount point {mp} does not exist"));
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            return Err(format!(
                "mount point {mp} is a FUSE mount whose server is gone ({e}): unmount it first (umount -l {mp})"
            ));
        }
        Err(e) => return Err(format!("mount point {mp}: {e}")),
        Ok(m) if !m.is_dir() => return Err(format!("mount point {mp} is not a directory")),
        Ok(_) => {}
    }
    let canonical = path
        .canonicalize()
        .map_err(|e| format!("mount point {mp}: {e}"))?;
    if let Some(m) = mountinfo::mounted_at(&canonical) {
        return Err(format!(
            "mount point {mp} is busy: {} ({}) is already mounted there",
            m.source, m.fstype
        ));
    }
    Ok(canonical)
}

fn check_fuse_available() -> Result<(), String> {
    if !Path::new("/dev/fuse").exists() {
        return Err(
            "/dev/fuse does not exist: the fuse kernel module is not loaded (modprobe fuse)".into(),
        );
    }
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let found = std::env::split_paths(&path)
            .any(|d| d.join("fusermount3").exists() || d.join("fusermount").exists());
        if !found {
            return Err(
                "not running as root and fusermount3 is not installed: run as root, or install \
                 fuse3 (its setuid fusermount3 mounts for other users)"
                    .into(),
            );
        }
    }
    Ok(())
}

/// The child's (or the foreground process's) part: from the mount token to the final flush.
fn serve(
    config: &Config,
    volume: Volume,
    mount_point: &Path,
    opts: FuseOptions,
    readiness: &mut Readiness,
) -> Result<(), String> {
    // Before the first thread: every later thread inherits the blocked mask.
    signals::block()?;
    for w in &opts.warnings {
        log::warn!("{w}");
    }
    let volume = Arc::new(volume);
    volume.establish_mount().map_err(|e| e.to_string())?;
    let release_after_failure = |e: String| {
        // Nothing was written through the disk: the token must not outlive this failed start.
        if let Err(release) = volume.release_mount() {
            log::warn!("cannot clear the mount token after a failed start: {release}");
        }
        e
    };
    let disk = Arc::new(
        volume
            .build_disk()
            .map_err(|e| release_after_failure(e.to_string()))?,
    );
    let mirror = match &config.stats.mirror {
        Some(path) => Some(
            stats_mirror::start(disk.clone(), path.clone(), config.stats.mirror_interval)
                .map_err(|e| release_after_failure(e.to_string()))?,
        ),
        None => None,
    };
    let mirror = Arc::new(Mutex::new(mirror));
    let fs =
        DiskFs::new(disk.clone(), &config.fuse, opts.clone()).map_err(&release_after_failure)?;
    let session = s3backer_fuse::mount(fs, mount_point, &opts).map_err(|e| {
        release_after_failure(format!("cannot mount {}: {e}", mount_point.display()))
    })?;
    log::debug!(
        "mounted {} on {}",
        volume.description(),
        mount_point.display()
    );

    let stopper = Arc::new(Stopper {
        mount_point: mount_point.to_path_buf(),
        dev: OnceLock::new(),
        emergency_stop: {
            let (volume, disk, mirror) = (volume.clone(), disk.clone(), mirror.clone());
            Box::new(move || {
                let outcome = shutdown(&volume, &disk, &mirror);
                std::process::exit(if outcome.is_ok() { 0 } else { 1 });
            })
        },
    });
    signals::spawn(stopper.clone()).map_err(&release_after_failure)?;
    let waiters = Waiters::new();
    // The readiness probe goes through the kernel to our own request threads, so it runs
    // beside Session::run (which starts them) and reports from there.
    let cell = ReadinessCell::new(std::mem::replace(readiness, Readiness::foreground()));
    {
        let file = mount_point.join(&config.fuse.filename);
        let (waiters, stopper, cell) = (waiters.clone(), stopper.clone(), cell.clone());
        let description = volume.description();
        let readahead = opts.max_readahead;
        std::thread::Builder::new()
            .name("s3b-ready".into())
            .spawn(
                move || match probe(&file, &description, readahead, &waiters, &stopper) {
                    Ok(()) => cell.report(Ok(())),
                    Err(e) => {
                        cell.report(Err(e));
                        signals::unmount_or_detach(&stopper.mount_point);
                    }
                },
            )
            .map_err(|e| release_after_failure(format!("cannot start the readiness probe: {e}")))?;
    }
    if let Err(e) = session.run() {
        log::error!("FUSE session ended with an error: {e}");
    }
    let (rest, probed) = cell.take();
    *readiness = rest;
    log::info!("{} unmounted: flushing", mount_point.display());
    let outcome = shutdown(&volume, &disk, &mirror);
    waiters.report(&outcome);
    match probed {
        Some(Ok(())) => outcome,
        Some(Err(e)) => Err(e),
        None => Err(format!(
            "{} was unmounted before it was ready",
            mount_point.display()
        )),
    }
}

/// The readiness pipe, shared with the probe thread, and what the probe found.
#[derive(Clone)]
struct ReadinessCell(Arc<Mutex<(Readiness, ProbeVerdict)>>);

/// `None` until the probe has answered.
type ProbeVerdict = Option<Result<(), String>>;

impl ReadinessCell {
    fn new(r: Readiness) -> Self {
        ReadinessCell(Arc::new(Mutex::new((r, None))))
    }

    /// The probe's verdict: the parent exits 0, or prints the reason and exits 1.
    fn report(&self, result: Result<(), String>) {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match &result {
            Ok(()) => g.0.ready(),
            Err(e) => g.0.fail(e),
        }
        g.1 = Some(result);
    }

    /// The pipe (still open if the probe never answered) and the probe's verdict.
    fn take(&self) -> (Readiness, ProbeVerdict) {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        (
            std::mem::replace(&mut g.0, Readiness::foreground()),
            g.1.take(),
        )
    }
}

/// Checks the mount works end to end (a stat of the disk file is a LOOKUP and a GETATTR served
/// by our threads), then opens the umount helper's socket.
fn probe(
    file: &Path,
    description: &str,
    readahead: u32,
    waiters: &Arc<Waiters>,
    stopper: &Stopper,
) -> Result<(), String> {
    let meta = std::fs::metadata(file)
        .map_err(|e| format!("the mount does not work: stat {}: {e}", file.display()))?;
    let dev = (libc::major(meta.dev()), libc::minor(meta.dev()));
    let _ = stopper.dev.set(dev);
    waiters.listen(dev);
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0
        && let Err(e) = s3backer_fuse::set_readahead(dev, readahead)
    {
        log::warn!("cannot raise the mount's readahead to {readahead} bytes: {e}");
    }
    log::info!(
        "mounted {description} on {} ({} bytes)",
        stopper.mount_point.display(),
        meta.len()
    );
    if !umount_helper::helper_installed() {
        log::debug!(
            "umount helper not installed: umount will return before the final flush (see README)"
        );
    }
    Ok(())
}

/// The end: flush, write the stats mirror a last time, release the token only after a
/// successful flush.
fn shutdown(
    volume: &Volume,
    disk: &Disk,
    mirror: &Mutex<Option<StatsMirror>>,
) -> Result<(), String> {
    let flushed = disk.shutdown();
    if let Some(m) = mirror.lock().unwrap_or_else(|e| e.into_inner()).take() {
        m.stop();
    }
    match flushed {
        Err(e) => Err(format!(
            "final flush failed, leaving the mount token in place: {e}"
        )),
        Ok(()) => {
            volume
                .release_mount()
                .map_err(|e| format!("cannot clear the mount token: {e}"))?;
            log::info!("shutdown complete");
            Ok(())
        }
    }
}
