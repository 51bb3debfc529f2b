//! `s3backer --nbd [flags] bucket[/subdir] /dev/nbdX`: the disk as a kernel block device.
//!
//! The wrapper runs nbdkit with our plugin on a private unix socket, attaches the device with
//! nbd-client, and stays as the supervisor of both:
//!
//! ```text
//! checks        root; nbdkit, nbd-client installed; the plugin installed (or --nbd-plugin=PATH);
//!               the device: exists (else modprobe nbd), an NBD device, not connected;
//!               /run/s3backer-nbd (0700) and a lock for the device; nbdkit's argv built
//!               (secrets into pipes, never on a command line)        (no threads, no network)
//! daemonize     unless -f/-d: fork; the parent waits on the readiness pipe (daemon.rs)
//! signals       SIGTERM/SIGINT/SIGHUP and SIGCHLD blocked, waited for in one loop
//! nbdkit        --foreground, our child in its own process group, output read by a thread;
//!               ready once its pid file exists (written after it listens, so after the plugin
//!               opened the disk and wrote the mount token)
//! nbd-client    -unix SOCKET DEV -b -C -t [-readonly]; attached once sysfs shows a pid and a size
//! usable        4 KiB read through the device; max_sectors_kb set (--nbd-max-request)
//! ready         "ok" down the pipe (the user's command exits 0), or READY=1 to systemd
//! supervise     until a signal, or nbdkit (or a staying nbd-client) exits
//! stop          fsync the device (page cache out, FLUSH to nbdkit); nbd-client -d; nbdkit
//!               exits by itself (exitlast filter: final flush, mount token released), else
//!               SIGTERM; socket and pid file removed; exit 0, or 1 with the reason
//! ```
//!
//! Decisions:
//! * nbdkit runs **without** `--exit-with-parent`, **with** the exitlast filter. If the
//!   wrapper crashes (or is SIGKILLed), the device keeps working: nothing mounted on it sees an
//!   error, and nothing acknowledged is at risk (a FLUSH is durable once acknowledged, the
//!   plugin's contract). `nbd-client -d DEV` then stops nbdkit cleanly (final flush, token
//!   released). With `--exit-with-parent`, a crash would instead cut a mounted filesystem off
//!   its disk, losing whatever the kernel had not written yet.
//! * nbdkit 1.32 does not exit on SIGTERM while the kernel holds its connections (measured);
//!   so the order is always: disconnect the device, then nbdkit.
//! * If nbdkit dies, the device is disconnected (it could only return errors) and the wrapper
//!   exits 1. If the device was disconnected with `nbd-client -d` by someone else, nbdkit exits
//!   by itself (exitlast) and the wrapper exits 0: that is the original's way to stop.

mod child;
mod command;
mod device;

use crate::daemon::{self, Readiness};
use crate::notify::notify;
use crate::signals;
use child::{Forward, Output};
use device::{Device, RuntimeFiles, Tools};
use s3backer_config::{Config, DEFAULT_BLOCK_SIZE, MaxRequest, NbdSettings};
use s3backer_store::logging;
use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// How long the device may take to appear after nbd-client returned (slow under emulation).
const ATTACH_LIMIT: Duration = Duration::from_secs(60);
/// How long a disconnect may take to show in sysfs.
const DETACH_LIMIT: Duration = Duration::from_secs(30);
/// How long nbdkit gets to exit by itself (exitlast) after the disconnect before SIGTERM.
const EXITLAST_GRACE: Duration = Duration::from_secs(10);
/// How often a long wait is reported in the log.
const PROGRESS_EVERY: Duration = Duration::from_secs(30);

