//! The top of the stack: byte ranges in, block operations out (the partial-block layer).
//!
//! A request is split into an unaligned head, whole blocks and an unaligned tail. Whole blocks go
//! down as whole-block operations straight from/into the caller's buffer (no copy); partial ones
//! as `read_part`/`write_part`, which layers may serve without a read-modify-write. The pieces of
//! one request run **in parallel** on a bounded pool (`--ioThreads`), so a 1 MiB request over
//! 256 KiB blocks costs one round trip, not four. A request of one piece runs on the caller's
//! thread (no hand-off for the common small request).
//!
//! # Write serialization
//! Writes of one block are serialized by a striped lock table (4096 stripes): a partial write's
//! read-modify-write must not interleave with another write of the same block, or one of the two
//! would be lost even though they touched different bytes. Reads take no lock. Locked sections
//! never wait for the pool, so the pool cannot deadlock on them.

use crate::layers::DELETE_BATCH;
use crate::{BlockNum, BlockStore, StoreError, StoreResult};
use rayon::prelude::*;
use std::sync::{Arc, Mutex, MutexGuard};

/// Lock stripes: enough that unrelated blocks rarely share one, small enough to be free.
const LOCK_STRIPES: usize = 4096;

/// One block's share of a byte range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    block: BlockNum,
    /// Offset within the block.
    offset: u32,
    /// Bytes within the block.
    len: u32,
}

impl Span {
    fn is_whole(&self, block_size: u32) -> bool {
        self.offset == 0 && self.len == block_size
    }
}

/// The spans of `[offset, offset + len)`, in order.
fn spans(offset: u64, len: u64, block_size: u32) -> impl Iterator<Item = Span> {
    let bs = u64::from(block_size);
    let end = offset + len;
    let mut pos = offset;
    std::iter::from_fn(move || {
        if pos >= end {
            return None;
        }
        let block = pos / bs;
        let within = pos % bs;
        let n = (bs - within).min(end - pos);
        pos += n;
        Some(Span {
            block: block as BlockNum,
            offset: within as u32,
            len: n as u32,
        })
    })
}

/// What a zero/trim request turns into.
enum ZeroJob {
    /// Zero part of a block (read-modify-write unless a layer knows better).
    Part(Span),
    /// Zero whole blocks `[start, end)` (one bulk delete at the bottom).
    Whole(BlockNum, BlockNum),
}

/// The striped per-block write locks.
struct BlockLocks {
    stripes: Box<[Mutex<()>]>,
}

impl BlockLocks {
    fn new() -> Self {
        BlockLocks {
            stripes: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }

    fn stripe(block: BlockNum) -> usize {
        block as usize % LOCK_STRIPES
    }

    fn lock(&self, block: BlockNum) -> MutexGuard<'_, ()> {
        // The lock guards no data, so a poisoned one is still a valid lock.
        self.stripes[Self::stripe(block)]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Locks every stripe of `[start, end)`, in stripe order (so two such calls cannot deadlock).
    fn lock_range(&self, start: BlockNum, end: BlockNum) -> Vec<MutexGuard<'_, ()>> {
        let mut idx: Vec<usize> = (start..end).map(Self::stripe).collect();
        idx.sort_unstable();
        idx.dedup();
        idx.into_iter()
            .map(|i| self.stripes[i].lock().unwrap_or_else(|e| e.into_inner()))
            .collect()
    }
}

/// A run of bytes in a block-status answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    /// Start (bytes).
    pub offset: u64,
    /// Length (bytes).
    pub length: u64,
    /// Known to read as zeros with no object behind it (a hole); otherwise data or unknown.
    pub zero: bool,
}

/// The disk: a block-store stack seen as a byte-addressed device.
pub struct Disk {
    store: Arc<dyn BlockStore>,
    block_size: u32,
    size: u64,
    read_only: bool,
    locks: BlockLocks,
    pool: rayon::ThreadPool,
}

