//! Block cache behaviour against the in-memory backend, whose call counters show what reached
//! the "bucket": hits never do, write-back waits for its delay, FLUSH pushes and waits,
//! back-pressure, flush order under a slow backend, crash recovery from the cache file.

use super::cache_file::{CacheFile, FileHeader, identity_of};
use super::*;
use crate::backend::ObjectBackend;
use crate::backend::faulty::FaultyBackend;
use crate::backend::memory::{MemoryBackend, Op};
use crate::format::keys::KeyFormat;
use crate::layers::ObjectBlocks;
use std::path::PathBuf;

const BS: u32 = 512;

fn opts(capacity: u32) -> CacheOptions {
    CacheOptions {
        capacity,
        threads: 4,
        write_delay: Duration::from_millis(250),
        timeout: None,
        max_dirty: None,
        sync: false,
        num_protected: 0,
        local_flush: false,
        no_verify: false,
        read_ahead: 0,
        read_ahead_trigger: 0,
    }
}

/// [`opts`] with another write-back delay.
fn delayed(capacity: u32, write_delay: Duration) -> CacheOptions {
    CacheOptions {
        write_delay,
        ..opts(capacity)
    }
}

fn objects(mem: &Arc<MemoryBackend>, blocks: u32) -> Arc<dyn BlockStore> {
    objects_over(mem.clone(), blocks)
}

fn objects_over(backend: Arc<dyn ObjectBackend>, blocks: u32) -> Arc<dyn BlockStore> {
    let keys = KeyFormat {
        prefix: String::new(),
        hashed: false,
    };
    Arc::new(ObjectBlocks::new(
        backend,
        keys,
        Geometry {
            block_size: BS,
            num_blocks: blocks,
        },
        false,
    ))
}

fn cache(mem: &Arc<MemoryBackend>, o: CacheOptions) -> BlockCache {
    let c = BlockCache::in_memory(objects(mem, 64), o);
    c.start().expect("start");
    c
}

fn block(fill: u8) -> Vec<u8> {
    vec![fill; BS as usize]
}

/// Blocks `0..count` are in the store, block `b` filled with `b + 1`.
fn assert_stored(mem: &MemoryBackend, count: u32) {
    for b in 0..count {
        assert_eq!(
            mem.object(&format!("{b:08x}")).map(|o| o.body),
            Some(block(b as u8 + 1)),
            "block {b}"
        );
    }
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("timed out waiting for {what}");
}

/// The CRC-32 the cache keeps for each block (computed at a whole-block write, updated by
/// every patch) goes out with the PUT: the memory backend refuses a wrong one, as S3 does.
#[test]
fn uploads_carry_the_crc_kept_through_writes_and_patches() {
    let mem = Arc::new(MemoryBackend::new());
    let c = cache(&mem, opts(16));
    let mut model: Vec<Vec<u8>> = (0..8).map(|b| block(b as u8 + 1)).collect();
    for (b, data) in model.iter().enumerate() {
        c.write_block(b as BlockNum, data).expect("write");
    }
    c.flush().expect("flush");
    assert_eq!(mem.puts_with_crc(), 8, "whole-block writes");
    let mut seed = 7u32;
    for round in 0..40u32 {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let b = (seed >> 8) as usize % model.len();
        let offset = (seed >> 4) % (BS - 100);
        let len = 1 + (seed % 99);
        let patch: Vec<u8> = (0..len).map(|i| (i ^ round ^ seed) as u8).collect();
        c.write_part(b as BlockNum, offset, &patch).expect("patch");
        model[b][offset as usize..(offset + len) as usize].copy_from_slice(&patch);
        if round % 4 == 3 {
            c.flush().expect("flush");
        }
    }
    c.flush().expect("flush");
    for (b, data) in model.iter().enumerate() {
        assert_eq!(
            mem.object(&format!("{b:08x}")).map(|o| o.body).as_ref(),
            Some(data),
            "block {b}"
        );
    }
    assert_eq!(
        mem.puts_with_crc(),
        mem.calls(Op::Put),
        "every PUT had its CRC-32 from the cache"
    );
    // A block read in (not written) has no CRC kept: a patch of it is uploaded without one,
    // and still correctly.
    mem.reset_counts();
    let reader = cache(&mem, opts(16));
    let mut buf = block(0);
    reader.read_block(2, &mut buf).expect("fill");
    reader.write_part(2, 10, &[0xEE; 5]).expect("patch");
    reader.flush().expect("flush");
    model[2][10..15].fill(0xEE);
    assert_eq!(
        mem.object("00000002").map(|o| o.body),
        Some(model[2].clone())
    );
    assert_eq!((mem.calls(Op::Put), mem.puts_with_crc()), (1, 0));
    reader.shutdown().expect("shutdown");
    c.shutdown().expect("shutdown");
}