/// Runs `--nbd` to the end. In the background case the calling process exits inside (with the
/// child's startup outcome) and only the child returns from here.
pub fn run(config: &Config, nbd: &NbdSettings) -> Result<(), String> {
    device::check_root()?;
    let tools = Tools::find()?;
    device::check_plugin(&tools.nbdkit, &nbd.plugin)?;
    let device = Device::open(&nbd.device, tools.modprobe.as_deref())?;
    let files = RuntimeFiles::claim(&device)?;
    let args = command::nbdkit_args(config, nbd, &files.socket, &files.pidfile)?;
    // nbdkit runs here, so relative paths (--test directory, files) mean what the user meant
    // even after daemonizing moved us to /.
    let cwd =
        std::env::current_dir().map_err(|e| format!("cannot read the current directory: {e}"))?;

    let mut readiness = if config.foreground {
        Readiness::foreground()
    } else {
        daemon::daemonize()?
    };
    let daemonized = readiness.daemonized();
    if daemonized {
        logging::use_syslog();
    }
    let outcome = signals::block_with_children().and_then(|()| {
        let s = Supervisor {
            config,
            nbd,
            tools: &tools,
            device: &device,
            files: &files,
            forward: if daemonized {
                Forward::Log
            } else {
                Forward::Verbatim
            },
        };
        s.run(&args, &cwd, &mut readiness)
    });
    drop(files);
    readiness.conclude(daemonized, outcome)
}

struct Supervisor<'a> {
    config: &'a Config,
    nbd: &'a NbdSettings,
    tools: &'a Tools,
    device: &'a Device,
    files: &'a RuntimeFiles,
    forward: Forward,
}

/// The children while the device is served.
struct Running {
    nbdkit: Child,
    output: Output,
    /// nbd-client, when it stays (the ioctl interface); with netlink it is gone once attached.
    client: Option<(Child, Output)>,
}

/// Why startup stopped.
enum Abort {
    Signal(libc::c_int),
    Failed(String),
}