impl Disk {
    /// A disk over `store`, running up to `io_threads` block operations of one request at once.
    /// Creates threads: call it after any fork.
    pub fn new(
        store: Arc<dyn BlockStore>,
        io_threads: usize,
        read_only: bool,
    ) -> StoreResult<Disk> {
        let geometry = store.geometry();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(io_threads.max(1))
            .thread_name(|i| format!("s3b-io-{i}"))
            .build()
            .map_err(|e| StoreError::Startup(format!("cannot start I/O threads: {e}")))?;
        Ok(Disk {
            store,
            block_size: geometry.block_size,
            size: geometry.size(),
            read_only,
            locks: BlockLocks::new(),
            pool,
        })
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Block size in bytes.
    pub fn block_size(&self) -> u32 {
        self.block_size
    }

    /// Whether writes are refused.
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// The stack below.
    pub fn store(&self) -> &Arc<dyn BlockStore> {
        &self.store
    }

    fn check_range(&self, offset: u64, len: u64) -> StoreResult<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(StoreError::Invalid(format!(
                "request at offset {offset} length {len} is beyond the end of the disk ({} bytes)",
                self.size
            ))),
        }
    }

    fn check_writable(&self) -> StoreResult<()> {
        if self.read_only {
            Err(StoreError::ReadOnly)
        } else {
            Ok(())
        }
    }

    /// Runs `f` on every item, in parallel on the pool when there is more than one.
    fn fan_out<T: Send>(
        &self,
        items: Vec<T>,
        f: impl Fn(T) -> StoreResult<()> + Sync + Send,
    ) -> StoreResult<()> {
        if items.len() <= 1 {
            return items.into_iter().try_for_each(f);
        }
        self.pool
            .install(|| items.into_par_iter().with_max_len(1).try_for_each(&f))
    }

    /// Reads `buf.len()` bytes at `offset`.
    pub fn read(&self, buf: &mut [u8], offset: u64) -> StoreResult<()> {
        self.check_range(offset, buf.len() as u64)?;
        let bs = self.block_size;
        let mut pieces = Vec::new();
        let mut rest = buf;
        for span in spans(offset, rest.len() as u64, bs) {
            let (piece, tail) = rest.split_at_mut(span.len as usize);
            pieces.push((span, piece));
            rest = tail;
        }
        self.fan_out(pieces, |(span, piece)| {
            if span.is_whole(bs) {
                self.store.read_block(span.block, piece)
            } else {
                self.store.read_part(span.block, span.offset, piece)
            }
        })
    }

    /// Writes `data` at `offset`; with `fua`, returns only once it is durable.
    pub fn write(&self, data: &[u8], offset: u64, fua: bool) -> StoreResult<()> {
        self.check_writable()?;
        self.check_range(offset, data.len() as u64)?;
        let bs = self.block_size;
        let mut pieces = Vec::new();
        let mut rest = data;
        for span in spans(offset, rest.len() as u64, bs) {
            let (piece, tail) = rest.split_at(span.len as usize);
            pieces.push((span, piece));
            rest = tail;
        }
        let touched: Vec<BlockNum> = if fua {
            pieces.iter().map(|(s, _)| s.block).collect()
        } else {
            Vec::new()
        };
        self.fan_out(pieces, |(span, piece)| {
            let _guard = self.locks.lock(span.block);
            if span.is_whole(bs) {
                self.store.write_block(span.block, piece)
            } else {
                self.store.write_part(span.block, span.offset, piece)
            }
        })?;
        if fua {
            self.store.flush_blocks(&touched)
        } else {
            Ok(())
        }
    }

    /// Zeroes `[offset, offset + len)` (NBD trim and write-zeroes, FUSE punch-hole): whole blocks
    /// are deleted in bulk, partial ones rewritten with zeros.
    pub fn zero(&self, offset: u64, len: u64, fua: bool) -> StoreResult<()> {
        self.check_writable()?;
        self.check_range(offset, len)?;
        let bs = self.block_size;
        let mut jobs = Vec::new();
        let mut whole: Option<(BlockNum, BlockNum)> = None;
        let mut touched = Vec::new();
        for span in spans(offset, len, bs) {
            if fua {
                touched.push(span.block);
            }
            if !span.is_whole(bs) {
                jobs.push(ZeroJob::Part(span));
                continue;
            }
            whole = match whole {
                Some((start, end)) if (end - start) as usize == DELETE_BATCH => {
                    jobs.push(ZeroJob::Whole(start, end));
                    Some((span.block, span.block + 1))
                }
                Some((start, end)) => Some((start, end + 1)),
                None => Some((span.block, span.block + 1)),
            };
        }
        if let Some((start, end)) = whole {
            jobs.push(ZeroJob::Whole(start, end));
        }
        self.fan_out(jobs, |job| match job {
            ZeroJob::Part(span) => {
                let zeros = vec![0u8; span.len as usize];
                let _guard = self.locks.lock(span.block);
                self.store.write_part(span.block, span.offset, &zeros)
            }
            ZeroJob::Whole(start, end) => {
                let _guards = self.locks.lock_range(start, end);
                let blocks: Vec<BlockNum> = (start..end).collect();
                self.store.zero_blocks(&blocks)
            }
        })?;
        if fua {
            self.store.flush_blocks(&touched)
        } else {
            Ok(())
        }
    }

    /// Like [`Disk::zero`], but refuses (`ENOTSUP`, before doing anything) when it would have
    /// to read: NBD's fast-zero contract is "faster than writing zeros, or not at all". Whole
    /// blocks are deletes; a partial block qualifies only if it is known to be zero already.
    pub fn zero_fast(&self, offset: u64, len: u64, fua: bool) -> StoreResult<()> {
        self.check_writable()?;
        self.check_range(offset, len)?;
        let bs = self.block_size;
        let needs_read = spans(offset, len, bs)
            .filter(|s| !s.is_whole(bs))
            .any(|s| !self.store.known_zero(s.block));
        if needs_read {
            return Err(StoreError::NotSupported(
                "fast zero of a partial block that may hold data".into(),
            ));
        }
        self.zero(offset, len, fua)
    }

    /// Block status of `[offset, offset + len)`: runs of holes (blocks known to be zero) and data,
    /// covering exactly that range.
    pub fn extents(&self, offset: u64, len: u64) -> StoreResult<Vec<Extent>> {
        self.check_range(offset, len)?;
        let mut out: Vec<Extent> = Vec::new();
        let mut pos = offset;
        for span in spans(offset, len, self.block_size) {
            let zero = self.store.known_zero(span.block);
            let length = u64::from(span.len);
            match out.last_mut() {
                Some(last) if last.zero == zero => last.length += length,
                _ => out.push(Extent {
                    offset: pos,
                    length,
                    zero,
                }),
            }
            pos += length;
        }
        Ok(out)
    }

    /// Returns once every write acknowledged before the call is durable.
    pub fn flush(&self) -> StoreResult<()> {
        self.store.flush()
    }

    /// The statistics text (s3backer's stats file format, facts §9.4).
    pub fn stats_text(&self) -> String {
        let mut out = crate::stats::StatsReport::new();
        self.store.report_stats(&mut out);
        out.line("out_of_memory_errors", 0);
        out.into_text()
    }

    /// Resets every counter (unlinking the FUSE stats file does this).
    pub fn reset_stats(&self) {
        self.store.reset_stats();
    }

    /// Flushes and stops the stack.
    pub fn shutdown(&self) -> StoreResult<()> {
        self.store.shutdown()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Geometry;
    use crate::backend::memory::{MemoryBackend, Op};
    use crate::format::keys::KeyFormat;
    use crate::layers::{Checked, ObjectBlocks};
    use proptest::prelude::*;

    fn disk(block_size: u32, num_blocks: u32) -> (Arc<MemoryBackend>, Disk) {
        let mem = Arc::new(MemoryBackend::new());
        let keys = KeyFormat {
            prefix: String::new(),
            hashed: false,
        };
        let objects = ObjectBlocks::new(
            mem.clone(),
            keys,
            Geometry {
                block_size,
                num_blocks,
            },
            false,
        );
        let store: Arc<dyn BlockStore> = Arc::new(Checked::new(Arc::new(objects)));
        (mem, Disk::new(store, 4, false).expect("disk"))
    }

    #[test]
    fn span_split() {
        let s: Vec<Span> = spans(100, 1000, 512).collect();
        assert_eq!(
            s,
            vec![
                Span {
                    block: 0,
                    offset: 100,
                    len: 412
                },
                Span {
                    block: 1,
                    offset: 0,
                    len: 512
                },
                Span {
                    block: 2,
                    offset: 0,
                    len: 76
                },
            ]
        );
        assert_eq!(spans(0, 0, 512).count(), 0);
        assert_eq!(
            spans(1024, 512, 512).collect::<Vec<_>>(),
            vec![Span {
                block: 2,
                offset: 0,
                len: 512
            }]
        );
    }

    #[test]
    fn reads_overwrite_every_byte_of_a_reused_buffer() {
        // FUSE reuses one read buffer per thread: stale bytes in it must never show through,
        // whether a block is stored, partly written or never written.
        let (_mem, d) = disk(512, 16);
        d.write(&[7u8; 512], 512, false).expect("whole block");
        d.write(&[9u8; 100], 3 * 512 + 200, false)
            .expect("partial block");
        let mut expected = vec![0u8; 16 * 512];
        expected[512..1024].fill(7);
        expected[3 * 512 + 200..3 * 512 + 300].fill(9);
        for (offset, len) in [(0usize, 16 * 512usize), (300, 2000), (3 * 512 + 150, 100)] {
            let mut buf = vec![0xa5u8; len];
            d.read(&mut buf, offset as u64).expect("read");
            assert_eq!(buf, expected[offset..offset + len], "at {offset}+{len}");
        }
    }

    #[test]
    fn whole_block_writes_do_not_read() {
        let (mem, d) = disk(512, 64);
        d.write(&[5u8; 2048], 1024, false).expect("write");
        assert_eq!((mem.calls(Op::Get), mem.calls(Op::Put)), (0, 4));
        mem.reset_counts();
        d.write(&[6u8; 100], 1030, false).expect("partial");
        assert_eq!(
            (mem.calls(Op::Get), mem.calls(Op::Put)),
            (1, 1),
            "one read-modify-write"
        );
    }

    #[test]
    fn zero_deletes_whole_blocks_in_bulk() {
        let (mem, d) = disk(512, 4096);
        d.write(&vec![1u8; 512 * 3000], 0, false).expect("write");
        mem.reset_counts();
        d.zero(256, 512 * 2999, false).expect("zero");
        // Head partial (block 0), 2998 whole blocks in 3 bulk deletes, tail partial (block 2999).
        assert_eq!(mem.calls(Op::DeleteMany), 3);
        assert_eq!(mem.calls(Op::Put), 2);
        assert_eq!(
            mem.keys(),
            vec!["00000000".to_string(), "00000bb7".to_string()]
        );
        let mut buf = vec![9u8; 512 * 3000];
        d.read(&mut buf, 0).expect("read");
        assert!(buf[..256].iter().all(|&b| b == 1));
        assert!(buf[256..512 * 2999 + 256].iter().all(|&b| b == 0));
        assert!(buf[512 * 2999 + 256..].iter().all(|&b| b == 1));
    }

    #[test]
    fn statistics_count_block_operations_and_reset() {
        let (_mem, d) = disk(512, 8);
        d.write(&[1u8; 1024], 0, false).expect("write");
        d.zero(0, 512, false).expect("zero");
        let mut buf = [0u8; 1024];
        d.read(&mut buf, 0).expect("read");
        let text = d.stats_text();
        for want in [
            "http_normal_blocks_written   2\n",
            "http_zero_blocks_written     1\n",
            "http_zero_blocks_read        1\n",
            "http_normal_blocks_read      1\n",
        ] {
            assert!(text.contains(want), "{want:?} not in\n{text}");
        }
        assert!(text.ends_with("out_of_memory_errors         0\n"), "{text}");
        d.reset_stats();
        assert!(d.stats_text().contains("http_normal_blocks_written   0\n"));
    }

    #[test]
    fn extents_and_fast_zero_follow_the_zero_map() {
        let mem = Arc::new(MemoryBackend::new());
        let keys = KeyFormat {
            prefix: String::new(),
            hashed: false,
        };
        let objects = ObjectBlocks::new(
            mem.clone(),
            keys,
            Geometry {
                block_size: 512,
                num_blocks: 8,
            },
            false,
        );
        let zero_map = crate::layers::ZeroMap::new(Arc::new(objects), None, None);
        let d = Disk::new(Arc::new(Checked::new(Arc::new(zero_map))), 2, false).expect("disk");
        // Nothing known yet: all data (unknown).
        assert_eq!(
            d.extents(0, 4096).expect("extents"),
            vec![Extent {
                offset: 0,
                length: 4096,
                zero: false
            }]
        );
        d.zero(1024, 1024, false).expect("zero blocks 2-3");
        d.write(&[1u8; 512], 3072, false).expect("write block 6");
        d.zero(3584, 512, false).expect("zero block 7");
        assert_eq!(
            d.extents(100, 3900).expect("extents"),
            vec![
                Extent {
                    offset: 100,
                    length: 924,
                    zero: false
                },
                Extent {
                    offset: 1024,
                    length: 1024,
                    zero: true
                },
                Extent {
                    offset: 2048,
                    length: 1536,
                    zero: false
                },
                Extent {
                    offset: 3584,
                    length: 416,
                    zero: true
                },
            ]
        );
        // Fast zero: fine over whole blocks and known holes, refused where it would read.
        d.zero_fast(1100, 100, false).expect("inside a known hole");
        d.zero_fast(0, 1024, false).expect("whole blocks");
        assert_eq!(
            d.zero_fast(3000, 100, false).map_err(|e| e.errno()),
            Err(libc::ENOTSUP)
        );
    }

    #[test]
    fn out_of_range_and_read_only() {
        let (_mem, d) = disk(512, 4);
        let mut buf = [0u8; 10];
        assert_eq!(
            d.read(&mut buf, 2045).map_err(|e| e.errno()),
            Err(libc::EINVAL)
        );
        assert_eq!(
            d.write(&buf, 2040, false).map_err(|e| e.errno()),
            Err(libc::EINVAL)
        );
        let ro = Disk::new(d.store().clone(), 1, true).expect("disk");
        assert_eq!(
            ro.write(&buf, 0, false).map_err(|e| e.errno()),
            Err(libc::EROFS)
        );
        assert_eq!(
            ro.zero(0, 512, false).map_err(|e| e.errno()),
            Err(libc::EROFS)
        );
    }

    #[test]
    fn concurrent_partial_writes_to_one_block_are_not_lost() {
        let (_mem, d) = disk(4096, 4);
        std::thread::scope(|s| {
            for t in 0..8u8 {
                let d = &d;
                s.spawn(move || {
                    for i in 0..16u64 {
                        let off = (u64::from(t) * 16 + i) * 32;
                        d.write(&[t + 1; 32], off, false).expect("write");
                    }
                });
            }
        });
        let mut buf = vec![0u8; 4096];
        d.read(&mut buf, 0).expect("read");
        for (i, chunk) in buf.chunks(32).enumerate() {
            assert!(
                chunk.iter().all(|&b| b == (i / 16) as u8 + 1),
                "chunk {i} lost"
            );
        }
    }

    /// A backend whose GETs take a while and that records how many run at once.
    struct SlowGets {
        inner: MemoryBackend,
        in_flight: std::sync::atomic::AtomicUsize,
        most: std::sync::atomic::AtomicUsize,
    }

    impl crate::backend::ObjectBackend for SlowGets {
        fn caps(&self) -> crate::backend::BackendCaps {
            self.inner.caps()
        }
        fn description(&self, prefix: &str) -> String {
            self.inner.description(prefix)
        }
        fn get(
            &self,
            key: &str,
            req: &crate::backend::GetRequest,
        ) -> crate::backend::BackendResult<crate::backend::GetOutcome> {
            use std::sync::atomic::Ordering::SeqCst;
            let now = self.in_flight.fetch_add(1, SeqCst) + 1;
            self.most.fetch_max(now, SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(20));
            self.in_flight.fetch_sub(1, SeqCst);
            self.inner.get(key, req)
        }
        fn head(
            &self,
            key: &str,
            p: bool,
        ) -> crate::backend::BackendResult<Option<crate::backend::ObjectInfo>> {
            self.inner.head(key, p)
        }
        fn put(
            &self,
            key: &str,
            body: &[u8],
            req: &crate::backend::PutRequest,
        ) -> crate::backend::BackendResult<crate::backend::PutOutcome> {
            self.inner.put(key, body, req)
        }
        fn delete(&self, key: &str) -> crate::backend::BackendResult<()> {
            self.inner.delete(key)
        }
        fn delete_many(
            &self,
            keys: &[String],
        ) -> crate::backend::BackendResult<Vec<crate::backend::DeleteFailure>> {
            self.inner.delete_many(keys)
        }
        fn list(
            &self,
            prefix: &str,
            marker: &str,
            max: u32,
        ) -> crate::backend::BackendResult<crate::backend::ListPage> {
            self.inner.list(prefix, marker, max)
        }
    }

    #[test]
    fn a_large_request_fans_out_in_parallel_within_the_bound() {
        let slow = Arc::new(SlowGets {
            inner: MemoryBackend::new(),
            in_flight: Default::default(),
            most: Default::default(),
        });
        let keys = KeyFormat {
            prefix: String::new(),
            hashed: false,
        };
        let objects = ObjectBlocks::new(
            slow.clone(),
            keys,
            Geometry {
                block_size: 512,
                num_blocks: 64,
            },
            false,
        );
        let d = Disk::new(Arc::new(objects), 3, false).expect("disk");
        let mut buf = vec![0u8; 512 * 12];
        d.read(&mut buf, 0).expect("read");
        let most = slow.most.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            (2..=3).contains(&most),
            "{most} GETs at once for one 12-block read with --ioThreads=3"
        );
    }

    /// An operation of the reference-model test.
    #[derive(Clone, Debug)]
    enum DiskOp {
        Write { offset: u64, len: usize, fill: u8 },
        Zero { offset: u64, len: u64 },
        Read { offset: u64, len: usize },
    }

    fn op(size: u64) -> impl Strategy<Value = DiskOp> {
        prop_oneof![
            (0..size, 1..3000usize, any::<u8>()).prop_map(move |(o, l, f)| DiskOp::Write {
                offset: o,
                len: l.min((size - o) as usize),
                fill: f
            }),
            (0..size, 1..3000u64).prop_map(move |(o, l)| DiskOp::Zero {
                offset: o,
                len: l.min(size - o)
            }),
            (0..size, 1..3000usize).prop_map(move |(o, l)| DiskOp::Read {
                offset: o,
                len: l.min((size - o) as usize)
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Random unaligned writes, zeroes and reads agree with a plain byte array.
        #[test]
        fn matches_a_byte_array(ops in proptest::collection::vec(op(8 * 512), 1..40)) {
            let (_mem, d) = disk(512, 8);
            let mut model = vec![0u8; 8 * 512];
            for op in ops {
                match op {
                    DiskOp::Write { offset, len, fill } => {
                        let data: Vec<u8> = (0..len).map(|i| fill.wrapping_add(i as u8)).collect();
                        d.write(&data, offset, false).expect("write");
                        model[offset as usize..offset as usize + len].copy_from_slice(&data);
                    }
                    DiskOp::Zero { offset, len } => {
                        d.zero(offset, len, false).expect("zero");
                        model[offset as usize..(offset + len) as usize].fill(0);
                    }
                    DiskOp::Read { offset, len } => {
                        let mut buf = vec![0u8; len];
                        d.read(&mut buf, offset).expect("read");
                        prop_assert_eq!(&buf[..], &model[offset as usize..offset as usize + len]);
                    }
                }
            }
            let mut all = vec![0u8; 8 * 512];
            d.read(&mut all, 0).expect("read");
            prop_assert_eq!(all, model);
        }
    }
}
