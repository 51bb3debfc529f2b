//! The block cache file (`--blockCacheFile=PATH`): cache slots on disk instead of in RAM.
//!
//! The block cache keeps each cached block *version* in a numbered slot. With a cache file the
//! slots live here, so that a big cache costs no RAM and dirty data survives a crash. The file is
//! versioned and checksummed: a corrupt or truncated file is detected and reported, and never
//! feeds wrong data. The format is s3backer-rs's own (it is not the C s3backer's cache file).
//!
//! # Format, version 1
//! All integers are little-endian; a page is 4096 bytes.
//! ```text
//!  offset 0                                    header (4096 bytes)
//!  ┌────────┬─────────┬────────────┬────────────┬────────────┬──────────┬─────────────┬───────┬─────────┬─────────┬───────┐
//!  │ magic  │ version │ block_size │ slot_count │ num_blocks │ identity │ mount_token │ flags │ created │ zero    │ CRC32 │
//!  │ 8 B    │ u32 = 1 │ u32        │ u32        │ u32        │ u64      │ u32         │ u32   │ u64     │ padding │ u32   │
//!  │0..8    │ 8..12   │ 12..16     │ 16..20     │ 20..24     │ 24..32   │ 32..36      │ 36..40│ 40..48  │48..4092 │4092.. │
//!  └────────┴─────────┴────────────┴────────────┴────────────┴──────────┴─────────────┴───────┴─────────┴─────────┴───────┘
//!    magic    = b"S3BCACH1"
//!    identity = FNV-1a 64 of "<bucket>\0<prefix>" (see identity_of)
//!    flags    : bit 0 = CLEAN_SHUTDOWN (the file was closed cleanly)
//!    created  = unix seconds at creation
//!    CRC32    = crc32 of bytes 0..4092
//!
//!  offset 4096                                 slot records (slot_count × 64 bytes)
//!  ┌──────┬───────┬──────┬───────┬───────┬─────┬──────┬──────────┬──────┬──────────┬──────┬─────────┐
//!  │ kind │ flags │ rsvd │ block │ epoch │ seq │ etag │ has_etag │ rsvd │ data_crc │ rsvd │ rec_crc │
//!  │ u8   │ u8    │ u16  │ u32   │ u64   │ u64 │ 16 B │ u8       │ 7 B  │ u32      │ 8 B  │ u32     │
//!  │ 0    │ 1     │ 2..4 │ 4..8  │ 8..16 │16.. │24..40│ 40       │41..48│ 48..52   │52..60│ 60..64  │
//!  └──────┴───────┴──────┴───────┴───────┴─────┴──────┴──────────┴──────┴──────────┴──────┴─────────┘
//!    kind     : 0 = free, 1 = clean, 2 = dirty
//!    flags    : bit 0 = ZERO (the version is all zeros and has no data in the slot)
//!    etag     : meaningful when has_etag = 1 (all zero when there is none)
//!    data_crc = crc32 of the slot's data (0 for zero versions)
//!    rec_crc  = crc32 of bytes 0..60
//!    A record of 64 zero bytes is a (valid) free record; a fresh sparse file is all free.
//!
//!  data_offset = round_up(4096 + 64 × slot_count, 4096)   slot data
//!  ┌──────────────┬──────────────┬─────┬───────────────────────────┐
//!  │ slot 0       │ slot 1       │ ... │ slot slot_count - 1       │   each block_size bytes,
//!  └──────────────┴──────────────┴─────┴───────────────────────────┘   slot i at data_offset + i × block_size
//! ```
//! The file is created sparse, at its full length `data_offset + slot_count × block_size`; a
//! shorter file is truncated. Freed slots and zero versions can have their data punched out
//! ([`CacheFile::punch`]).
//!
//! # Crash ordering (the caller's protocol)
//! * A version's data is written ([`CacheFile::write_data`]) **before** the record that names it
//!   ([`CacheFile::write_record`]). The record carries the data's CRC, so a torn or lost data
//!   write is detected when the data is read back ([`CacheFile::read_data`] with the CRC) instead
//!   of being served.
//! * Nothing is durable until [`CacheFile::sync`] (fdatasync) returns: data and records written
//!   before it survive a crash, later ones may or may not.
//! * To replace a durable version without a window in which neither copy is intact, write the new
//!   version into another (free) slot, write its record, and only then free the old slot.
//! * The header is rewritten in place (one 4096-byte write) to change the mount token and the
//!   clean-shutdown flag; a torn header is reported as [`CacheFileError::CorruptHeader`].

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The file's magic number.
const MAGIC: [u8; 8] = *b"S3BCACH1";
/// The format version this code reads and writes.
const FORMAT_VERSION: u32 = 1;
/// Size of the header, and the alignment of the data area.
const PAGE: u64 = 4096;
/// Where the header CRC lives (it covers the bytes before it).
const HEADER_CRC_AT: usize = PAGE as usize - 4;
/// Header flag: the file was closed cleanly.
const HEADER_CLEAN_SHUTDOWN: u32 = 1;
/// Size of one slot record.
const RECORD_SIZE: usize = 64;
/// Where a record's CRC lives (it covers the bytes before it).
const RECORD_CRC_AT: usize = RECORD_SIZE - 4;
/// Record flag: the version is all zeros (no data).
const RECORD_ZERO: u8 = 1;
/// Records read per I/O while loading.
const RECORDS_PER_READ: usize = 16 * 1024;

/// The identity stored in a cache file: FNV-1a 64 of `"<bucket>\0<prefix>"`.
///
/// A cache file only ever serves the disk it was made for.
pub fn identity_of(bucket: &str, prefix: &str) -> u64 {
    let mut h = Fnv1a64::new();
    h.write(bucket.as_bytes());
    h.write(&[0]);
    h.write(prefix.as_bytes());
    h.0
}

/// FNV-1a, 64 bits.
struct Fnv1a64(u64);

