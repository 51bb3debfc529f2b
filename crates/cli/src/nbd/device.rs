//! The NBD device node and its kernel state (sysfs), the helper programs, and the wrapper's
//! runtime files in `/run/s3backer-nbd`.
//!
//! Every check here is one clear line for a mistake users of the original keep making: not
//! root, nbdkit or nbd-client not installed, plugin not installed, device missing (module not
//! loaded, or fewer devices than asked), not an NBD device, device already connected.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where the sockets live (s3backer's `S3B_NBD_DIR`), readable by root only.
pub const RUNTIME_DIR: &str = "/run/s3backer-nbd";

/// Directories searched after `$PATH`: nbd-client and modprobe live in sbin, which a user's
/// `$PATH` (or a minimal service environment) may lack.
const SYSTEM_DIRS: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// An executable named `name` on `$PATH` or in the system directories.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(SYSTEM_DIRS.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The programs the wrapper runs.
pub struct Tools {
    pub nbdkit: PathBuf,
    pub nbd_client: PathBuf,
    /// Only needed when the device is missing.
    pub modprobe: Option<PathBuf>,
}

impl Tools {
    pub fn find() -> Result<Tools, String> {
        let need = |name: &str, package: &str| {
            find_program(name).ok_or_else(|| {
                format!(
                    "{name} is not installed (not found on $PATH or in /usr/sbin, /sbin): \
                     install the {package} package (apt-get install {package})"
                )
            })
        };
        Ok(Tools {
            nbdkit: need("nbdkit", "nbdkit")?,
            nbd_client: need("nbd-client", "nbd-client")?,
            modprobe: find_program("modprobe"),
        })
    }
}

/// Checks that nbdkit will find the plugin: a path must exist; a name must be installed in
/// nbdkit's plugin directory.
pub fn check_plugin(nbdkit: &Path, plugin: &str) -> Result<(), String> {
    if plugin.contains('/') {
        return match std::fs::metadata(plugin) {
            Ok(m) if m.is_file() => Ok(()),
            Ok(_) => Err(format!("nbdkit plugin {plugin} is not a file")),
            Err(e) => Err(format!("nbdkit plugin {plugin}: {e}")),
        };
    }
    let out = Command::new(nbdkit)
        .arg("--dump-config")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {} --dump-config: {e}", nbdkit.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(dir) = text.lines().find_map(|l| l.strip_prefix("plugindir=")) else {
        return Err(format!(
            "{} --dump-config does not name its plugin directory",
            nbdkit.display()
        ));
    };
    // nbdkit looks for a shared object, then for a script plugin of that name.
    let so = Path::new(dir).join(format!("nbdkit-{plugin}-plugin.so"));
    let script = Path::new(dir).join(format!("nbdkit-{plugin}-plugin"));
    if so.exists() || script.exists() {
        return Ok(());
    }
    Err(format!(
        "nbdkit plugin \"{plugin}\" is not installed (no {}): install it (scripts/setup.sh \
         copies target/release/libnbdkit_s3backer_plugin.so there), or give its path with \
         --nbd-plugin=PATH",
        so.display()
    ))
}

/// Running as root (nbd-client configures the kernel through netlink, which needs it).
pub fn check_root() -> Result<(), String> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(
            "s3backer --nbd must be run as root (it attaches a kernel block device)".into(),
        );
    }
    Ok(())
}

/// An NBD device node, checked.
pub struct Device {
    /// As given on the command line (`/dev/nbd0`), for messages.
    pub path: PathBuf,
    /// The node itself, symlinks resolved: what nbd-client is given (it finds the device's
    /// index in the name, `nbd0`).
    pub node_path: PathBuf,
    /// The kernel's name, `nbd0`.
    pub name: String,
    /// `st_dev` and `st_ino` of the node: the socket's name (facts §5.3).
    node: (u64, u64),
    /// Major and minor number.
    pub rdev: (u32, u32),
}