#[test]
fn read_hits_never_touch_the_store() {
    let mem = Arc::new(MemoryBackend::new());
    let c = cache(&mem, opts(16));
    c.write_block(1, &block(7)).expect("write");
    c.flush().expect("flush");
    let mut buf = block(0);
    c.read_block(2, &mut buf).expect("miss");
    mem.reset_counts();
    for _ in 0..10 {
        c.read_block(1, &mut buf).expect("hit");
        assert_eq!(buf, block(7));
        c.read_block(2, &mut buf).expect("hit");
        assert_eq!(buf, block(0));
    }
    assert_eq!(mem.calls(Op::Get), 0);
    c.shutdown().expect("shutdown");
}

#[test]
fn write_back_waits_for_the_delay_and_flush_pushes_it_out() {
    let mem = Arc::new(MemoryBackend::new());
    let c = cache(&mem, delayed(16, Duration::from_secs(30)));
    c.write_block(3, &block(1)).expect("write");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(mem.calls(Op::Put), 0, "not due for 30 s");
    c.flush().expect("flush");
    assert_eq!(mem.calls(Op::Put), 1, "FLUSH returns once it is stored");
    assert!(mem.object("00000003").is_some());

    let quick = cache(&mem, delayed(16, Duration::from_millis(50)));
    quick.write_block(4, &block(2)).expect("write");
    wait_for("the delayed upload", || mem.object("00000004").is_some());
    quick.shutdown().expect("shutdown");
    c.shutdown().expect("shutdown");
}

#[test]
fn rewrites_before_the_upload_cost_one_put() {
    let mem = Arc::new(MemoryBackend::new());
    let c = cache(&mem, delayed(16, Duration::from_secs(30)));
    for i in 0..20 {
        c.write_block(5, &block(i)).expect("write");
    }
    c.flush().expect("flush");
    assert_eq!(mem.calls(Op::Put), 1);
    assert_eq!(mem.object("00000005").map(|o| o.body), Some(block(19)));
    c.shutdown().expect("shutdown");
}

#[test]
fn a_full_cache_writes_out_early_instead_of_failing() {
    let mem = Arc::new(MemoryBackend::new());
    let c = cache(&mem, delayed(4, Duration::from_secs(60)));
    for b in 0..40 {
        c.write_block(b, &block(b as u8 + 1)).expect("write");
    }
    c.flush().expect("flush");
    assert_stored(&mem, 40);
    c.shutdown().expect("shutdown");
}

/// Writers waiting for room are woken one per usable slot (`room_for`), not all per event:
/// many of them at once over a cache of four slots, with readers pinning slots meanwhile, must
/// all get through, and every block must land.
#[test]
fn many_writers_share_a_full_cache() {
    let mem = Arc::new(MemoryBackend::new());
    let c = cache(&mem, delayed(4, Duration::from_secs(60)));
    std::thread::scope(|scope| {
        for t in 0..8u32 {
            let c = &c;
            scope.spawn(move || {
                for i in 0..6u32 {
                    let b = t * 6 + i;
                    c.write_block(b, &block(b as u8 + 1)).expect("write");
                    let mut buf = vec![0u8; BS as usize];
                    c.read_block(b, &mut buf).expect("read back");
                    assert_eq!(buf, block(b as u8 + 1), "block {b}");
                }
            });
        }
    });
    c.flush().expect("flush");
    assert_stored(&mem, 48);
    c.shutdown().expect("shutdown");
}