impl Supervisor<'_> {
    fn dev(&self) -> String {
        self.device.path.display().to_string()
    }

    fn run(
        &self,
        args: &[command::NbdkitArg],
        cwd: &Path,
        readiness: &mut Readiness,
    ) -> Result<(), String> {
        let mut r = self.start_nbdkit(args, cwd)?;
        let started = self
            .wait_for_nbdkit(&mut r)
            .and_then(|()| self.attach(&mut r))
            .and_then(|()| {
                self.device.probe_read().map_err(|e| {
                    Abort::Failed(format!(
                        "{} was attached but does not work: {e}",
                        self.dev()
                    ))
                })
            });
        if let Err(abort) = started {
            let msg = match abort {
                Abort::Failed(msg) => msg,
                Abort::Signal(sig) => format!(
                    "interrupted by {} before {} was attached",
                    signals::name(sig),
                    self.dev()
                ),
            };
            self.abort(r);
            return Err(msg);
        }
        self.tune();
        log::info!(
            "attached {} to {} ({} bytes, {} connection{}{})",
            self.nbd.bucket_arg,
            self.dev(),
            self.device.size(),
            self.nbd.connections,
            if self.nbd.connections == 1 { "" } else { "s" },
            if self.config.read_only {
                ", read-only"
            } else {
                ""
            }
        );
        readiness.ready();
        self.supervise(r)
    }

    fn start_nbdkit(&self, args: &[command::NbdkitArg], cwd: &Path) -> Result<Running, String> {
        let pipes = command::secrets(args)
            .into_iter()
            .map(|s| child::secret_pipe(s.as_bytes()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("cannot create a pipe for nbdkit: {e}"))?;
        let argv = command::render(args, |i| {
            use std::os::fd::AsRawFd;
            pipes
                .get(i)
                .map(|p| format!("/dev/fd/{}", p.as_raw_fd()))
                .unwrap_or_default()
        });
        log::debug!("running {} {:?}", self.tools.nbdkit.display(), args);
        let mut cmd = Command::new(&self.tools.nbdkit);
        cmd.args(&argv).current_dir(cwd);
        let reader = Output::pipe(&mut cmd).map_err(|e| format!("cannot create a pipe: {e}"))?;
        let spawned = child::spawn(&mut cmd, "nbdkit");
        // Our copies of the pipes go now: only nbdkit holds the secrets (the pipe to its
        // output must close on our side too, or its end would never come).
        drop(cmd);
        drop(pipes);
        let nbdkit = spawned?;
        let output = Output::start("nbdkit", reader, self.forward).map_err(|e| {
            child::signal(&nbdkit, libc::SIGKILL);
            format!("cannot start a thread: {e}")
        })?;
        Ok(Running {
            nbdkit,
            output,
            client: None,
        })
    }

    /// Until nbdkit listens (pid file written), or it exits, or a signal comes.
    fn wait_for_nbdkit(&self, r: &mut Running) -> Result<(), Abort> {
        let start = Instant::now();
        let mut reported = Duration::ZERO;
        loop {
            if self.files.nbdkit_ready() {
                return Ok(());
            }
            self.check_nbdkit(r, "while opening the disk")?;
            wait_tick(Duration::from_millis(50))?;
            if start.elapsed() - reported > PROGRESS_EVERY {
                reported = start.elapsed();
                log::info!(
                    "still waiting for nbdkit to open the disk ({}s)",
                    reported.as_secs()
                );
            }
        }
    }

    /// An Abort if nbdkit has exited.
    fn check_nbdkit(&self, r: &mut Running, when: &str) -> Result<(), Abort> {
        match r.nbdkit.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => {
                r.output.finish();
                let why = r.output.reason().unwrap_or_else(|| child::describe(status));
                Err(Abort::Failed(format!("nbdkit failed {when}: {why}")))
            }
            Err(e) => Err(Abort::Failed(format!("cannot wait for nbdkit: {e}"))),
        }
    }

    /// Runs nbd-client; until the device is attached.
    fn attach(&self, r: &mut Running) -> Result<(), Abort> {
        let args = command::nbd_client_args(
            self.nbd,
            &self.files.socket,
            &self.device.node_path,
            self.config.read_only,
        );
        log::debug!("running {} {args:?}", self.tools.nbd_client.display());
        let mut cmd = Command::new(&self.tools.nbd_client);
        cmd.args(&args);
        let reader = Output::pipe(&mut cmd)
            .map_err(|e| Abort::Failed(format!("cannot create a pipe: {e}")))?;
        let spawned = child::spawn(&mut cmd, "nbd-client");
        drop(cmd);
        let client = spawned.map_err(Abort::Failed)?;
        let output = Output::start("nbd-client", reader, Forward::Debug).map_err(|e| {
            child::signal(&client, libc::SIGKILL);
            Abort::Failed(format!("cannot start a thread: {e}"))
        })?;
        r.client = Some((client, output));
        let mut returned: Option<Instant> = None;
        loop {
            if let Some((client, output)) = &mut r.client
                && let Some(status) = client
                    .try_wait()
                    .map_err(|e| Abort::Failed(format!("cannot wait for nbd-client: {e}")))?
            {
                output.finish();
                if !status.success() {
                    let why = output.reason().unwrap_or_default();
                    let why = if why.is_empty() {
                        String::new()
                    } else {
                        format!(": {why}")
                    };
                    return Err(Abort::Failed(format!(
                        "nbd-client could not attach {} ({}){why}",
                        self.dev(),
                        child::describe(status)
                    )));
                }
                // netlink: configured, done; the kernel brings the device up a moment later.
                r.client = None;
                returned = Some(Instant::now());
            }
            if self.device.is_attached() {
                // nbd-client (netlink) exits right after the kernel took the connections;
                // give it a moment, so that only a client that stays (ioctl) is kept.
                if let Some((client, output)) = &mut r.client {
                    let start = Instant::now();
                    while start.elapsed() < Duration::from_secs(5) {
                        if let Ok(Some(status)) = client.try_wait() {
                            output.finish();
                            if status.success() {
                                r.client = None;
                            }
                            break;
                        }
                        wait_tick(Duration::from_millis(20))?;
                    }
                }
                return Ok(());
            }
            if returned.is_some_and(|t| t.elapsed() > ATTACH_LIMIT) {
                return Err(Abort::Failed(format!(
                    "{} did not come up within {}s of nbd-client",
                    self.dev(),
                    ATTACH_LIMIT.as_secs()
                )));
            }
            self.check_nbdkit(r, "while the device was being attached")?;
            wait_tick(Duration::from_millis(50))?;
        }
    }

    /// The device's max_sectors_kb (--nbd-max-request): best effort, a warning at worst.
    fn tune(&self) {
        let (wanted, explicit) = match self.nbd.max_request {
            MaxRequest::Kernel => return,
            MaxRequest::Bytes(b) => (b, true),
            MaxRequest::BlockSize => match self.block_size() {
                Some(b) => (u64::from(b), false),
                None => {
                    log::warn!(
                        "block size unknown: leaving {}'s max_sectors_kb as it is",
                        self.dev()
                    );
                    return;
                }
            },
        };
        let Some((current, hw)) = self.device.max_sectors_kb() else {
            log::warn!("cannot read {}'s max_sectors_kb", self.dev());
            return;
        };
        // At least a page; at most what the driver allows.
        let kb = (wanted / 1024).max(4).min(hw);
        if explicit && kb * 1024 < wanted {
            log::warn!(
                "--nbd-max-request: {} allows at most {hw} KiB per request",
                self.dev()
            );
        }
        if kb == current {
            return;
        }
        match self.device.set_max_sectors_kb(kb) {
            Ok(()) => log::debug!("{}: max_sectors_kb {current} -> {kb}", self.dev()),
            Err(e) => log::warn!("cannot set {}'s max_sectors_kb to {kb}: {e}", self.dev()),
        }
    }

    /// The disk's block size: given, the default (nothing auto-detected), or what block 0's
    /// metadata says, as the plugin found it (one HEAD request; best effort).
    fn block_size(&self) -> Option<u32> {
        let c = self.config;
        if let Some(b) = c.block_size {
            return Some(b);
        }
        if c.test_mode || c.no_auto_detect {
            return Some(DEFAULT_BLOCK_SIZE);
        }
        let backend = s3backer_store::connect(c).ok()?;
        let keys = s3backer_store::format::keys::KeyFormat {
            prefix: c.prefix.clone(),
            hashed: c.block_hash_prefix,
        };
        match backend.head(&keys.block_key(0), true) {
            Ok(Some(info)) => Some(
                s3backer_store::format::meta::parse_geometry(&info.meta)
                    .map_or(DEFAULT_BLOCK_SIZE, |(b, _)| b),
            ),
            Ok(None) => Some(DEFAULT_BLOCK_SIZE),
            Err(e) => {
                log::debug!("cannot read block 0's metadata: {e}");
                None
            }
        }
    }

    /// Serves until a signal or a child's exit; then stops everything.
    fn supervise(&self, mut r: Running) -> Result<(), String> {
        loop {
            if let Some(sig) = signals::wait(Duration::from_secs(1))
                && sig != libc::SIGCHLD
            {
                log::info!("received {}: detaching {}", signals::name(sig), self.dev());
                return self.stop(r);
            }
            match r.nbdkit.try_wait() {
                Ok(Some(status)) => return self.nbdkit_exited(r, status),
                Ok(None) => {}
                Err(e) => log::warn!("cannot wait for nbdkit: {e}"),
            }
            if let Some((client, output)) = &mut r.client
                && let Ok(Some(status)) = client.try_wait()
            {
                output.finish();
                if status.success() && self.device.is_attached() {
                    // A late netlink client: it configured the device and left, as it should.
                    r.client = None;
                    continue;
                }
                let why = output
                    .last_error()
                    .map(|w| format!(": {w}"))
                    .unwrap_or_default();
                let msg = format!(
                    "nbd-client exited unexpectedly ({}){why}",
                    child::describe(status)
                );
                log::error!("{msg}");
                r.client = None;
                self.disconnect();
                let _ = self.finish_nbdkit(r);
                return Err(format!("{msg}; {} detached, nbdkit stopped", self.dev()));
            }
        }
    }

    /// The orderly stop (a signal): flush, disconnect, let nbdkit finish.
    fn stop(&self, r: Running) -> Result<(), String> {
        notify("STOPPING=1");
        if let Some(mp) = self.device.mounted_at() {
            log::warn!(
                "{} is still mounted on {}: disconnecting anyway (unmount it before stopping \
                 s3backer, or the filesystem loses what it has not written yet)",
                self.dev(),
                mp.display()
            );
        }
        // Everything the kernel holds goes to nbdkit, and a FLUSH makes it durable (the
        // plugin's contract), before the disconnect fails whatever would still be in flight.
        if let Err(e) = self.device.flush() {
            log::warn!("flushing {} before the disconnect failed: {e}", self.dev());
        }
        self.disconnect();
        self.finish_nbdkit(r)
    }

    /// nbdkit exited on its own.
    fn nbdkit_exited(&self, mut r: Running, status: ExitStatus) -> Result<(), String> {
        r.output.finish();
        // nbd-client -d returns before the kernel clears the device: give it a moment.
        if status.success() && self.device.wait_detached(Duration::from_secs(5)) {
            // Someone ran `nbd-client -d`; exitlast ended nbdkit after its final flush.
            // The plugin's cleanup says so when the final flush or the token release failed
            // (nbdkit still exits 0); earlier errors were already logged as they came.
            if let Some(e) = r
                .output
                .last_error()
                .filter(|e| e.contains("at shutdown") || e.contains("mount token"))
            {
                return Err(format!(
                    "{} was disconnected, and nbdkit reported: {e}",
                    self.dev()
                ));
            }
            notify("STOPPING=1");
            log::info!(
                "{} was disconnected (nbd-client -d): nbdkit has finished",
                self.dev()
            );
            return Ok(());
        }
        let why = r
            .output
            .last_error()
            .map(|w| format!(": {w}"))
            .unwrap_or_default();
        let msg = format!(
            "nbdkit exited unexpectedly ({}){why}",
            child::describe(status)
        );
        log::error!("{msg}");
        // The device can only fail requests now: free it.
        self.disconnect();
        if let Some((mut client, mut output)) = r.client.take() {
            child::signal(&client, libc::SIGTERM);
            let _ = client.wait();
            output.finish();
        }
        Err(format!("{msg}; {} has been disconnected", self.dev()))
    }

    /// `nbd-client -d DEV`, then wait for the kernel to show it.
    fn disconnect(&self) {
        if self.device.connected_pid().is_none() {
            return;
        }
        let out = Command::new(&self.tools.nbd_client)
            .arg("-d")
            .arg(&self.device.node_path)
            .stdin(std::process::Stdio::null())
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => log::warn!(
                "nbd-client -d {} failed ({}): {}",
                self.dev(),
                child::describe(o.status),
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => log::warn!("cannot run nbd-client -d: {e}"),
        }
        if !self.device.wait_detached(DETACH_LIMIT) {
            log::warn!(
                "{} still shows as connected {}s after nbd-client -d",
                self.dev(),
                DETACH_LIMIT.as_secs()
            );
        }
    }

    /// After the disconnect: nbdkit exits by itself (exitlast), else on SIGTERM. Its final
    /// flush may take long; it is never killed.
    fn finish_nbdkit(&self, mut r: Running) -> Result<(), String> {
        let mark = r.output.mark();
        let start = Instant::now();
        let mut termed = false;
        let mut reported = Duration::ZERO;
        let status = loop {
            match r.nbdkit.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) => {}
                Err(e) => return Err(format!("cannot wait for nbdkit: {e}")),
            }
            if !termed && start.elapsed() > EXITLAST_GRACE {
                log::info!("nbdkit is still running: sending SIGTERM");
                child::signal(&r.nbdkit, libc::SIGTERM);
                termed = true;
            }
            if start.elapsed() - reported > PROGRESS_EVERY {
                reported = start.elapsed();
                log::info!("waiting for nbdkit's final flush ({}s)", reported.as_secs());
            }
            // Signals now only wake us: the stop is under way.
            let _ = signals::wait(Duration::from_millis(100));
        };
        r.output.finish();
        if let Some((mut client, mut output)) = r.client.take() {
            child::signal(&client, libc::SIGTERM);
            let _ = client.wait();
            output.finish();
        }
        if let Some(e) = r.output.error_since(mark) {
            return Err(format!("nbdkit's shutdown failed: {e}"));
        }
        if !status.success() {
            return Err(format!("nbdkit exited with {}", child::describe(status)));
        }
        log::info!(
            "{} detached; nbdkit has flushed everything and released the disk",
            self.dev()
        );
        Ok(())
    }

    /// A failed start: free the device if it got attached, stop nbdkit.
    fn abort(&self, mut r: Running) {
        self.disconnect();
        if let Some((mut client, mut output)) = r.client.take() {
            child::signal(&client, libc::SIGTERM);
            let _ = client.wait();
            output.finish();
        }
        // Not connected: SIGTERM stops it (its cleanup releases the mount token).
        child::signal(&r.nbdkit, libc::SIGTERM);
        let _ = r.nbdkit.wait();
        r.output.finish();
    }
}

/// Sleeps up to `d`, woken early by a child's exit; a shutdown signal aborts the start.
fn wait_tick(d: Duration) -> Result<(), Abort> {
    match signals::wait(d) {
        Some(sig) if sig != libc::SIGCHLD => Err(Abort::Signal(sig)),
        _ => Ok(()),
    }
}
