//! Invariant checks at a layer boundary (nbdkit's `backend.c` idea): block numbers inside the
//! disk, whole-block buffers exactly one block long, partial ranges inside the block, and every
//! error carrying a non-zero errno. Checked once here so the layers need not repeat it.
//! A violation is a bug in the layer above; it fails the request with `EINVAL` and is logged.

use crate::{BlockNum, BlockStore, Geometry, StoreError, StoreResult};
use std::sync::Arc;

/// Wraps a layer with boundary checks.
pub struct Checked {
    inner: Arc<dyn BlockStore>,
    geometry: Geometry,
}

impl Checked {
    /// Checks calls into `inner`.
    pub fn new(inner: Arc<dyn BlockStore>) -> Self {
        let geometry = inner.geometry();
        Checked { inner, geometry }
    }

    fn block(&self, block: BlockNum) -> StoreResult<()> {
        if block >= self.geometry.num_blocks {
            return violation(format!(
                "block {block} is beyond the disk ({} blocks)",
                self.geometry.num_blocks
            ));
        }
        Ok(())
    }

    fn whole(&self, block: BlockNum, len: usize) -> StoreResult<()> {
        self.block(block)?;
        if len != self.geometry.block_size as usize {
            return violation(format!(
                "buffer of {len} bytes for a whole block of {}",
                self.geometry.block_size
            ));
        }
        Ok(())
    }

    fn part(&self, block: BlockNum, offset: u32, len: usize) -> StoreResult<()> {
        self.block(block)?;
        if len == 0 || offset as usize + len > self.geometry.block_size as usize {
            return violation(format!(
                "partial range {offset}+{len} outside a block of {}",
                self.geometry.block_size
            ));
        }
        Ok(())
    }
}

fn violation(msg: String) -> StoreResult<()> {
    log::error!("layer contract violated: {msg}");
    Err(StoreError::Invalid(format!(
        "layer contract violated: {msg}"
    )))
}

fn checked_errno<T>(r: StoreResult<T>) -> StoreResult<T> {
    if let Err(e) = &r {
        debug_assert_ne!(e.errno(), 0, "error without errno: {e}");
    }
    r
}

impl BlockStore for Checked {
    fn geometry(&self) -> Geometry {
        self.geometry
    }
    fn read_block(&self, block: BlockNum, buf: &mut [u8]) -> StoreResult<()> {
        self.whole(block, buf.len())?;
        checked_errno(self.inner.read_block(block, buf))
    }
    fn read_part(&self, block: BlockNum, offset: u32, buf: &mut [u8]) -> StoreResult<()> {
        self.part(block, offset, buf.len())?;
        checked_errno(self.inner.read_part(block, offset, buf))
    }
    fn read_block_tagged(
        &self,
        block: BlockNum,
        buf: &mut [u8],
        expect: Option<crate::BlockTag>,
    ) -> StoreResult<crate::TaggedRead> {
        self.whole(block, buf.len())?;
        checked_errno(self.inner.read_block_tagged(block, buf, expect))
    }
    fn write_block_tagged(
        &self,
        block: BlockNum,
        data: &[u8],
        crc32: Option<u32>,
    ) -> StoreResult<crate::BlockTag> {
        self.whole(block, data.len())?;
        checked_errno(self.inner.write_block_tagged(block, data, crc32))
    }
    fn write_block(&self, block: BlockNum, data: &[u8]) -> StoreResult<()> {
        self.whole(block, data.len())?;
        checked_errno(self.inner.write_block(block, data))
    }
    fn write_part(&self, block: BlockNum, offset: u32, data: &[u8]) -> StoreResult<()> {
        self.part(block, offset, data.len())?;
        checked_errno(self.inner.write_part(block, offset, data))
    }
    fn zero_blocks(&self, blocks: &[BlockNum]) -> StoreResult<()> {
        blocks.iter().try_for_each(|&b| self.block(b))?;
        checked_errno(self.inner.zero_blocks(blocks))
    }
    fn flush(&self) -> StoreResult<()> {
        checked_errno(self.inner.flush())
    }
    fn flush_blocks(&self, blocks: &[BlockNum]) -> StoreResult<()> {
        blocks.iter().try_for_each(|&b| self.block(b))?;
        checked_errno(self.inner.flush_blocks(blocks))
    }
    fn survey(&self, threads: usize, report: &(dyn Fn(BlockNum) + Sync)) -> StoreResult<()> {
        let num_blocks = self.geometry.num_blocks;
        checked_errno(self.inner.survey(threads, &|b| {
            debug_assert!(b < num_blocks, "survey reported block {b} beyond the disk");
            report(b)
        }))
    }
    fn known_zero(&self, block: BlockNum) -> bool {
        block < self.geometry.num_blocks && self.inner.known_zero(block)
    }
    fn report_stats(&self, out: &mut crate::stats::StatsReport) {
        self.inner.report_stats(out)
    }
    fn reset_stats(&self) {
        self.inner.reset_stats()
    }
    fn shutdown(&self) -> StoreResult<()> {
        checked_errno(self.inner.shutdown())
    }
}