impl Fnv1a64 {
    fn new() -> Self {
        Fnv1a64(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// What a slot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// Nothing: the slot is available.
    Free,
    /// A version that matches the bucket.
    Clean,
    /// A version not yet written to the bucket.
    Dirty,
}

/// One slot's record: which version of which block the slot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotRecord {
    /// Free, clean or dirty.
    pub kind: RecordKind,
    /// The version is all zeros and has no data in the slot.
    pub zero: bool,
    /// The block.
    pub block: u32,
    /// The block cache's epoch of this version (the caller's ordering).
    pub epoch: u64,
    /// The block cache's sequence number of this version (the caller's ordering).
    pub seq: u64,
    /// The object's ETag, when known.
    pub etag: Option<[u8; 16]>,
    /// CRC32 of the slot's data (0 for zero versions).
    pub data_crc: u32,
}

impl SlotRecord {
    /// The free record (stored as 64 zero bytes).
    pub const FREE: SlotRecord = SlotRecord {
        kind: RecordKind::Free,
        zero: false,
        block: 0,
        epoch: 0,
        seq: 0,
        etag: None,
        data_crc: 0,
    };
}

/// The header's contents: what the file is for, and its state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileHeader {
    /// Bytes per block (and per slot).
    pub block_size: u32,
    /// Number of slots.
    pub slot_count: u32,
    /// Number of blocks of the disk.
    pub num_blocks: u32,
    /// The disk's identity ([`identity_of`]).
    pub identity: u64,
    /// The mount token of the mount that last wrote the header.
    pub mount_token: u32,
    /// The file was closed cleanly.
    pub clean_shutdown: bool,
}

/// Why a cache file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheFileError {
    /// The OS failed an operation on the file.
    #[error("block cache file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: io::Error,
    },
    /// The file does not start with the magic number.
    #[error(
        "{path} is not an s3backer block cache file (bad magic); check --blockCacheFile, or delete \
         the file if it is a stale cache to start with an empty cache"
    )]
    NotACacheFile {
        /// The file.
        path: String,
    },
    /// The file has a format version this s3backer does not know.
    #[error(
        "block cache file {path} has format version {version}, this s3backer only knows version \
         {FORMAT_VERSION}; use the s3backer that wrote it to flush it, or delete it to start with \
         an empty cache"
    )]
    UnsupportedVersion {
        /// The file.
        path: String,
        /// The version found.
        version: u32,
    },
    /// The header's checksum does not match.
    #[error(
        "block cache file {path} has a corrupt header (checksum mismatch); delete it to start with \
         an empty cache (unflushed writes in it are lost)"
    )]
    CorruptHeader {
        /// The file.
        path: String,
    },
    /// The file was made for another disk.
    #[error(
        "block cache file {path} belongs to a different disk ({detail}); use that disk's cache \
         file, or delete it to start with an empty cache"
    )]
    WrongDisk {
        /// The file.
        path: String,
        /// Which fields differ, with the file's and the disk's values.
        detail: String,
    },
    /// The file has another number of slots than the cache size asked for.
    #[error("{}", slot_count_message(.path, .file_slots, .wanted, .dirty))]
    SlotCountMismatch {
        /// The file.
        path: String,
        /// Slots in the file.
        file_slots: u32,
        /// Slots asked for.
        wanted: u32,
        /// Dirty records in the file.
        dirty: usize,
    },
    /// The file is shorter than its header says.
    #[error(
        "block cache file {path} is truncated ({size} bytes, needs {needed}); delete it to start \
         with an empty cache (unflushed writes in it are lost)"
    )]
    Truncated {
        /// The file.
        path: String,
        /// Its size.
        size: u64,
        /// The size its header implies.
        needed: u64,
    },
}

fn slot_count_message(path: &str, file_slots: &u32, wanted: &u32, dirty: &usize) -> String {
    if *dirty == 0 {
        format!(
            "block cache file {path} has {file_slots} slots but the cache size is {wanted}; it \
             holds no unflushed writes: delete it to start with an empty cache, or use \
             --blockCacheSize={file_slots}"
        )
    } else {
        format!(
            "block cache file {path} has {file_slots} slots but the cache size is {wanted}; it \
             holds {dirty} unflushed block(s): mount with --blockCacheSize={file_slots} to flush \
             them, or delete it to start with an empty cache (losing them)"
        )
    }
}

/// An open cache file. All I/O is positional, so it is shared by reference between threads.
#[derive(Debug)]
pub struct CacheFile {
    file: File,
    path: PathBuf,
    block_size: u32,
    slot_count: u32,
    num_blocks: u32,
    identity: u64,
    created: u64,
    data_offset: u64,
}

/// An opened (or created) cache file and what it holds.
#[derive(Debug)]
pub struct Loaded {
    /// The file.
    pub file: CacheFile,
    /// Its header as found (for a new file: as written).
    pub header: FileHeader,
    /// The file was created by this open.
    pub created: bool,
    /// The valid non-free records, by slot, in slot order.
    pub records: Vec<(u32, SlotRecord)>,
    /// Slots whose record is invalid (checksum mismatch, unknown kind or flags, block out of
    /// range): to be reported and treated as free.
    pub bad_records: Vec<u32>,
}