/// A cache whose object store is a `FaultyBackend` over `mem`, with `all_fail` as the outage
/// switch.
fn cache_over_faulty(
    mem: &Arc<MemoryBackend>,
    o: CacheOptions,
) -> (BlockCache, Arc<FaultyBackend>) {
    let faulty = Arc::new(FaultyBackend::new(mem.clone()));
    let objects = objects_over(faulty.clone(), 64);
    let c = BlockCache::in_memory(objects, o);
    c.start().expect("start");
    (c, faulty)
}

/// During an outage no slot frees: a write that needs one gets the upload's error (after the
/// store's own retries), instead of waiting for the server to come back. Nothing is lost: the
/// unwritten blocks go out once it does.
#[test]
fn a_write_into_a_full_cache_fails_while_uploads_fail_and_nothing_is_lost() {
    let mem = Arc::new(MemoryBackend::new());
    let (c, faulty) = cache_over_faulty(&mem, delayed(4, Duration::from_secs(60)));
    faulty.all_fail.store(true, Ordering::SeqCst);
    for b in 0..4 {
        c.write_block(b, &block(b as u8 + 1))
            .expect("write into a free slot");
    }
    match c.write_block(4, &block(5)) {
        Err(StoreError::Writeback(_)) => {}
        other => panic!("expected a write-back error, got {other:?}"),
    }
    faulty.all_fail.store(false, Ordering::SeqCst);
    c.write_block(4, &block(5)).expect("write after the outage");
    flush_after_outage(&c);
    assert_stored(&mem, 5);
    c.shutdown().expect("shutdown");
}

/// A FLUSH right after an outage ends: an upload attempt that began during the outage may still
/// fail while it runs (and that FLUSH reports it, as it must); the next one succeeds.
fn flush_after_outage(c: &BlockCache) {
    for _ in 0..3 {
        match c.flush() {
            Ok(()) => return,
            Err(StoreError::Writeback(_)) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("flush: {e:?}"),
        }
    }
    c.flush().expect("flush after the outage");
}

/// The same for a writer held back by `--blockCacheMaxDirty`.
#[test]
fn a_writer_held_by_max_dirty_fails_while_uploads_fail() {
    let mem = Arc::new(MemoryBackend::new());
    let (c, faulty) = cache_over_faulty(
        &mem,
        CacheOptions {
            write_delay: Duration::from_secs(60),
            max_dirty: Some(2),
            ..opts(32)
        },
    );
    faulty.all_fail.store(true, Ordering::SeqCst);
    c.write_block(0, &block(1)).expect("write");
    c.write_block(1, &block(2)).expect("write");
    match c.write_block(2, &block(3)) {
        Err(StoreError::Writeback(_)) => {}
        other => panic!("expected a write-back error, got {other:?}"),
    }
    faulty.all_fail.store(false, Ordering::SeqCst);
    flush_after_outage(&c);
    assert_eq!(mem.object("00000001").map(|o| o.body), Some(block(2)));
    c.shutdown().expect("shutdown");
}

#[test]
fn max_dirty_bounds_unwritten_blocks() {
    let mem = Arc::new(MemoryBackend::new());
    let c = Arc::new(cache(
        &mem,
        CacheOptions {
            write_delay: Duration::from_secs(60),
            max_dirty: Some(2),
            ..opts(32)
        },
    ));
    for b in 0..10 {
        c.write_block(b, &block(9)).expect("write");
        assert!(c.dirty_count() <= 3, "dirty {}", c.dirty_count());
    }
    assert!(
        mem.calls(Op::Put) >= 7,
        "writers waited for uploads: {} PUTs",
        mem.calls(Op::Put)
    );
    c.shutdown().expect("shutdown");
}

