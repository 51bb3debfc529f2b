//! The block cache file reader (`CacheFile::open_or_create` of an existing file) on arbitrary
//! and damaged files, against a model of the documented format (cache_file.rs, "Format,
//! version 1").
//!
//! Input: `MODE ...`, MODE % 3 picks how the file is made:
//! * 0, raw: the rest of the input is the file (geometry: 512-byte blocks, 4 slots, 64 blocks).
//! * 1, structured: a header with a valid CRC from fields in the input (block size, slots,
//!   number of blocks; optionally mismatching what is asked for), the input's bytes as
//!   records (optionally with valid record CRCs) and data, optionally truncated or extended.
//! * 2, damaged: a valid file written through the API (`open_or_create`, `write_data`,
//!   `write_record`, `write_header`), then bytes changed (offset/xor pairs from the input) and
//!   optionally cut short.
//!
//! Properties: opening never panics, and agrees with the model: the same error kind (bad magic,
//! truncated, unknown version, corrupt header, wrong disk, slot-count mismatch with the same
//! number of dirty records), or the same header, valid records and bad-record slots. Every
//! returned data slot either reads back as exactly the file's bytes or fails its CRC check;
//! in mode 2, an intact record over changed data (a change within 4 bytes, which CRC32 always
//! detects) fails, a record changed that way is never returned, a header changed that way is
//! refused, and an untouched file gives back exactly what was written.
#![no_main]

mod common;

use std::io;
use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use s3backer_store::layers::block_cache::cache_file::{
    CacheFile, CacheFileError, FileHeader, Loaded, RecordKind, SlotRecord, identity_of,
};

const PAGE: usize = 4096;
const RECORD: usize = 64;

fn path() -> PathBuf {
    common::private_dir().join("cache")
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Input bytes, repeated; zeros if there are none.
struct Bytes<'a> {
    data: &'a [u8],
    at: usize,
}

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        if self.data.is_empty() {
            return 0;
        }
        let b = self.data[self.at % self.data.len()];
        self.at += 1;
        b
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }
}

/// What opening a file must give, by the documented format.
#[derive(Debug, PartialEq)]
enum Expect {
    NotACacheFile,
    Truncated {
        size: u64,
        needed: u64,
    },
    UnsupportedVersion(u32),
    CorruptHeader,
    WrongDisk,
    SlotCountMismatch {
        file_slots: u32,
        dirty: usize,
    },
    Loaded {
        header: FileHeader,
        records: Vec<(u32, SlotRecord)>,
        bad: Vec<u32>,
        data_offset: u64,
    },
}

/// A record by the format: `Err` = invalid, `Ok(None)` = free.
fn model_record(r: &[u8], num_blocks: u32) -> Result<Option<SlotRecord>, ()> {
    if r.iter().all(|&b| b == 0) {
        return Ok(None);
    }
    if crc32fast::hash(&r[..60]) != le32(r, 60) {
        return Err(());
    }
    let kind = match r[0] {
        0 => return Ok(None),
        1 => RecordKind::Clean,
        2 => RecordKind::Dirty,
        _ => return Err(()),
    };
    if r[1] & !1 != 0 {
        return Err(());
    }
    let zero = r[1] & 1 != 0;
    let block = le32(r, 4);
    let data_crc = le32(r, 48);
    if block >= num_blocks || (zero && data_crc != 0) {
        return Err(());
    }
    let etag = match r[40] {
        0 => None,
        1 => Some(r[24..40].try_into().expect("16 bytes")),
        _ => return Err(()),
    };
    Ok(Some(SlotRecord {
        kind,
        zero,
        block,
        epoch: le64(r, 8),
        seq: le64(r, 16),
        etag,
        data_crc,
    }))
}

