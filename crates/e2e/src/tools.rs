//! Small helpers: temporary directories, running commands, random data, artifact paths.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A temporary directory, removed on drop (unless `S3B_KEEP_TMP` is set, for debugging).
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new directory under the system temp dir.
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "s3b-e2e-{tag}-{}-{n}-{:08x}",
            std::process::id(),
            random_u64() as u32
        ));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        TempDir(dir)
    }
    /// The path.
    pub fn path(&self) -> &Path {
        &self.0
    }
    /// A path inside.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("S3B_KEEP_TMP").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A random u64 from the kernel.
pub fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: b is 8 writable bytes.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), 8, 0) };
    assert_eq!(n, 8, "getrandom");
    u64::from_ne_bytes(b)
}

/// `len` pseudo-random bytes (xorshift, seeded from the kernel; fast for big buffers).
pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut x = random_u64() | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A unique lowercase name, valid as a bucket name.
pub fn unique_name(tag: &str) -> String {
    format!("{tag}-{:010x}", random_u64() & 0xff_ffff_ffff)
}

/// Where cargo put our binaries: the directory of the running test executable's parent
/// (`target/<profile>/deps/..`).
pub fn artifact_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("deps dir");
    deps.parent().expect("profile dir").to_path_buf()
}

/// Path of the built plugin. Build it first: `cargo build --release --workspace`.
pub fn plugin_path() -> PathBuf {
    let p = artifact_dir().join("libnbdkit_s3backer_plugin.so");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --release --workspace` before the tests",
        p.display()
    );
    p
}

/// Path of the built `s3backer` binary.
pub fn s3backer_bin() -> PathBuf {
    let p = artifact_dir().join("s3backer");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --release --workspace` before the tests",
        p.display()
    );
    p
}

/// Runs a command to completion, capturing its output; panics if it cannot start.
pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| {
        panic!("cannot run {cmd:?}: {e} (is it installed? run scripts/setup.sh)")
    })
}

/// Runs a command and asserts it succeeded; returns stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `f` every 50 ms until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// `/usr/bin` first: Debian's python3-libnbd is installed for /usr/bin/python3, not pyenv's.
pub fn system_path() -> String {
    format!(
        "/usr/bin:/usr/sbin:/bin:/sbin:{}",
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Runs a Python script with Debian's python3 and the `nbd` module; asserts success.
pub fn nbd_python(script: &str, args: &[&str]) -> String {
    run_ok(
        Command::new("/usr/bin/python3")
            .env("PATH", system_path())
            .arg("-c")
            .arg(script)
            .args(args),
    )
}

/// Runs `qemu-io -f raw -c CMD... URI` (each command checked, e.g. `read -P 0xab 0 64k`).
pub fn qemu_io(uri: &str, cmds: &[&str]) -> String {
    let mut cmd = Command::new("qemu-io");
    cmd.args(["-f", "raw"]);
    for c in cmds {
        cmd.args(["-c", c]);
    }
    let out = run_ok(cmd.arg(uri));
    assert!(
        !out.contains("failed") && !out.contains("Pattern verification"),
        "qemu-io {cmds:?}: {out}"
    );
    out
}

/// The whole disk, copied out with nbdcopy.
pub fn nbd_image(uri: &str) -> Vec<u8> {
    let dir = TempDir::new("image");
    let out = dir.join("image");
    run_ok(
        Command::new("nbdcopy")
            .env("PATH", system_path())
            .arg(uri)
            .arg(&out),
    );
    std::fs::read(&out).expect("read image")
}

/// Writes `data` at offset 0 with nbdcopy (several connections), then flushes.
pub fn nbd_write_image(uri: &str, data: &[u8]) {
    let dir = TempDir::new("src");
    let src = dir.join("src");
    std::fs::write(&src, data).expect("write source image");
    run_ok(
        Command::new("nbdcopy")
            .env("PATH", system_path())
            .args(["--connections=4", "--requests=16"])
            .arg(&src)
            .arg(uri),
    );
    run_ok(
        Command::new("nbdsh")
            .env("PATH", system_path())
            .args(["-u", uri, "-c", "h.flush()"]),
    );
}

/// `nbdinfo --json URI` with all whitespace removed (so `"key":value` can be searched for).
pub fn nbdinfo_json(uri: &str) -> String {
    let json = run_ok(
        Command::new("nbdinfo")
            .env("PATH", system_path())
            .arg("--json")
            .arg(uri),
    );
    json.split_whitespace().collect()
}