#[test]
fn zero_writes_become_bulk_deletes() {
    let mem = Arc::new(MemoryBackend::new());
    let c = cache(&mem, delayed(64, Duration::from_secs(60)));
    for b in 0..50 {
        c.write_block(b, &block(1)).expect("write");
    }
    c.flush().expect("flush");
    mem.reset_counts();
    let all: Vec<u32> = (0..50).collect();
    c.zero_blocks(&all).expect("zero");
    let mut buf = block(5);
    c.read_block(10, &mut buf).expect("read");
    assert_eq!(buf, block(0), "zeros at once, before any delete");
    c.flush().expect("flush");
    assert!(mem.keys().is_empty());
    assert!(
        mem.calls(Op::DeleteMany) <= 4,
        "{} bulk deletes",
        mem.calls(Op::DeleteMany)
    );
    c.shutdown().expect("shutdown");
}

/// A backend whose PUTs take a while and that records the order in which objects appear.
struct SlowRecording {
    inner: MemoryBackend,
    order: Mutex<Vec<String>>,
}

impl ObjectBackend for SlowRecording {
    fn caps(&self) -> crate::backend::BackendCaps {
        self.inner.caps()
    }
    fn description(&self, p: &str) -> String {
        self.inner.description(p)
    }
    fn get(
        &self,
        k: &str,
        r: &crate::backend::GetRequest,
    ) -> crate::backend::BackendResult<crate::backend::GetOutcome> {
        self.inner.get(k, r)
    }
    fn head(
        &self,
        k: &str,
        p: bool,
    ) -> crate::backend::BackendResult<Option<crate::backend::ObjectInfo>> {
        self.inner.head(k, p)
    }
    fn put(
        &self,
        k: &str,
        b: &[u8],
        r: &crate::backend::PutRequest,
    ) -> crate::backend::BackendResult<crate::backend::PutOutcome> {
        // Vary the time so that a careless pipeline would reorder.
        let jitter = (b[0] as u64 * 7) % 11;
        std::thread::sleep(Duration::from_millis(2 + jitter));
        let out = self.inner.put(k, b, r)?;
        self.order
            .lock()
            .expect("lock")
            .push(format!("{k}={}", b[0]));
        Ok(out)
    }
    fn delete(&self, k: &str) -> crate::backend::BackendResult<()> {
        self.inner.delete(k)
    }
    fn delete_many(
        &self,
        k: &[String],
    ) -> crate::backend::BackendResult<Vec<crate::backend::DeleteFailure>> {
        self.inner.delete_many(k)
    }
    fn list(
        &self,
        p: &str,
        m: &str,
        n: u32,
    ) -> crate::backend::BackendResult<crate::backend::ListPage> {
        self.inner.list(p, m, n)
    }
}

#[test]
fn uploads_keep_flush_order_even_when_flush_does_not_wait() {
    // Local-flush semantics (FLUSH does not wait for uploads), with a backend slow enough that
    // several epochs are in the pipeline at once: the objects must still appear epoch by epoch.
    let slow = Arc::new(SlowRecording {
        inner: MemoryBackend::new(),
        order: Mutex::new(Vec::new()),
    });
    let keys = KeyFormat {
        prefix: String::new(),
        hashed: false,
    };
    let backend: Arc<dyn ObjectBackend> = slow.clone();
    let objs: Arc<dyn BlockStore> = Arc::new(ObjectBlocks::new(
        backend,
        keys,
        Geometry {
            block_size: BS,
            num_blocks: 64,
        },
        false,
    ));
    let c = BlockCache::in_memory(
        objs,
        CacheOptions {
            write_delay: Duration::ZERO,
            local_flush: true,
            threads: 8,
            ..opts(64)
        },
    );
    c.start().expect("start");
    // Epoch e writes value e into blocks e*3 .. e*3+3, and rewrites block 0 with e.
    for epoch in 1..=8u8 {
        for b in 0..3u32 {
            c.write_block(u32::from(epoch) * 3 + b, &block(epoch))
                .expect("write");
        }
        c.write_block(0, &block(epoch)).expect("write");
        c.flush().expect("flush");
    }
    c.shutdown().expect("shutdown");
    let order = slow.order.lock().expect("lock").clone();
    let epochs: Vec<u8> = order
        .iter()
        .filter_map(|s| s.split('=').nth(1)?.parse().ok())
        .collect();
    assert!(
        epochs.windows(2).all(|w| w[0] <= w[1]),
        "uploads out of flush order: {order:?}"
    );
    // Block 0 went up once per epoch (copy on write kept each epoch's version).
    assert_eq!(
        order.iter().filter(|s| s.starts_with("00000000=")).count(),
        8,
        "{order:?}"
    );
}

