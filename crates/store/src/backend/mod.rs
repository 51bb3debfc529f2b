//! Object backends: where block objects live. [`ObjectBackend`] is the narrow interface the
//! bottom layer ([`crate::layers::ObjectBlocks`]) needs; it mirrors the few S3 requests s3backer
//! makes, so the S3 backend is a thin adapter and the local directory and in-memory backends can
//! stand in for it.

pub mod dir;
#[cfg(any(test, feature = "testing"))]
pub mod faulty;
#[cfg(any(test, feature = "testing"))]
pub mod memory;
pub mod s3;

pub use s3backer_s3client::{
    DeleteFailure, Etag, GetOutcome, GetRequest, ListPage, ObjectData, ObjectInfo, PutOutcome,
    PutRequest, S3Error,
};

/// A backend failure, after the backend's own retries.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The S3 client failed.
    #[error(transparent)]
    S3(#[from] S3Error),
    /// A local file operation failed (directory backend).
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A failure injected by a test backend.
    #[error("injected failure: {0}")]
    Injected(String),
}

impl BackendError {
    /// The errno this failure means. Never 0.
    pub fn errno(&self) -> i32 {
        match self {
            BackendError::S3(e) => e.errno(),
            BackendError::Io { source, .. } => source
                .raw_os_error()
                .filter(|&e| e != 0)
                .unwrap_or(libc::EIO),
            BackendError::Injected(_) => libc::EIO,
        }
    }
}

/// Result of a backend call.
pub type BackendResult<T> = Result<T, BackendError>;

/// What a backend can store besides object bodies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendCaps {
    /// Object metadata (`x-amz-meta-*`, Content-Encoding) is stored and returned. Without it,
    /// there is no size auto-detection and no mount-token object (the local directory backend,
    /// as in s3backer's `--test` mode).
    pub metadata: bool,
}

/// An object store holding one object per non-zero block.
pub trait ObjectBackend: Send + Sync {
    /// What this backend supports.
    fn caps(&self) -> BackendCaps;
    /// Human-readable location (logs): `http://host/bucket/prefix`, `file:///dir/prefix`.
    fn description(&self, prefix: &str) -> String;
    /// GET an object.
    fn get(&self, key: &str, req: &GetRequest) -> BackendResult<GetOutcome>;
    /// GET an object whose body, when it is exactly `dest.len()` bytes with no
    /// `Content-Encoding`, may be read straight into `dest` ([`ObjectData::in_dest`], empty
    /// `body`): a plain block lands in the caller's buffer without a copy. Default: [`get`].
    ///
    /// [`get`]: ObjectBackend::get
    fn get_into(&self, key: &str, req: &GetRequest, dest: &mut [u8]) -> BackendResult<GetOutcome> {
        let _ = dest;
        self.get(key, req)
    }
    /// Whether a ranged GET (`GetRequest::range`) may serve a partial read: its body is covered by
    /// no checksum (an object's ETag is the MD5 of the whole), so only a transport that
    /// authenticates every byte (TLS) keeps "a damaged body is never returned" true. Default:
    /// no (partial reads fetch and check the whole object).
    fn ranged_reads_verified(&self) -> bool {
        false
    }
    /// HEAD an object; `Ok(None)` when absent. `startup_probe`: an authorization failure is final
    /// at once (reported to the user) rather than retried.
    fn head(&self, key: &str, startup_probe: bool) -> BackendResult<Option<ObjectInfo>>;
    /// PUT an object.
    fn put(&self, key: &str, body: &[u8], req: &PutRequest) -> BackendResult<PutOutcome>;
    /// DELETE an object; deleting an absent object succeeds.
    fn delete(&self, key: &str) -> BackendResult<()>;
    /// Deletes up to 1000 objects in one request. `Err` when the backend cannot do bulk deletes
    /// at all (the caller falls back to [`ObjectBackend::delete`]); per-key failures are returned.
    fn delete_many(&self, keys: &[String]) -> BackendResult<Vec<DeleteFailure>>;
    /// Lists names starting with `prefix`, sorted, strictly after `marker`, at most `max_keys`.
    fn list(&self, prefix: &str, marker: &str, max_keys: u32) -> BackendResult<ListPage>;
    /// Appends the backend's request counters (see [`crate::stats`]).
    fn report_stats(&self, _out: &mut crate::stats::StatsReport) {}

    /// Resets the backend's request counters.
    fn reset_stats(&self) {}

    /// Makes every completed put/delete durable (the directory backend fsyncs; S3 already is).
    fn sync(&self) -> BackendResult<()> {
        Ok(())
    }
}
