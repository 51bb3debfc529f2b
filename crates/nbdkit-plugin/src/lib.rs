//! The nbdkit plugin: `nbdkit s3backer bucket=... size=... blockSize=...`.
//!
//! A thin front end over [`s3backer_store::Volume`] and [`s3backer_store::Disk`]; everything here
//! is lifecycle, FFI and errno.
//!
//! # Lifecycle (and the fork rule)
//! nbdkit forks when it daemonizes, after `get_ready`. Threads, and anything holding threads,
//! must not exist before the fork (measured: a runtime made before it hangs). So:
//! * `config`: collect parameters.
//! * `config_complete`: parse and validate; connect, auto-detect, check the mount token. Every
//!   user error surfaces here, before nbdkit detaches, with a non-zero exit. No threads.
//! * `get_ready`: write our mount token.
//! * `after_fork`: switch logs to syslog if we were daemonized; build the stack (I/O pool);
//!   start the `--statsFileMirror` thread.
//! * `cleanup`: flush everything, write the stats mirror a last time, then clear the mount token
//!   (only if the flush succeeded).
//!
//! # Thread model
//! PARALLEL: every layer is `Send + Sync`, and [`s3backer_store::Disk`] serializes writes of one
//! block itself. multi-conn is safe because there is one disk per process shared by all
//! connections and FLUSH flushes all of it.
//!
//! # Errors
//! Every callback runs under `catch_unwind` (a panic across the FFI boundary would abort nbdkit),
//! reports its message with `nbdkit_error` and sets an explicit errno the NBD protocol can carry.

mod ffi;

use ffi::*;
use s3backer_config::{Environment, parse_nbdkit_params};
use s3backer_store::{Disk, StoreError, Volume, logging, stats_mirror};
use std::ffi::{CStr, c_char, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

static PARAMS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());
static VOLUME: OnceLock<Volume> = OnceLock::new();
static DISK: OnceLock<Disk> = OnceLock::new();
static CONFIG_PID: AtomicU32 = AtomicU32::new(0);
static STATS_MIRROR: Mutex<Option<stats_mirror::StatsMirror>> = Mutex::new(None);
/// Any non-null pointer: there is no per-connection state.
static HANDLE: u8 = 0;

/// Hands an error message to nbdkit (which logs it with the plugin name).
#[cfg(not(test))]
fn report(msg: &str) {
    let line = std::ffi::CString::new(msg.replace('\0', " ")).unwrap_or_default();
    // SAFETY: "%s" with one valid C string.
    unsafe { nbdkit_error(c"%s".as_ptr(), line.as_ptr()) };
}

/// Sets the errno nbdkit returns to the client.
#[cfg(not(test))]
fn set_errno(errno: c_int) {
    // SAFETY: plain FFI call.
    unsafe { nbdkit_set_error(errno) };
}

// Unit tests run without nbdkit (whose symbols the test binary cannot link): record instead.
#[cfg(test)]
thread_local! {
    static REPORTED: std::cell::RefCell<Vec<(String, c_int)>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[cfg(test)]
fn report(msg: &str) {
    REPORTED.with(|r| r.borrow_mut().push((msg.to_string(), 0)));
}

#[cfg(test)]
fn set_errno(errno: c_int) {
    REPORTED.with(|r| {
        if let Some(last) = r.borrow_mut().last_mut() {
            last.1 = errno;
        }
    });
}

/// The errno the NBD protocol can carry for this error: NBD knows only a handful (EPERM, EIO,
/// ENOMEM, EINVAL, ENOSPC, EOVERFLOW, ENOTSUP, ESHUTDOWN); nbdkit would turn the rest into EINVAL,
/// which would tell a client its request was malformed when the object store failed.
fn nbd_errno(e: &StoreError) -> c_int {
    match e.errno() {
        e @ (libc::EROFS
        | libc::EPERM
        | libc::ENOMEM
        | libc::EINVAL
        | libc::ENOSPC
        | libc::EOVERFLOW
        | libc::ENOTSUP
        | libc::ESHUTDOWN) => e,
        _ => libc::EIO,
    }
}

/// Runs a data-path callback: 0 on success, -1 with errno and message on failure or panic.
fn guarded(what: &str, f: impl FnOnce() -> Result<(), StoreError>) -> c_int {
    let (errno, msg) = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => return 0,
        Ok(Err(e)) => (nbd_errno(&e), e.to_string()),
        Err(panic) => (
            libc::EIO,
            format!(
                "internal error (panic) in {what}: {}",
                panic_message(&panic)
            ),
        ),
    };
    report(&format!("{what}: {msg}"));
    set_errno(errno);
    -1
}

