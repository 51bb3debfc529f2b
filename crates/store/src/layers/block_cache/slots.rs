//! Where the cached data lives: numbered slots in memory, or in the cache file.
//!
//! Each slot has its own reader/writer lock, so a reader never sees a half-written block and
//! copies happen outside the cache's main lock. Memory slots are allocated on first use, so a
//! large `--blockCacheSize` costs memory only as the cache fills. An upload shares a memory
//! slot's buffer instead of copying it ([`Slots::shared`]); a write into a slot whose buffer
//! an upload still holds gets a new buffer (copy on write), so the upload sends the version it
//! took.

use super::cache_file::{CacheFile, SlotRecord};
use std::sync::{Arc, RwLock};

/// One memory slot: its buffer, allocated on first use, shared with uploads.
type MemorySlot = RwLock<Option<Arc<[u8]>>>;

/// The slot storage.
pub(crate) enum Slots {
    /// In memory.
    Memory { bufs: Box<[MemorySlot]> },
    /// In the cache file (`--blockCacheFile`).
    File {
        file: CacheFile,
        locks: Box<[RwLock<()>]>,
        advise: bool,
    },
}

impl Slots {
    pub fn memory(count: u32) -> Slots {
        Slots::Memory {
            bufs: (0..count).map(|_| RwLock::new(None)).collect(),
        }
    }

    pub fn file(file: CacheFile, advise: bool) -> Slots {
        let count = file.slot_count();
        Slots::File {
            file,
            locks: (0..count).map(|_| RwLock::new(())).collect(),
            advise,
        }
    }

    /// The cache file, when there is one.
    pub fn cache_file(&self) -> Option<&CacheFile> {
        match self {
            Slots::Memory { .. } => None,
            Slots::File { file, .. } => Some(file),
        }
    }

    /// Stores a block in a slot; returns the data's CRC-32: always for file slots (their
    /// records carry it), for memory slots when `want_crc` (computed from `data` just copied,
    /// still in the CPU cache; the upload sends it instead of reading the block again).
    pub fn write(&self, slot: u32, data: &[u8], want_crc: bool) -> std::io::Result<Option<u32>> {
        match self {
            Slots::Memory { bufs } => {
                {
                    let mut b = bufs[slot as usize]
                        .write()
                        .unwrap_or_else(|e| e.into_inner());
                    match b.as_mut().and_then(Arc::get_mut) {
                        Some(buf) if buf.len() == data.len() => buf.copy_from_slice(data),
                        _ => *b = Some(data.into()),
                    }
                }
                Ok(want_crc.then(|| crc32fast::hash(data)))
            }
            Slots::File {
                file,
                locks,
                advise,
            } => {
                let _w = locks[slot as usize]
                    .write()
                    .unwrap_or_else(|e| e.into_inner());
                let crc = file.write_data(slot, data)?;
                if *advise {
                    file.advise_dontneed(slot);
                }
                Ok(Some(crc))
            }
        }
    }

    /// A memory slot's current buffer, shared (no copy); `None` for cache-file slots and empty
    /// ones.
    pub fn shared(&self, slot: u32) -> Option<Arc<[u8]>> {
        match self {
            Slots::Memory { bufs } => bufs[slot as usize]
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            Slots::File { .. } => None,
        }
    }

    /// Copies a slot out; `expect_crc` checks data loaded from the cache file.
    pub fn read(&self, slot: u32, buf: &mut [u8], expect_crc: Option<u32>) -> std::io::Result<()> {
        match self {
            Slots::Memory { bufs } => {
                let b = bufs[slot as usize]
                    .read()
                    .unwrap_or_else(|e| e.into_inner());
                match b.as_ref() {
                    Some(data) if data.len() == buf.len() => {
                        buf.copy_from_slice(data);
                        Ok(())
                    }
                    _ => Err(std::io::Error::other(format!(
                        "cache slot {slot} holds no data"
                    ))),
                }
            }
            Slots::File {
                file,
                locks,
                advise,
            } => {
                let _r = locks[slot as usize]
                    .read()
                    .unwrap_or_else(|e| e.into_inner());
                file.read_data(slot, buf, expect_crc)?;
                if *advise {
                    file.advise_dontneed(slot);
                }
                Ok(())
            }
        }
    }

    /// Copies part of a slot out (`offset` within the block).
    pub fn read_part(&self, slot: u32, offset: u32, buf: &mut [u8]) -> std::io::Result<()> {
        let start = offset as usize;
        match self {
            Slots::Memory { bufs } => {
                let b = bufs[slot as usize]
                    .read()
                    .unwrap_or_else(|e| e.into_inner());
                match b.as_ref().and_then(|d| d.get(start..start + buf.len())) {
                    Some(part) => {
                        buf.copy_from_slice(part);
                        Ok(())
                    }
                    None => Err(std::io::Error::other(format!(
                        "cache slot {slot} holds no data"
                    ))),
                }
            }
            Slots::File {
                file,
                locks,
                advise,
            } => {
                let _r = locks[slot as usize]
                    .read()
                    .unwrap_or_else(|e| e.into_inner());
                file.read_data_part(slot, offset, buf)?;
                if *advise {
                    file.advise_dontneed(slot);
                }
                Ok(())
            }
        }
    }

