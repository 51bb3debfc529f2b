//! FUSE options: what `-o` items and dash options not claimed by an s3backer flag mean here, on
//! top of the defaults s3backer always applies (facts §7).
//!
//! The config crate hands over every argument it did not recognise, as written (`-o item` as two
//! elements, `-s`, `-d`). Each item is one of:
//! * a kernel mount flag (`nodev`, `ro`, `noatime`, ...) or kernel FUSE option (`allow_other`,
//!   `default_permissions`, `max_read=`, `subtype=`, `fsname=`);
//! * a libfuse option that this front end implements itself (`uid=`, `gid=`, `entry_timeout=`,
//!   `attr_timeout=`, `negative_timeout=`, `kernel_cache`, `direct_io`, `max_write=`,
//!   `max_readahead=`, `-s`);
//! * bookkeeping that mount(8) and mount.fuse add for their own use (`defaults`, `noauto`,
//!   `_netdev`, `x-systemd.*`, ...), which means nothing to a FUSE server;
//! * a libfuse 2 option with no effect on this server (`big_writes`, `use_ino`, ...): accepted
//!   with a warning, since configurations written for the original carry them;
//! * anything else: an error naming the option (libfuse refuses unknown options too).
//!
//! Defaults, each overridable by a later user option: `allow_other`, `default_permissions`,
//! `nodev`, `nosuid`, `subtype=s3backer`, `fsname=<volume description>`, `kernel_cache`,
//! `entry_timeout=31536000`, `negative_timeout=31536000`, `attr_timeout=0`.

use fuser::{MountOption, SessionACL};
use std::time::Duration;

/// Largest FUSE request the kernel sends by default: `fs.fuse.max_pages_limit` is 256 pages
/// (1 MiB) on current kernels; asking for more is clamped by the kernel anyway.
pub const DEFAULT_MAX_WRITE: u32 = 1 << 20;

/// FUSE request threads: enough for fio/loop queue depths of 16-32 to reach the disk whole
/// (each thread blocks on one request while the disk fans its blocks out on the I/O pool).
pub const DEFAULT_THREADS: usize = 32;

/// Everything the FUSE front end takes from the command line's FUSE options.
#[derive(Clone, Debug, PartialEq)]
pub struct FuseOptions {
    /// Kernel flags and options, fsname and subtype, in the form fuser mounts with.
    pub mount_options: Vec<MountOption>,
    /// Who may use the mount (`allow_other`: everyone, subject to the file modes).
    pub acl: SessionACL,
    /// Owner of every file (`-o uid=`); `None`: the process's.
    pub uid: Option<u32>,
    /// Group of every file (`-o gid=`); `None`: the process's.
    pub gid: Option<u32>,
    /// How long the kernel may cache a name lookup.
    pub entry_timeout: Duration,
    /// How long the kernel may cache a failed lookup (0: not at all).
    pub negative_timeout: Duration,
    /// How long the kernel may cache attributes.
    pub attr_timeout: Duration,
    /// Keep the kernel's page cache of the disk file across opens (we are its only writer).
    pub kernel_cache: bool,
    /// `-o direct_io` (same as `--directIO`).
    pub direct_io: bool,
    /// Largest write request asked of the kernel.
    pub max_write: u32,
    /// Readahead wanted for the disk file (see [`crate::set_readahead`]).
    pub max_readahead: u32,
    /// Request threads (`-s`: one).
    pub threads: usize,
    /// Options accepted without effect, with the reason (logged as warnings).
    pub warnings: Vec<String>,
}

impl FuseOptions {
    /// s3backer's defaults plus `args` (the FUSE arguments as the config crate kept them).
    /// `fsname` is the volume description; `read_only` mounts read-only (`--readOnly`).
    pub fn parse(args: &[String], fsname: &str, read_only: bool) -> Result<FuseOptions, String> {
        let mut b = Builder::new(fsname);
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "-o" => {
                    let list = it
                        .next()
                        .ok_or_else(|| "missing argument after \"-o\"".to_string())?;
                    for item in list.split(',').filter(|i| !i.is_empty()) {
                        b.item(item)?;
                    }
                }
                a if a.starts_with("-o") => {
                    for item in a[2..].split(',').filter(|i| !i.is_empty()) {
                        b.item(item)?;
                    }
                }
                "-s" => b.opts.threads = 1,
                // -d and -f were taken by the config crate (foreground, debug); -d stays here
                // only so FUSE sees the whole command line, as with libfuse.
                "-d" | "-f" => {}
                other => return Err(format!("unknown FUSE option \"{other}\"")),
            }
        }
        Ok(b.finish(read_only))
    }
}

/// Flags kept by name so a later user option replaces an earlier default.
struct Builder {
    opts: FuseOptions,
    fsname: String,
    subtype: String,
    dev: bool,
    suid: bool,
    exec: bool,
    atime: Option<bool>,
    ro: Option<bool>,
    sync: Option<bool>,
    dirsync: bool,
    max_read: Option<u32>,
}

