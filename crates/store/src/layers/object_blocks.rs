//! The bottom layer: blocks as objects, in s3backer's format.
//!
//! Owns the mapping block ⇄ object: the object name ([`KeyFormat`]), the headers of a block PUT
//! (Content-Type, the size metadata on block 0, Content-Encoding and HMAC from the codec),
//! "all-zero block = no object" in both directions, bulk deletes, and the parallel listing of the
//! bucket.
//!
//! The codec ([`BlockCodec`]: compression, encryption, HMAC) is this layer's encoding stage
//! rather than a layer of its own, because its output is not a block: it is an object body plus
//! headers, which only this layer can carry. Zero detection runs on the raw block before
//! encoding (an all-zero block is never stored, encrypted or not). Encoding and decoding run on
//! the thread that does the block's I/O, so a multi-block request encodes its blocks in parallel.

use crate::backend::{DeleteFailure, Etag, GetOutcome, GetRequest, ObjectBackend, PutRequest};
use crate::codec::{BlockCodec, CodecError};
use crate::format::keys::KeyFormat;
use crate::format::{is_zero, meta};
use crate::stats::{Counter, StatsReport};
use crate::{BlockNum, BlockStore, BlockTag, Geometry, StoreError, StoreResult, TaggedRead};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What a GET of a block object found.
enum Fetched {
    /// No object.
    Absent,
    /// The object still has the tag the caller expected.
    Unchanged,
    /// An object; its decoded data (or why it does not decode) and its tag.
    Found {
        data: Result<Vec<u8>, CodecError>,
        tag: BlockTag,
    },
    /// A plain object, already in the caller's buffer; its tag.
    InBuffer { tag: BlockTag },
}

/// Keys per multi-object delete request (the S3 limit).
pub const DELETE_BATCH: usize = 1000;
/// Keys per listing page (the S3 limit).
const LIST_PAGE: u32 = 1000;
/// Parallel single DELETEs when bulk delete is unavailable (compat: s3backer's erase uses 25).
const SINGLE_DELETE_THREADS: usize = 16;

/// Blocks stored as objects.
pub struct ObjectBlocks {
    backend: Arc<dyn ObjectBackend>,
    keys: KeyFormat,
    geometry: Geometry,
    codec: Arc<BlockCodec>,
    read_only: bool,
    /// Cleared once the server refuses DeleteObjects; from then on single DELETEs are used.
    bulk_delete: AtomicBool,
    counters: BlockCounters,
}

/// s3backer's block counters (`http_normal_blocks_read` ...), plus bytes.
#[derive(Debug, Default)]
struct BlockCounters {
    normal_read: Counter,
    normal_written: Counter,
    zero_read: Counter,
    zero_written: Counter,
    bytes_read: Counter,
    bytes_written: Counter,
}

impl ObjectBlocks {
    /// The layer over `backend`, storing blocks as plain objects.
    pub fn new(
        backend: Arc<dyn ObjectBackend>,
        keys: KeyFormat,
        geometry: Geometry,
        read_only: bool,
    ) -> Self {
        let codec = Arc::new(BlockCodec::new(geometry.block_size, None, None, None));
        Self::with_codec(backend, keys, geometry, codec, read_only)
    }

    /// The layer over `backend`, encoding blocks with `codec`.
    pub fn with_codec(
        backend: Arc<dyn ObjectBackend>,
        keys: KeyFormat,
        geometry: Geometry,
        codec: Arc<BlockCodec>,
        read_only: bool,
    ) -> Self {
        ObjectBlocks {
            backend,
            keys,
            geometry,
            codec,
            read_only,
            bulk_delete: AtomicBool::new(true),
            counters: BlockCounters::default(),
        }
    }

    /// Reads and decodes one block object: `None` when there is no object (a zero block).
    pub fn fetch(&self, block: BlockNum) -> StoreResult<Option<Vec<u8>>> {
        let key = self.keys.block_key(block);
        match self.fetch_raw(block)? {
            None => Ok(None),
            Some(Ok(data)) => Ok(Some(data)),
            Some(Err(e)) => Err(StoreError::Corrupt {
                block,
                detail: format!("object {key}: {e}"),
            }),
        }
    }