/// Runs a lifecycle callback: 0 on success, -1 with the message reported.
fn lifecycle(what: &str, f: impl FnOnce() -> Result<(), String>) -> c_int {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => 0,
        Ok(Err(msg)) => {
            report(&msg);
            -1
        }
        Err(panic) => {
            report(&format!(
                "internal error (panic) in {what}: {}",
                panic_message(&panic)
            ));
            -1
        }
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

fn disk() -> Result<&'static Disk, StoreError> {
    DISK.get()
        .ok_or_else(|| StoreError::Invalid("the disk is not started".into()))
}

fn cstr(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: nbdkit passes NUL-terminated strings valid for the call.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

extern "C" fn load() {
    logging::init(false);
}

extern "C" fn config(key: *const c_char, value: *const c_char) -> c_int {
    lifecycle("config", || {
        PARAMS
            .lock()
            .map_err(|_| "parameter list poisoned".to_string())?
            .push((cstr(key), cstr(value)));
        Ok(())
    })
}

extern "C" fn config_complete() -> c_int {
    lifecycle("config_complete", || {
        let params = PARAMS
            .lock()
            .map_err(|_| "parameter list poisoned".to_string())?
            .clone();
        let config = parse_nbdkit_params(&params, &Environment::from_process())
            .map_err(|e| e.to_string())?;
        logging::set_debug(config.debug);
        for w in &config.warnings {
            log::warn!("{w}");
        }
        log::debug!("configuration: {config:?}");
        if config.mode != s3backer_config::Mode::Serve {
            return Err("--erase and --reset-mounted-flag are not available in the nbdkit plugin; use the s3backer command".into());
        }
        let volume = Volume::open(&config).map_err(|e| e.to_string())?;
        CONFIG_PID.store(std::process::id(), Ordering::SeqCst);
        VOLUME
            .set(volume)
            .map_err(|_| "configured twice".to_string())
    })
}

extern "C" fn get_ready() -> c_int {
    lifecycle("get_ready", || {
        let volume = VOLUME.get().ok_or("no volume")?;
        volume.establish_mount().map_err(|e| e.to_string())
    })
}

extern "C" fn after_fork() -> c_int {
    lifecycle("after_fork", || {
        if std::process::id() != CONFIG_PID.load(Ordering::SeqCst) {
            logging::use_syslog();
        }
        let volume = VOLUME.get().ok_or("no volume")?;
        let disk = volume.build_disk().map_err(|e| {
            // Nothing was written through the disk: the token we wrote in get_ready must not
            // outlive this failed start.
            if let Err(release) = volume.release_mount() {
                log::warn!("cannot clear the mount token after a failed start: {release}");
            }
            e.to_string()
        })?;
        DISK.set(disk).map_err(|_| "started twice".to_string())?;
        // --statsFileMirror: a thread, so it starts here, after nbdkit's fork.
        if let (Some(path), Some(disk)) = (&volume.config().stats.mirror, DISK.get()) {
            let interval = volume.config().stats.mirror_interval;
            let mirror =
                stats_mirror::start(disk, path.clone(), interval).map_err(|e| e.to_string())?;
            *STATS_MIRROR.lock().unwrap_or_else(|e| e.into_inner()) = Some(mirror);
        }
        Ok(())
    })
}

extern "C" fn cleanup() {
    lifecycle("cleanup", || {
        // Stopped after the final flush (its last copy counts the shutdown's requests too), and
        // also when that flush fails (dropping it stops it).
        let mirror = STATS_MIRROR
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let Some(volume) = VOLUME.get() else {
            return Ok(());
        };
        if let Some(disk) = DISK.get()
            && let Err(e) = disk.shutdown()
        {
            return Err(format!(
                "flush at shutdown failed, leaving the mount token in place: {e}"
            ));
        }
        if let Some(mirror) = mirror {
            mirror.stop();
        }
        volume
            .release_mount()
            .map_err(|e| format!("cannot clear the mount token: {e}"))
    });
}

extern "C" fn open(_readonly: c_int) -> *mut c_void {
    (&raw const HANDLE).cast_mut().cast()
}

extern "C" fn get_size(_h: *mut c_void) -> i64 {
    match VOLUME.get() {
        Some(v) => v.geometry().size() as i64,
        None => {
            report("get_size: no volume");
            -1
        }
    }
}

extern "C" fn can_write(_h: *mut c_void) -> c_int {
    VOLUME
        .get()
        .map(|v| c_int::from(!v.config().read_only))
        .unwrap_or(0)
}

extern "C" fn yes(_h: *mut c_void) -> c_int {
    1
}

extern "C" fn no(_h: *mut c_void) -> c_int {
    0
}

extern "C" fn can_fua(_h: *mut c_void) -> c_int {
    FUA_NATIVE
}

extern "C" fn can_cache(_h: *mut c_void) -> c_int {
    CACHE_NONE
}

extern "C" fn thread_model() -> c_int {
    THREAD_MODEL_PARALLEL
}

extern "C" fn pread(
    _h: *mut c_void,
    buf: *mut c_void,
    count: u32,
    offset: u64,
    _flags: u32,
) -> c_int {
    guarded("pread", || {
        // SAFETY: nbdkit gives a buffer of `count` writable bytes for the duration of the call.
        let buf = unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), count as usize) };
        disk()?.read(buf, offset)
    })
}

