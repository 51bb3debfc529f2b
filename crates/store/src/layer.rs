//! The one interface every layer of the stack speaks: [`BlockStore`].
//!
//! # Why whole blocks
//! Every object in the bucket is one whole block, so every layer below the top moves whole blocks:
//! a block is the unit the object store reads and writes atomically, the unit the codec encodes,
//! the unit a cache holds. Byte ranges exist only at the very top ([`crate::Disk`]), which splits a
//! request into an unaligned head, whole blocks and an unaligned tail.
//!
//! Partial blocks still reach the layers through [`BlockStore::read_part`] and
//! [`BlockStore::write_part`], because some layers can do better than read-modify-write (a cache
//! that holds the block, a zero map that knows the block is empty). Their default implementations
//! *are* the read-modify-write, done with the layer's own whole-block methods, so a layer that
//! transforms data (a codec) never sees a partial block unless it asks to.
//!
//! # Why synchronous
//! The callers are synchronous: nbdkit calls the plugin on its own threads, FUSE likewise. The
//! parallelism we need (a large request fanned out over its blocks) is bounded and comes from a
//! thread pool at the top ([`crate::Disk`]), so the trait stays a plain `Send + Sync` trait: no
//! runtime to create after nbdkit forks, no `Pin<Box<dyn Future>>` in every layer.
//!
//! # Concurrency contract
//! Every method may be called from many threads at once. The caller ([`crate::Disk`]) guarantees
//! that at most one *write* (`write_block`, `write_part`, `zero_blocks`) of a given block runs at a
//! time, so a layer's read-modify-write of one block cannot interleave with another write of it.
//! Reads are not serialized against writes: a read concurrent with a write of the same block
//! returns the old or the new contents, never a mix (the object store replaces objects atomically).

use crate::StoreResult;

/// A block number. s3backer's block numbers are 32 bits (`%08x` in object names).
pub type BlockNum = u32;

/// The shape of the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Bytes per block (a power of two).
    pub block_size: u32,
    /// Number of blocks (`size / block_size`, below 2^32).
    pub num_blocks: u32,
}

impl Geometry {
    /// Total size in bytes.
    pub fn size(&self) -> u64 {
        u64::from(self.block_size) * u64::from(self.num_blocks)
    }
}

/// What the object store holds for a block, as far as a cache needs to know to check later
/// whether it changed (the ETag of the stored object).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockTag {
    /// No object: the block is all zeros.
    Absent,
    /// An object with this ETag (MD5 form).
    Etag([u8; 16]),
    /// Unknown (the backend gives no usable ETag): cannot be checked, only re-read.
    Unknown,
}

/// Result of a conditional read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaggedRead {
    /// The block's data is in the buffer; this is its tag.
    Data(BlockTag),
    /// The stored block still has the expected tag; the buffer was not touched.
    Unchanged,
}

/// A stack layer, or the bottom of the stack. See the module documentation for the contract.
pub trait BlockStore: Send + Sync {
    /// The geometry this layer serves.
    fn geometry(&self) -> Geometry;

    /// Reads a whole block into `buf` (`buf.len() == block_size`). A block that was never
    /// written, or was zeroed, reads as zeros.
    fn read_block(&self, block: BlockNum, buf: &mut [u8]) -> StoreResult<()>;

    /// Reads `buf.len()` bytes of `block` starting at `offset` within the block.
    fn read_part(&self, block: BlockNum, offset: u32, buf: &mut [u8]) -> StoreResult<()> {
        let mut whole = vec![0u8; self.geometry().block_size as usize];
        self.read_block(block, &mut whole)?;
        let start = offset as usize;
        buf.copy_from_slice(&whole[start..start + buf.len()]);
        Ok(())
    }

    /// Reads a whole block and returns its tag; with `expect`, a block that still has that tag is
    /// not transferred ([`TaggedRead::Unchanged`]). Used by the block cache to check blocks it
    /// kept across a restart. The default cannot tell tags and always reads.
    fn read_block_tagged(
        &self,
        block: BlockNum,
        buf: &mut [u8],
        _expect: Option<BlockTag>,
    ) -> StoreResult<TaggedRead> {
        self.read_block(block, buf)?;
        Ok(TaggedRead::Data(BlockTag::Unknown))
    }

    /// Writes a whole block (`data.len() == block_size`). All-zero data is allowed; the bottom of
    /// the stack stores it as "no object".
    fn write_block(&self, block: BlockNum, data: &[u8]) -> StoreResult<()>;

    /// Like [`BlockStore::write_block`], returning the stored block's tag. `crc32` is the
    /// data's CRC-32 (`crc32fast`) when the caller knows it (the block cache keeps it as blocks
    /// are written and patched): the bottom sends it with the PUT instead of reading the block
    /// once more to compute it; a layer that stores other bytes (an encoded block) drops it.
    /// It must be right (a server that checks it would refuse the block); the test backend
    /// holds every caller to that.
    fn write_block_tagged(
        &self,
        block: BlockNum,
        data: &[u8],
        _crc32: Option<u32>,
    ) -> StoreResult<BlockTag> {
        self.write_block(block, data)?;
        Ok(BlockTag::Unknown)
    }

    /// Writes `data` into `block` at `offset`; the rest of the block keeps its contents.
    /// The caller holds the block's write lock (see the module documentation).
    fn write_part(&self, block: BlockNum, offset: u32, data: &[u8]) -> StoreResult<()> {
        let mut whole = vec![0u8; self.geometry().block_size as usize];
        self.read_block(block, &mut whole)?;
        let start = offset as usize;
        whole[start..start + data.len()].copy_from_slice(data);
        self.write_block(block, &whole)
    }

    /// Makes every listed block all zeros (trim / write-zeroes of whole blocks). Layers that can
    /// do it in bulk (one DeleteObjects per 1000 blocks) override this.
    fn zero_blocks(&self, blocks: &[BlockNum]) -> StoreResult<()> {
        let zeros = vec![0u8; self.geometry().block_size as usize];
        blocks.iter().try_for_each(|&b| self.write_block(b, &zeros))
    }

    /// Returns once every write acknowledged before the call is durable in the object store
    /// (the FLUSH contract in `docs/design.md`).
    fn flush(&self) -> StoreResult<()>;

    /// Like [`BlockStore::flush`], but only the listed blocks must be durable (NBD FUA).
    fn flush_blocks(&self, _blocks: &[BlockNum]) -> StoreResult<()> {
        self.flush()
    }

    /// Reports (in any order, possibly from several threads, possibly more than once) every block
    /// that may be non-zero. Blocks not reported are known to be zero.
    fn survey(&self, threads: usize, report: &(dyn Fn(BlockNum) + Sync)) -> StoreResult<()>;

    /// True when `block` is known to be all zeros (a hole: NBD block status reports it so).
    /// Never a guess: `false` means "unknown" as well as "holds data".
    fn known_zero(&self, _block: BlockNum) -> bool {
        false
    }

    /// Appends this layer's counters, after those of the layers below it (see [`crate::stats`]).
    fn report_stats(&self, _out: &mut crate::stats::StatsReport) {}

    /// Resets this layer's counters and those below.
    fn reset_stats(&self) {}

    /// Flushes and stops background work. Called once, last.
    fn shutdown(&self) -> StoreResult<()> {
        self.flush()
    }
}