impl Device {
    /// Checks `path`: an NBD block device, not connected. Loads the `nbd` module with
    /// `modprobe` when the node is missing and the module is not loaded.
    pub fn open(path: &str, modprobe: Option<&Path>) -> Result<Device, String> {
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                load_module(path, modprobe)?;
                std::fs::metadata(path).map_err(|e| format!("{path}: {e}"))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return Err(format!("{path}: {e}: s3backer --nbd must be run as root"));
            }
            Err(e) => return Err(format!("{path}: {e}")),
        };
        if !meta.file_type().is_block_device() {
            return Err(format!("{path} is not a block device (expected /dev/nbdX)"));
        }
        let rdev = (libc::major(meta.rdev()), libc::minor(meta.rdev()));
        let sys = PathBuf::from(format!("/sys/dev/block/{}:{}", rdev.0, rdev.1));
        let name = std::fs::canonicalize(&sys)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default();
        if !name.starts_with("nbd") || !Path::new("/sys/block").join(&name).exists() {
            let what = if name.is_empty() {
                format!("device {}:{}", rdev.0, rdev.1)
            } else {
                name
            };
            return Err(format!(
                "{path} is not an NBD device ({what}); use /dev/nbd0, /dev/nbd1, ..."
            ));
        }
        let device = Device {
            path: PathBuf::from(path),
            node_path: std::fs::canonicalize(path).unwrap_or_else(|_| PathBuf::from(path)),
            name,
            node: (meta.dev(), meta.ino()),
            rdev,
        };
        if device.connected_pid().is_some() {
            return Err(format!(
                "{path} is busy: already connected to an NBD server; disconnect it with \
                 nbd-client -d {path}, or use another device"
            ));
        }
        Ok(device)
    }

    fn sysfs(&self, file: &str) -> PathBuf {
        Path::new("/sys/block").join(&self.name).join(file)
    }

    /// The pid the kernel records for a connected device; `None` when not connected (the file
    /// only exists while connected).
    pub fn connected_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.sysfs("pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    /// The device's size in bytes (0 when not connected).
    pub fn size(&self) -> u64 {
        std::fs::read_to_string(self.sysfs("size"))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map_or(0, |sectors| sectors * 512)
    }

    /// Connected and sized: usable.
    pub fn is_attached(&self) -> bool {
        self.connected_pid().is_some() && self.size() > 0
    }

    /// The socket's file name: `<st_dev>_<st_ino>` of the node in 16 hex digits each, as
    /// s3backer names it.
    pub fn socket_name(&self) -> String {
        format!("{:016x}_{:016x}", self.node.0, self.node.1)
    }

    /// Reads the first 4 KiB with O_DIRECT: the whole path (kernel, socket, nbdkit, plugin,
    /// store) answers.
    pub fn probe_read(&self) -> std::io::Result<()> {
        #[repr(align(4096))]
        struct Aligned([u8; 4096]);
        let mut buf = Box::new(Aligned([0; 4096]));
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(&self.path)?;
        f.read_exact(&mut buf.0)
    }

    /// Writes back the device's page cache and sends the server a FLUSH (fsync of the block
    /// device), so nothing is left in the kernel before the disconnect.
    pub fn flush(&self) -> std::io::Result<()> {
        File::open(&self.path)?.sync_all()
    }

    /// Where the device is mounted, if it is.
    pub fn mounted_at(&self) -> Option<PathBuf> {
        crate::mountinfo::entries()
            .into_iter()
            .find(|e| e.dev == self.rdev)
            .map(|e| e.mount_point)
    }

    /// The kernel's current and highest `max_sectors_kb`.
    pub fn max_sectors_kb(&self) -> Option<(u64, u64)> {
        let read = |f: &str| {
            std::fs::read_to_string(self.sysfs(f))
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
        };
        Some((
            read("queue/max_sectors_kb")?,
            read("queue/max_hw_sectors_kb")?,
        ))
    }

    /// Sets `max_sectors_kb`.
    pub fn set_max_sectors_kb(&self, kb: u64) -> std::io::Result<()> {
        std::fs::write(self.sysfs("queue/max_sectors_kb"), kb.to_string())
    }

    /// Waits until the kernel reports the device detached (nbd-client -d returns before that).
    pub fn wait_detached(&self, limit: Duration) -> bool {
        let start = Instant::now();
        while self.connected_pid().is_some() {
            if start.elapsed() > limit {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        true
    }
}

/// `modprobe nbd` for a missing device node, with a reason for every way it can fail.
fn load_module(path: &str, modprobe: Option<&Path>) -> Result<(), String> {
    if Path::new("/sys/module/nbd").exists() {
        let max = std::fs::read_to_string("/sys/module/nbd/parameters/nbds_max")
            .map(|s| format!(" (the nbd module provides {} devices)", s.trim()))
            .unwrap_or_default();
        return Err(format!("{path} does not exist{max}"));
    }
    let Some(modprobe) = modprobe else {
        return Err(format!(
            "{path} does not exist and the nbd kernel module cannot be loaded: modprobe is not \
             installed (package kmod)"
        ));
    };
    log::debug!("{path} does not exist: loading the nbd kernel module");
    let out = Command::new(modprobe)
        .arg("nbd")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", modprobe.display()))?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_owned();
        return Err(format!(
            "{path} does not exist and the nbd kernel module cannot be loaded: modprobe nbd \
             failed ({}){}",
            super::child::describe(out.status),
            if why.is_empty() {
                String::new()
            } else {
                format!(": {why}")
            }
        ));
    }
    // devtmpfs creates the nodes as the module registers its devices; udev may still rename
    // or chmod them, so give it a moment.
    let start = Instant::now();
    while !Path::new(path).exists() {
        if start.elapsed() > Duration::from_secs(5) {
            return Err(format!(
                "{path} does not exist, even after loading the nbd kernel module"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// The wrapper's files for one device: the socket, nbdkit's pid file, and a lock held for the
/// wrapper's lifetime, so two wrappers cannot start on one device at once (the sysfs check
/// alone leaves a window until the first one has attached).
pub struct RuntimeFiles {
    pub socket: PathBuf,
    pub pidfile: PathBuf,
    _lock: File,
    lock_path: PathBuf,
}

impl RuntimeFiles {
    pub fn claim(device: &Device) -> Result<RuntimeFiles, String> {
        let dir = Path::new(RUNTIME_DIR);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(dir)
            .map_err(|e| format!("cannot create {RUNTIME_DIR}: {e}"))?;
        // An existing directory keeps whatever mode it had: make sure only root can reach
        // the sockets (s3backer's rule).
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot restrict {RUNTIME_DIR} to root: {e}"))?;
        let name = device.socket_name();
        let lock_path = dir.join(format!("{name}.lock"));
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| format!("cannot open {}: {e}", lock_path.display()))?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(format!(
                "{} is busy: another s3backer --nbd is attaching or serving it",
                device.path.display()
            ));
        }
        let files = RuntimeFiles {
            socket: dir.join(&name),
            pidfile: dir.join(format!("{name}.pid")),
            _lock: lock,
            lock_path,
        };
        // Left behind by a wrapper that was killed: nbdkit would refuse an existing socket.
        files.remove_socket();
        Ok(files)
    }

    /// Removes the socket and the pid file.
    pub fn remove_socket(&self) {
        let _ = std::fs::remove_file(&self.socket);
        let _ = std::fs::remove_file(&self.pidfile);
    }

    /// Whether nbdkit is listening: it writes its pid file after it has bound and listens on
    /// the socket (and after the plugin's config_complete and get_ready: the disk is open and
    /// the mount token written).
    pub fn nbdkit_ready(&self) -> bool {
        std::fs::metadata(&self.pidfile).is_ok_and(|m| m.len() > 0)
            && std::fs::symlink_metadata(&self.socket).is_ok_and(|m| m.file_type().is_socket())
    }
}

/// Everything goes when the wrapper ends, on every path (a failed start included); the lock
/// itself goes with the descriptor. (A parent that daemonized exits without dropping, so the
/// files stay for the background process.)
impl Drop for RuntimeFiles {
    fn drop(&mut self) {
        self.remove_socket();
        let _ = std::fs::remove_file(&self.lock_path);
    }
}