    /// Like [`ObjectBlocks::fetch`], with the codec's verdict kept typed (startup checks tell a
    /// wrong password from other damage).
    pub fn fetch_raw(&self, block: BlockNum) -> StoreResult<Option<Result<Vec<u8>, CodecError>>> {
        Ok(match self.get_block(block, None, None)? {
            Fetched::Absent | Fetched::Unchanged | Fetched::InBuffer { .. } => None,
            Fetched::Found { data, .. } => Some(data),
        })
    }

    /// GETs a block object, conditionally when `expect` names what the caller already has.
    /// With `buf` (a block's size), a plain codec lets a plain object's body land in it
    /// ([`Fetched::InBuffer`]): what decoding would have returned, without the copy.
    fn get_block(
        &self,
        block: BlockNum,
        expect: Option<BlockTag>,
        buf: Option<&mut [u8]>,
    ) -> StoreResult<Fetched> {
        let key = self.keys.block_key(block);
        let req = GetRequest {
            max_body: self.codec.max_encoded_len(),
            accept_encoding: Some(self.codec.accept_encoding()),
            if_none_match: match expect {
                Some(BlockTag::Etag(e)) => Some(Etag(e)),
                _ => None,
            },
            ..Default::default()
        };
        let outcome = match buf {
            Some(buf) if self.codec.reads_ranges() => self.backend.get_into(&key, &req, buf)?,
            _ => self.backend.get(&key, &req)?,
        };
        match outcome {
            GetOutcome::NotFound => {
                self.counters.zero_read.incr();
                Ok(if expect == Some(BlockTag::Absent) {
                    Fetched::Unchanged
                } else {
                    Fetched::Absent
                })
            }
            GetOutcome::NotModified if matches!(expect, Some(BlockTag::Etag(_))) => {
                Ok(Fetched::Unchanged)
            }
            GetOutcome::NotModified => Err(StoreError::Corrupt {
                block,
                detail: "unexpected 304 Not Modified for an unconditional GET".into(),
            }),
            GetOutcome::Found(data) if data.in_dest => {
                self.counters.normal_read.incr();
                self.counters
                    .bytes_read
                    .add(self.geometry.block_size.into());
                let tag = data.etag.map_or(BlockTag::Unknown, |e| BlockTag::Etag(e.0));
                Ok(Fetched::InBuffer { tag })
            }
            GetOutcome::Found(data) => {
                self.counters.normal_read.incr();
                self.counters.bytes_read.add(data.body.len() as u64);
                let tag = data.etag.map_or(BlockTag::Unknown, |e| BlockTag::Etag(e.0));
                let hmac = meta::find(&data.meta, meta::META_HMAC).map(str::to_owned);
                let decoded = self.codec.decode(
                    block,
                    data.body,
                    data.content_encoding.as_deref(),
                    hmac.as_deref(),
                );
                Ok(Fetched::Found { data: decoded, tag })
            }
        }
    }

    fn put_block(&self, block: BlockNum, data: &[u8], crc32: Option<u32>) -> StoreResult<BlockTag> {
        self.check_writable()?;
        let key = self.keys.block_key(block);
        if is_zero(data) {
            if block == 0 {
                log::debug!(
                    "block 0 is now all zeros: its object (and the size metadata on it) is deleted"
                );
            }
            self.backend.delete(&key)?;
            self.counters.zero_written.incr();
            return Ok(BlockTag::Absent);
        }
        // A plain block goes out from the caller's buffer (zero-copy); only an encoded one
        // gets a body of its own.
        let (encoded, hmac, content_encoding) = if self.codec.is_plain() {
            if data.len() != self.geometry.block_size as usize {
                return Err(StoreError::Corrupt {
                    block,
                    detail: format!(
                        "encoding: a block of {} bytes (the block size is {})",
                        data.len(),
                        self.geometry.block_size
                    ),
                });
            }
            (None, None, None)
        } else {
            let e = self
                .codec
                .encode(block, data)
                .map_err(|e| StoreError::Corrupt {
                    block,
                    detail: format!("encoding: {e}"),
                })?;
            (Some(e.body), e.hmac, e.content_encoding)
        };
        let body: &[u8] = encoded.as_deref().unwrap_or(data);
        let mut object_meta = if block == 0 {
            meta::geometry_meta(self.geometry.block_size, self.geometry.size())
        } else {
            Vec::new()
        };
        if let Some(hmac) = hmac {
            object_meta.push((meta::META_HMAC.to_string(), hmac));
        }
        let req = PutRequest {
            content_type: Some(meta::BLOCK_CONTENT_TYPE.to_string()),
            // The caller's CRC is of the block's bytes: good for the body only if that is them.
            crc32: crc32.filter(|_| encoded.is_none()),
            content_encoding,
            meta: object_meta,
        };
        let out = self.backend.put(&key, body, &req)?;
        self.counters.normal_written.incr();
        self.counters.bytes_written.add(body.len() as u64);
        Ok(out.etag.map_or(BlockTag::Unknown, |e| BlockTag::Etag(e.0)))
    }

