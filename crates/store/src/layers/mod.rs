//! The layers of the stack, top to bottom (see `docs/design.md` for the picture):
//! [`Checked`] (contract checks at the boundary) → [`ZeroMap`] (known-zero blocks) →
//! [`ObjectBlocks`] (blocks as objects, with the codec as its encoding stage). The block cache
//! of a later release slots in above the object layer, one [`crate::BlockStore`] over the next.

pub mod block_cache;
mod checked;
mod object_blocks;
pub mod zero_map;

pub use block_cache::{BlockCache, CacheOptions};
pub use checked::Checked;
pub use object_blocks::{DELETE_BATCH, ObjectBlocks, partition};
pub use zero_map::ZeroMap;
