//! The store's error type and its one mapping to errno, shared by every front end.
//!
//! Layers return typed errors; only the edge (nbdkit plugin, FUSE) turns them into an errno, and
//! [`StoreError::errno`] never returns 0.

use crate::backend::BackendError;

/// Result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The object store or local directory failed (after retries).
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// An object in the bucket is not a valid block (wrong length, unknown encoding...).
    #[error("block {block:08x}: {detail}")]
    Corrupt {
        /// The block.
        block: u32,
        /// What is wrong with it.
        detail: String,
    },
    /// A write reached a read-only disk.
    #[error("the disk is read-only")]
    ReadOnly,
    /// A request outside the disk, or a broken layer contract (checked at layer boundaries).
    #[error("{0}")]
    Invalid(String),
    /// The bucket is mounted by someone else.
    #[error("{0}")]
    AlreadyMounted(String),
    /// Startup could not proceed (geometry, configuration against the bucket, ...).
    #[error("{0}")]
    Startup(String),
    /// A local file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The request cannot be done the way it asks (e.g. a fast zero that would need a read).
    #[error("{0}")]
    NotSupported(String),
    /// Dirty data could not be written back (the FLUSH that waited for it fails; the data stays
    /// dirty in the cache and is retried).
    #[error("write-back failed: {0}")]
    Writeback(String),
    /// A worker panicked; the request fails instead of taking the process down.
    #[error("internal error: {0}")]
    Panic(String),
}

impl StoreError {
    /// The errno this error means. Never 0.
    pub fn errno(&self) -> i32 {
        match self {
            StoreError::Backend(e) => e.errno(),
            StoreError::Corrupt { .. } => libc::EIO,
            StoreError::ReadOnly => libc::EROFS,
            StoreError::Invalid(_) => libc::EINVAL,
            StoreError::AlreadyMounted(_) => libc::EBUSY,
            StoreError::Startup(_) => libc::EINVAL,
            StoreError::Io { source, .. } => source
                .raw_os_error()
                .filter(|&e| e != 0)
                .unwrap_or(libc::EIO),
            StoreError::NotSupported(_) => libc::ENOTSUP,
            StoreError::Writeback(_) => libc::EIO,
            StoreError::Panic(_) => libc::EIO,
        }
    }

    /// Wraps an I/O error with what we were doing.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        StoreError::Io {
            context: context.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_is_never_zero() {
        let synthetic = std::io::Error::other("synthetic");
        let errors = [
            StoreError::io("x", synthetic),
            StoreError::Corrupt {
                block: 1,
                detail: "d".into(),
            },
            StoreError::ReadOnly,
            StoreError::Invalid("i".into()),
            StoreError::Panic("p".into()),
        ];
        for e in errors {
            assert_ne!(e.errno(), 0, "{e}");
        }
        assert_eq!(StoreError::ReadOnly.errno(), libc::EROFS);
    }
}