    fn check_writable(&self) -> StoreResult<()> {
        if self.read_only {
            Err(StoreError::ReadOnly)
        } else {
            Ok(())
        }
    }

    /// Deletes the objects of `blocks` (any number), in bulk where the server allows it.
    pub fn delete_blocks(&self, blocks: &[BlockNum]) -> StoreResult<()> {
        self.check_writable()?;
        for batch in blocks.chunks(DELETE_BATCH) {
            let keys: Vec<String> = batch.iter().map(|&b| self.keys.block_key(b)).collect();
            let leftovers = if self.bulk_delete.load(Ordering::Relaxed) && keys.len() > 1 {
                match self.backend.delete_many(&keys) {
                    Ok(failures) => failures_to_retry(failures),
                    Err(e) => {
                        if self.bulk_delete.swap(false, Ordering::Relaxed) {
                            log::warn!(
                                "bulk delete failed ({e}); using single DELETE requests from now on"
                            );
                        }
                        keys
                    }
                }
            } else {
                keys
            };
            self.delete_singly(&leftovers)?;
            self.counters.zero_written.add(batch.len() as u64);
        }
        Ok(())
    }

    fn delete_singly(&self, keys: &[String]) -> StoreResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let per_thread = keys.len().div_ceil(SINGLE_DELETE_THREADS);
        std::thread::scope(|s| {
            let workers: Vec<_> = keys
                .chunks(per_thread)
                .map(|chunk| s.spawn(move || chunk.iter().try_for_each(|k| self.backend.delete(k))))
                .collect();
            workers.into_iter().try_for_each(|w| match w.join() {
                Ok(result) => result.map_err(StoreError::from),
                Err(_) => Err(StoreError::Panic("delete worker panicked".into())),
            })
        })
    }

    /// Lists one contiguous range `[min, max]` of first-8-hex-digit values (s3backer's partition
    /// of the key space, §2.7), reporting the blocks found.
    fn survey_range(
        &self,
        min: u32,
        max: u32,
        report: &(dyn Fn(BlockNum) + Sync),
    ) -> StoreResult<()> {
        let prefix = &self.keys.prefix;
        // "0000000/" sorts just before "00000000".
        let mut marker = if min == 0 {
            format!("{prefix}0000000/")
        } else {
            format!("{prefix}{:08x}", min - 1)
        };
        let max_hex = format!("{max:08x}");
        loop {
            let page = self.backend.list(prefix, &marker, LIST_PAGE)?;
            for key in &page.keys {
                let in_range = self
                    .keys
                    .sort_value(key)
                    .is_some_and(|v| (min..=max).contains(&v));
                if let Some(block) = self.keys.parse_block_key(key, self.geometry.num_blocks)
                    && in_range
                {
                    report(block);
                }
            }
            let Some(last) = page.keys.last() else { break };
            // Past the range: every later key's first eight characters sort after max.
            let head = last
                .get(prefix.len()..)
                .map(|r| &r[..r.len().min(8)])
                .unwrap_or("");
            if !page.is_truncated || head > max_hex.as_str() {
                break;
            }
            marker = last.clone();
        }
        Ok(())
    }
}

