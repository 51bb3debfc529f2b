//! The filesystem: a root directory holding the disk file and the stats file, over one [`Disk`].
//!
//! # Inodes
//! ```text
//!   1  /                 directory, 0755, nlink 2, times = start time
//!   2  /<filename>       the disk: S_IFREG | --fileMode, size = disk size, st_blksize = block size
//!   3  /<statsFilename>  0444, the statistics text snapshotted at open (absent with --statsFilename=)
//! ```
//! Nothing else exists, so the inode table is three constants; no lookup count needs tracking.
//!
//! # Semantics (facts §7, with the original's mistakes fixed)
//! * read/write go straight to [`Disk::read`]/[`Disk::write`], whole: a 1 MiB request is one call,
//!   whose blocks the disk fetches in parallel. Reads past the end return nothing; a write that
//!   starts at or past the end is ENOSPC, one that crosses it is cut short (a fixed-size file).
//! * `fsync`/`fdatasync` and `flush` (every `close`) call [`Disk::flush`]: they return once every
//!   write acknowledged before them is durable, and report its failure. (The original made fsync
//!   a no-op.)
//! * `fallocate(PUNCH_HOLE)` and `ZERO_RANGE` call [`Disk::zero`]: whole blocks are deleted,
//!   partial ones rewritten with zeros, so `fstrim` on a filesystem in the file frees objects.
//!   Plain allocation inside the file is a no-op; growing the file is ENOSPC; the range
//!   shifting modes are EOPNOTSUPP. `--readOnly` refuses it (EROFS), unlike the original.
//! * truncate is accepted and changes nothing (`dd of=FILE` opens with O_TRUNC); owner and mode
//!   changes are EPERM; time changes are kept in memory.
//! * Unlinking the stats file resets the counters ([`Disk::reset_stats`]); it stays listed.
//!
//! Errors reach the caller as the store's errno ([`s3backer_store::StoreError::errno`]) and are
//! logged once, with the request.

use crate::options::FuseOptions;
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    KernelConfig, LockOwner, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use s3backer_config::FuseSettings;
use s3backer_store::{Disk, StoreError};
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