fn model(file: &[u8], want: &FileHeader) -> Expect {
    let size = file.len() as u64;
    if file.len() < 8 || &file[..8] != b"S3BCACH1" {
        return Expect::NotACacheFile;
    }
    if file.len() < PAGE {
        return Expect::Truncated {
            size,
            needed: PAGE as u64,
        };
    }
    let version = le32(file, 8);
    if version != 1 {
        return Expect::UnsupportedVersion(version);
    }
    if crc32fast::hash(&file[..PAGE - 4]) != le32(file, PAGE - 4) {
        return Expect::CorruptHeader;
    }
    let header = FileHeader {
        block_size: le32(file, 12),
        slot_count: le32(file, 16),
        num_blocks: le32(file, 20),
        identity: le64(file, 24),
        mount_token: le32(file, 32),
        clean_shutdown: le32(file, 36) & 1 != 0,
    };
    if header.identity != want.identity
        || header.block_size != want.block_size
        || header.num_blocks != want.num_blocks
    {
        return Expect::WrongDisk;
    }
    // u128: no overflow in the model.
    let slots = u128::from(header.slot_count);
    let data_offset = (PAGE as u128 + slots * RECORD as u128).next_multiple_of(PAGE as u128);
    let needed = data_offset + slots * u128::from(header.block_size);
    if needed > u128::from(u64::MAX) {
        return Expect::CorruptHeader;
    }
    if u128::from(size) < needed {
        return Expect::Truncated {
            size,
            needed: needed as u64,
        };
    }
    let mut records = Vec::new();
    let mut bad = Vec::new();
    let mut dirty = 0;
    for slot in 0..header.slot_count {
        let at = PAGE + slot as usize * RECORD;
        match model_record(&file[at..at + RECORD], header.num_blocks) {
            Err(()) => bad.push(slot),
            Ok(None) => {}
            Ok(Some(r)) => {
                dirty += usize::from(r.kind == RecordKind::Dirty);
                records.push((slot, r));
            }
        }
    }
    if header.slot_count != want.slot_count {
        return Expect::SlotCountMismatch {
            file_slots: header.slot_count,
            dirty,
        };
    }
    Expect::Loaded {
        header,
        records,
        bad,
        data_offset: data_offset as u64,
    }
}

/// Opens the file at `path()` (holding `file`) and checks the result against the model;
/// returns the loaded file if it opened.
fn open_and_check(file: &[u8], want: &FileHeader) -> Option<Loaded> {
    let expect = model(file, want);
    let got = CacheFile::open_or_create(&path(), want);
    let loaded = match (got, &expect) {
        (Ok(l), Expect::Loaded { .. }) => l,
        (Err(CacheFileError::NotACacheFile { .. }), Expect::NotACacheFile)
        | (Err(CacheFileError::CorruptHeader { .. }), Expect::CorruptHeader)
        | (Err(CacheFileError::WrongDisk { .. }), Expect::WrongDisk) => return None,
        (Err(CacheFileError::Truncated { size, needed, .. }), Expect::Truncated { .. }) => {
            assert_eq!(Expect::Truncated { size, needed }, expect);
            return None;
        }
        (
            Err(CacheFileError::UnsupportedVersion { version, .. }),
            Expect::UnsupportedVersion(_),
        ) => {
            assert_eq!(Expect::UnsupportedVersion(version), expect);
            return None;
        }
        (
            Err(CacheFileError::SlotCountMismatch {
                file_slots,
                wanted,
                dirty,
                ..
            }),
            Expect::SlotCountMismatch { .. },
        ) => {
            assert_eq!(wanted, want.slot_count);
            assert_eq!(Expect::SlotCountMismatch { file_slots, dirty }, expect);
            return None;
        }
        (got, expect) => panic!("open gave {got:?}, the format says {expect:?}"),
    };
    let Expect::Loaded {
        header,
        records,
        bad,
        data_offset,
    } = expect
    else {
        unreachable!()
    };
    assert!(!loaded.created, "an existing file was reported as created");
    assert_eq!(loaded.header, header, "header");
    assert_eq!(loaded.records, records, "records");
    assert_eq!(loaded.bad_records, bad, "bad records");
    assert_eq!(loaded.file.slot_count(), header.slot_count);

    // Data: exactly the file's bytes, or a checksum error; never anything else.
    let bs = header.block_size as usize;
    for (slot, r) in &loaded.records {
        if r.zero {
            continue;
        }
        let mut buf = vec![0u8; bs];
        let at = data_offset as usize + *slot as usize * bs;
        match loaded.file.read_data(*slot, &mut buf, Some(r.data_crc)) {
            Ok(()) => assert!(
                buf == file[at..at + bs],
                "slot {slot}: data differs from the file"
            ),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                assert!(crc32fast::hash(&file[at..at + bs]) != r.data_crc)
            }
            Err(e) => panic!("slot {slot}: reading its data failed: {e}"),
        }
    }
    Some(loaded)
}

