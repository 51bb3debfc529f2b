//! The layers of the stack, top to bottom (see `docs/design.md` for the picture):
//! [`Checked`] (contract checks at the boundary) → [`ObjectBlocks`] (blocks as objects).
//! The codec, zero map and block cache of later releases slot in between, each one
//! [`crate::BlockStore`] over the next.

mod checked;
mod object_blocks;

pub use checked::Checked;
pub use object_blocks::{DELETE_BATCH, ObjectBlocks, partition};
