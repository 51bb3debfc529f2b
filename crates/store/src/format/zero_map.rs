//! The saved zero map: the object `<prefix>s3backer-zeromap`, written at a clean unmount so the
//! next start knows which blocks are empty without listing the bucket.
//!
//! ```text
//! 0   8  magic "S3BZMAP" + version 1
//! 8   4  block size (u32 LE)
//! 12  4  number of blocks (u32 LE)
//! 16  1  block 0 at save time: 0 = no object, 1 = object with the ETag below, 2 = unknown
//! 17 16  block 0's ETag (MD5 form)
//! 33  -  one zstd frame (with checksum) of the bitmap, bit i = block i known to be all zeros
//! ```
//!
//! The map is only as good as the assumption that nothing else wrote the bucket since it was
//! saved; block 0's ETag is the cheap tripwire (the startup HEAD of block 0 already returns it,
//! and filesystems rewrite their superblock in block 0 on every read-write mount). See
//! `docs/design.md` for the whole rule.

use crate::bitmap::AtomicBitmap;
use crate::layer::Geometry;

/// Name of the object, after the prefix.
pub const ZERO_MAP_NAME: &str = "s3backer-zeromap";
const MAGIC: &[u8; 8] = b"S3BZMAP\x01";
const HEADER: usize = 33;

/// Block 0 as it was when the map was saved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Block0 {
    /// No object.
    Absent,
    /// An object with this ETag.
    Etag([u8; 16]),
    /// Unknown (the server's ETag was not an MD5): the map can never be trusted.
    Unknown,
}

/// Encodes a map.
pub fn encode(map: &AtomicBitmap, geometry: Geometry, block0: Block0) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + 1024);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&geometry.block_size.to_le_bytes());
    out.extend_from_slice(&geometry.num_blocks.to_le_bytes());
    let (tag, etag) = match block0 {
        Block0::Absent => (0u8, [0u8; 16]),
        Block0::Etag(e) => (1, e),
        Block0::Unknown => (2, [0u8; 16]),
    };
    out.push(tag);
    out.extend_from_slice(&etag);
    let bits = map.to_bytes();
    let frame = zstd::bulk::Compressor::new(3)
        .and_then(|mut c| {
            c.include_checksum(true)?;
            c.compress(&bits)
        })
        .unwrap_or_default();
    out.extend_from_slice(&frame);
    out
}

/// Decodes a map saved for `geometry`; `None` if anything does not match or check out.
pub fn decode(bytes: &[u8], geometry: Geometry) -> Option<(AtomicBitmap, Block0)> {
    if bytes.len() < HEADER || &bytes[..8] != MAGIC {
        return None;
    }
    let u32_at = |at: usize| {
        bytes
            .get(at..at + 4)?
            .try_into()
            .ok()
            .map(u32::from_le_bytes)
    };
    if u32_at(8)? != geometry.block_size || u32_at(12)? != geometry.num_blocks {
        return None;
    }
    let etag: [u8; 16] = bytes[17..33].try_into().ok()?;
    let block0 = match bytes[16] {
        0 => Block0::Absent,
        1 => Block0::Etag(etag),
        2 => Block0::Unknown,
        _ => return None,
    };
    let len = (geometry.num_blocks as usize).div_ceil(8);
    let bits = zstd::bulk::decompress(&bytes[HEADER..], len).ok()?;
    Some((
        AtomicBitmap::from_bytes(geometry.num_blocks, &bits)?,
        block0,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejections() {
        let g = Geometry {
            block_size: 4096,
            num_blocks: 1000,
        };
        let map = AtomicBitmap::new(1000);
        for b in (0..1000).step_by(3) {
            map.set(b);
        }
        let bytes = encode(&map, g, Block0::Etag([7; 16]));
        assert!(
            bytes.len() < 200,
            "a regular map compresses: {}",
            bytes.len()
        );
        let (back, block0) = decode(&bytes, g).expect("decodes");
        assert_eq!(block0, Block0::Etag([7; 16]));
        assert_eq!(
            back.ones().collect::<Vec<_>>(),
            map.ones().collect::<Vec<_>>()
        );
        assert!(
            decode(
                &bytes,
                Geometry {
                    block_size: 8192,
                    num_blocks: 1000
                }
            )
            .is_none()
        );
        assert!(
            decode(
                &bytes,
                Geometry {
                    block_size: 4096,
                    num_blocks: 999
                }
            )
            .is_none()
        );
        let mut flipped = bytes.clone();
        let last = flipped.len() - 6;
        flipped[last] ^= 0x10;
        assert!(decode(&flipped, g).is_none(), "checksum catches damage");
        assert!(decode(&bytes[..20], g).is_none());
        let (_, b0) = decode(&encode(&map, g, Block0::Absent), g).expect("decodes");
        assert_eq!(b0, Block0::Absent);
    }
}
