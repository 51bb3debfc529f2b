//! The nbdkit plugin ABI (`nbdkit-plugin.h`, API version 2), written out by hand.
//!
//! The `nbdkit` crate 0.3 lacks the `block_size`, `cleanup` and `list_exports` callbacks; the
//! struct is versioned by `_struct_size` (nbdkit copies as much as the plugin says it has), so our
//! own copy of the layout, complete up to `block_size` (nbdkit ≥ 1.30), is all we need.
//! Field order and types follow the header exactly; do not reorder.

use std::ffi::{c_char, c_int, c_void};

/// `NBDKIT_API_VERSION` we implement.
pub const API_VERSION: c_int = 2;
/// `NBDKIT_THREAD_MODEL_PARALLEL`.
pub const THREAD_MODEL_PARALLEL: c_int = 3;
/// `NBDKIT_FLAG_FUA`.
pub const FLAG_FUA: u32 = 1 << 1;
/// `NBDKIT_FUA_NATIVE`.
pub const FUA_NATIVE: c_int = 2;
/// `NBDKIT_CACHE_NONE`.
pub const CACHE_NONE: c_int = 0;
/// `NBDKIT_FLAG_REQ_ONE`: one extent is enough.
pub const FLAG_REQ_ONE: u32 = 1 << 2;
/// `NBDKIT_FLAG_FAST_ZERO`: zero only if faster than writing, else fail with ENOTSUP.
pub const FLAG_FAST_ZERO: u32 = 1 << 3;
/// `NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO`.
pub const EXTENT_HOLE_ZERO: u32 = (1 << 0) | (1 << 1);

/// `struct nbdkit_extents` (opaque).
#[repr(C)]
pub struct Extents {
    _private: [u8; 0],
}

type HandleFn = Option<extern "C" fn(*mut c_void) -> c_int>;

/// `struct nbdkit_plugin`.
#[repr(C)]
pub struct Plugin {
    pub _struct_size: u64,
    pub _api_version: c_int,
    pub _thread_model: c_int,
    pub name: *const c_char,
    pub longname: *const c_char,
    pub version: *const c_char,
    pub description: *const c_char,
    pub load: Option<extern "C" fn()>,
    pub unload: Option<extern "C" fn()>,
    pub config: Option<extern "C" fn(*const c_char, *const c_char) -> c_int>,
    pub config_complete: Option<extern "C" fn() -> c_int>,
    pub config_help: *const c_char,
    pub open: Option<extern "C" fn(c_int) -> *mut c_void>,
    pub close: Option<extern "C" fn(*mut c_void)>,
    pub get_size: Option<extern "C" fn(*mut c_void) -> i64>,
    pub can_write: HandleFn,
    pub can_flush: HandleFn,
    pub is_rotational: HandleFn,
    pub can_trim: HandleFn,
    pub _pread_v1: *const c_void,
    pub _pwrite_v1: *const c_void,
    pub _flush_v1: *const c_void,
    pub _trim_v1: *const c_void,
    pub _zero_v1: *const c_void,
    pub errno_is_preserved: c_int,
    pub dump_plugin: Option<extern "C" fn()>,
    pub can_zero: HandleFn,
    pub can_fua: HandleFn,
    pub pread: Option<extern "C" fn(*mut c_void, *mut c_void, u32, u64, u32) -> c_int>,
    pub pwrite: Option<extern "C" fn(*mut c_void, *const c_void, u32, u64, u32) -> c_int>,
    pub flush: Option<extern "C" fn(*mut c_void, u32) -> c_int>,
    pub trim: Option<extern "C" fn(*mut c_void, u32, u64, u32) -> c_int>,
    pub zero: Option<extern "C" fn(*mut c_void, u32, u64, u32) -> c_int>,
    pub magic_config_key: *const c_char,
    pub can_multi_conn: HandleFn,
    pub can_extents: HandleFn,
    pub extents: Option<extern "C" fn(*mut c_void, u32, u64, u32, *mut Extents) -> c_int>,
    pub can_cache: HandleFn,
    pub cache: *const c_void,
    pub thread_model: Option<extern "C" fn() -> c_int>,
    pub can_fast_zero: HandleFn,
    pub preconnect: *const c_void,
    pub get_ready: Option<extern "C" fn() -> c_int>,
    pub after_fork: Option<extern "C" fn() -> c_int>,
    pub list_exports: *const c_void,
    pub default_export: *const c_void,
    pub export_description: *const c_void,
    pub cleanup: Option<extern "C" fn()>,
    pub block_size: Option<extern "C" fn(*mut c_void, *mut u32, *mut u32, *mut u32) -> c_int>,
}

// SAFETY: the struct is immutable after construction and holds pointers to 'static data only.
unsafe impl Sync for Plugin {}

#[cfg_attr(test, allow(dead_code))]
unsafe extern "C" {
    /// Reports an error message (nbdkit adds the plugin name).
    pub fn nbdkit_error(fmt: *const c_char, ...);
    /// Sets the errno returned to the client for the failing request.
    pub fn nbdkit_set_error(err: c_int);
    /// Adds one extent to a block-status answer.
    pub fn nbdkit_add_extent(extents: *mut Extents, offset: u64, length: u64, kind: u32) -> c_int;
}