/// Where the data area starts and how long the whole file is; None if it does not fit in a u64.
fn layout(slot_count: u32, block_size: u32) -> Option<(u64, u64)> {
    let records_end = PAGE.checked_add(u64::from(slot_count).checked_mul(RECORD_SIZE as u64)?)?;
    let data_offset = records_end.checked_next_multiple_of(PAGE)?;
    let total =
        data_offset.checked_add(u64::from(slot_count).checked_mul(u64::from(block_size))?)?;
    Some((data_offset, total))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn put_u32(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(buf: &mut [u8], at: usize, v: u64) {
    buf[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn get_u32(buf: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    u32::from_le_bytes(b)
}

fn get_u64(buf: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(b)
}

fn encode_header(h: &FileHeader, created: u64) -> Vec<u8> {
    let mut buf = vec![0u8; PAGE as usize];
    buf[0..8].copy_from_slice(&MAGIC);
    put_u32(&mut buf, 8, FORMAT_VERSION);
    put_u32(&mut buf, 12, h.block_size);
    put_u32(&mut buf, 16, h.slot_count);
    put_u32(&mut buf, 20, h.num_blocks);
    put_u64(&mut buf, 24, h.identity);
    put_u32(&mut buf, 32, h.mount_token);
    let flags = if h.clean_shutdown {
        HEADER_CLEAN_SHUTDOWN
    } else {
        0
    };
    put_u32(&mut buf, 36, flags);
    put_u64(&mut buf, 40, created);
    let crc = crc32fast::hash(&buf[..HEADER_CRC_AT]);
    put_u32(&mut buf, HEADER_CRC_AT, crc);
    buf
}

/// Encodes a record; free records are all zeros.
fn encode_record(r: &SlotRecord) -> [u8; RECORD_SIZE] {
    let mut buf = [0u8; RECORD_SIZE];
    buf[0] = match r.kind {
        RecordKind::Free => return buf,
        RecordKind::Clean => 1,
        RecordKind::Dirty => 2,
    };
    buf[1] = if r.zero { RECORD_ZERO } else { 0 };
    put_u32(&mut buf, 4, r.block);
    put_u64(&mut buf, 8, r.epoch);
    put_u64(&mut buf, 16, r.seq);
    if let Some(etag) = r.etag {
        buf[24..40].copy_from_slice(&etag);
        buf[40] = 1;
    }
    put_u32(&mut buf, 48, r.data_crc);
    let crc = crc32fast::hash(&buf[..RECORD_CRC_AT]);
    put_u32(&mut buf, RECORD_CRC_AT, crc);
    buf
}

/// Decodes a record; None if it is invalid for a disk of `num_blocks` blocks.
fn decode_record(buf: &[u8], num_blocks: u32) -> Option<SlotRecord> {
    if buf.iter().all(|&b| b == 0) {
        return Some(SlotRecord::FREE);
    }
    if crc32fast::hash(&buf[..RECORD_CRC_AT]) != get_u32(buf, RECORD_CRC_AT) {
        return None;
    }
    let kind = match buf[0] {
        0 => return Some(SlotRecord::FREE),
        1 => RecordKind::Clean,
        2 => RecordKind::Dirty,
        _ => return None,
    };
    let flags = buf[1];
    if flags & !RECORD_ZERO != 0 {
        return None;
    }
    let zero = flags & RECORD_ZERO != 0;
    let block = get_u32(buf, 4);
    let data_crc = get_u32(buf, 48);
    if block >= num_blocks || (zero && data_crc != 0) {
        return None;
    }
    let etag = match buf[40] {
        0 => None,
        1 => {
            let mut e = [0u8; 16];
            e.copy_from_slice(&buf[24..40]);
            Some(e)
        }
        _ => return None,
    };
    Some(SlotRecord {
        kind,
        zero,
        block,
        epoch: get_u64(buf, 8),
        seq: get_u64(buf, 16),
        etag,
        data_crc,
    })
}

fn invalid_input(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

impl CacheFile {
    /// Opens `path`, or creates it (`O_EXCL`, mode 0600) if missing.
    ///
    /// A new file gets the header `want` and the full (sparse) length, and is made durable
    /// (file and directory synced) before this returns. An existing file's header is validated
    /// against `want`: block size, number of blocks and identity must match
    /// ([`CacheFileError::WrongDisk`]), and the slot count must equal `want.slot_count`
    /// ([`CacheFileError::SlotCountMismatch`], with the number of dirty records so the caller
    /// can explain). All records are read sequentially, each checked against its CRC. A file
    /// shorter than `data_offset + slot_count * block_size` is [`CacheFileError::Truncated`] (a
    /// sparse file has the full length).
    pub fn open_or_create(path: &Path, want: &FileHeader) -> Result<Loaded, CacheFileError> {
        let io_err = |source: io::Error| CacheFileError::Io {
            path: path.display().to_string(),
            source,
        };
        if want.block_size == 0 {
            return Err(io_err(invalid_input("block size 0".into())));
        }
        let Some((data_offset, total)) = layout(want.slot_count, want.block_size) else {
            return Err(io_err(invalid_input(format!(
                "{} slots of {} bytes is too large",
                want.slot_count, want.block_size
            ))));
        };
        let created_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path);
        match created_file {
            Ok(file) => {
                let cf = CacheFile {
                    file,
                    path: path.to_path_buf(),
                    block_size: want.block_size,
                    slot_count: want.slot_count,
                    num_blocks: want.num_blocks,
                    identity: want.identity,
                    created: unix_now(),
                    data_offset,
                };
                if let Err(e) = cf.initialize(total, want) {
                    // We made it (O_EXCL): do not leave a half-made file behind.
                    let _ = std::fs::remove_file(path);
                    return Err(io_err(e));
                }
                Ok(Loaded {
                    file: cf,
                    header: want.clone(),
                    created: true,
                    records: Vec::new(),
                    bad_records: Vec::new(),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Self::open_existing(path, want),
            Err(e) => Err(io_err(e)),
        }
    }

    /// Gives a freshly created file its length and header, and makes it durable.
    fn initialize(&self, total: u64, want: &FileHeader) -> io::Result<()> {
        self.file.set_len(total)?;
        self.file
            .write_all_at(&encode_header(want, self.created), 0)?;
        self.file.sync_all()?;
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        File::open(dir)?.sync_all()
    }

    fn open_existing(path: &Path, want: &FileHeader) -> Result<Loaded, CacheFileError> {
        let p = || path.display().to_string();
        let io_err = |source: io::Error| CacheFileError::Io { path: p(), source };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io_err)?;
        let size = file.metadata().map_err(io_err)?.len();

        // The header.
        let mut hdr = vec![0u8; PAGE as usize];
        let have = usize::try_from(size.min(PAGE)).unwrap_or(0);
        file.read_exact_at(&mut hdr[..have], 0).map_err(io_err)?;
        if have < MAGIC.len() || hdr[..MAGIC.len()] != MAGIC {
            return Err(CacheFileError::NotACacheFile { path: p() });
        }
        if size < PAGE {
            return Err(CacheFileError::Truncated {
                path: p(),
                size,
                needed: PAGE,
            });
        }
        let version = get_u32(&hdr, 8);
        if version != FORMAT_VERSION {
            return Err(CacheFileError::UnsupportedVersion { path: p(), version });
        }
        if crc32fast::hash(&hdr[..HEADER_CRC_AT]) != get_u32(&hdr, HEADER_CRC_AT) {
            return Err(CacheFileError::CorruptHeader { path: p() });
        }
        let header = FileHeader {
            block_size: get_u32(&hdr, 12),
            slot_count: get_u32(&hdr, 16),
            num_blocks: get_u32(&hdr, 20),
            identity: get_u64(&hdr, 24),
            mount_token: get_u32(&hdr, 32),
            clean_shutdown: get_u32(&hdr, 36) & HEADER_CLEAN_SHUTDOWN != 0,
        };
        let created = get_u64(&hdr, 40);

        // Is it this disk's?
        let mut differ = Vec::new();
        if header.identity != want.identity {
            differ.push(format!(
                "identity (bucket and prefix): file {:#018x}, disk {:#018x}",
                header.identity, want.identity
            ));
        }
        if header.block_size != want.block_size {
            differ.push(format!(
                "block size: file {}, disk {}",
                header.block_size, want.block_size
            ));
        }
        if header.num_blocks != want.num_blocks {
            differ.push(format!(
                "number of blocks: file {}, disk {}",
                header.num_blocks, want.num_blocks
            ));
        }
        if !differ.is_empty() {
            return Err(CacheFileError::WrongDisk {
                path: p(),
                detail: differ.join("; "),
            });
        }

        // Its own geometry (the slot count may differ from the one wanted).
        let Some((data_offset, needed)) = layout(header.slot_count, header.block_size) else {
            return Err(CacheFileError::CorruptHeader { path: p() });
        };
        if size < needed {
            return Err(CacheFileError::Truncated {
                path: p(),
                size,
                needed,
            });
        }

        // The records: one sequential pass, in bounded chunks.
        let mut records = Vec::new();
        let mut bad_records = Vec::new();
        let mut dirty = 0usize;
        let slots = header.slot_count as usize;
        let mut chunk = vec![0u8; RECORDS_PER_READ.min(slots) * RECORD_SIZE];
        let mut first = 0usize;
        while first < slots {
            let n = RECORDS_PER_READ.min(slots - first);
            let buf = &mut chunk[..n * RECORD_SIZE];
            file.read_exact_at(buf, PAGE + (first * RECORD_SIZE) as u64)
                .map_err(io_err)?;
            for (i, raw) in buf.chunks_exact(RECORD_SIZE).enumerate() {
                let slot = (first + i) as u32;
                match decode_record(raw, header.num_blocks) {
                    None => bad_records.push(slot),
                    Some(r) if r.kind == RecordKind::Free => {}
                    Some(r) => {
                        if r.kind == RecordKind::Dirty {
                            dirty += 1;
                        }
                        records.push((slot, r));
                    }
                }
            }
            first += n;
        }
        if header.slot_count != want.slot_count {
            return Err(CacheFileError::SlotCountMismatch {
                path: p(),
                file_slots: header.slot_count,
                wanted: want.slot_count,
                dirty,
            });
        }

        Ok(Loaded {
            file: CacheFile {
                file,
                path: path.to_path_buf(),
                block_size: header.block_size,
                slot_count: header.slot_count,
                num_blocks: header.num_blocks,
                identity: header.identity,
                created,
                data_offset,
            },
            header,
            created: false,
            records,
            bad_records,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of slots.
    pub fn slot_count(&self) -> u32 {
        self.slot_count
    }

    /// Where a slot's data starts, after checking the slot and the length (at most a block).
    fn data_at(&self, slot: u32, len: usize) -> io::Result<u64> {
        if slot >= self.slot_count {
            return Err(invalid_input(format!(
                "block cache file {}: slot {slot} out of range ({} slots)",
                self.path.display(),
                self.slot_count
            )));
        }
        if len > self.block_size as usize {
            return Err(invalid_input(format!(
                "block cache file {}: {len} bytes do not fit a slot of {}",
                self.path.display(),
                self.block_size
            )));
        }
        Ok(self.data_offset + u64::from(slot) * u64::from(self.block_size))
    }

    /// Writes a block's data (at most a block, normally exactly one) into a slot; returns its
    /// CRC32, for the record.
    pub fn write_data(&self, slot: u32, data: &[u8]) -> io::Result<u32> {
        let at = self.data_at(slot, data.len())?;
        self.file.write_all_at(data, at)?;
        Ok(crc32fast::hash(data))
    }

    /// Reads a slot's data (`buf.len()` bytes, at most a block); if `expect_crc` is Some,
    /// verifies the data against it and fails with [`io::ErrorKind::InvalidData`] on mismatch.
    pub fn read_data(&self, slot: u32, buf: &mut [u8], expect_crc: Option<u32>) -> io::Result<()> {
        let at = self.data_at(slot, buf.len())?;
        self.file.read_exact_at(buf, at)?;
        if let Some(want) = expect_crc {
            let got = crc32fast::hash(buf);
            if got != want {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "block cache file {}: slot {slot} data checksum mismatch (record \
                         {want:08x}, data {got:08x})",
                        self.path.display()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Reads part of a slot's data (`offset` within the block); no checksum (the caller checks
    /// whole slots loaded from disk before trusting parts of them).
    pub fn read_data_part(&self, slot: u32, offset: u32, buf: &mut [u8]) -> io::Result<()> {
        let end = offset as usize + buf.len();
        let at = self.data_at(slot, end)?;
        self.file.read_exact_at(buf, at + u64::from(offset))
    }

    /// Writes a slot's record ([`SlotRecord::FREE`] is written as zeros). A non-free record
    /// must name a block of the disk.
    pub fn write_record(&self, slot: u32, record: &SlotRecord) -> io::Result<()> {
        if slot >= self.slot_count {
            return Err(invalid_input(format!(
                "block cache file {}: slot {slot} out of range ({} slots)",
                self.path.display(),
                self.slot_count
            )));
        }
        if record.kind != RecordKind::Free && record.block >= self.num_blocks {
            return Err(invalid_input(format!(
                "block cache file {}: block {} out of range ({} blocks)",
                self.path.display(),
                record.block,
                self.num_blocks
            )));
        }
        let at = PAGE + u64::from(slot) * RECORD_SIZE as u64;
        self.file.write_all_at(&encode_record(record), at)
    }

    /// Rewrites the header with a mount token and the clean-shutdown flag.
    pub fn write_header(&self, mount_token: u32, clean_shutdown: bool) -> io::Result<()> {
        let h = FileHeader {
            block_size: self.block_size,
            slot_count: self.slot_count,
            num_blocks: self.num_blocks,
            identity: self.identity,
            mount_token,
            clean_shutdown,
        };
        self.file.write_all_at(&encode_header(&h, self.created), 0)
    }

    /// fdatasync: the data and records written so far are durable.
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// The byte range of a slot's data, if the slot exists.
    // `off_t` is only 32 bits on some targets, where the conversions can fail.
    #[allow(clippy::unnecessary_fallible_conversions)]
    fn slot_range(&self, slot: u32) -> Option<(libc::off_t, libc::off_t)> {
        let at = self.data_at(slot, 0).ok()?;
        Some((
            libc::off_t::try_from(at).ok()?,
            libc::off_t::try_from(self.block_size).ok()?,
        ))
    }

    /// `posix_fadvise(DONTNEED)` on a slot's data (`--blockCacheFileAdvise`): the page cache
    /// may drop it. Errors are ignored.
    pub fn advise_dontneed(&self, slot: u32) {
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
        if let Some((off, len)) = self.slot_range(slot) {
            use std::os::fd::AsRawFd;
            // SAFETY: plain syscall on a file descriptor we own; no memory is passed.
            let _ = unsafe {
                libc::posix_fadvise(self.file.as_raw_fd(), off, len, libc::POSIX_FADV_DONTNEED)
            };
        }
        #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
        let _ = self.slot_range(slot);
    }

    /// Punches a hole over a slot's data (a freed slot, or a zero version) with
    /// `fallocate(PUNCH_HOLE | KEEP_SIZE)`; the range then reads as zeros. Errors (e.g. a file
    /// system without hole punching) are ignored.
    pub fn punch(&self, slot: u32) {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Some((off, len)) = self.slot_range(slot) {
            use std::os::fd::AsRawFd;
            // SAFETY: plain syscall on a file descriptor we own; no memory is passed.
            let _ = unsafe {
                libc::fallocate(
                    self.file.as_raw_fd(),
                    libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                    off,
                    len,
                )
            };
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let _ = self.slot_range(slot);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A temporary path, removed on drop.
    struct TempPath(PathBuf);

    impl TempPath {
        fn new(name: &str) -> Self {
            static N: AtomicUsize = AtomicUsize::new(0);
            let p = std::env::temp_dir().join(format!(
                "s3backer-cachefile-test-{}-{}-{name}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_file(&p);
            TempPath(p)
        }
    }

    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn want(slots: u32) -> FileHeader {
        FileHeader {
            block_size: 4096,
            slot_count: slots,
            num_blocks: 1000,
            identity: identity_of("bucket", "prefix/"),
            mount_token: 0x1234_5678,
            clean_shutdown: false,
        }
    }

    fn open(p: &TempPath, w: &FileHeader) -> Result<Loaded, CacheFileError> {
        CacheFile::open_or_create(&p.0, w)
    }

    fn rec(kind: RecordKind, block: u32, data_crc: u32) -> SlotRecord {
        SlotRecord {
            kind,
            zero: false,
            block,
            epoch: 3,
            seq: u64::from(block) * 10,
            etag: None,
            data_crc,
        }
    }

    /// Overwrites bytes of the file at `at`.
    fn poke(p: &TempPath, at: u64, bytes: &[u8]) {
        let f = OpenOptions::new().write(true).open(&p.0).unwrap();
        f.write_all_at(bytes, at).unwrap();
    }

    fn peek(p: &TempPath, at: u64, len: usize) -> Vec<u8> {
        let f = File::open(&p.0).unwrap();
        let mut buf = vec![0u8; len];
        f.read_exact_at(&mut buf, at).unwrap();
        buf
    }

    /// Rewrites the header's CRC after a deliberate edit.
    fn fix_header_crc(p: &TempPath) {
        let hdr = peek(p, 0, PAGE as usize);
        let crc = crc32fast::hash(&hdr[..HEADER_CRC_AT]);
        poke(p, HEADER_CRC_AT as u64, &crc.to_le_bytes());
    }

    #[test]
    fn fnv_and_identity() {
        let fnv = |b: &[u8]| {
            let mut h = Fnv1a64::new();
            h.write(b);
            h.0
        };
        assert_eq!(fnv(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(identity_of("bkt", "pre"), fnv(b"bkt\0pre"));
        assert_ne!(identity_of("ab", "c"), identity_of("a", "bc"));
        assert_ne!(identity_of("b", ""), identity_of("b", "x"));
    }

    #[test]
    fn send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<CacheFile>();
        check::<Loaded>();
    }

    #[test]
    fn layout_math() {
        assert_eq!(layout(0, 4096), Some((4096, 4096)));
        assert_eq!(layout(1, 4096), Some((8192, 8192 + 4096)));
        assert_eq!(layout(64, 512), Some((8192, 8192 + 64 * 512)));
        assert_eq!(layout(65, 512), Some((12288, 12288 + 65 * 512)));
        assert_eq!(
            layout(100_000, 256 * 1024),
            Some((6_406_144, 6_406_144 + 100_000 * 256 * 1024))
        );
        assert!(layout(u32::MAX, u32::MAX).is_none());
        assert!(layout(u32::MAX, 1 << 31).is_some());
    }

    #[test]
    fn record_encoding_round_trip() {
        let samples = [
            SlotRecord {
                kind: RecordKind::Clean,
                zero: false,
                block: 999,
                epoch: u64::MAX,
                seq: 1,
                etag: Some([0xab; 16]),
                data_crc: 0xdead_beef,
            },
            SlotRecord {
                kind: RecordKind::Dirty,
                zero: true,
                block: 0,
                epoch: 0,
                seq: 0,
                etag: None,
                data_crc: 0,
            },
            SlotRecord {
                kind: RecordKind::Clean,
                zero: false,
                block: 5,
                epoch: 1,
                seq: 2,
                etag: Some([0; 16]),
                data_crc: 7,
            },
        ];
        for r in samples {
            let raw = encode_record(&r);
            assert_eq!(decode_record(&raw, 1000), Some(r));
        }
        assert_eq!(encode_record(&SlotRecord::FREE), [0u8; RECORD_SIZE]);
        // Free with junk fields still encodes as zeros.
        let junk_free = SlotRecord {
            block: 7,
            ..rec(RecordKind::Free, 7, 9)
        };
        assert_eq!(encode_record(&junk_free), [0u8; RECORD_SIZE]);
        assert_eq!(
            decode_record(&[0u8; RECORD_SIZE], 0),
            Some(SlotRecord::FREE)
        );
    }

    #[test]
    fn create_write_reopen_round_trip() {
        let p = TempPath::new("roundtrip");
        let w = want(16);
        let l = open(&p, &w).unwrap();
        assert!(l.created);
        assert_eq!(l.header, w);
        assert!(l.records.is_empty() && l.bad_records.is_empty());
        let f = &l.file;
        assert_eq!(f.path(), p.0.as_path());
        assert_eq!(f.slot_count(), 16);
        let meta = std::fs::metadata(&p.0).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), layout(16, 4096).unwrap().1);

        let a = vec![0x5au8; 4096];
        let b: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
        let crc_a = f.write_data(0, &a).unwrap();
        let crc_b = f.write_data(7, &b).unwrap();
        assert_eq!(crc_a, crc32fast::hash(&a));
        let r0 = SlotRecord {
            etag: Some([1; 16]),
            ..rec(RecordKind::Clean, 10, crc_a)
        };
        let r7 = rec(RecordKind::Dirty, 20, crc_b);
        let r9 = SlotRecord {
            zero: true,
            ..rec(RecordKind::Dirty, 30, 0)
        };
        f.write_record(0, &r0).unwrap();
        f.write_record(7, &r7).unwrap();
        f.write_record(9, &r9).unwrap();
        f.write_record(3, &rec(RecordKind::Clean, 40, 0)).unwrap();
        f.write_record(3, &SlotRecord::FREE).unwrap();
        f.sync().unwrap();
        drop(l);

        let l = open(&p, &w).unwrap();
        assert!(!l.created);
        assert_eq!(l.header, w);
        assert_eq!(l.records, vec![(0, r0), (7, r7), (9, r9)]);
        assert!(l.bad_records.is_empty());
        let mut buf = vec![0u8; 4096];
        l.file.read_data(0, &mut buf, Some(crc_a)).unwrap();
        assert_eq!(buf, a);
        l.file.read_data(7, &mut buf, Some(crc_b)).unwrap();
        assert_eq!(buf, b);
        // An unwritten slot of the sparse file reads as zeros.
        l.file.read_data(1, &mut buf, None).unwrap();
        assert!(buf.iter().all(|&x| x == 0));
    }

    #[test]
    fn header_flags_and_token() {
        let p = TempPath::new("header");
        let w = want(4);
        let l = open(&p, &w).unwrap();
        l.file.write_header(77, true).unwrap();
        drop(l);
        let l = open(&p, &w).unwrap();
        assert_eq!(l.header.mount_token, 77);
        assert!(l.header.clean_shutdown);
        assert_eq!(
            l.header,
            FileHeader {
                mount_token: 77,
                clean_shutdown: true,
                ..w.clone()
            }
        );
        let created = get_u64(&peek(&p, 0, 64), 40);
        assert!(created > 1_600_000_000);
        l.file.write_header(0xffff_fffe, false).unwrap();
        drop(l);
        let l = open(&p, &w).unwrap();
        assert_eq!(l.header.mount_token, 0xffff_fffe);
        assert!(!l.header.clean_shutdown);
        // The creation time survives header rewrites.
        assert_eq!(get_u64(&peek(&p, 0, 64), 40), created);
        // Layout of the header on disk.
        let hdr = peek(&p, 0, PAGE as usize);
        assert_eq!(&hdr[0..8], b"S3BCACH1");
        assert_eq!(get_u32(&hdr, 8), 1);
        assert_eq!(get_u32(&hdr, 12), 4096);
        assert_eq!(get_u32(&hdr, 16), 4);
        assert_eq!(get_u32(&hdr, 20), 1000);
        assert_eq!(get_u64(&hdr, 24), w.identity);
        assert!(hdr[48..HEADER_CRC_AT].iter().all(|&b| b == 0));
    }

    #[test]
    fn wrong_magic() {
        let p = TempPath::new("magic");
        drop(open(&p, &want(4)).unwrap());
        poke(&p, 0, b"X");
        let e = open(&p, &want(4)).unwrap_err();
        assert!(matches!(e, CacheFileError::NotACacheFile { .. }), "{e}");
        assert!(e.to_string().contains(&p.0.display().to_string()));

        // Some other file, and an empty one.
        std::fs::write(&p.0, b"hello, world").unwrap();
        let e = open(&p, &want(4)).unwrap_err();
        assert!(matches!(e, CacheFileError::NotACacheFile { .. }), "{e}");
        std::fs::write(&p.0, b"").unwrap();
        let e = open(&p, &want(4)).unwrap_err();
        assert!(matches!(e, CacheFileError::NotACacheFile { .. }), "{e}");
        // The file was left alone.
        assert_eq!(std::fs::metadata(&p.0).unwrap().len(), 0);
    }

    #[test]
    fn wrong_version() {
        let p = TempPath::new("version");
        drop(open(&p, &want(4)).unwrap());
        poke(&p, 8, &2u32.to_le_bytes());
        fix_header_crc(&p);
        let e = open(&p, &want(4)).unwrap_err();
        assert!(
            matches!(e, CacheFileError::UnsupportedVersion { version: 2, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("version 2"), "{e}");
        // Without fixing the CRC, the version is still what is reported.
        poke(&p, 8, &9u32.to_le_bytes());
        let e = open(&p, &want(4)).unwrap_err();
        assert!(
            matches!(e, CacheFileError::UnsupportedVersion { version: 9, .. }),
            "{e}"
        );
    }

    #[test]
    fn header_crc_mismatch() {
        let p = TempPath::new("hdrcrc");
        drop(open(&p, &want(4)).unwrap());
        // A flipped padding byte.
        poke(&p, 1000, &[1]);
        let e = open(&p, &want(4)).unwrap_err();
        assert!(matches!(e, CacheFileError::CorruptHeader { .. }), "{e}");
        assert!(e.to_string().contains("delete it"), "{e}");
        poke(&p, 1000, &[0]);
        open(&p, &want(4)).unwrap();
        // A flipped CRC byte.
        let b = peek(&p, HEADER_CRC_AT as u64, 1)[0];
        poke(&p, HEADER_CRC_AT as u64, &[b ^ 0x10]);
        let e = open(&p, &want(4)).unwrap_err();
        assert!(matches!(e, CacheFileError::CorruptHeader { .. }), "{e}");
        // A flipped mount token bit.
        poke(&p, HEADER_CRC_AT as u64, &[b]);
        let t = peek(&p, 32, 1)[0];
        poke(&p, 32, &[t ^ 1]);
        let e = open(&p, &want(4)).unwrap_err();
        assert!(matches!(e, CacheFileError::CorruptHeader { .. }), "{e}");
    }

    #[test]
    fn wrong_disk() {
        let p = TempPath::new("wrongdisk");
        let w = want(4);
        drop(open(&p, &w).unwrap());

        let other = FileHeader {
            identity: identity_of("bucket", "other/"),
            ..w.clone()
        };
        let e = open(&p, &other).unwrap_err();
        let CacheFileError::WrongDisk { detail, .. } = &e else {
            panic!("{e}")
        };
        assert!(detail.contains("identity"), "{detail}");
        assert!(
            detail.contains(&format!("{:#018x}", w.identity))
                && detail.contains(&format!("{:#018x}", other.identity)),
            "{detail}"
        );
        assert!(!detail.contains("block size"), "{detail}");

        let e = open(
            &p,
            &FileHeader {
                block_size: 8192,
                ..w.clone()
            },
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, CacheFileError::WrongDisk { .. }), "{msg}");
        assert!(msg.contains("block size: file 4096, disk 8192"), "{msg}");

        let e = open(
            &p,
            &FileHeader {
                num_blocks: 2000,
                ..w.clone()
            },
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("number of blocks: file 1000, disk 2000"),
            "{msg}"
        );

        // Several at once are all named.
        let e = open(
            &p,
            &FileHeader {
                num_blocks: 2000,
                block_size: 512,
                ..other
            },
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("identity") && msg.contains("block size") && msg.contains("number of"),
            "{msg}"
        );
        // The file is untouched by failed opens.
        open(&p, &w).unwrap();
    }

    #[test]
    fn slot_count_mismatch_counts_dirty() {
        let p = TempPath::new("slots");
        let l = open(&p, &want(8)).unwrap();
        l.file
            .write_record(1, &rec(RecordKind::Dirty, 1, 0))
            .unwrap();
        l.file
            .write_record(2, &rec(RecordKind::Clean, 2, 0))
            .unwrap();
        l.file
            .write_record(5, &rec(RecordKind::Dirty, 5, 0))
            .unwrap();
        drop(l);
        for wanted in [4, 16] {
            let e = open(&p, &want(wanted)).unwrap_err();
            let msg = e.to_string();
            let CacheFileError::SlotCountMismatch {
                file_slots,
                wanted: w2,
                dirty,
                ..
            } = e
            else {
                panic!("{msg}")
            };
            assert_eq!((file_slots, w2, dirty), (8, wanted, 2));
            assert!(msg.contains("2 unflushed") && msg.contains("8"), "{msg}");
        }
        let p2 = TempPath::new("slots-clean");
        drop(open(&p2, &want(8)).unwrap());
        let e = open(&p2, &want(9)).unwrap_err();
        assert!(
            matches!(e, CacheFileError::SlotCountMismatch { dirty: 0, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("no unflushed"), "{e}");
    }

    #[test]
    fn truncated() {
        let p = TempPath::new("trunc");
        let w = want(8);
        drop(open(&p, &w).unwrap());
        let full = layout(8, 4096).unwrap().1;
        let f = OpenOptions::new().write(true).open(&p.0).unwrap();
        f.set_len(full - 1).unwrap();
        let e = open(&p, &w).unwrap_err();
        assert!(
            matches!(e, CacheFileError::Truncated { size, needed, .. } if size == full - 1 && needed == full),
            "{e}"
        );
        // Cut inside the record area.
        f.set_len(PAGE + 10).unwrap();
        let e = open(&p, &w).unwrap_err();
        assert!(matches!(e, CacheFileError::Truncated { .. }), "{e}");
        // Cut inside the header.
        f.set_len(100).unwrap();
        let e = open(&p, &w).unwrap_err();
        assert!(
            matches!(
                e,
                CacheFileError::Truncated {
                    size: 100,
                    needed: PAGE,
                    ..
                }
            ),
            "{e}"
        );
        // A longer file is fine.
        f.set_len(full + 12345).unwrap();
        f.write_all_at(&encode_header(&w, 1), 0).unwrap();
        open(&p, &w).unwrap();
    }

    #[test]
    fn bad_records_reported_not_returned() {
        let p = TempPath::new("badrec");
        let w = want(8);
        let l = open(&p, &w).unwrap();
        for s in 0..5 {
            l.file
                .write_record(s, &rec(RecordKind::Dirty, s, 0))
                .unwrap();
        }
        l.file.write_record(4, &SlotRecord::FREE).unwrap();
        drop(l);
        let rec_at = |s: u64| PAGE + s * RECORD_SIZE as u64;
        // Slot 1: a flipped byte.
        let b = peek(&p, rec_at(1) + 9, 1)[0];
        poke(&p, rec_at(1) + 9, &[b ^ 0x40]);
        // Slot 2: valid CRC but an unknown kind.
        let mut raw = encode_record(&rec(RecordKind::Clean, 2, 0));
        raw[0] = 7;
        let crc = crc32fast::hash(&raw[..RECORD_CRC_AT]);
        put_u32(&mut raw, RECORD_CRC_AT, crc);
        poke(&p, rec_at(2), &raw);
        // Slot 3: valid CRC but a block beyond the disk.
        let mut raw = encode_record(&rec(RecordKind::Clean, 3, 0));
        put_u32(&mut raw, 4, 1000);
        let crc = crc32fast::hash(&raw[..RECORD_CRC_AT]);
        put_u32(&mut raw, RECORD_CRC_AT, crc);
        poke(&p, rec_at(3), &raw);
        // Slot 4 was freed: all zeros.
        assert_eq!(peek(&p, rec_at(4), RECORD_SIZE), vec![0u8; RECORD_SIZE]);
        // Slot 6: a flipped byte in the (otherwise zero) CRC of a free record.
        poke(&p, rec_at(6) + 62, &[1]);

        let l = open(&p, &w).unwrap();
        assert_eq!(l.records, vec![(0, rec(RecordKind::Dirty, 0, 0))]);
        assert_eq!(l.bad_records, vec![1, 2, 3, 6]);
        // A bad slot can be rewritten and is then good again.
        l.file.write_record(1, &SlotRecord::FREE).unwrap();
        l.file
            .write_record(6, &rec(RecordKind::Clean, 6, 0))
            .unwrap();
        drop(l);
        let l = open(&p, &w).unwrap();
        assert_eq!(l.bad_records, vec![2, 3]);
        assert_eq!(l.records.len(), 2);
    }

    #[test]
    fn read_data_checks_crc() {
        let p = TempPath::new("datacrc");
        let l = open(&p, &want(4)).unwrap();
        let data = vec![9u8; 4096];
        let crc = l.file.write_data(2, &data).unwrap();
        let mut buf = vec![0u8; 4096];
        let e = l.file.read_data(2, &mut buf, Some(crc ^ 1)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("slot 2"), "{e}");
        // A torn write (part of the data lost) is caught by the record's CRC.
        poke(&p, l.file.data_offset + 2 * 4096 + 4000, &[0u8; 96]);
        let e = l.file.read_data(2, &mut buf, Some(crc)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        l.file.read_data(2, &mut buf, None).unwrap();
    }

    #[test]
    fn edge_cases_and_last_slot() {
        let p = TempPath::new("edges");
        let w = want(5);
        let l = open(&p, &w).unwrap();
        let f = &l.file;
        // Zero-length data.
        assert_eq!(f.write_data(0, &[]).unwrap(), 0);
        f.read_data(0, &mut [], Some(0)).unwrap();
        f.read_data(4, &mut [], None).unwrap();
        // Out of range and oversized.
        let e = f.write_data(5, &[1]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let e = f.write_data(0, &[0u8; 4097]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let e = f.read_data(5, &mut [0u8; 1], None).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let e = f.write_record(5, &SlotRecord::FREE).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let e = f
            .write_record(0, &rec(RecordKind::Dirty, 1000, 0))
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        f.punch(99);
        f.advise_dontneed(99);
        // The last slot, and the file keeps its length.
        let data: Vec<u8> = (0..4096u32).map(|i| (i * 7) as u8).collect();
        let crc = f.write_data(4, &data).unwrap();
        f.write_record(4, &rec(RecordKind::Dirty, 999, crc))
            .unwrap();
        f.sync().unwrap();
        let full = layout(5, 4096).unwrap().1;
        assert_eq!(std::fs::metadata(&p.0).unwrap().len(), full);
        assert_eq!(peek(&p, full - 4096, 4096), data);
        drop(l);
        let l = open(&p, &w).unwrap();
        assert_eq!(l.records, vec![(4, rec(RecordKind::Dirty, 999, crc))]);
        let mut buf = vec![0u8; 4096];
        l.file.read_data(4, &mut buf, Some(crc)).unwrap();
        assert_eq!(buf, data);

        // A cache of zero slots is just a header.
        let p0 = TempPath::new("zero-slots");
        let l = open(&p0, &want(0)).unwrap();
        assert_eq!(std::fs::metadata(&p0.0).unwrap().len(), PAGE);
        assert_eq!(
            l.file.write_data(0, &[]).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        drop(l);
        let l = open(&p0, &want(0)).unwrap();
        assert!(l.records.is_empty() && !l.created);

        // A block size of 0 is refused.
        let pz = TempPath::new("zero-bs");
        let e = open(
            &pz,
            &FileHeader {
                block_size: 0,
                ..want(1)
            },
        )
        .unwrap_err();
        assert!(matches!(e, CacheFileError::Io { .. }), "{e}");
        assert!(!pz.0.exists());
    }

    #[test]
    fn big_file_is_sparse_and_opens_quickly() {
        let p = TempPath::new("sparse");
        let w = FileHeader {
            block_size: 256 * 1024,
            slot_count: 100_000,
            num_blocks: 1 << 24,
            ..want(0)
        };
        let t = std::time::Instant::now();
        let l = open(&p, &w).unwrap();
        assert!(l.created);
        let meta = std::fs::metadata(&p.0).unwrap();
        let (data_offset, full) = layout(100_000, 256 * 1024).unwrap();
        assert_eq!(meta.len(), full);
        assert!(meta.len() > 26_000_000_000);
        let allocated = meta.blocks() * 512;
        assert!(allocated <= 1024 * 1024, "allocated {allocated} bytes");

        // Data in a slot allocates; punching it gives the space back and reads zeros.
        let f = &l.file;
        let data = vec![0xeeu8; 256 * 1024];
        f.write_data(50_000, &data).unwrap();
        f.write_data(99_999, &data).unwrap();
        f.sync().unwrap();
        let with_data = std::fs::metadata(&p.0).unwrap().blocks() * 512;
        assert!(with_data >= allocated + 2 * 256 * 1024, "{with_data}");
        f.advise_dontneed(50_000);
        f.punch(50_000);
        let punched = std::fs::metadata(&p.0).unwrap().blocks() * 512;
        let mut buf = vec![1u8; 256 * 1024];
        f.read_data(
            50_000,
            &mut buf,
            Some(crc32fast::hash(&vec![0u8; 256 * 1024])),
        )
        .unwrap();
        assert!(buf.iter().all(|&b| b == 0));
        assert!(punched < with_data, "{punched} vs {with_data}");
        assert_eq!(std::fs::metadata(&p.0).unwrap().len(), full);
        assert_eq!(f.data_offset, data_offset);
        drop(l);

        let l = open(&p, &w).unwrap();
        assert!(!l.created && l.records.is_empty() && l.bad_records.is_empty());
        let took = t.elapsed();
        assert!(took < std::time::Duration::from_secs(10), "took {took:?}");
    }
}