fn temp_file(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "s3b-cache-{tag}-{}-{:08x}",
        std::process::id(),
        crate::rand::random_u32()
    ))
}

fn header(slots: u32) -> FileHeader {
    FileHeader {
        block_size: BS,
        slot_count: slots,
        num_blocks: 64,
        identity: identity_of("bucket", ""),
        mount_token: 0,
        clean_shutdown: false,
    }
}

#[test]
fn dirty_blocks_survive_a_crash_in_the_cache_file() {
    let mem = Arc::new(MemoryBackend::new());
    let path = temp_file("crash");
    {
        let loaded = CacheFile::open_or_create(&path, &header(16)).expect("create");
        let c = BlockCache::with_file(
            objects(&mem, 64),
            CacheOptions {
                write_delay: Duration::from_secs(3600),
                local_flush: true,
                ..opts(16)
            },
            loaded,
            false,
        );
        c.start().expect("start");
        c.write_block(1, &block(11)).expect("write");
        c.write_block(2, &block(12)).expect("write");
        c.flush().expect("local flush: fsync only");
        c.write_block(1, &block(13)).expect("write after the flush");
        assert_eq!(mem.calls(Op::Put), 0);
        // A crash: no shutdown, the workers just vanish with the process (here: they idle).
        std::mem::forget(c);
    }
    let loaded = CacheFile::open_or_create(&path, &header(16)).expect("reopen");
    let dirty: Vec<(u32, u64)> = loaded
        .records
        .iter()
        .filter(|(_, r)| r.kind == RecordKind::Dirty)
        .map(|(_, r)| (r.block, r.epoch))
        .collect();
    assert_eq!(
        dirty.len(),
        3,
        "two versions of block 1 (one per epoch) and block 2: {dirty:?}"
    );
    let c = BlockCache::with_file(objects(&mem, 64), opts(16), loaded, false);
    c.start().expect("start");
    let mut buf = block(0);
    c.read_block(1, &mut buf).expect("read");
    assert_eq!(buf, block(13), "the newest version is what reads see");
    c.flush().expect("flush");
    assert_eq!(mem.object("00000001").map(|o| o.body), Some(block(13)));
    assert_eq!(mem.object("00000002").map(|o| o.body), Some(block(12)));
    c.shutdown().expect("shutdown");
    std::fs::remove_file(&path).ok();
}