fn raw_mode(rest: &[u8]) {
    let want = FileHeader {
        block_size: 512,
        slot_count: 4,
        num_blocks: 64,
        identity: identity_of("bucket", "disk/"),
        mount_token: 0,
        clean_shutdown: false,
    };
    std::fs::write(path(), rest).expect("write the file");
    open_and_check(rest, &want);
}

fn structured_mode(rest: &[u8]) {
    let mut b = Bytes { data: rest, at: 0 };
    let block_size = 1u32 << (b.byte() % 13);
    let slot_count = u32::from(b.byte() % 33);
    let flags = b.byte();
    let num_blocks = if flags & 1 != 0 {
        b.u32()
    } else {
        u32::from(b.byte())
    };
    let header = FileHeader {
        block_size,
        slot_count,
        num_blocks,
        identity: identity_of("bucket", "disk/"),
        mount_token: b.u32(),
        clean_shutdown: flags & 2 != 0,
    };
    let mut want = header.clone();
    if flags & 4 != 0 {
        want.slot_count = slot_count + 1;
    }
    if flags & 8 != 0 {
        want.identity ^= 1;
    }

    let mut file = vec![0u8; PAGE];
    file[..8].copy_from_slice(b"S3BCACH1");
    file[8..12].copy_from_slice(&1u32.to_le_bytes());
    file[12..16].copy_from_slice(&block_size.to_le_bytes());
    file[16..20].copy_from_slice(&slot_count.to_le_bytes());
    file[20..24].copy_from_slice(&num_blocks.to_le_bytes());
    file[24..32].copy_from_slice(&header.identity.to_le_bytes());
    file[32..36].copy_from_slice(&header.mount_token.to_le_bytes());
    file[36..40].copy_from_slice(&u32::from(header.clean_shutdown).to_le_bytes());
    file[40..48].copy_from_slice(&b.u64().to_le_bytes());
    let crc = crc32fast::hash(&file[..PAGE - 4]);
    file[PAGE - 4..].copy_from_slice(&crc.to_le_bytes());
    for _ in 0..slot_count {
        let mut r = [0u8; RECORD];
        for x in r.iter_mut() {
            *x = b.byte();
        }
        // Mostly plausible records: small kinds, flags, blocks and etag flags.
        if flags & 16 != 0 {
            r[0] %= 3;
            r[1] &= 1;
            r[40] %= 2;
            let blk = le32(&r, 4) % num_blocks.max(1);
            r[4..8].copy_from_slice(&blk.to_le_bytes());
        }
        if flags & 32 != 0 {
            let crc = crc32fast::hash(&r[..60]);
            r[60..].copy_from_slice(&crc.to_le_bytes());
        }
        file.extend_from_slice(&r);
    }
    let data_offset = file.len().next_multiple_of(PAGE);
    file.resize(data_offset, 0);
    let needed = data_offset + slot_count as usize * block_size as usize;
    // Data: the input's remaining bytes, then zeros.
    let tail = &rest[b.at.min(rest.len())..];
    file.extend_from_slice(&tail[..tail.len().min(needed - data_offset)]);
    let len = match flags >> 6 {
        0 | 1 => needed,
        2 => needed.saturating_sub(1 + usize::from(b.byte())),
        _ => needed + 1 + usize::from(b.byte()),
    };
    file.resize(len, 0);
    std::fs::write(path(), &file).expect("write the file");
    open_and_check(&file, &want);
}