impl Builder {
    fn new(fsname: &str) -> Builder {
        Builder {
            opts: FuseOptions {
                mount_options: Vec::new(),
                acl: SessionACL::All,
                uid: None,
                gid: None,
                entry_timeout: Duration::from_secs(31_536_000),
                negative_timeout: Duration::from_secs(31_536_000),
                attr_timeout: Duration::ZERO,
                kernel_cache: true,
                direct_io: false,
                max_write: DEFAULT_MAX_WRITE,
                max_readahead: DEFAULT_MAX_WRITE,
                threads: DEFAULT_THREADS,
                warnings: Vec::new(),
            },
            fsname: fsname.to_string(),
            subtype: "s3backer".into(),
            dev: false,
            suid: false,
            exec: true,
            atime: None,
            ro: None,
            sync: None,
            dirsync: false,
            max_read: None,
        }
    }

    fn item(&mut self, item: &str) -> Result<(), String> {
        let (name, value) = match item.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (item, None),
        };
        let o = &mut self.opts;
        match (name, value) {
            // Kernel mount flags.
            ("dev", None) => self.dev = true,
            ("nodev", None) => self.dev = false,
            ("suid", None) => self.suid = true,
            ("nosuid", None) => self.suid = false,
            ("exec", None) => self.exec = true,
            ("noexec", None) => self.exec = false,
            ("atime", None) => self.atime = Some(true),
            ("noatime", None) => self.atime = Some(false),
            // relatime is the kernel's default for a new mount.
            ("relatime", None) => self.atime = None,
            ("ro", None) => self.ro = Some(true),
            ("rw", None) => self.ro = Some(false),
            ("sync", None) => self.sync = Some(true),
            ("async", None) => self.sync = Some(false),
            ("dirsync", None) => self.dirsync = true,
            // Kernel FUSE options.
            ("allow_other", None) => o.acl = SessionACL::All,
            ("allow_root", None) => o.acl = SessionACL::RootAndOwner,
            // Always on: the kernel checks the file modes.
            ("default_permissions", None) => {}
            ("fsname", Some(v)) => self.fsname = v.to_string(),
            ("subtype", Some(v)) => self.subtype = v.to_string(),
            ("max_read", Some(v)) => self.max_read = Some(parse_u32(item, v)?),
            // libfuse options implemented here.
            ("uid", Some(v)) => o.uid = Some(parse_u32(item, v)?),
            ("gid", Some(v)) => o.gid = Some(parse_u32(item, v)?),
            ("entry_timeout", Some(v)) => o.entry_timeout = parse_secs(item, v)?,
            ("negative_timeout", Some(v)) => o.negative_timeout = parse_secs(item, v)?,
            ("attr_timeout", Some(v)) => o.attr_timeout = parse_secs(item, v)?,
            ("kernel_cache", None) => o.kernel_cache = true,
            // libfuse's auto_cache revalidates the cache on mtime change; we are the only
            // writer, so not keeping the cache is the closest meaning.
            ("auto_cache", None) => o.kernel_cache = false,
            ("direct_io", None) => o.direct_io = true,
            ("max_write", Some(v)) => o.max_write = parse_u32(item, v)?.max(4096),
            ("max_readahead", Some(v)) => o.max_readahead = parse_u32(item, v)?.max(4096),
            // Bookkeeping of mount(8), mount.fuse and systemd: not for the server.
            ("defaults" | "auto" | "noauto" | "user" | "nouser" | "users" | "owner", None)
            | ("group" | "_netdev" | "nofail" | "nodelalloc", None)
            | ("comment", Some(_)) => {}
            (n, _) if n.starts_with("x-") => {}
            // libfuse 2 options with no meaning for this server.
            ("big_writes" | "large_read", None) => o
                .warnings
                .push(format!("-o {name}: always on here, ignored")),
            ("use_ino" | "readdir_ino" | "hard_remove" | "intr" | "no_remote_lock", None)
            | ("nonempty" | "async_read" | "splice_read" | "splice_write", None)
            | ("splice_move" | "no_splice_read" | "no_splice_write", None)
            | ("no_splice_move" | "atomic_o_trunc" | "noforget", None)
            | ("intr_signal" | "modules" | "remember", Some(_)) => o
                .warnings
                .push(format!("-o {item}: no effect with this server, ignored")),
            ("umask", Some(_)) => {
                return Err(format!(
                    "FUSE option \"-o {item}\" is not supported: set the disk file's mode with --fileMode"
                ));
            }
            ("auto_unmount" | "blkdev", None) | ("blksize" | "fd" | "rootmode", Some(_)) => {
                return Err(format!(
                    "FUSE option \"-o {item}\" is not supported by this release"
                ));
            }
            ("user_id" | "group_id", Some(_)) => {
                return Err(format!(
                    "FUSE option \"-o {item}\" is set by the mount itself; use -o uid= / -o gid= for the files' owner"
                ));
            }
            _ => return Err(format!("unknown FUSE option \"-o {item}\"")),
        }
        Ok(())
    }

    fn finish(mut self, read_only: bool) -> FuseOptions {
        // --readOnly mounts read-only whatever mount(8) passed ("rw" comes with "defaults").
        if read_only {
            self.ro = Some(true);
        }
        let mut m = vec![
            MountOption::FSName(self.fsname),
            // fuser passes the subtype to fusermount only; the kernel takes it as an option, and
            // it makes the type show as fuse.s3backer in /proc/mounts, which umount helpers and
            // mount.fuse rely on.
            MountOption::CUSTOM(format!("subtype={}", self.subtype)),
            MountOption::DefaultPermissions,
            if self.dev {
                MountOption::Dev
            } else {
                MountOption::NoDev
            },
            if self.suid {
                MountOption::Suid
            } else {
                MountOption::NoSuid
            },
        ];
        if !self.exec {
            m.push(MountOption::NoExec);
        }
        match self.atime {
            Some(true) => m.push(MountOption::Atime),
            Some(false) => m.push(MountOption::NoAtime),
            None => {}
        }
        if self.ro == Some(true) {
            m.push(MountOption::RO);
        }
        if self.sync == Some(true) {
            m.push(MountOption::Sync);
        }
        if self.dirsync {
            m.push(MountOption::DirSync);
        }
        if let Some(n) = self.max_read {
            m.push(MountOption::CUSTOM(format!("max_read={n}")));
        }
        self.opts.mount_options = m;
        self.opts
    }
}

