//! The local directory backend (`--test`): one file per object, named like the object.
//!
//! Compatible with s3backer's `--test` mode: a block file holds exactly the raw block (no
//! metadata, no encoding), an all-zero block has no file, a missing file reads as zeros.
//! Differences, all deliberate:
//! * Writes are crash-safe: the data goes to `<name>.XXXXXX`, is fsynced, then renamed over the
//!   name, so a crash leaves the old or the new block, never a torn one. [`ObjectBackend::sync`]
//!   fsyncs the directories whose entries changed, which makes every acknowledged write durable.
//! * Two processes cannot serve the same directory and prefix: an advisory lock on
//!   `<prefix>.s3backer-lock` (shared for `--readOnly`, exclusive otherwise) is held for the
//!   lifetime of the backend. Unlike a mount-token object it cannot go stale: the kernel drops it
//!   when the process dies. The lock file is never deleted (deleting lock files races).
//! * Prefixes containing `/` name subdirectories, which are created as needed.
//! * The original's `--test-errors` never injected anything; ours neither (see the config crate).

use super::*;
use crate::rand::random_u32;
use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// Options of `--test` mode.
#[derive(Clone, Debug, Default)]
pub struct DirOptions {
    /// `--readOnly`: take the lock shared and refuse writes.
    pub read_only: bool,
    /// `--test-delays`: sleep 0–199 ms before each read and write.
    pub delays: bool,
    /// `--test-discard`: reads return zeros, writes are dropped, listings are empty.
    pub discard: bool,
}

/// Objects as files in a directory.
pub struct DirBackend {
    root: PathBuf,
    options: DirOptions,
    /// Directories whose entries changed since the last `sync`.
    dirty_dirs: Mutex<BTreeSet<PathBuf>>,
    _lock: File,
}

