//! `s3backer --nbd`: the disk as /dev/nbdX, on a real Linux kernel.
//!
//! This machine's kernel has no NBD driver, so the proof runs in the kernel VM harness
//! (`../shared/tools/kernel-nbd`, see `s3backer_e2e::vm`): `crates/e2e/vm/nbd-roundtrip.sh`
//! attaches a disk kept in a local directory (`--test`) with our binary and plugin, makes an
//! ext4 filesystem, writes and checksums files, trims, stops with SIGTERM, restarts, runs
//! `e2fsck -fn`, kills nbdkit, kills the wrapper... (about a minute under emulation).
//!
//! The rest runs on this machine: the one-line errors that come before any device is touched,
//! and the systemd readiness notification (through FUSE mode here, which shares the code).

use s3backer_e2e::vm::run_scenario;
use s3backer_e2e::*;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

#[test]
fn nbd_device_on_a_real_kernel() {
    let run = run_scenario("nbd-roundtrip.sh", 900);
    assert!(run.log.contains("] PASS"), "no PASS line");
    eprintln!(
        "kernel VM: nbd-roundtrip.sh passed in {:.0} s ({})",
        run.seconds, run.summary
    );
}

fn s3backer(args: &[&str]) -> Output {
    run(Command::new(s3backer_bin()).args(args))
}

/// The command fails with exactly one line on stderr, which contains `expected`.
fn fails_with(args: &[&str], expected: &str) {
    let out = s3backer(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.contains(" WARNING: ")).collect();
    assert_eq!(lines.len(), 1, "{args:?}: {err}");
    assert!(
        lines[0].starts_with("s3backer: ") && lines[0].contains(expected),
        "{args:?}: {err}"
    );
}

#[test]
fn nbd_errors_before_anything_starts() {
    let dir = TempDir::new("nbd-err");
    let d = dir.path().to_str().expect("utf-8 path");
    let base = ["--nbd", "--test", "--size=1m"];
    let with = |extra: &[&'static str], device: &'static str| {
        let mut v: Vec<&str> = base.to_vec();
        v.extend_from_slice(extra);
        v.push(d);
        v.push(device);
        v
    };
    fails_with(&with(&[], "/dev/null"), "/dev/null is not a block device");
    fails_with(
        &with(&["--nbd-plugin=nosuchplugin"], "/dev/null"),
        "nbdkit plugin \"nosuchplugin\" is not installed",
    );
    fails_with(
        &with(
            &["--nbd-plugin=/nonexistent/nbdkit-s3backer-plugin.so"],
            "/dev/null",
        ),
        "nbdkit plugin /nonexistent/nbdkit-s3backer-plugin.so: No such file",
    );
    fails_with(
        &with(&["-o", "x"], "/dev/null"),
        "invalid flag \"-o\" with --nbd",
    );
    fails_with(
        &with(&["--erase"], "/dev/null"),
        "--erase cannot be used with --nbd",
    );
    fails_with(
        &["--nbd", "--test", "--size=1m", d],
        "--nbd needs two arguments, bucket[/subdir] and the device (/dev/nbdX)",
    );
    fails_with(
        &["--test", "--size=1m", d, "/dev/nbd0", "--nbd"],
        "--nbd must come first",
    );
    let conf = dir.join("with-nbd.conf");
    std::fs::write(&conf, "--nbd\n").expect("write config");
    let cf = format!("--configFile={}", conf.display());
    fails_with(
        &["--nbd", &cf, "--test", "--size=1m", d, "/dev/nbd0"],
        "--nbd is not supported in config files",
    );
    fails_with(
        &["--test", "--size=1m", "--nbd-connections=2", d, "/mnt"],
        "--nbd-connections=2 can only be used with --nbd",
    );
    // A block device that is not an NBD device (a loop device, made if need be).
    let loop_dev = std::fs::read_dir("/dev")
        .expect("read /dev")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            use std::os::unix::fs::FileTypeExt;
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("loop") && n != "loop-control")
                && std::fs::metadata(p).is_ok_and(|m| m.file_type().is_block_device())
        });
    if let Some(dev) = loop_dev {
        let dev = dev.display().to_string();
        let mut args = base.to_vec();
        args.extend([d, dev.as_str()]);
        fails_with(&args, "is not an NBD device");
    }
}

#[test]
fn nbd_needs_root() {
    let dir = TempDir::new("nbd-root");
    let out = run(Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(s3backer_bin())
        .args(["--nbd", "--test", "--size=1m"])
        .arg(dir.path())
        .arg("/dev/nbd0"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.trim_end().ends_with(
            "s3backer: s3backer --nbd must be run as root (it attaches a kernel block device)"
        ),
        "{err}"
    );
}

/// A datagram socket standing in for systemd's `$NOTIFY_SOCKET`.
fn notify_socket(dir: &TempDir) -> (UnixDatagram, std::path::PathBuf) {
    let path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&path).expect("bind notify socket");
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    (sock, path)
}

fn recv(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).expect("no notification within 60 s");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn systemd_notify_ready_foreground_and_daemonized() {
    let dir = TempDir::new("notify");
    let disk = TempDir::new("notify-disk");
    let (sock, path) = notify_socket(&dir);

    // Foreground (Type=notify with -f): the process itself says READY=1 once mounted.
    let mnt = TempDir::new("notify-mnt");
    let mut child = Command::new(s3backer_bin())
        .env("NOTIFY_SOCKET", &path)
        .env("PATH", system_path())
        .args(["-f", "--test", "--size=1m"])
        .arg(disk.path())
        .arg(mnt.path())
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn s3backer");
    assert_eq!(recv(&sock), "READY=1");
    assert!(fuse::is_mounted(mnt.path()), "READY=1 before the mount");
    let out = fuse::umount(mnt.path());
    assert!(out.status.success(), "{out:?}");
    assert!(child.wait().expect("wait").success());

    // Daemonized (Type=notify without -f): the parent hands over to the background process.
    let out = run(Command::new(s3backer_bin())
        .env("NOTIFY_SOCKET", &path)
        .env("PATH", system_path())
        .args(["--test", "--size=1m"])
        .arg(disk.path())
        .arg(mnt.path()));
    assert!(out.status.success(), "{out:?}");
    let msg = recv(&sock);
    let pid: u32 = msg
        .lines()
        .find_map(|l| l.strip_prefix("MAINPID="))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no MAINPID in {msg:?}"));
    assert!(msg.lines().any(|l| l == "READY=1"), "{msg:?}");
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    assert_eq!(
        comm.trim(),
        "s3backer",
        "MAINPID {pid} is not the background s3backer"
    );
    assert!(fuse::is_mounted(mnt.path()));
    let out = fuse::umount(mnt.path());
    assert!(out.status.success(), "{out:?}");
    assert!(
        wait_until(Duration::from_secs(30), || !std::path::Path::new(&format!(
            "/proc/{pid}"
        ))
        .exists()),
        "the background process is still running"
    );
}
