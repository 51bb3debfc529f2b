//! The s3backer block store: a disk made of objects in a bucket.
//!
//! # The stack
//! ```text
//!   front ends (nbdkit plugin, CLI; FUSE later)
//!        │ byte ranges
//!   Disk                 partial-block split, bounded parallel fan-out, per-block write locks
//!        │ BlockStore (whole blocks, or parts a layer may serve natively)
//!   Checked              layer contract checks at the boundary
//!        │ BlockStore
//!   ZeroMap              known-zero bitmap: holes cost no request; background survey
//!        │ BlockStore
//!   [block cache: a later release slots in here]
//!        │ BlockStore
//!   ObjectBlocks         block ⇄ object: names, size metadata, zero = no object, bulk delete, listing
//!        │ ObjectBackend (GET/PUT/HEAD/DELETE/DeleteObjects/List)
//!   S3Backend | DirBackend (--test) | MemoryBackend, FaultyBackend (tests)
//! ```
//! [`Volume`] owns the lifecycle (connect, auto-detect, mount token, build, release);
//! [`erase`] implements `--erase`.
#![deny(missing_docs)]

pub mod backend;
pub mod bitmap;
pub mod codec;
mod disk;
pub mod erase;
mod error;
pub mod format;
mod layer;
pub mod layers;
pub mod logging;
mod rand;
pub mod stats;
pub mod stats_mirror;
mod volume;

pub use disk::{Disk, Extent};
pub use error::{StoreError, StoreResult};
pub use layer::{BlockNum, BlockStore, BlockTag, Geometry, TaggedRead};
pub use volume::{Volume, connect};