/// Keys a multi-object delete reported as failed: retried one by one (each retry has the
/// client's own backoff), so one transient per-key error does not fail the whole trim.
fn failures_to_retry(failures: Vec<DeleteFailure>) -> Vec<String> {
    for f in &failures {
        log::warn!(
            "bulk delete error: key={} code={} message={}; retrying it alone",
            f.key,
            f.code,
            f.message
        );
    }
    failures.into_iter().map(|f| f.key).collect()
}

/// s3backer's partition of `[0, last]` into `threads` contiguous ranges (§2.7).
pub fn partition(last: u32, threads: usize) -> Vec<(u32, u32)> {
    let threads = threads.max(1) as u64;
    let mut ranges = Vec::new();
    let mut next_min = 0u64;
    for i in 0..threads {
        let max = if i == threads - 1 {
            u64::from(last)
        } else {
            u64::from(last) * (i + 1) / threads
        };
        let min = next_min.min(u64::from(last));
        let max = max.clamp(min, u64::from(last));
        ranges.push((min as u32, max as u32));
        next_min = max + 1;
        if max == u64::from(last) {
            break;
        }
    }
    ranges
}

/// Copies `buf.len()` bytes at `offset` of a whole block's data into `buf`.
fn copy_part(block: BlockNum, whole: &[u8], offset: u32, buf: &mut [u8]) -> StoreResult<()> {
    let start = offset as usize;
    let part = whole
        .get(start..start + buf.len())
        .ok_or_else(|| StoreError::Invalid(format!("part of block {block} out of range")))?;
    buf.copy_from_slice(part);
    Ok(())
}