fn damaged_mode(rest: &[u8]) {
    let mut b = Bytes { data: rest, at: 0 };
    let want = FileHeader {
        block_size: 1 << (4 + b.byte() % 6),
        slot_count: 1 + u32::from(b.byte() % 8),
        num_blocks: 1 + u32::from(b.byte() % 100),
        identity: identity_of("bucket", "disk/"),
        mount_token: 0,
        clean_shutdown: false,
    };
    let bs = want.block_size as usize;
    let (written, token, clean) = {
        let loaded = CacheFile::open_or_create(&path(), &want).expect("create a cache file");
        assert!(loaded.created && loaded.records.is_empty() && loaded.bad_records.is_empty());
        let f = loaded.file;
        let mut written: Vec<(u32, SlotRecord, Vec<u8>)> = Vec::new();
        for slot in 0..want.slot_count {
            let op = b.byte();
            if op % 4 == 0 {
                continue; // free
            }
            let zero = op & 4 != 0;
            let data: Vec<u8> = if zero {
                Vec::new()
            } else {
                (0..bs).map(|_| b.byte()).collect()
            };
            let data_crc = if zero {
                0
            } else {
                f.write_data(slot, &data).expect("write_data")
            };
            assert_eq!(data_crc, if zero { 0 } else { crc32fast::hash(&data) });
            let r = SlotRecord {
                kind: if op & 8 != 0 {
                    RecordKind::Dirty
                } else {
                    RecordKind::Clean
                },
                zero,
                block: b.u32() % want.num_blocks,
                epoch: b.u64(),
                seq: b.u64(),
                etag: (op & 16 != 0).then(|| [b.byte(); 16]),
                data_crc,
            };
            f.write_record(slot, &r).expect("write_record");
            written.push((slot, r, data));
        }
        // Out-of-range writes are refused.
        let stray = SlotRecord {
            block: want.num_blocks,
            ..SlotRecord::FREE
        };
        let stray = SlotRecord {
            kind: RecordKind::Clean,
            ..stray
        };
        assert!(f.write_record(0, &stray).is_err());
        assert!(f.write_record(want.slot_count, &SlotRecord::FREE).is_err());
        assert!(f.write_data(want.slot_count, &[]).is_err());
        assert!(f.write_data(0, &vec![0; bs + 1]).is_err());
        let token = b.u32();
        let clean = b.byte() & 1 != 0;
        f.write_header(token, clean).expect("write_header");
        (written, token, clean)
    };
    let orig = std::fs::read(path()).expect("read the file");

    // Damage: offset/xor pairs, then maybe a shorter file.
    let mut file = orig.clone();
    let changes = usize::from(b.byte() % 5);
    for _ in 0..changes {
        let at = (b.u32() as usize) % file.len();
        file[at] ^= b.byte();
    }
    if b.byte() % 8 == 0 {
        let cut = (b.u32() as usize) % file.len();
        file.truncate(cut);
    }
    std::fs::write(path(), &file).expect("write the damaged file");

    // Where did the bytes change? (first, last) changed offset within a range, if any.
    let span = |from: usize, to: usize| -> Option<(usize, usize)> {
        let to = to.min(file.len());
        let mut it = (from..to).filter(|&i| file[i] != orig[i]);
        let first = it.next()?;
        let last = it.last().unwrap_or(first);
        Some((first, last))
    };
    let small = |s: Option<(usize, usize)>| s.is_some_and(|(a, z)| z - a < 4);
    let untouched = file == orig;

    let loaded = open_and_check(&file, &want);
    if untouched {
        let l = loaded.as_ref().expect("an untouched cache file opens");
        assert_eq!(l.header.mount_token, token);
        assert_eq!(l.header.clean_shutdown, clean);
        let expect: Vec<(u32, SlotRecord)> = written.iter().map(|(s, r, _)| (*s, *r)).collect();
        assert_eq!(
            l.records, expect,
            "records written are not the records read"
        );
    }
    if file.len() == orig.len() && small(span(0, PAGE)) {
        assert!(loaded.is_none(), "a damaged header was accepted");
    }
    let Some(l) = loaded else {
        return;
    };
    let data_offset = orig.len() - want.slot_count as usize * bs;
    for (slot, r, data) in &written {
        let rec_at = PAGE + *slot as usize * RECORD;
        let rec_span = span(rec_at, rec_at + RECORD);
        let got = l.records.iter().find(|(s, _)| s == slot).map(|(_, r)| r);
        if rec_span.is_none() {
            assert_eq!(
                got,
                Some(r),
                "slot {slot}: an intact record was not returned"
            );
        } else if small(rec_span) {
            assert!(
                got.is_none(),
                "slot {slot}: a damaged record was returned: {got:?}"
            );
            assert!(l.bad_records.contains(slot));
        }
        if rec_span.is_none() && !r.zero {
            let at = data_offset + *slot as usize * bs;
            let mut buf = vec![0u8; bs];
            let res = l.file.read_data(*slot, &mut buf, Some(r.data_crc));
            match span(at, at + bs) {
                None => {
                    res.expect("intact data reads back");
                    assert!(
                        &buf == data,
                        "slot {slot}: intact data read back differently"
                    );
                }
                s if small(s) => {
                    assert!(res.is_err(), "slot {slot}: damaged data was returned");
                }
                _ => {}
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = std::fs::remove_file(path());
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => raw_mode(rest),
        1 => structured_mode(rest),
        _ => damaged_mode(rest),
    }
});