fn io_err(path: &Path, source: std::io::Error) -> BackendError {
    BackendError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl DirBackend {
    /// Opens `root` (which must be an existing directory) for the disk with object-name prefix
    /// `prefix`, taking the lock described in the module documentation.
    pub fn open(root: &Path, prefix: &str, options: DirOptions) -> BackendResult<DirBackend> {
        let meta = fs::metadata(root).map_err(|e| io_err(root, e))?;
        if !meta.is_dir() {
            return Err(io_err(root, std::io::Error::from(ErrorKind::NotADirectory)));
        }
        let lock_path = root.join(format!("{prefix}.s3backer-lock"));
        if let Some(parent) = lock_path.parent() {
            fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
        }
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| io_err(&lock_path, e))?;
        let mode = if options.read_only {
            libc::LOCK_SH
        } else {
            libc::LOCK_EX
        };
        // SAFETY: flock on a valid, owned descriptor.
        if unsafe { libc::flock(lock.as_raw_fd(), mode | libc::LOCK_NB) } != 0 {
            let err = std::io::Error::last_os_error();
            let detail = if err.kind() == ErrorKind::WouldBlock {
                std::io::Error::other(format!(
                    "the disk in this directory (prefix \"{prefix}\") is in use by another s3backer process"
                ))
            } else {
                err
            };
            return Err(io_err(&lock_path, detail));
        }
        Ok(DirBackend {
            root: root.to_path_buf(),
            options,
            dirty_dirs: Mutex::new(BTreeSet::new()),
            _lock: lock,
        })
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    fn maybe_delay(&self) {
        if self.options.delays {
            std::thread::sleep(Duration::from_millis(u64::from(random_u32() % 200)));
        }
    }

    fn mark_dirty(&self, path: &Path) {
        if let Some(parent) = path.parent() {
            self.dirty_dirs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(parent.to_path_buf());
        }
    }

    fn read_only_error(&self, path: &Path) -> BackendError {
        io_err(path, std::io::Error::from_raw_os_error(libc::EROFS))
    }
}

impl ObjectBackend for DirBackend {
    fn caps(&self) -> BackendCaps {
        BackendCaps { metadata: false }
    }

    fn description(&self, prefix: &str) -> String {
        format!("file://{}/{}", self.root.display(), prefix)
    }

    fn get(&self, key: &str, _req: &GetRequest) -> BackendResult<GetOutcome> {
        self.maybe_delay();
        if self.options.discard {
            return Ok(GetOutcome::NotFound);
        }
        let path = self.path(key);
        match fs::read(&path) {
            Ok(body) => Ok(GetOutcome::Found(ObjectData {
                body,
                etag: None,
                content_encoding: None,
                meta: Vec::new(),
                range_of: None,
                in_dest: false,
            })),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(GetOutcome::NotFound),
            Err(e) => Err(io_err(&path, e)),
        }
    }

    fn head(&self, key: &str, _startup_probe: bool) -> BackendResult<Option<ObjectInfo>> {
        let path = self.path(key);
        match fs::metadata(&path) {
            Ok(m) => Ok(Some(ObjectInfo {
                etag: None,
                content_length: Some(m.len()),
                content_encoding: None,
                meta: Vec::new(),
            })),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path, e)),
        }
    }

    fn put(&self, key: &str, body: &[u8], _req: &PutRequest) -> BackendResult<PutOutcome> {
        self.maybe_delay();
        let path = self.path(key);
        if self.options.read_only {
            return Err(self.read_only_error(&path));
        }
        if self.options.discard {
            return Ok(PutOutcome { etag: None });
        }
        if let Some(parent) = path.parent()
            && !parent.exists()
        {
            fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
            self.mark_dirty(parent);
        }
        let tmp = PathBuf::from(format!("{}.{:08x}", path.display(), random_u32()));
        let write = || -> std::io::Result<()> {
            let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            f.write_all(body)?;
            f.sync_data()?;
            fs::rename(&tmp, &path)
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(io_err(&path, e));
        }
        self.mark_dirty(&path);
        Ok(PutOutcome { etag: None })
    }

    fn delete(&self, key: &str) -> BackendResult<()> {
        let path = self.path(key);
        if self.options.read_only {
            return Err(self.read_only_error(&path));
        }
        if self.options.discard {
            return Ok(());
        }
        match fs::remove_file(&path) {
            Ok(()) => {
                self.mark_dirty(&path);
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&path, e)),
        }
    }

    fn delete_many(&self, keys: &[String]) -> BackendResult<Vec<DeleteFailure>> {
        keys.iter().try_for_each(|k| self.delete(k))?;
        Ok(Vec::new())
    }

    fn list(&self, prefix: &str, marker: &str, max_keys: u32) -> BackendResult<ListPage> {
        if self.options.discard {
            return Ok(ListPage {
                keys: Vec::new(),
                is_truncated: false,
            });
        }
        // Block names never contain '/', so only the prefix's own directory can hold them.
        let (dir_part, _) = prefix.rsplit_once('/').unwrap_or(("", prefix));
        let dir = self.root.join(dir_part);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Ok(ListPage {
                    keys: Vec::new(),
                    is_truncated: false,
                });
            }
            Err(e) => return Err(io_err(&dir, e)),
        };
        let mut keys = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_err(&dir, e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let key = if dir_part.is_empty() {
                name
            } else {
                format!("{dir_part}/{name}")
            };
            if key.starts_with(prefix) && key.as_str() > marker {
                keys.push(key);
            }
        }
        keys.sort();
        let is_truncated = keys.len() > max_keys as usize;
        keys.truncate(max_keys as usize);
        Ok(ListPage { keys, is_truncated })
    }

    fn sync(&self) -> BackendResult<()> {
        let dirs = std::mem::take(&mut *self.dirty_dirs.lock().unwrap_or_else(|e| e.into_inner()));
        for dir in &dirs {
            let result = File::open(dir).and_then(|d| d.sync_all());
            if let Err(e) = result {
                // Put them back so the next flush tries again.
                self.dirty_dirs
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(dirs.iter().cloned());
                return Err(io_err(dir, e));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "s3b-dir-{name}-{}-{:08x}",
            std::process::id(),
            random_u32()
        ));
        fs::create_dir_all(&dir).expect("mkdir");
        dir
    }

    #[test]
    fn put_get_delete_list() {
        let root = tempdir("basic");
        let b = DirBackend::open(&root, "p/", DirOptions::default()).expect("open");
        assert!(matches!(
            b.get("p/00000001", &GetRequest::default()).expect("get"),
            GetOutcome::NotFound
        ));
        b.put("p/00000001", b"abc", &PutRequest::default())
            .expect("put");
        b.put("p/00000003", b"def", &PutRequest::default())
            .expect("put");
        match b.get("p/00000001", &GetRequest::default()).expect("get") {
            GetOutcome::Found(d) => assert_eq!(d.body, b"abc"),
            _ => panic!("missing"),
        }
        let page = b.list("p/", "", 1).expect("list");
        assert_eq!(page.keys, vec!["p/.s3backer-lock".to_string()]);
        assert!(page.is_truncated);
        let page = b.list("p/0", "p/00000001", 10).expect("list");
        assert_eq!(page.keys, vec!["p/00000003".to_string()]);
        b.delete("p/00000001").expect("delete");
        b.delete("p/00000001").expect("delete of absent succeeds");
        b.sync().expect("sync");
        let page = b.list("p/0", "", 10).expect("list");
        assert_eq!(page.keys, vec!["p/00000003".to_string()]);
        drop(b);
        fs::remove_dir_all(&root).ok();
    }

    #[test]
    fn second_writer_is_refused_and_readers_share() {
        let root = tempdir("lock");
        let first = DirBackend::open(&root, "", DirOptions::default()).expect("open");
        let err = DirBackend::open(&root, "", DirOptions::default())
            .err()
            .expect("refused");
        assert!(
            err.to_string().contains("in use by another s3backer"),
            "{err}"
        );
        // Another prefix is another disk.
        DirBackend::open(&root, "other-", DirOptions::default()).expect("other prefix");
        drop(first);
        let ro = DirOptions {
            read_only: true,
            ..Default::default()
        };
        let r1 = DirBackend::open(&root, "", ro.clone()).expect("reader 1");
        let _r2 = DirBackend::open(&root, "", ro).expect("reader 2");
        assert!(r1.put("00000000", b"x", &PutRequest::default()).is_err());
        fs::remove_dir_all(&root).ok();
    }
}
