//! `--erase`: delete every block of the disk and its mount token.
//!
//! Lists the bucket with the parallel partitioned listing, then deletes what it found in batches
//! of 1000 (one DeleteObjects each, single DELETEs where the server refuses bulk delete). The
//! confirmation prompt is the front end's job. A block cache file is not touched: the user
//! removes it (as with s3backer).

use crate::layers::DELETE_BATCH;
use crate::{BlockNum, BlockStore, StoreError, StoreResult, Volume};
use std::sync::Mutex;

/// Listing threads for erase (compat: s3backer lists with `--listBlocksThreads`, default 16).
const LIST_THREADS: usize = 16;

/// Erases the volume; `progress(deleted, total)` is called after each batch. Returns the number
/// of blocks deleted.
pub fn erase(volume: &Volume, progress: &dyn Fn(u64, u64)) -> StoreResult<u64> {
    if volume.config().read_only {
        return Err(StoreError::ReadOnly);
    }
    let objects = volume.object_blocks();
    let found = Mutex::new(Vec::<BlockNum>::new());
    objects.survey(LIST_THREADS, &|b| {
        found.lock().unwrap_or_else(|e| e.into_inner()).push(b)
    })?;
    let mut blocks = found.into_inner().unwrap_or_else(|e| e.into_inner());
    blocks.sort_unstable();
    blocks.dedup();
    let total = blocks.len() as u64;
    let mut done = 0u64;
    for batch in blocks.chunks(DELETE_BATCH) {
        objects.delete_blocks(batch)?;
        done += batch.len() as u64;
        progress(done, total);
    }
    // A saved zero map would still be true (erasing only empties blocks) but is pointless now.
    volume.backend().delete(&volume.keys().zero_map_key())?;
    volume.reset_mount_token()?;
    Ok(total)
}