thread_local! {
    /// Each FUSE thread's read buffer (as large as the largest read it served: `max_read`).
    static READ_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

const ROOT: u64 = 1;
const FILE: u64 = 2;
const STATS: u64 = 3;

/// The filesystem served over FUSE.
pub struct DiskFs {
    disk: Arc<Disk>,
    filename: OsString,
    /// `None` with `--statsFilename=` (empty): no stats file.
    stats_filename: Option<OsString>,
    file_mode: u16,
    uid: u32,
    gid: u32,
    start: SystemTime,
    opts: FuseOptions,
    /// The disk file's access and modification times.
    times: Mutex<(SystemTime, SystemTime)>,
    /// Stats text snapshotted at each open of the stats file, by file handle.
    snapshots: Mutex<HashMap<u64, Arc<[u8]>>>,
    next_fh: AtomicU64,
}

impl DiskFs {
    /// The filesystem over `disk`, with the file names and mode of `files` and the FUSE
    /// options `opts`. Fails when the two names are the same or not valid names.
    pub fn new(disk: Arc<Disk>, files: &FuseSettings, opts: FuseOptions) -> Result<DiskFs, String> {
        Self::check_names(files)?;
        let stats_filename =
            (!files.stats_filename.is_empty()).then(|| OsString::from(&files.stats_filename));
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let start = SystemTime::now();
        Ok(DiskFs {
            disk,
            filename: files.filename.clone().into(),
            stats_filename,
            file_mode: (files.file_mode & 0o7777) as u16,
            uid: opts.uid.unwrap_or(uid),
            gid: opts.gid.unwrap_or(gid),
            start,
            opts,
            times: Mutex::new((start, start)),
            snapshots: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
        })
    }

    /// Checks the names of the two files (before anything is started, for an early error).
    pub fn check_names(files: &FuseSettings) -> Result<(), String> {
        let valid = |n: &str| !n.is_empty() && n != "." && n != ".." && !n.contains('/');
        if !valid(&files.filename) {
            return Err(format!("invalid --filename {:?}", files.filename));
        }
        match files.stats_filename.as_str() {
            "" => Ok(()),
            n if !valid(n) => Err(format!("invalid --statsFilename {n:?}")),
            n if n == files.filename => Err(format!(
                "--filename and --statsFilename are both {n:?}; they must differ"
            )),
            _ => Ok(()),
        }
    }

    fn root_attr(&self) -> FileAttr {
        FileAttr {
            kind: FileType::Directory,
            perm: 0o755,
            nlink: 2,
            ..self.base_attr(ROOT)
        }
    }

    fn base_attr(&self, ino: u64) -> FileAttr {
        FileAttr {
            ino: INodeNo(ino),
            size: 0,
            blocks: 0,
            atime: self.start,
            mtime: self.start,
            ctime: self.start,
            crtime: self.start,
            kind: FileType::RegularFile,
            perm: 0,
            nlink: 1,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    fn attr(&self, ino: u64) -> Option<FileAttr> {
        let base = self.base_attr(ino);
        match ino {
            ROOT => Some(self.root_attr()),
            FILE => {
                let (atime, mtime) = *self.times.lock().unwrap_or_else(|e| e.into_inner());
                let size = self.disk.size();
                Some(FileAttr {
                    size,
                    // 512-byte units, as stat(2) defines them: the file looks fully allocated
                    // (the original reported the block count here).
                    blocks: size.div_ceil(512),
                    atime,
                    mtime,
                    perm: self.file_mode,
                    blksize: self.disk.block_size(),
                    ..base
                })
            }
            STATS if self.stats_filename.is_some() => {
                let now = SystemTime::now();
                let size = self.disk.stats_text().len() as u64;
                Some(FileAttr {
                    size,
                    blocks: size.div_ceil(512),
                    atime: now,
                    mtime: now,
                    perm: 0o444,
                    ..base
                })
            }
            _ => None,
        }
    }

    fn ino_of(&self, name: &OsStr) -> Option<u64> {
        if name == self.filename.as_os_str() {
            Some(FILE)
        } else if self.stats_filename.as_deref() == Some(name) {
            Some(STATS)
        } else {
            None
        }
    }

    fn touch(&self, read: bool) {
        let now = SystemTime::now();
        let mut t = self.times.lock().unwrap_or_else(|e| e.into_inner());
        if read {
            t.0 = now;
        } else {
            t.1 = now;
        }
    }

    fn flush_disk(&self, what: &str, reply: ReplyEmpty) {
        match self.disk.flush() {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(failed(what, &e)),
        }
    }
}

/// Logs a failed request and gives its errno.
fn failed(what: &str, e: &StoreError) -> Errno {
    log::error!("{what}: {e}");
    Errno::from_i32(e.errno())
}

fn errno(code: i32) -> Errno {
    Errno::from_i32(code)
}

impl Filesystem for DiskFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Each limit is clamped to what the kernel allows: the Err value is the nearest one
        // that succeeds.
        let max_write = match config.set_max_write(self.opts.max_write) {
            Ok(_) => self.opts.max_write,
            Err(nearest) => {
                let _ = config.set_max_write(nearest);
                nearest
            }
        };
        // The kernel offers its default readahead (128 KiB) and refuses more here; the mount's
        // readahead is raised afterwards through sysfs (crate::set_readahead).
        let readahead = self.opts.max_readahead;
        let readahead = match config.set_max_readahead(readahead) {
            Ok(_) => readahead,
            Err(nearest) => {
                let _ = config.set_max_readahead(nearest);
                nearest
            }
        };
        // Asynchronous direct I/O lets one thread (fio with libaio, the loop driver in
        // direct-I/O mode) keep several requests in flight; background requests (readahead,
        // async I/O) are capped by max_background, fuser's 16 by default.
        let _ = config.add_capabilities(fuser::InitFlags::FUSE_ASYNC_DIO);
        let background = u16::try_from(self.opts.threads.max(16)).unwrap_or(u16::MAX);
        let _ = config.set_max_background(background);
        log::debug!(
            "FUSE init: max_write={max_write} max_readahead={readahead} max_background={background} threads={}",
            self.opts.threads
        );
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let found = (parent.0 == ROOT)
            .then(|| self.ino_of(name))
            .flatten()
            .and_then(|ino| self.attr(ino));
        match found {
            Some(attr) => reply.entry_with_ttls(
                &self.opts.attr_timeout,
                &self.opts.entry_timeout,
                &attr,
                Generation(0),
            ),
            // A node id of 0 is a negative entry the kernel may cache for the entry timeout.
            None if !self.opts.negative_timeout.is_zero() => {
                let attr = FileAttr {
                    ino: INodeNo(0),
                    ..self.root_attr()
                };
                reply.entry_with_ttls(
                    &Duration::ZERO,
                    &self.opts.negative_timeout,
                    &attr,
                    Generation(0),
                )
            }
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.attr(ino.0) {
            Some(attr) => reply.attr(&self.opts.attr_timeout, &attr),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        if mode.is_some() || uid.is_some() || gid.is_some() {
            return reply.error(Errno::EPERM);
        }
        if let Some(size) = size {
            if ino.0 != FILE {
                return reply.error(Errno::EACCES);
            }
            // The disk has a fixed size; O_TRUNC (dd of=FILE) must still work, as in s3backer.
            log::debug!("truncate to {size} ignored: the disk file has a fixed size");
        }
        if ino.0 == FILE && (atime.is_some() || mtime.is_some()) {
            let at = |t: TimeOrNow| match t {
                TimeOrNow::SpecificTime(t) => t,
                TimeOrNow::Now => SystemTime::now(),
            };
            let mut t = self.times.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(a) = atime {
                t.0 = at(a);
            }
            if let Some(m) = mtime {
                t.1 = at(m);
            }
        }
        self.getattr(_req, ino, None, reply);
    }

    fn readlink(&self, _req: &Request, _ino: INodeNo, reply: ReplyData) {
        reply.error(Errno::EINVAL);
    }

    fn mknod(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EPERM);
    }

    fn mkdir(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EPERM);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match (parent.0, self.ino_of(name)) {
            (ROOT, Some(STATS)) => {
                log::info!("statistics reset (stats file unlinked)");
                self.disk.reset_stats();
                reply.ok();
            }
            (ROOT, Some(_)) => reply.error(Errno::EPERM),
            _ => reply.error(Errno::ENOENT),
        }
    }

    fn rmdir(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EPERM);
    }

    fn symlink(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _link_name: &OsStr,
        _target: &std::path::Path,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EPERM);
    }

    fn rename(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _newparent: INodeNo,
        _newname: &OsStr,
        _flags: fuser::RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EPERM);
    }

    fn link(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EPERM);
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let writing = flags.0 & libc::O_ACCMODE != libc::O_RDONLY;
        match ino.0 {
            FILE => {
                if writing && self.disk.read_only() {
                    return reply.error(Errno::EROFS);
                }
                let mut f = FopenFlags::empty();
                if self.opts.direct_io {
                    // The disk serializes writes of one block itself and the file never grows,
                    // so concurrent direct writes need no inode lock in the kernel.
                    f |= FopenFlags::FOPEN_DIRECT_IO | FopenFlags::FOPEN_PARALLEL_DIRECT_WRITES;
                } else if self.opts.kernel_cache {
                    f |= FopenFlags::FOPEN_KEEP_CACHE;
                }
                reply.opened(FileHandle(0), f);
            }
            STATS if self.stats_filename.is_some() => {
                if writing {
                    return reply.error(Errno::EACCES);
                }
                let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
                let text: Arc<[u8]> = self.disk.stats_text().into_bytes().into();
                self.snapshots
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(fh, text);
                // The size changes between stat and read: never let the kernel cache it.
                reply.opened(FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO);
            }
            ROOT => reply.error(Errno::EISDIR),
            _ => reply.error(Errno::ENOENT),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match ino.0 {
            FILE => {
                let end = offset.saturating_add(u64::from(size)).min(self.disk.size());
                if offset >= end {
                    return reply.data(&[]);
                }
                let len = (end - offset) as usize;
                log::debug!("read offset={offset} length={len}");
                READ_BUF.with_borrow_mut(|buf| {
                    // Reused per thread: a fresh zeroed vector per read cost page faults and a
                    // memset of every byte (13 % of a cold sequential read's CPU); the disk
                    // overwrites all `len` bytes anyway.
                    if buf.len() < len {
                        buf.resize(len, 0);
                    }
                    let buf = &mut buf[..len];
                    match self.disk.read(buf, offset) {
                        Ok(()) => {
                            self.touch(true);
                            reply.data(buf)
                        }
                        Err(e) => {
                            reply.error(failed(&format!("read at {offset} length {len}"), &e))
                        }
                    }
                })
            }
            STATS => {
                let snap = self
                    .snapshots
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&fh.0)
                    .cloned();
                let Some(text) = snap else {
                    return reply.error(Errno::EBADF);
                };
                let start = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(text.len());
                let end = start.saturating_add(size as usize).min(text.len());
                reply.data(&text[start..end])
            }
            ROOT => reply.error(Errno::EISDIR),
            _ => reply.error(Errno::ENOENT),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        if ino.0 != FILE {
            return reply.error(Errno::EINVAL);
        }
        if self.disk.read_only() {
            return reply.error(Errno::EROFS);
        }
        let size = self.disk.size();
        if offset >= size {
            return reply.error(Errno::ENOSPC);
        }
        // Cut at the end: the caller sees a short write, then ENOSPC on the rest.
        let len = (size - offset).min(data.len() as u64) as usize;
        log::debug!("write offset={offset} length={len}");
        match self.disk.write(&data[..len], offset, false) {
            Ok(()) => {
                self.touch(false);
                reply.written(len as u32)
            }
            Err(e) => reply.error(failed(&format!("write at {offset} length {len}"), &e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Every close() of the disk file: make what was written durable, and say if not.
        if ino.0 == FILE && !self.disk.read_only() {
            log::debug!("flush (close)");
            self.flush_disk("flush at close", reply)
        } else {
            reply.ok()
        }
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        if ino.0 == STATS {
            self.snapshots
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&fh.0);
        }
        reply.ok()
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        if ino.0 == FILE && !self.disk.read_only() {
            log::debug!("{}", if datasync { "fdatasync" } else { "fsync" });
            self.flush_disk("fsync", reply)
        } else {
            reply.ok()
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        if ino.0 != ROOT {
            return reply.error(Errno::ENOTDIR);
        }
        let mut entries: Vec<(u64, FileType, &OsStr)> = vec![
            (ROOT, FileType::Directory, OsStr::new(".")),
            (ROOT, FileType::Directory, OsStr::new("..")),
            (FILE, FileType::RegularFile, self.filename.as_os_str()),
        ];
        if let Some(stats) = &self.stats_filename {
            entries.push((STATS, FileType::RegularFile, stats.as_os_str()));
        }
        for (i, (ino, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            // The offset given with an entry is where the next readdir continues.
            if reply.add(INodeNo(ino), i as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok()
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok()
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let bs = self.disk.block_size();
        let blocks = self.disk.size() / u64::from(bs);
        let files = if self.stats_filename.is_some() { 3 } else { 2 };
        reply.statfs(blocks, 0, 0, files, 0, bs, 255, bs);
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        // ENOSYS makes the kernel stop asking (it then answers EOPNOTSUPP itself).
        reply.error(Errno::ENOSYS);
    }

    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: fuser::ReplyXattr,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, _size: u32, reply: fuser::ReplyXattr) {
        reply.error(Errno::ENOSYS);
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::ENOSYS);
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        // default_permissions: the kernel checks the modes itself.
        reply.ok()
    }

    fn create(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: fuser::ReplyCreate,
    ) {
        reply.error(Errno::EPERM);
    }

    fn getlk(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        _start: u64,
        _end: u64,
        _typ: i32,
        _pid: u32,
        reply: fuser::ReplyLock,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn setlk(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        _start: u64,
        _end: u64,
        _typ: i32,
        _pid: u32,
        _sleep: bool,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn bmap(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _blocksize: u32,
        _idx: u64,
        reply: fuser::ReplyBmap,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: fuser::IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: fuser::ReplyIoctl,
    ) {
        reply.error(errno(libc::ENOTTY));
    }

    fn poll(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _ph: fuser::PollNotifier,
        _events: fuser::PollEvents,
        _flags: fuser::PollFlags,
        reply: fuser::ReplyPoll,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        if ino.0 != FILE {
            return reply.error(errno(libc::EOPNOTSUPP));
        }
        let size = self.disk.size();
        let keep_size = mode & libc::FALLOC_FL_KEEP_SIZE != 0;
        let zeroing = mode & (libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_ZERO_RANGE) != 0;
        if mode
            & !(libc::FALLOC_FL_KEEP_SIZE | libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_ZERO_RANGE)
            != 0
        {
            // COLLAPSE_RANGE, INSERT_RANGE, UNSHARE_RANGE: they move data; a disk cannot.
            return reply.error(errno(libc::EOPNOTSUPP));
        }
        if length == 0 {
            return reply.error(Errno::EINVAL);
        }
        let end = offset.saturating_add(length);
        if end > size && !keep_size {
            // The file would have to grow.
            return reply.error(Errno::ENOSPC);
        }
        if !zeroing {
            // Allocation inside the file: every byte of a disk is already there.
            return reply.ok();
        }
        if self.disk.read_only() {
            return reply.error(Errno::EROFS);
        }
        let end = end.min(size);
        if offset >= end {
            return reply.ok();
        }
        log::debug!(
            "fallocate mode={mode:#x} offset={offset} length={}",
            end - offset
        );
        match self.disk.zero(offset, end - offset, false) {
            Ok(()) => {
                self.touch(false);
                reply.ok()
            }
            Err(e) => reply.error(failed(
                &format!("fallocate(punch hole) at {offset} length {}", end - offset),
                &e,
            )),
        }
    }

    fn lseek(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: i64,
        _whence: i32,
        reply: fuser::ReplyLseek,
    ) {
        // ENOSYS: the kernel seeks itself from then on (SEEK_DATA/SEEK_HOLE see all data).
        reply.error(Errno::ENOSYS);
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        _fh_in: FileHandle,
        _offset_in: u64,
        _ino_out: INodeNo,
        _fh_out: FileHandle,
        _offset_out: u64,
        _len: u64,
        _flags: fuser::CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        // ENOSYS: the kernel falls back to reads and writes.
        reply.error(Errno::ENOSYS);
    }
}