#[test]
fn verification_catches_a_block_changed_behind_our_back() {
    let mem = Arc::new(MemoryBackend::new());
    let path = temp_file("verify");
    {
        let loaded = CacheFile::open_or_create(&path, &header(16)).expect("create");
        let c = BlockCache::with_file(objects(&mem, 64), opts(16), loaded, false);
        c.start().expect("start");
        c.write_block(4, &block(4)).expect("write");
        c.write_block(5, &block(5)).expect("write");
        c.shutdown().expect("clean shutdown");
    }
    // Another writer changes block 5 while we are not running.
    let objs = objects(&mem, 64);
    objs.write_block(5, &block(55)).expect("foreign write");
    mem.reset_counts();
    let loaded = CacheFile::open_or_create(&path, &header(16)).expect("reopen");
    assert!(loaded.header.clean_shutdown);
    let c = BlockCache::with_file(objects(&mem, 64), opts(16), loaded, false);
    c.start().expect("start");
    let mut buf = block(0);
    c.read_block(4, &mut buf).expect("read");
    assert_eq!(buf, block(4));
    c.read_block(5, &mut buf).expect("read");
    assert_eq!(buf, block(55), "the changed block is read from the bucket");
    assert_eq!(mem.calls(Op::Get), 2, "one conditional GET each");
    c.read_block(4, &mut buf).expect("read");
    c.read_block(5, &mut buf).expect("read");
    assert_eq!(mem.calls(Op::Get), 2, "verified once, then plain hits");
    let mut report = StatsReport::new();
    c.report_stats(&mut report);
    let text = report.into_text();
    assert!(
        text.contains("block_cache_verified         1\n")
            && text.contains("block_cache_mismatch         1\n"),
        "{text}"
    );
    c.shutdown().expect("shutdown");
    std::fs::remove_file(&path).ok();
}

#[test]
fn a_damaged_clean_slot_is_read_again_not_used() {
    let mem = Arc::new(MemoryBackend::new());
    let path = temp_file("damage");
    {
        let loaded = CacheFile::open_or_create(&path, &header(16)).expect("create");
        let c = BlockCache::with_file(objects(&mem, 64), opts(16), loaded, false);
        c.start().expect("start");
        c.write_block(6, &block(6)).expect("write");
        c.shutdown().expect("clean shutdown");
    }
    let loaded = CacheFile::open_or_create(&path, &header(16)).expect("reopen");
    let slot = loaded
        .records
        .iter()
        .find(|(_, r)| r.block == 6)
        .map(|(s, _)| *s)
        .expect("slot");
    // Flip a byte of the slot's data on disk.
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .expect("open");
        let data_offset = (4096 + 64 * 16u64).div_ceil(4096) * 4096;
        f.write_at(&[0x99], data_offset + u64::from(slot) * u64::from(BS) + 3)
            .expect("damage");
    }
    let c = BlockCache::with_file(
        objects(&mem, 64),
        CacheOptions {
            no_verify: true,
            ..opts(16)
        },
        loaded,
        false,
    );
    c.start().expect("start");
    let mut buf = block(0);
    c.read_block(6, &mut buf).expect("read");
    assert_eq!(buf, block(6), "the damaged copy is never returned");
    c.shutdown().expect("shutdown");
    std::fs::remove_file(&path).ok();
}

#[test]
fn read_ahead_fetches_the_next_blocks() {
    let mem = Arc::new(MemoryBackend::new());
    let objs = objects(&mem, 64);
    for b in 0..16 {
        objs.write_block(b, &block(b as u8 + 1)).expect("seed");
    }
    let c = cache(
        &mem,
        CacheOptions {
            read_ahead: 4,
            read_ahead_trigger: 2,
            ..opts(32)
        },
    );
    let mut buf = block(0);
    c.read_block(0, &mut buf).expect("read");
    c.read_block(1, &mut buf).expect("read");
    wait_for("read-ahead", || {
        let mut r = StatsReport::new();
        c.report_stats(&mut r);
        r.into_text().contains("block_cache_read_aheads      4\n")
    });
    c.reset_stats();
    for b in 2..6 {
        c.read_block(b, &mut buf).expect("read");
        assert_eq!(buf, block(b as u8 + 1));
    }
    // (These reads trigger read-ahead of the blocks after them, which is not what is counted.)
    let mut r = StatsReport::new();
    c.report_stats(&mut r);
    let text = r.into_text();
    assert!(
        text.contains("block_cache_read_hits        4\n"),
        "already read ahead:\n{text}"
    );
    c.shutdown().expect("shutdown");
}
