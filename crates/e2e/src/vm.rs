//! The kernel VM harness (`../shared/tools/kernel-nbd/run-vm.sh`, beside the checkout as CI
//! has it): a throw-away qemu guest with a real Debian kernel, `nbd.ko`, nbd-client and nbdkit,
//! for what this machine's own kernel cannot do (it has no NBD driver).
//!
//! [`run_scenario`] copies our built `s3backer` and the plugin (as
//! `nbdkit-s3backer-plugin.so`) into a fresh share directory with the scenario script from
//! `crates/e2e/vm/`, runs it in the guest and returns the console log. A missing harness or a
//! failed scenario is a test failure with the log's tail (the whole log is kept in the temp
//! dir), never a skip. A VM that dies without reporting a status (run-vm.sh's 125: qemu died,
//! boot watchdog; seen once under heavy load) is retried once, loudly.

use crate::tools::{TempDir, plugin_path, s3backer_bin};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// `run-vm.sh`, where CI checks it out.
/// `$S3B_KERNEL_NBD_DIR/run-vm.sh` if set, else `../shared/tools/kernel-nbd/` beside the
/// checkout (where developers and CI have it).
pub fn run_vm_path() -> PathBuf {
    match std::env::var_os("S3B_KERNEL_NBD_DIR") {
        Some(dir) => PathBuf::from(dir).join("run-vm.sh"),
        None => {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/tools/kernel-nbd/run-vm.sh")
        }
    }
}

/// What a scenario run left.
pub struct VmRun {
    /// The guest console.
    pub log: String,
    /// run-vm.sh's own summary line (timings).
    pub summary: String,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// Runs `crates/e2e/vm/<scenario>` in the guest; panics with the console's tail unless it
/// exits 0. `timeout` is the whole VM's limit in seconds.
pub fn run_scenario(scenario: &str, timeout: u32) -> VmRun {
    let run_vm = run_vm_path();
    assert!(
        run_vm.exists(),
        "{} is missing: the kernel VM harness is expected in ../shared/tools/kernel-nbd beside \
         the checkout (or set S3B_KERNEL_NBD_DIR)",
        run_vm.display()
    );
    let share = TempDir::new("knbd-share");
    let copy = |from: &Path, name: &str| {
        std::fs::copy(from, share.join(name))
            .unwrap_or_else(|e| panic!("copy {} into the share: {e}", from.display()));
    };
    copy(&s3backer_bin(), "s3backer");
    copy(&plugin_path(), "nbdkit-s3backer-plugin.so");
    copy(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("vm")
            .join(scenario),
        scenario,
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(share.join(scenario), std::fs::Permissions::from_mode(0o755))
        .expect("chmod scenario");
    // The console log outside the share (run-vm.sh scans the share's files for libraries).
    let logs = TempDir::new("knbd-log");
    let log_path = logs.join("console.log");
    // 125 is the harness's "the VM ended without a status" (qemu died, boot watchdog): not our
    // scenario's verdict, so it gets one more try, loudly. Any other failure is final.
    for attempt in 1..=2 {
        let start = Instant::now();
        let out = Command::new(&run_vm)
            .arg("-q")
            .arg("--log")
            .arg(&log_path)
            .args(["--timeout", &timeout.to_string()])
            .arg(share.path())
            .arg(scenario)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", run_vm.display()));
        let seconds = start.elapsed().as_secs_f64();
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let summary = stderr
            .lines()
            .rev()
            .find(|l| l.contains("scenario exit status") || l.contains("TIMEOUT"))
            .unwrap_or_default()
            .to_owned();
        if out.status.success() {
            return VmRun {
                log,
                summary,
                seconds,
            };
        }
        let tail: Vec<&str> = log.lines().rev().take(120).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        // Kept for a closer look (the temporary directories go away).
        let kept = std::env::temp_dir().join(format!(
            "s3b-kernel-nbd-{scenario}-{}-{attempt}.log",
            std::process::id()
        ));
        let _ = std::fs::write(&kept, &log);
        let report = format!(
            "kernel VM scenario {scenario} failed ({}; 124 = timeout, 125 = the VM died) after \
             {seconds:.0} s; console log kept in {}\nrun-vm.sh stderr:\n{stderr}\nconsole (last \
             120 lines):\n{}",
            out.status,
            kept.display(),
            tail.join("\n")
        );
        if out.status.code() == Some(125) && attempt == 1 {
            eprintln!("{report}\n(retrying once: the VM itself failed, not the scenario)");
            continue;
        }
        panic!("{report}");
    }
    unreachable!("the loop returns or panics")
}