    /// Patches part of a memory slot in place and brings `crc` (the slot's CRC-32, if known)
    /// up to date from the bytes replaced and their replacement alone; `false` for file slots
    /// (whose checksum covers the whole block: the caller rewrites the block instead) or a slot
    /// without data.
    pub fn patch(&self, slot: u32, offset: u32, data: &[u8], crc: &mut Option<u32>) -> bool {
        let Slots::Memory { bufs } = self else {
            return false;
        };
        let start = offset as usize;
        let mut b = bufs[slot as usize]
            .write()
            .unwrap_or_else(|e| e.into_inner());
        // An upload holding the buffer keeps its version: patch a copy then.
        let Some(block) = b.as_mut().map(Arc::make_mut) else {
            return false;
        };
        let block_len = block.len();
        match block.get_mut(start..start + data.len()) {
            Some(part) => {
                if let Some(c) = crc.as_mut() {
                    *c = patched_crc(*c, block_len - start - data.len(), part, data);
                }
                part.copy_from_slice(data);
                true
            }
            None => false,
        }
    }

    /// Records what a slot holds (cache file only).
    pub fn record(&self, slot: u32, record: &SlotRecord) -> std::io::Result<()> {
        match self {
            Slots::Memory { .. } => Ok(()),
            Slots::File { file, .. } => file.write_record(slot, record),
        }
    }

    /// A slot is free again: drop its data.
    pub fn free(&self, slot: u32) -> std::io::Result<()> {
        match self {
            Slots::Memory { bufs } => {
                *bufs[slot as usize]
                    .write()
                    .unwrap_or_else(|e| e.into_inner()) = None;
                Ok(())
            }
            Slots::File { file, .. } => {
                file.write_record(slot, &SlotRecord::FREE)?;
                file.punch(slot);
                Ok(())
            }
        }
    }

    /// Makes everything written so far durable (cache file: fdatasync).
    pub fn sync(&self) -> std::io::Result<()> {
        match self {
            Slots::Memory { .. } => Ok(()),
            Slots::File { file, .. } => file.sync(),
        }
    }
}

/// The CRC-32 of a block whose CRC was `crc` after the bytes `old` (followed by `after` more
/// bytes) are replaced by `new` (as long). CRC-32 is linear over GF(2): the change of the CRC
/// is the CRC, with zero initial value and no final XOR, of the change of the data, which is
/// `old ^ new` followed by `after` zero bytes; and `crc(old) ^ crc(new)` is the former part
/// (the constant terms of two equal-length CRCs cancel), which `combine` shifts by `after`
/// bytes. Costs two CRCs of the patch and a multiplication, not a pass over the block.
pub(crate) fn patched_crc(crc: u32, after: usize, old: &[u8], new: &[u8]) -> u32 {
    debug_assert_eq!(old.len(), new.len());
    let delta = crc32fast::hash(old) ^ crc32fast::hash(new);
    let mut shifted = crc32fast::Hasher::new_with_initial_len(delta, 0);
    shifted.combine(&crc32fast::Hasher::new_with_initial_len(0, after as u64));
    crc ^ shifted.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patched_crc_is_the_crc_of_the_patched_block() {
        let mut state = 0x9e37_79b9_u32;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        for len in [1usize, 64, 4096, 65536] {
            let mut block: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let mut crc = crc32fast::hash(&block);
            for _ in 0..50 {
                let start = next() as usize % len;
                let n = 1 + next() as usize % (len - start);
                let new: Vec<u8> = (0..n).map(|_| next() as u8).collect();
                crc = patched_crc(crc, len - start - n, &block[start..start + n], &new);
                block[start..start + n].copy_from_slice(&new);
                assert_eq!(crc, crc32fast::hash(&block), "len {len}, patch {start}+{n}");
            }
        }
    }

    #[test]
    fn patches_keep_a_known_crc_and_leave_an_unknown_one() {
        let slots = Slots::memory(1);
        let crc = slots.write(0, &[5u8; 4096], true).expect("write");
        assert_eq!(crc, Some(crc32fast::hash(&[5u8; 4096])));
        let mut known = crc;
        assert!(slots.patch(0, 100, &[1, 2, 3], &mut known));
        let mut now = vec![0u8; 4096];
        slots.read(0, &mut now, None).expect("read");
        assert_eq!(known, Some(crc32fast::hash(&now)));
        let mut unknown = None;
        assert!(slots.patch(0, 0, &[9], &mut unknown));
        assert_eq!(unknown, None);
        assert_eq!(slots.write(0, &[1u8; 4096], false).expect("write"), None);
    }

    #[test]
    fn an_upload_keeps_the_version_it_shared() {
        let slots = Slots::memory(2);
        assert!(slots.shared(0).is_none());
        slots.write(0, &[1u8; 8], false).expect("write");
        let uploading = slots.shared(0).expect("data");
        // A rewrite and a patch while the upload holds the buffer: both land in a copy.
        slots.write(0, &[2u8; 8], false).expect("write");
        assert!(slots.patch(0, 2, &[3u8; 2], &mut None));
        assert_eq!(&uploading[..], &[1u8; 8]);
        let mut now = [0u8; 8];
        slots.read(0, &mut now, None).expect("read");
        assert_eq!(now, [2, 2, 3, 3, 2, 2, 2, 2]);
        // Unshared again: written in place (the same buffer).
        drop(uploading);
        let before = slots.shared(0).expect("data");
        let ptr = before.as_ptr();
        drop(before);
        slots.write(0, &[4u8; 8], false).expect("write");
        let after = slots.shared(0).expect("data");
        assert_eq!(after.as_ptr(), ptr);
        assert_eq!(&after[..], &[4u8; 8]);
    }
}
