//! The FUSE front end: the disk as one regular file in a mount point (s3backer's classic mode),
//! next to a statistics file.
//!
//! A thin layer over [`s3backer_store::Disk`], like the nbdkit plugin: [`DiskFs`] owns the inode
//! table, the attributes and the file semantics (module `fs`); [`FuseOptions`] turns the command
//! line's FUSE options into mount options (module `options`); [`mount`] mounts and returns the
//! session, whose `run` serves requests until the filesystem is unmounted. Everything about the
//! process (daemonizing, signals, the mount token, the final flush) belongs to the `s3backer`
//! command, so the same filesystem can be mounted by tests or other programs.
//!
//! Mounting uses fuser's pure-Rust mount (no libfuse): `mount(2)` directly as root, or the
//! setuid `fusermount3` otherwise. Requests are served by [`FuseOptions::threads`] threads, each
//! with its own cloned `/dev/fuse` descriptor, so parallel requests reach the disk in parallel.
#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod fs;
mod options;

pub use fs::DiskFs;
pub use fuser::Session;
pub use options::{DEFAULT_MAX_WRITE, DEFAULT_THREADS, FuseOptions};

use std::path::Path;

/// Mounts `fs` on `mountpoint` and completes the FUSE handshake: when this returns the kernel
/// has the mount, and requests wait for [`Session::run`] to serve them.
pub fn mount(
    fs: DiskFs,
    mountpoint: &Path,
    opts: &FuseOptions,
) -> std::io::Result<Session<DiskFs>> {
    let mut config = fuser::Config::default();
    config.mount_options = opts.mount_options.clone();
    config.acl = opts.acl;
    config.n_threads = Some(opts.threads.max(1));
    config.clone_fd = opts.threads > 1;
    Session::new(fs, mountpoint, &config)
}

/// Sets the readahead of the mount with device `dev` (`major:minor` of its files) to `bytes`,
/// through `/sys/class/bdi/<major>:<minor>/read_ahead_kb` (root only).
///
/// Why: the FUSE handshake cannot raise readahead above the kernel's default of 128 KiB, so
/// buffered reads of the disk file (and a loop device on it) arrive as 128 KiB requests, each
/// fetching part of a block: with 256 KiB blocks every block is fetched twice. Measured: a 16 MiB
/// sequential read came as 129 requests of 128 KiB; with readahead at 1 MiB, as 17 requests of
/// 1 MiB (the largest the kernel sends, `fs.fuse.max_pages_limit` = 256 pages).
pub fn set_readahead(dev: (u32, u32), bytes: u32) -> std::io::Result<()> {
    let path = format!("/sys/class/bdi/{}:{}/read_ahead_kb", dev.0, dev.1);
    std::fs::write(path, format!("{}\n", bytes.div_ceil(1024)))
}