extern "C" fn pwrite(
    _h: *mut c_void,
    buf: *const c_void,
    count: u32,
    offset: u64,
    flags: u32,
) -> c_int {
    guarded("pwrite", || {
        // SAFETY: nbdkit gives `count` readable bytes for the duration of the call.
        let data = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), count as usize) };
        disk()?.write(data, offset, flags & FLAG_FUA != 0)
    })
}

extern "C" fn flush(_h: *mut c_void, _flags: u32) -> c_int {
    guarded("flush", || disk()?.flush())
}

extern "C" fn trim(_h: *mut c_void, count: u32, offset: u64, flags: u32) -> c_int {
    guarded("trim", || {
        disk()?.zero(offset, u64::from(count), flags & FLAG_FUA != 0)
    })
}

extern "C" fn zero(_h: *mut c_void, count: u32, offset: u64, flags: u32) -> c_int {
    // Zeroing deletes whole blocks (a missing object reads as zeros) and rewrites partial ones,
    // so write-zeroes and trim are the same operation; MAY_TRIM needs no special case.
    // FAST_ZERO: refused with ENOTSUP where a partial block would have to be read first.
    guarded("zero", || {
        let (len, fua) = (u64::from(count), flags & FLAG_FUA != 0);
        if flags & FLAG_FAST_ZERO != 0 {
            disk()?.zero_fast(offset, len, fua)
        } else {
            disk()?.zero(offset, len, fua)
        }
    })
}

/// Block status (`base:allocation`): holes where the zero map knows blocks are empty, so
/// `qemu-img convert`, `nbdcopy` and `qemu-img map` skip them.
extern "C" fn extents(
    _h: *mut c_void,
    count: u32,
    offset: u64,
    flags: u32,
    out: *mut Extents,
) -> c_int {
    guarded("extents", || {
        for e in disk()?.extents(offset, u64::from(count))? {
            let kind = if e.zero { EXTENT_HOLE_ZERO } else { 0 };
            // SAFETY: nbdkit passes a valid extents list for the duration of the call.
            if unsafe { nbdkit_add_extent(out, e.offset, e.length, kind) } != 0 {
                return Err(StoreError::Invalid("nbdkit_add_extent failed".into()));
            }
            if flags & FLAG_REQ_ONE != 0 {
                break;
            }
        }
        Ok(())
    })
}

/// nbdkit's limits on the hint: preferred is a power of two in [512, 32 MiB].
fn block_size_hint(block_size: u32, size: u64) -> (u32, u32, u32) {
    let preferred = block_size.clamp(512, 32 << 20);
    let maximum = if size >= u64::from(preferred) && size < 0xffff_ffff {
        size as u32
    } else {
        0xffff_ffff
    };
    (1, preferred, maximum)
}

extern "C" fn block_size(
    _h: *mut c_void,
    minimum: *mut u32,
    preferred: *mut u32,
    maximum: *mut u32,
) -> c_int {
    let Some(v) = VOLUME.get() else { return -1 };
    let (min, pref, max) = block_size_hint(v.geometry().block_size, v.geometry().size());
    // SAFETY: nbdkit passes three valid out-pointers.
    unsafe {
        *minimum = min;
        *preferred = pref;
        *maximum = max;
    }
    0
}

const CONFIG_HELP: &CStr = c"bucket=BUCKET[/SUBDIR]  The bucket (or with test=true, the directory).
size=SIZE               Disk size (auto-detected from the bucket when omitted).
blockSize=SIZE          Block size (auto-detected; default 4k).
KEY=VALUE               Any s3backer flag, optionally prefixed s3b_ (baseURL=, region=,
                        accessId=, accessFile=, prefix=, readOnly=true, force=true, ...).
                        See: s3backer --help";