thread_local! {
    /// The whole block a partial read fetches when it cannot fetch just the part.
    static WHOLE_BLOCK: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl BlockStore for ObjectBlocks {
    fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// Part of a block: with plain blocks over a transport that authenticates every byte (TLS:
    /// a ranged body has no checksum of its own, the ETag covers the whole object), a ranged GET
    /// of just those bytes (a 4 KiB read of an uncached 256 KiB block transfers 4 KiB, not the
    /// block); otherwise the whole block, checked against its ETag. Anything but a clean answer for
    /// exactly that range of a plain object of one block (a server ignoring `Range`, a block
    /// another writer compressed, a wrong size) falls back to reading the whole block, which
    /// decodes and checks it as always. A missing object reads as zeros.
    fn read_part(&self, block: BlockNum, offset: u32, buf: &mut [u8]) -> StoreResult<()> {
        let bs = self.geometry.block_size;
        let whole = |buf: &mut [u8]| -> StoreResult<()> {
            // One block buffer per thread, reused: a zeroed 256 KiB vector per 4 KiB read cost
            // a memset (and page faults) of the whole block every time.
            WHOLE_BLOCK.with_borrow_mut(|all| {
                all.resize(bs as usize, 0);
                self.read_block(block, all)?;
                copy_part(block, all, offset, buf)
            })
        };
        if buf.is_empty()
            || buf.len() >= bs as usize
            || !self.codec.reads_ranges()
            || !self.backend.ranged_reads_verified()
        {
            return whole(buf);
        }
        let key = self.keys.block_key(block);
        let req = GetRequest {
            max_body: self.codec.max_encoded_len(),
            range: Some((u64::from(offset), buf.len() as u64)),
            ..Default::default()
        };
        match self.backend.get(&key, &req)? {
            GetOutcome::NotFound => {
                self.counters.zero_read.incr();
                buf.fill(0);
                Ok(())
            }
            GetOutcome::Found(data)
                if data.range_of == Some((u64::from(offset), u64::from(bs)))
                    && data.body.len() == buf.len()
                    && data
                        .content_encoding
                        .as_deref()
                        .is_none_or(|e| e.trim().is_empty() || e.trim() == "identity") =>
            {
                self.counters.normal_read.incr();
                self.counters.bytes_read.add(data.body.len() as u64);
                buf.copy_from_slice(&data.body);
                Ok(())
            }
            GetOutcome::Found(data) if data.range_of.is_none() => {
                // The whole object (a server or backend without ranges): decode it as usual.
                self.counters.normal_read.incr();
                self.counters.bytes_read.add(data.body.len() as u64);
                let hmac = meta::find(&data.meta, meta::META_HMAC).map(str::to_owned);
                let decoded = self
                    .codec
                    .decode(
                        block,
                        data.body,
                        data.content_encoding.as_deref(),
                        hmac.as_deref(),
                    )
                    .map_err(|e| StoreError::Corrupt {
                        block,
                        detail: format!("object {key}: {e}"),
                    })?;
                copy_part(block, &decoded, offset, buf)
            }
            _ => whole(buf),
        }
    }

    fn read_block(&self, block: BlockNum, buf: &mut [u8]) -> StoreResult<()> {
        self.read_block_tagged(block, buf, None).map(drop)
    }

    fn write_block(&self, block: BlockNum, data: &[u8]) -> StoreResult<()> {
        self.put_block(block, data, None).map(drop)
    }

    fn write_block_tagged(
        &self,
        block: BlockNum,
        data: &[u8],
        crc32: Option<u32>,
    ) -> StoreResult<BlockTag> {
        self.put_block(block, data, crc32)
    }

    fn read_block_tagged(
        &self,
        block: BlockNum,
        buf: &mut [u8],
        expect: Option<BlockTag>,
    ) -> StoreResult<TaggedRead> {
        let key = self.keys.block_key(block);
        match self.get_block(block, expect, Some(&mut *buf))? {
            Fetched::Unchanged => Ok(TaggedRead::Unchanged),
            Fetched::InBuffer { tag } => Ok(TaggedRead::Data(tag)),
            Fetched::Absent => {
                buf.fill(0);
                Ok(TaggedRead::Data(BlockTag::Absent))
            }
            Fetched::Found { data, tag } => {
                let data = data.map_err(|e| StoreError::Corrupt {
                    block,
                    detail: format!("object {key}: {e}"),
                })?;
                buf.copy_from_slice(&data);
                Ok(TaggedRead::Data(tag))
            }
        }
    }

    fn zero_blocks(&self, blocks: &[BlockNum]) -> StoreResult<()> {
        self.delete_blocks(blocks)
    }

    fn flush(&self) -> StoreResult<()> {
        Ok(self.backend.sync()?)
    }

    fn report_stats(&self, out: &mut StatsReport) {
        let c = &self.counters;
        out.line("http_normal_blocks_read", c.normal_read.get());
        out.line("http_normal_blocks_written", c.normal_written.get());
        out.line("http_zero_blocks_read", c.zero_read.get());
        out.line("http_zero_blocks_written", c.zero_written.get());
        self.backend.report_stats(out);
        out.line("http_bytes_read", c.bytes_read.get());
        out.line("http_bytes_written", c.bytes_written.get());
    }

    fn reset_stats(&self) {
        let c = &self.counters;
        for counter in [
            &c.normal_read,
            &c.normal_written,
            &c.zero_read,
            &c.zero_written,
            &c.bytes_read,
            &c.bytes_written,
        ] {
            counter.reset();
        }
        self.backend.reset_stats();
    }

    fn survey(&self, threads: usize, report: &(dyn Fn(BlockNum) + Sync)) -> StoreResult<()> {
        let last = self.keys.last_sort_value(self.geometry.num_blocks);
        let ranges = partition(last, threads);
        std::thread::scope(|s| {
            let workers: Vec<_> = ranges
                .iter()
                .map(|&(min, max)| s.spawn(move || self.survey_range(min, max, report)))
                .collect();
            workers.into_iter().try_for_each(|w| match w.join() {
                Ok(result) => result,
                Err(_) => Err(StoreError::Panic("listing worker panicked".into())),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::memory::{MemoryBackend, Op};
    use std::collections::BTreeSet;
    use std::sync::Mutex;

    fn layer(hashed: bool, blocks: u32) -> (Arc<MemoryBackend>, ObjectBlocks) {
        let mem = Arc::new(MemoryBackend::new());
        let keys = KeyFormat {
            prefix: "pre/".into(),
            hashed,
        };
        let geometry = Geometry {
            block_size: 512,
            num_blocks: blocks,
        };
        (mem.clone(), ObjectBlocks::new(mem, keys, geometry, false))
    }

    #[test]
    fn partial_reads_take_one_request_and_the_right_bytes() {
        // The memory backend answers a ranged GET with the whole object (like a server that
        // ignores Range): one GET, decoded as a whole block, the part copied out.
        let (mem, l) = layer(false, 16);
        let data: Vec<u8> = (0..512u32).map(|i| (i % 251) as u8).collect();
        l.write_block(3, &data).expect("write");
        mem.reset_counts();
        let mut part = vec![0u8; 50];
        l.read_part(3, 100, &mut part).expect("read part");
        assert_eq!(part, &data[100..150]);
        assert_eq!(mem.calls(Op::Get), 1);
        part.fill(7);
        l.read_part(4, 0, &mut part).expect("read part of a hole");
        assert!(part.iter().all(|&b| b == 0));
        assert_eq!(mem.calls(Op::Get), 2);
    }

    /// A memory backend that answers ranged GETs with 206-style partial bodies, over a
    /// "verified" transport, and can pretend another writer compressed every object.
    struct Ranged {
        mem: MemoryBackend,
        encoding: Option<String>,
    }

    impl ObjectBackend for Ranged {
        fn caps(&self) -> crate::backend::BackendCaps {
            self.mem.caps()
        }
        fn description(&self, prefix: &str) -> String {
            self.mem.description(prefix)
        }
        fn get(&self, key: &str, req: &GetRequest) -> crate::backend::BackendResult<GetOutcome> {
            let out = self.mem.get(key, req)?;
            let (GetOutcome::Found(mut d), Some((first, len))) = (out.clone(), req.range) else {
                return Ok(out);
            };
            let total = d.body.len() as u64;
            let end = (first + len).min(total);
            d.body = d.body[first as usize..end as usize].to_vec();
            d.range_of = Some((first, total));
            d.etag = None;
            if self.encoding.is_some() {
                d.content_encoding = self.encoding.clone();
            }
            Ok(GetOutcome::Found(d))
        }
        fn ranged_reads_verified(&self) -> bool {
            true
        }
        fn head(
            &self,
            key: &str,
            startup_probe: bool,
        ) -> crate::backend::BackendResult<Option<s3backer_s3client::ObjectInfo>> {
            self.mem.head(key, startup_probe)
        }
        fn put(
            &self,
            key: &str,
            body: &[u8],
            req: &PutRequest,
        ) -> crate::backend::BackendResult<s3backer_s3client::PutOutcome> {
            self.mem.put(key, body, req)
        }
        fn delete(&self, key: &str) -> crate::backend::BackendResult<()> {
            self.mem.delete(key)
        }
        fn delete_many(
            &self,
            keys: &[String],
        ) -> crate::backend::BackendResult<Vec<s3backer_s3client::DeleteFailure>> {
            self.mem.delete_many(keys)
        }
        fn list(
            &self,
            prefix: &str,
            marker: &str,
            max_keys: u32,
        ) -> crate::backend::BackendResult<s3backer_s3client::ListPage> {
            self.mem.list(prefix, marker, max_keys)
        }
    }

    #[test]
    fn partial_reads_over_a_verified_transport_are_ranged_gets() {
        let data: Vec<u8> = (0..512u32).map(|i| (i % 251) as u8).collect();
        for encoding in [None, Some("deflate".to_owned())] {
            let backend = Arc::new(Ranged {
                mem: MemoryBackend::new(),
                encoding: encoding.clone(),
            });
            let keys = KeyFormat {
                prefix: "pre/".into(),
                hashed: false,
            };
            let geometry = Geometry {
                block_size: 512,
                num_blocks: 16,
            };
            let l = ObjectBlocks::new(backend.clone(), keys, geometry, false);
            l.write_block(3, &data).expect("write");
            backend.mem.reset_counts();
            let mut part = vec![0u8; 50];
            if encoding.is_none() {
                l.read_part(3, 100, &mut part).expect("ranged read");
                assert_eq!(part, &data[100..150]);
                assert_eq!(backend.mem.calls(Op::Get), 1, "one ranged GET");
            } else {
                // A ranged answer with a Content-Encoding is not plain data: the whole block
                // is read and decoded instead.
                l.read_part(3, 100, &mut part).expect("read");
                assert_eq!(part, &data[100..150]);
                assert_eq!(
                    backend.mem.calls(Op::Get),
                    2,
                    "ranged GET, then the whole block"
                );
            }
            part.fill(7);
            l.read_part(4, 0, &mut part).expect("hole");
            assert!(part.iter().all(|&b| b == 0));
        }
    }

    #[test]
    fn zero_blocks_are_no_objects() {
        let (mem, l) = layer(false, 16);
        let mut buf = vec![7u8; 512];
        l.read_block(3, &mut buf).expect("read");
        assert!(buf.iter().all(|&b| b == 0), "missing object reads as zeros");
        l.write_block(3, &[9u8; 512]).expect("write");
        assert_eq!(mem.keys(), vec!["pre/00000003".to_string()]);
        let obj = mem.object("pre/00000003").expect("stored");
        assert_eq!(
            obj.content_type.as_deref(),
            Some("application/x-s3backer-block")
        );
        assert!(
            obj.meta.is_empty(),
            "only block 0 carries the size metadata"
        );
        mem.reset_counts();
        l.write_block(3, &[0u8; 512]).expect("zero write");
        assert_eq!((mem.calls(Op::Put), mem.calls(Op::Delete)), (0, 1));
        assert!(mem.keys().is_empty());
    }

    #[test]
    fn block_zero_carries_geometry() {
        let (mem, l) = layer(false, 16);
        l.write_block(0, &[1u8; 512]).expect("write");
        let obj = mem.object("pre/00000000").expect("stored");
        assert_eq!(meta::parse_geometry(&obj.meta), Some((512, 16 * 512)));
    }

    #[test]
    fn wrong_length_and_undecodable_objects_are_errors() {
        let (mem, l) = layer(false, 16);
        let short = crate::backend::memory::StoredObject {
            body: vec![1; 100],
            meta: vec![],
            content_encoding: None,
            content_type: None,
        };
        mem.insert("pre/00000001", short.clone());
        let mut buf = vec![0u8; 512];
        let err = l.read_block(1, &mut buf).expect_err("short object");
        assert!(
            err.to_string()
                .contains("object pre/00000001: block data is 100 bytes, expected 512"),
            "{err}"
        );
        assert_eq!(err.errno(), libc::EIO);
        let odd = crate::backend::memory::StoredObject {
            body: vec![1; 512],
            content_encoding: Some("lz4".into()),
            ..short
        };
        mem.insert("pre/00000002", odd);
        let err = l.read_block(2, &mut buf).expect_err("unknown encoding");
        assert!(err.to_string().contains("lz4"), "{err}");
    }

    #[test]
    fn encoded_blocks_carry_their_headers_and_mix_with_plain_ones() {
        use crate::codec::{Cipher, Compression, Encryption};
        let mem = Arc::new(MemoryBackend::new());
        let keys = KeyFormat {
            prefix: "pre/".into(),
            hashed: false,
        };
        let geometry = Geometry {
            block_size: 512,
            num_blocks: 16,
        };
        let plain = ObjectBlocks::new(mem.clone(), keys.clone(), geometry, false);
        let zstd = Arc::new(BlockCodec::new(
            512,
            Some(Compression::DEFAULT_ZSTD),
            None,
            None,
        ));
        let zstd = ObjectBlocks::with_codec(mem.clone(), keys.clone(), geometry, zstd, false);
        plain.write_block(1, &[1u8; 512]).expect("plain");
        zstd.write_block(0, &[2u8; 512]).expect("zstd");
        let obj = mem.object("pre/00000000").expect("stored");
        assert_eq!(obj.content_encoding.as_deref(), Some("zstd"));
        assert!(obj.body.len() < 512);
        assert_eq!(
            meta::parse_geometry(&obj.meta),
            Some((512, 16 * 512)),
            "block 0 keeps its size metadata"
        );
        // A bucket may mix plain and compressed blocks: either reader reads both.
        let mut buf = vec![0u8; 512];
        for reader in [&plain, &zstd] {
            reader.read_block(0, &mut buf).expect("read zstd block");
            assert_eq!(buf, [2u8; 512]);
            reader.read_block(1, &mut buf).expect("read plain block");
            assert_eq!(buf, [1u8; 512]);
        }
        let enc =
            Encryption::derive(Cipher::Aes128Cbc, b"pw", "bucket", "pre/", None).expect("keys");
        let enc = Arc::new(BlockCodec::new(512, None, Some(enc), None));
        let enc = ObjectBlocks::with_codec(mem.clone(), keys, geometry, enc, false);
        enc.write_block(2, &[3u8; 512]).expect("encrypted");
        let obj = mem.object("pre/00000002").expect("stored");
        assert_eq!(
            obj.content_encoding.as_deref(),
            Some("deflate, encrypt-AES-128-CBC")
        );
        let hmac = meta::find(&obj.meta, meta::META_HMAC).expect("hmac header");
        assert!(
            hmac.starts_with('"') && hmac.ends_with('"') && hmac.len() == 42,
            "{hmac}"
        );
        enc.read_block(2, &mut buf).expect("read back");
        assert_eq!(buf, [3u8; 512]);
        assert!(
            plain.read_block(2, &mut buf).is_err(),
            "an encrypted block without the key is an error"
        );
        assert!(
            enc.read_block(1, &mut buf).is_err(),
            "a plain block where encryption is required is an error"
        );
        // Zero blocks are never stored, encrypted or not.
        enc.write_block(2, &[0u8; 512]).expect("zero");
        assert!(mem.object("pre/00000002").is_none());
    }

    #[test]
    fn bulk_delete_batches_and_falls_back() {
        let (mem, l) = layer(false, 3000);
        for b in 0..2500 {
            l.write_block(b, &[1u8; 512]).expect("write");
        }
        mem.reset_counts();
        let blocks: Vec<u32> = (0..2500).collect();
        l.zero_blocks(&blocks[..2100]).expect("bulk");
        assert_eq!((mem.calls(Op::DeleteMany), mem.calls(Op::Delete)), (3, 0));
        mem.refuse_bulk_delete.store(true, Ordering::Relaxed);
        mem.reset_counts();
        l.zero_blocks(&blocks[2100..]).expect("fallback");
        assert_eq!((mem.calls(Op::DeleteMany), mem.calls(Op::Delete)), (1, 400));
        assert!(mem.keys().is_empty());
        mem.reset_counts();
        l.zero_blocks(&blocks[..5]).expect("no more bulk attempts");
        assert_eq!((mem.calls(Op::DeleteMany), mem.calls(Op::Delete)), (0, 5));
    }

    #[test]
    fn partition_matches_the_facts() {
        assert_eq!(
            partition(99, 4),
            vec![(0, 24), (25, 49), (50, 74), (75, 99)]
        );
        assert_eq!(partition(0, 4), vec![(0, 0)]);
        assert_eq!(
            partition(u32::MAX, 2),
            vec![(0, u32::MAX / 2), (u32::MAX / 2 + 1, u32::MAX)]
        );
        let ranges = partition(2, 16);
        assert_eq!(ranges.first().map(|r| r.0), Some(0));
        assert_eq!(ranges.last().map(|r| r.1), Some(2));
    }

    fn surveyed(l: &ObjectBlocks, threads: usize) -> BTreeSet<u32> {
        let found = Mutex::new(BTreeSet::new());
        l.survey(threads, &|b| {
            found.lock().expect("lock").insert(b);
        })
        .expect("survey");
        found.into_inner().expect("lock")
    }

    #[test]
    fn survey_finds_exactly_the_blocks() {
        for hashed in [false, true] {
            let (mem, l) = layer(hashed, 5000);
            let written: BTreeSet<u32> = (0..5000).filter(|b| b % 3 == 0 || b % 7 == 1).collect();
            for &b in &written {
                l.write_block(b, &[1u8; 512]).expect("write");
            }
            // Junk that must be ignored.
            let junk = crate::backend::memory::StoredObject {
                body: vec![],
                meta: vec![],
                content_encoding: None,
                content_type: None,
            };
            for k in [
                "pre/s3backer-mounted",
                "pre/0000zzzz",
                "other/00000001",
                "pre/00001388",
                "pre/00000001x",
            ] {
                mem.insert(k, junk.clone());
            }
            for threads in [1, 3, 16] {
                assert_eq!(
                    surveyed(&l, threads),
                    written,
                    "hashed={hashed} threads={threads}"
                );
            }
        }
    }
}