fn parse_u32(item: &str, v: &str) -> Result<u32, String> {
    v.parse()
        .map_err(|_| format!("FUSE option \"-o {item}\": {v:?} is not a number"))
}

fn parse_secs(item: &str, v: &str) -> Result<Duration, String> {
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| format!("FUSE option \"-o {item}\": {v:?} is not a number of seconds"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(args: &[&str]) -> Result<FuseOptions, String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        FuseOptions::parse(&args, "http://s3/bucket/", false)
    }

    #[test]
    fn defaults_are_s3backers() {
        let o = parse(&[]).unwrap();
        assert_eq!(o.acl, SessionACL::All);
        assert_eq!(o.entry_timeout, Duration::from_secs(31_536_000));
        assert_eq!(o.negative_timeout, Duration::from_secs(31_536_000));
        assert_eq!(o.attr_timeout, Duration::ZERO);
        assert!(o.kernel_cache && !o.direct_io);
        assert_eq!(o.threads, DEFAULT_THREADS);
        assert_eq!(
            o.mount_options,
            [
                MountOption::FSName("http://s3/bucket/".into()),
                MountOption::CUSTOM("subtype=s3backer".into()),
                MountOption::DefaultPermissions,
                MountOption::NoDev,
                MountOption::NoSuid,
            ]
        );
    }

    #[test]
    fn user_options_override_defaults() {
        let o = parse(&[
            "-o",
            "dev,suid,fsname=mine,subtype=x,attr_timeout=1.5,uid=1000,gid=100",
            "-s",
            "-oallow_root,max_write=131072,direct_io,noatime",
        ])
        .unwrap();
        assert_eq!(o.acl, SessionACL::RootAndOwner);
        assert_eq!(o.attr_timeout, Duration::from_millis(1500));
        assert_eq!((o.uid, o.gid), (Some(1000), Some(100)));
        assert_eq!(o.threads, 1);
        assert_eq!(o.max_write, 131072);
        assert!(o.direct_io);
        assert_eq!(
            o.mount_options,
            [
                MountOption::FSName("mine".into()),
                MountOption::CUSTOM("subtype=x".into()),
                MountOption::DefaultPermissions,
                MountOption::Dev,
                MountOption::Suid,
                MountOption::NoAtime,
            ]
        );
    }

    #[test]
    fn mount8_bookkeeping_is_accepted_and_read_only_wins() {
        let args: Vec<String> = [
            "-o",
            "rw,defaults,noauto,_netdev,x-systemd.automount,relatime",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let o = FuseOptions::parse(&args, "d", true).unwrap();
        assert!(o.mount_options.contains(&MountOption::RO));
        assert!(o.warnings.is_empty());
        let o = parse(&["-o", "big_writes,use_ino"]).unwrap();
        assert_eq!(o.warnings.len(), 2);
    }

    #[test]
    fn unknown_and_unsupported_options_are_errors() {
        assert_eq!(
            parse(&["-o", "bogus"]).unwrap_err(),
            "unknown FUSE option \"-o bogus\""
        );
        assert!(parse(&["-x"]).unwrap_err().contains("\"-x\""));
        assert!(
            parse(&["-o", "umask=022"])
                .unwrap_err()
                .contains("--fileMode")
        );
        assert!(
            parse(&["-o", "uid=abc"])
                .unwrap_err()
                .contains("not a number")
        );
        assert!(parse(&["-o", "attr_timeout=-1"]).is_err());
        assert!(parse(&["-o"]).is_err());
    }
}