static PLUGIN: Plugin = Plugin {
    _struct_size: std::mem::size_of::<Plugin>() as u64,
    _api_version: API_VERSION,
    _thread_model: THREAD_MODEL_PARALLEL,
    name: c"s3backer".as_ptr(),
    longname: c"s3backer".as_ptr(),
    version: concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast(),
    description: c"Block-based backing store via Amazon S3".as_ptr(),
    load: Some(load),
    unload: None,
    config: Some(config),
    config_complete: Some(config_complete),
    config_help: CONFIG_HELP.as_ptr(),
    open: Some(open),
    close: None,
    get_size: Some(get_size),
    can_write: Some(can_write),
    can_flush: Some(yes),
    is_rotational: Some(no),
    can_trim: Some(yes),
    _pread_v1: std::ptr::null(),
    _pwrite_v1: std::ptr::null(),
    _flush_v1: std::ptr::null(),
    _trim_v1: std::ptr::null(),
    _zero_v1: std::ptr::null(),
    errno_is_preserved: 0,
    dump_plugin: None,
    can_zero: Some(yes),
    can_fua: Some(can_fua),
    pread: Some(pread),
    pwrite: Some(pwrite),
    flush: Some(flush),
    trim: Some(trim),
    zero: Some(zero),
    magic_config_key: c"bucket".as_ptr(),
    can_multi_conn: Some(yes),
    can_extents: Some(yes),
    extents: Some(extents),
    can_cache: Some(can_cache),
    cache: std::ptr::null(),
    thread_model: Some(thread_model),
    can_fast_zero: Some(yes),
    preconnect: std::ptr::null(),
    get_ready: Some(get_ready),
    after_fork: Some(after_fork),
    list_exports: std::ptr::null(),
    default_export: std::ptr::null(),
    export_description: std::ptr::null(),
    cleanup: Some(cleanup),
    block_size: Some(block_size),
};

/// nbdkit's entry point (what `NBDKIT_REGISTER_PLUGIN` defines in C).
#[unsafe(no_mangle)]
pub extern "C" fn plugin_init() -> *const Plugin {
    &PLUGIN
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_size_hints_stay_within_nbdkit_limits() {
        assert_eq!(block_size_hint(256 << 10, 1 << 30), (1, 256 << 10, 1 << 30));
        assert_eq!(block_size_hint(4096, 8 << 30), (1, 4096, 0xffff_ffff));
        assert_eq!(block_size_hint(256, 256), (1, 512, 0xffff_ffff));
        assert_eq!(
            block_size_hint(1 << 30, 4 << 30),
            (1, 32 << 20, 0xffff_ffff)
        );
    }

    #[test]
    fn a_panic_becomes_an_io_error_not_an_abort() {
        let rc = guarded("pread", || panic!("boom"));
        assert_eq!(rc, -1);
        let (msg, errno) = REPORTED
            .with(|r| r.borrow().last().cloned())
            .expect("reported");
        assert_eq!(errno, libc::EIO);
        assert!(
            msg.contains("internal error (panic) in pread: boom"),
            "{msg}"
        );
        assert_eq!(guarded("flush", || Ok(())), 0);
        let rc = guarded("pwrite", || Err(StoreError::ReadOnly));
        assert_eq!(rc, -1);
        let (msg, errno) = REPORTED
            .with(|r| r.borrow().last().cloned())
            .expect("reported");
        assert_eq!(
            (msg.as_str(), errno),
            ("pwrite: the disk is read-only", libc::EROFS)
        );
    }

    #[test]
    fn errnos_reaching_nbd_are_ones_it_can_carry() {
        assert_eq!(nbd_errno(&StoreError::ReadOnly), libc::EROFS);
        assert_eq!(nbd_errno(&StoreError::Invalid("x".into())), libc::EINVAL);
        let timeout = StoreError::io("x", std::io::Error::from_raw_os_error(libc::ETIMEDOUT));
        assert_eq!(nbd_errno(&timeout), libc::EIO);
    }

    #[test]
    fn struct_layout_matches_the_header() {
        // Measured with gcc on nbdkit 1.32's nbdkit-plugin.h (NBDKIT_API_VERSION 2, x86_64).
        assert_eq!(std::mem::size_of::<Plugin>(), 384);
        assert_eq!(std::mem::offset_of!(Plugin, errno_is_preserved), 184);
        assert_eq!(std::mem::offset_of!(Plugin, magic_config_key), 256);
        assert_eq!(std::mem::offset_of!(Plugin, block_size), 376);
    }
}
