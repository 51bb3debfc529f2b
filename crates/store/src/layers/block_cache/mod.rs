//! The block cache: a write-back cache of whole blocks, in memory or in a cache file, with
//! uploads in flush order.
//!
//! * Reads are served from the cache whenever it holds the block, dirty or being uploaded: a read
//!   never waits for write-back. A miss is read from below into a free slot (evicting the least
//!   recently used clean block, blocks below `--blockCacheNumProtected` last); when every slot
//!   holds unwritten data the read bypasses the cache instead of waiting.
//! * Writes go to a slot and return; `--blockCacheThreads` workers upload dirty blocks after
//!   `--blockCacheWriteDelay`, in parallel, in flush order (see `state.rs`). A full cache makes
//!   everything due at once rather than stalling; writers wait only until a slot is free, or while
//!   `--blockCacheMaxDirty` blocks are dirty.
//! * FLUSH closes the current epoch and, by default, returns once everything written before it
//!   is in the object store. With `--blockCacheLocalFlush` (and a cache file), it returns once
//!   the cache file is fsync'd; the uploads follow in the background, still in flush order.
//! * With `--blockCacheFile`, data and a checksummed record per slot live in the file
//!   (`cache_file.rs`); after a crash, dirty blocks are uploaded again (with
//!   `--blockCacheRecoverDirtyBlocks`) and clean ones are checked against the bucket by ETag before
//!   first use (unless `--blockCacheNoVerify`). Damaged slots are never used as data.
//!
//! Parameters: `--blockCacheSize`, `--blockCacheThreads`, `--blockCacheWriteDelay`,
//! `--blockCacheTimeout`, `--blockCacheMaxDirty`, `--blockCacheSync`, `--blockCacheNumProtected`,
//! `--blockCacheFile`, `--blockCacheRecoverDirtyBlocks`, `--blockCacheNoVerify`,
//! `--blockCacheFileAdvise`, `--blockCacheLocalFlush`, `--readAhead`, `--readAheadTrigger`.

pub mod cache_file;
mod slots;
mod state;

use crate::format::is_zero;
use crate::layer::{BlockTag, TaggedRead};
use crate::stats::{Counter, StatsReport};
use crate::{BlockNum, BlockStore, Geometry, StoreError, StoreResult};
use cache_file::{Loaded, RecordKind, SlotRecord};
use slots::Slots;
use state::{ReadPlan, State, Upload, VState, Version, WritePlan};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Zero blocks written back per bulk delete (the S3 limit).
const ZERO_BATCH: usize = 1000;
/// Pause before retrying after a failed upload (the S3 client has already retried it).
const RETRY_PAUSE: Duration = Duration::from_secs(1);
/// Longest a worker sleeps without looking for work.
const IDLE_WAIT: Duration = Duration::from_millis(500);

/// How the cache behaves (from the `--blockCache*` flags).
#[derive(Clone, Debug)]
pub struct CacheOptions {
    /// Slots.
    pub capacity: u32,
    /// Upload workers.
    pub threads: usize,
    /// Longest a block stays dirty.
    pub write_delay: Duration,
    /// Longest a clean block stays cached unused.
    pub timeout: Option<Duration>,
    /// Writers wait while this many blocks are dirty.
    pub max_dirty: Option<u32>,
    /// Writes return only once uploaded.
    pub sync: bool,
    /// Blocks below this are evicted last.
    pub num_protected: u32,
    /// FLUSH is durable in the cache file (needs a cache file).
    pub local_flush: bool,
    /// Trust clean blocks loaded from the cache file.
    pub no_verify: bool,
    /// Blocks to read ahead of a sequential reader.
    pub read_ahead: u32,
    /// Sequential reads before read-ahead starts.
    pub read_ahead_trigger: u32,
}

#[derive(Debug, Default)]
struct Counters {
    read_hits: Counter,
    read_misses: Counter,
    write_hits: Counter,
    write_misses: Counter,
    verified: Counter,
    mismatch: Counter,
    uploads: Counter,
    upload_errors: Counter,
    read_aheads: Counter,
}

/// Sequential-read detection (s3backer's read-ahead rule).
#[derive(Debug, Default)]
struct ReadAhead {
    last: Option<BlockNum>,
    count: u32,
    queued_through: Option<BlockNum>,
}

struct Inner {
    next: Arc<dyn BlockStore>,
    geometry: Geometry,
    opts: CacheOptions,
    state: Mutex<State>,
    /// Something changed: a slot freed, an upload or fill finished.
    changed: Condvar,
    /// A slot may be usable again (freed, its block uploaded or unpinned): wakes writers waiting
    /// for room, one per slot (`room_for`), instead of every waiter on `changed` per event.
    room: Condvar,
    /// Work for the workers.
    work: WorkSignal,
    slots: Slots,
    stopping: AtomicBool,
    /// Errors of uploads that failed, with the epoch they belonged to (a FLUSH waiting for that
    /// epoch reports them).
    last_error: Mutex<Option<(u64, String)>>,
    error_count: AtomicU64,
    read_ahead: Mutex<ReadAhead>,
    prefetch: Mutex<VecDeque<BlockNum>>,
    counters: Counters,
    initial_size: u32,
}

/// The cache layer (cheap to clone; workers share it).
pub struct BlockCache {
    inner: Arc<Inner>,
    workers: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

/// Wakes the upload workers. Every event ("there may be work": a write, a FLUSH, pressure, a
/// finished upload) wakes **one** idle worker, and a worker that takes a job wakes the next
/// (chained wake-up): a 4 KiB write or a FLUSH at queue depth 1 costs one wake-up instead of one
/// per worker. (Measured with 16 workers on two cores: waking all of them on every event spent a
/// quarter of the process's CPU in the scheduler, docs/performance.md.) No wake-up is lost: the
/// state changes under the state mutex before the signal, and a worker sleeps only after finding
/// no job under that mutex; a worker busy uploading looks again before it sleeps.
struct WorkSignal(Condvar);

impl WorkSignal {
    /// Announces work to the pool: wakes one idle worker, which passes it on if it finds a job.
    fn notify_all(&self) {
        self.0.notify_one();
    }

    /// Wakes every worker (shutdown).
    fn wake_everyone(&self) {
        self.0.notify_all();
    }

    fn wait_timeout<'a>(
        &self,
        guard: MutexGuard<'a, State>,
        timeout: Duration,
    ) -> std::sync::LockResult<(MutexGuard<'a, State>, std::sync::WaitTimeoutResult)> {
        self.0.wait_timeout(guard, timeout)
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn io_error(what: &str, e: std::io::Error) -> StoreError {
    StoreError::io(format!("block cache: {what}"), e)
}

impl BlockCache {
    /// A cache over `next` with slots in memory.
    pub fn in_memory(next: Arc<dyn BlockStore>, opts: CacheOptions) -> BlockCache {
        let slots = Slots::memory(opts.capacity);
        let state = State::new(opts.capacity, opts.num_protected);
        Self::build(next, opts, slots, state, 0)
    }

    /// A cache over `next` in a cache file, with what it held when it was opened: dirty
    /// versions are queued for upload (the caller checked `--blockCacheRecoverDirtyBlocks`),
    /// clean ones kept for verification.
    pub fn with_file(
        next: Arc<dyn BlockStore>,
        opts: CacheOptions,
        loaded: Loaded,
        advise: bool,
    ) -> BlockCache {
        let mut state = State::new(opts.capacity, opts.num_protected);
        let now = Instant::now();
        let mut used = 0;
        for &(slot, rec) in &loaded.records {
            let v = Version {
                id: rec.seq,
                slot,
                epoch: rec.epoch,
                state: if rec.kind == RecordKind::Dirty {
                    VState::Dirty
                } else {
                    VState::Clean
                },
                zero: rec.zero,
                tag: match (rec.zero, rec.etag) {
                    (true, _) => BlockTag::Absent,
                    (false, Some(e)) => BlockTag::Etag(e),
                    (false, None) => BlockTag::Unknown,
                },
                due: now,
                crc: (!rec.zero).then_some(rec.data_crc),
                crc_unchecked: (!rec.zero).then_some(rec.data_crc),
                verify: rec.kind == RecordKind::Clean && !opts.no_verify,
                busy: false,
            };
            state.load(rec.block, v);
            used += 1;
        }
        state.finish_load(now);
        for &slot in &loaded.bad_records {
            log::warn!(
                "cache file {}: the record of slot {slot} is damaged; ignoring it",
                loaded.file.path().display()
            );
        }
        let slots = Slots::file(loaded.file, advise);
        Self::build(next, opts, slots, state, used)
    }

    fn build(
        next: Arc<dyn BlockStore>,
        opts: CacheOptions,
        slots: Slots,
        state: State,
        initial: u32,
    ) -> BlockCache {
        let geometry = next.geometry();
        BlockCache {
            inner: Arc::new(Inner {
                next,
                geometry,
                opts,
                state: Mutex::new(state),
                changed: Condvar::new(),
                room: Condvar::new(),
                work: WorkSignal(Condvar::new()),
                slots,
                stopping: AtomicBool::new(false),
                last_error: Mutex::new(None),
                error_count: AtomicU64::new(0),
                read_ahead: Mutex::new(ReadAhead::default()),
                prefetch: Mutex::new(VecDeque::new()),
                counters: Counters::default(),
                initial_size: initial,
            }),
            workers: Mutex::new(Vec::new()),
        }
    }

    /// The cache file, when there is one.
    pub fn cache_file(&self) -> Option<&cache_file::CacheFile> {
        self.inner.slots.cache_file()
    }

    /// Starts the upload workers. Call once, after any fork.
    pub fn start(&self) -> StoreResult<()> {
        let mut workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        for i in 0..self.inner.opts.threads.max(1) {
            let inner = Arc::clone(&self.inner);
            let handle = std::thread::Builder::new()
                .name(format!("s3b-cache-{i}"))
                .spawn(move || inner.worker())
                .map_err(|e| {
                    StoreError::Startup(format!("cannot start block cache threads: {e}"))
                })?;
            workers.push(handle);
        }
        Ok(())
    }

    /// Dirty versions (dirty or uploading).
    pub fn dirty_count(&self) -> usize {
        lock(&self.inner.state).dirty
    }
}

impl Inner {
    fn record(&self, block: BlockNum, v: &Version) {
        let kind = match v.state {
            VState::Dirty | VState::Uploading => RecordKind::Dirty,
            VState::Clean => RecordKind::Clean,
            VState::Filling => return,
        };
        let rec = SlotRecord {
            kind,
            zero: v.zero,
            block,
            epoch: v.epoch,
            seq: v.id,
            etag: match v.tag {
                BlockTag::Etag(e) => Some(e),
                _ => None,
            },
            data_crc: if v.zero { 0 } else { v.crc.unwrap_or(0) },
        };
        if let Err(e) = self.slots.record(v.slot, &rec) {
            log::warn!(
                "block cache: cannot record slot {} in the cache file: {e}",
                v.slot
            );
        }
    }

    /// Clears dropped versions' slots, then makes them free (in that order: see
    /// `State::release_slot`).
    fn free_slots(&self, slots: &[u32]) {
        if slots.is_empty() {
            return;
        }
        for &slot in slots {
            if let Err(e) = self.slots.free(slot) {
                log::warn!("block cache: cannot free slot {slot} in the cache file: {e}");
            }
        }
        let mut s = lock(&self.state);
        s.return_slots(slots);
        self.room_for(&s, slots.len());
        drop(s);
        self.changed.notify_all();
    }

    /// `n` slots may have become usable: wakes up to `n` writers waiting for room. Called with
    /// the state locked, so a writer counted in `room_waiters` is already waiting.
    fn room_for(&self, s: &State, n: usize) {
        if s.room_waiters == 0 || n == 0 {
            return;
        }
        if n >= s.room_waiters {
            self.room.notify_all();
        } else {
            (0..n).for_each(|_| self.room.notify_one());
        }
    }

    /// A reader is done with `block`'s slot (an unpinned clean block can be evicted).
    fn unpin(&self, s: &mut State, block: BlockNum) {
        s.unpin(block, Instant::now());
        self.room_for(s, 1);
    }

    fn note_read(&self, block: BlockNum) {
        let (ra, trigger) = (self.opts.read_ahead, self.opts.read_ahead_trigger);
        if ra == 0 {
            return;
        }
        let mut r = self.read_ahead.lock().unwrap_or_else(|e| e.into_inner());
        match r.last {
            Some(last) if block == last.wrapping_add(1) => r.count += 1,
            Some(last) if block == last => {}
            _ => {
                r.count = 1;
                r.queued_through = None;
            }
        }
        r.last = Some(block);
        if r.count < trigger.max(1) {
            return;
        }
        let start = r.queued_through.map_or(block + 1, |q| q.max(block) + 1);
        let end = block
            .saturating_add(ra)
            .min(self.geometry.num_blocks.saturating_sub(1));
        if start > end {
            return;
        }
        r.queued_through = Some(end);
        drop(r);
        self.prefetch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(start..=end);
        self.work.notify_all();
    }

    /// One hit: copy out (checking a slot loaded from the cache file the first time). `false`
    /// when the copy turned out damaged and was dropped: the caller reads again.
    fn read_hit(
        &self,
        block: BlockNum,
        slot: u32,
        id: u64,
        crc: Option<u32>,
        verify: Option<BlockTag>,
        buf: &mut [u8],
    ) -> StoreResult<bool> {
        if let Err(e) = self.slots.read(slot, buf, crc) {
            let mut s = lock(&self.state);
            self.unpin(&mut s, block);
            let dirty = s
                .entries
                .get(&block)
                .and_then(|e| e.versions.iter().find(|v| v.id == id))
                .is_some_and(|v| v.state != VState::Clean);
            if dirty {
                return Err(StoreError::Corrupt {
                    block,
                    detail: format!("its unflushed data in the cache file is damaged ({e})"),
                });
            }
            // A damaged clean copy: forget it and read the block from below.
            let freed = s.fill_failed(block, id);
            drop(s);
            self.free_slots(&freed.into_iter().collect::<Vec<_>>());
            self.changed.notify_all();
            log::warn!(
                "block cache: cached copy of block {block:08x} is damaged ({e}); reading it again"
            );
            return Ok(false);
        }
        let mut s = lock(&self.state);
        s.mark_checked(block, slot, None);
        self.unpin(&mut s, block);
        drop(s);
        if let Some(tag) = verify {
            self.verify(block, id, slot, tag, buf)?;
        }
        Ok(true)
    }

    /// Checks a clean block kept across a restart against the bucket (conditional GET by ETag);
    /// if it changed behind our back, the bucket's data replaces the cached copy and is returned.
    fn verify(
        &self,
        block: BlockNum,
        id: u64,
        slot: u32,
        tag: BlockTag,
        buf: &mut [u8],
    ) -> StoreResult<()> {
        let mut fresh = vec![0u8; buf.len()];
        match self.next.read_block_tagged(block, &mut fresh, Some(tag))? {
            TaggedRead::Unchanged => {
                self.counters.verified.incr();
                lock(&self.state).mark_checked(block, slot, Some(tag));
            }
            TaggedRead::Data(new_tag) => {
                self.counters.mismatch.incr();
                log::info!(
                    "block cache: block {block:08x} changed in the bucket since it was cached; using the bucket's copy"
                );
                buf.copy_from_slice(&fresh);
                if lock(&self.state).claim_for_refresh(block, id) {
                    let zero = is_zero(&fresh);
                    let crc = if zero {
                        Ok(None)
                    } else {
                        self.slots.write(slot, &fresh, false)
                    };
                    let mut s = lock(&self.state);
                    match crc {
                        Ok(crc) => {
                            // Records are written under the state lock, in the order of the
                            // state changes they describe (a late record must never overwrite a
                            // newer one: see the crash tests).
                            if let Some(v) = s.refreshed(block, id, new_tag, zero, crc) {
                                self.record(block, &v);
                            }
                        }
                        Err(_) => {
                            let freed = s.abandon_write(block, id);
                            drop(s);
                            self.free_slots(&freed.into_iter().collect::<Vec<_>>());
                        }
                    }
                    self.changed.notify_all();
                }
            }
        }
        Ok(())
    }

    fn read(&self, block: BlockNum, buf: &mut [u8]) -> StoreResult<()> {
        loop {
            let plan = {
                let mut s = lock(&self.state);
                loop {
                    match s.plan_read(block, Instant::now()) {
                        ReadPlan::Wait => {
                            s = self.changed.wait(s).unwrap_or_else(|e| e.into_inner())
                        }
                        plan => break plan,
                    }
                }
            };
            match plan {
                ReadPlan::Wait => continue,
                ReadPlan::Zero => {
                    self.counters.read_hits.incr();
                    buf.fill(0);
                    return Ok(());
                }
                ReadPlan::Hit {
                    slot,
                    id,
                    crc,
                    verify,
                } => {
                    if self.read_hit(block, slot, id, crc, verify, buf)? {
                        self.counters.read_hits.incr();
                        return Ok(());
                    }
                }
                ReadPlan::Fill { slot, id } => {
                    self.counters.read_misses.incr();
                    return self.fill(block, slot, id, buf);
                }
                ReadPlan::Bypass => {
                    self.counters.read_misses.incr();
                    return self.next.read_block(block, buf);
                }
            }
        }
    }

    /// Reads a miss from below into its slot.
    fn fill(&self, block: BlockNum, slot: u32, id: u64, buf: &mut [u8]) -> StoreResult<()> {
        let result = self.next.read_block_tagged(block, buf, None).and_then(|r| {
            let tag = match r {
                TaggedRead::Data(tag) => tag,
                TaggedRead::Unchanged => BlockTag::Unknown,
            };
            let zero = tag == BlockTag::Absent || is_zero(buf);
            let crc = if zero {
                None
            } else {
                self.slots
                    .write(slot, buf, false)
                    .map_err(|e| io_error("writing a slot", e))?
            };
            Ok((tag, zero, crc))
        });
        let mut s = lock(&self.state);
        match result {
            Ok((tag, zero, crc)) => {
                s.fill_done(block, id, tag, zero, crc, Instant::now());
                self.room_for(&s, 1);
                let v = s
                    .entries
                    .get(&block)
                    .and_then(|e| e.versions.iter().find(|v| v.id == id))
                    .cloned();
                if let Some(v) = v {
                    self.record(block, &v);
                }
                drop(s);
                self.changed.notify_all();
                Ok(())
            }
            Err(e) => {
                let freed = s.fill_failed(block, id);
                drop(s);
                self.free_slots(&freed.into_iter().collect::<Vec<_>>());
                self.changed.notify_all();
                Err(e)
            }
        }
    }

    /// Waits while `--blockCacheMaxDirty` blocks are dirty. Like a FLUSH, the wait ends in an
    /// error once an upload fails after its whole retry budget: during an outage room never
    /// comes, and the writer must get EIO in the time any other request would, not hang.
    fn wait_for_dirty_room(&self) -> StoreResult<()> {
        let Some(max) = self.opts.max_dirty else {
            return Ok(());
        };
        let errors_before = self.error_count.load(Ordering::Acquire);
        let mut s = lock(&self.state);
        while s.dirty >= max as usize && !self.stopping.load(Ordering::Acquire) {
            if self.error_count.load(Ordering::Acquire) != errors_before {
                return Err(self.writeback_error());
            }
            s.pressure = true;
            self.work.notify_all();
            s = self
                .changed
                .wait_timeout(s, IDLE_WAIT)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        Ok(())
    }

    fn write(&self, block: BlockNum, data: Option<&[u8]>) -> StoreResult<()> {
        self.wait_for_dirty_room()?;
        let errors_before = self.error_count.load(Ordering::Acquire);
        let (slot, id, hit) = {
            let mut s = lock(&self.state);
            let hit = s.entries.contains_key(&block);
            loop {
                match s.plan_write(block, Instant::now()) {
                    WritePlan::Slot { slot, id } => break (slot, id, hit),
                    WritePlan::Wait => {
                        // Everything held is unwritten data: let it all go out now, then retry.
                        // If the uploads fail for good, no slot will free while the server is
                        // away: give this write the upload's error instead of waiting it out.
                        if self.error_count.load(Ordering::Acquire) != errors_before {
                            return Err(self.writeback_error());
                        }
                        s.pressure = true;
                        self.work.notify_all();
                        if s.write_waits_for_room(block) {
                            // Woken per slot that may be usable (`room_for`), not per event:
                            // with the cache full of unwritten data, every upload woke every
                            // waiting writer (58 % of a cached sequential write's context
                            // switches).
                            s.room_waiters += 1;
                            s = self
                                .room
                                .wait_timeout(s, IDLE_WAIT)
                                .unwrap_or_else(|e| e.into_inner())
                                .0;
                            s.room_waiters -= 1;
                        } else {
                            s = self
                                .changed
                                .wait_timeout(s, IDLE_WAIT)
                                .unwrap_or_else(|e| e.into_inner())
                                .0;
                        }
                    }
                }
            }
        };
        if hit {
            self.counters.write_hits.incr()
        } else {
            self.counters.write_misses.incr()
        }
        let zero = data.is_none_or(is_zero);
        let crc = match data {
            Some(d) if !zero => match self.slots.write(slot, d, true) {
                Ok(crc) => crc,
                Err(e) => {
                    let freed = lock(&self.state).abandon_write(block, id);
                    self.free_slots(&freed.into_iter().collect::<Vec<_>>());
                    self.changed.notify_all();
                    return Err(io_error("writing a slot", e));
                }
            },
            _ => None,
        };
        self.commit(block, id, zero, crc)
    }

    /// The data of version `id` is in its slot (written or patched): makes it dirty, records it,
    /// wakes a worker if that gives the workers something new, and with `--blockCacheSync`
    /// waits for the upload.
    fn commit(&self, block: BlockNum, id: u64, zero: bool, crc: Option<u32>) -> StoreResult<()> {
        let now = Instant::now();
        let new_work = {
            let mut s = lock(&self.state);
            let dirty_before = s.dirty;
            let v = s.commit_write(block, id, zero, crc, now + self.opts.write_delay, now);
            if let Some(v) = &v {
                self.record(block, v);
            }
            // Rewriting a block that is already dirty and not yet due schedules nothing new
            // (its upload is already scheduled): waking a worker for each 4 KiB write cost a
            // context switch per write. (An overdue version was skipped while this write held
            // it busy: that one needs a worker.)
            s.dirty != dirty_before || s.pressure || v.is_none_or(|v| v.due <= now)
        };
        if new_work {
            self.work.notify_all();
        }
        self.changed.notify_all();
        if self.opts.sync {
            return self.wait_until_clean(block, id);
        }
        Ok(())
    }

    /// `--blockCacheSync`: waits until version `id` of `block` is stored.
    fn wait_until_clean(&self, block: BlockNum, id: u64) -> StoreResult<()> {
        let errors_before = self.error_count.load(Ordering::Acquire);
        let mut s = lock(&self.state);
        s.urgent_through = s.urgent_through.max(s.open_epoch);
        self.work.notify_all();
        loop {
            let pending = s
                .entries
                .get(&block)
                .and_then(|e| e.versions.iter().find(|v| v.id == id))
                .is_some_and(|v| v.state != VState::Clean);
            if !pending {
                return Ok(());
            }
            if self.error_count.load(Ordering::Acquire) != errors_before {
                return Err(self.writeback_error());
            }
            s = self
                .changed
                .wait_timeout(s, IDLE_WAIT)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn writeback_error(&self) -> StoreError {
        let msg = self
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|(_, m)| m.clone())
            .unwrap_or_else(|| "upload failed".into());
        StoreError::Writeback(msg)
    }

    /// FLUSH: every write acknowledged before it is durable when this returns.
    fn flush(&self, to_store: bool) -> StoreResult<()> {
        let errors_before = self.error_count.load(Ordering::Acquire);
        let mut s = lock(&self.state);
        let target = s.close_epoch();
        if self.opts.local_flush && !to_store {
            drop(s);
            return self
                .slots
                .sync()
                .map_err(|e| io_error("fsync of the cache file", e));
        }
        s.urgent_through = s.urgent_through.max(target);
        let mut buf = Vec::new();
        while !s.epochs_done_through(target) {
            if self.error_count.load(Ordering::Acquire) != errors_before {
                // The data stays dirty and is retried; this FLUSH reports the failure.
                return Err(self.writeback_error());
            }
            // Rather than wait for a worker to wake up for it, the flushing thread uploads a
            // due block itself, exactly as a worker would (same state transitions, same order):
            // two thread hand-offs less per FLUSH at queue depth 1. Workers are woken only when
            // there is more than this thread is taking (one, which wakes the next: chained);
            // a FLUSH of one block wakes nobody.
            if let Ok(ups) = s.next_uploads(Instant::now(), ZERO_BATCH) {
                let more = s.dirty > ups.len();
                drop(s);
                if more {
                    self.work.notify_all();
                }
                self.upload(ups, &mut buf);
                s = lock(&self.state);
                continue;
            }
            s = self
                .changed
                .wait_timeout(s, IDLE_WAIT)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        drop(s);
        self.next.flush()
    }

    fn worker(&self) {
        // One upload buffer per worker, reused: a fresh 256 KiB vector per upload costs an
        // mmap, page faults and a memset each time (glibc serves that size with mmap).
        let mut buf = Vec::new();
        loop {
            let job = {
                let mut s = lock(&self.state);
                loop {
                    if self.stopping.load(Ordering::Acquire) && s.dirty == 0 {
                        self.work.wake_everyone();
                        return;
                    }
                    if s.dirty == 0 {
                        s.pressure = false;
                    }
                    match s.next_uploads(Instant::now(), ZERO_BATCH) {
                        Ok(ups) => {
                            // Pass the wake-up on: the next idle worker looks for more.
                            self.work.notify_all();
                            break Some(ups);
                        }
                        Err(next_due) => {
                            let prefetch = self
                                .prefetch
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .pop_front();
                            if let Some(b) = prefetch {
                                drop(s);
                                self.work.notify_all();
                                self.prefetch_block(b, &mut buf);
                                break None;
                            }
                            if let Some(timeout) = self.opts.timeout {
                                let freed = s.evict_idle(
                                    Instant::now()
                                        .checked_sub(timeout)
                                        .unwrap_or_else(Instant::now),
                                );
                                if !freed.is_empty() {
                                    drop(s);
                                    self.free_slots(&freed);
                                    self.changed.notify_all();
                                    break None;
                                }
                            }
                            let wait = next_due
                                .map(|t| t.saturating_duration_since(Instant::now()))
                                .unwrap_or(IDLE_WAIT)
                                .min(IDLE_WAIT)
                                .max(Duration::from_millis(1));
                            s = self
                                .work
                                .wait_timeout(s, wait)
                                .unwrap_or_else(|e| e.into_inner())
                                .0;
                        }
                    }
                }
            };
            if let Some(ups) = job {
                self.upload(ups, &mut buf);
            }
        }
    }

    /// Reads `block` ahead into the cache, through the worker's reused buffer (a fresh zeroed
    /// block per read-ahead showed up as memset and page faults in a sequential read).
    fn prefetch_block(&self, block: BlockNum, buf: &mut Vec<u8>) {
        let plan = lock(&self.state).plan_read(block, Instant::now());
        match plan {
            ReadPlan::Fill { slot, id } => {
                buf.resize(self.geometry.block_size as usize, 0);
                if self.fill(block, slot, id, buf).is_ok() {
                    self.counters.read_aheads.incr();
                }
            }
            ReadPlan::Hit { .. } => self.unpin(&mut lock(&self.state), block),
            _ => {}
        }
    }

    fn upload(&self, ups: Vec<Upload>, buf: &mut Vec<u8>) {
        let result: Result<Vec<BlockTag>, String> = if ups[0].zero {
            let blocks: Vec<BlockNum> = ups.iter().map(|u| u.block).collect();
            self.next
                .zero_blocks(&blocks)
                .map(|()| vec![BlockTag::Absent; ups.len()])
                .map_err(|e| e.to_string())
        } else {
            let u = &ups[0];
            let shared = self.slots.shared(u.slot);
            let data = match &shared {
                Some(data) if data.len() == self.geometry.block_size as usize => Ok(&data[..]),
                _ => {
                    buf.resize(self.geometry.block_size as usize, 0);
                    let crc = lock(&self.state)
                        .entries
                        .get(&u.block)
                        .and_then(|e| e.versions.iter().find(|v| v.id == u.id))
                        .and_then(|v| v.crc_unchecked);
                    self.slots.read(u.slot, buf, crc).map(|()| &buf[..])
                }
            };
            match data {
                Ok(data) => self
                    .next
                    .write_block_tagged(u.block, data, u.crc)
                    .map(|t| vec![t])
                    .map_err(|e| e.to_string()),
                Err(e) => {
                    // Recovered dirty data that fails its checksum cannot be uploaded: it is
                    // lost, and saying so loudly is all that is left to do.
                    log::error!(
                        "block cache: the unflushed data of block {:08x} in the cache file is damaged ({e}); it is lost",
                        u.block
                    );
                    Ok(vec![BlockTag::Unknown])
                }
            }
        };
        let now = Instant::now();
        let mut freed = Vec::new();
        let more = {
            let mut s = lock(&self.state);
            match &result {
                Ok(tags) => {
                    for (u, tag) in ups.iter().zip(tags) {
                        let (f, v) = s.finish_upload(u, Ok(*tag), now);
                        freed.extend(f);
                        if let Some(v) = v {
                            self.record(u.block, &v);
                        }
                        self.counters.uploads.incr();
                    }
                    // Clean now, so evictable: room for as many waiting writers.
                    self.room_for(&s, ups.len());
                }
                Err(msg) => {
                    for u in &ups {
                        s.finish_upload(u, Err(()), now);
                    }
                    *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some((ups[0].epoch, msg.clone()));
                    self.error_count.fetch_add(1, Ordering::AcqRel);
                    self.counters.upload_errors.incr();
                    // Writers waiting for room give up with this error rather than wait.
                    self.room.notify_all();
                }
            }
            // Versions this upload held back (later ones of its block, the next epoch) may go
            // now; with nothing left dirty there is nothing to wake a worker for.
            s.dirty > 0
        };
        self.changed.notify_all();
        if more {
            self.work.notify_all();
        }
        self.free_slots(&freed);
        if let Err(msg) = result {
            log::warn!(
                "block cache: upload of block {:08x} failed, will retry: {msg}",
                ups[0].block
            );
            std::thread::sleep(RETRY_PAUSE);
        }
    }
}

impl BlockStore for BlockCache {
    fn geometry(&self) -> Geometry {
        self.inner.geometry
    }

    fn read_block(&self, block: BlockNum, buf: &mut [u8]) -> StoreResult<()> {
        self.inner.note_read(block);
        self.inner.read(block, buf)
    }

    /// Copies only the bytes asked for out of a cached block (a 4 KiB read of a cached 256 KiB
    /// block moves 4 KiB, not the block).
    fn read_part(&self, block: BlockNum, offset: u32, buf: &mut [u8]) -> StoreResult<()> {
        self.inner.note_read(block);
        let plan = {
            let mut s = lock(&self.inner.state);
            loop {
                match s.plan_read(block, Instant::now()) {
                    ReadPlan::Wait => {
                        s = self
                            .inner
                            .changed
                            .wait(s)
                            .unwrap_or_else(|e| e.into_inner())
                    }
                    // Only plain hits are served in part; everything else takes the whole path.
                    ReadPlan::Hit {
                        slot,
                        crc: None,
                        verify: None,
                        ..
                    } => break Some(slot),
                    ReadPlan::Hit { .. } => {
                        self.inner.unpin(&mut s, block);
                        break None;
                    }
                    ReadPlan::Zero => {
                        drop(s);
                        self.inner.counters.read_hits.incr();
                        buf.fill(0);
                        return Ok(());
                    }
                    ReadPlan::Fill { id, .. } => {
                        // Undo the reservation: the whole-block path below makes its own.
                        let freed = s.fill_failed(block, id);
                        drop(s);
                        self.inner
                            .free_slots(&freed.into_iter().collect::<Vec<_>>());
                        break None;
                    }
                    ReadPlan::Bypass => {
                        drop(s);
                        self.inner.counters.read_misses.incr();
                        return self.inner.next.read_part(block, offset, buf);
                    }
                }
            }
        };
        if let Some(slot) = plan {
            let r = self.inner.slots.read_part(slot, offset, buf);
            self.inner.unpin(&mut lock(&self.inner.state), block);
            if r.is_ok() {
                self.inner.counters.read_hits.incr();
                return Ok(());
            }
        }
        let mut whole = vec![0u8; self.inner.geometry.block_size as usize];
        self.inner.read(block, &mut whole)?;
        let start = offset as usize;
        buf.copy_from_slice(&whole[start..start + buf.len()]);
        Ok(())
    }

    fn write_block(&self, block: BlockNum, data: &[u8]) -> StoreResult<()> {
        self.inner.write(block, Some(data))
    }

    /// A partial write of a block held in memory patches it in place (no read, no whole-block
    /// copy); anything else is a read-modify-write of the whole block through the cache.
    fn write_part(&self, block: BlockNum, offset: u32, data: &[u8]) -> StoreResult<()> {
        let inner = &self.inner;
        let planned = lock(&inner.state).plan_patch(block);
        if let Some((slot, id, mut crc)) = planned {
            if inner.slots.patch(slot, offset, data, &mut crc) {
                inner.counters.write_hits.incr();
                return inner.commit(block, id, false, crc);
            }
            let freed = lock(&inner.state).abandon_write(block, id);
            inner.free_slots(&freed.into_iter().collect::<Vec<_>>());
        }
        let mut whole = vec![0u8; inner.geometry.block_size as usize];
        inner.read(block, &mut whole)?;
        let start = offset as usize;
        whole[start..start + data.len()].copy_from_slice(data);
        inner.write(block, Some(&whole))
    }

    fn zero_blocks(&self, blocks: &[BlockNum]) -> StoreResult<()> {
        blocks.iter().try_for_each(|&b| self.inner.write(b, None))
    }

    fn flush(&self) -> StoreResult<()> {
        self.inner.flush(false)
    }

    fn survey(&self, threads: usize, report: &(dyn Fn(BlockNum) + Sync)) -> StoreResult<()> {
        let held = lock(&self.inner.state).nonzero_blocks();
        held.into_iter().for_each(report);
        self.inner.next.survey(threads, report)
    }

    fn report_stats(&self, out: &mut StatsReport) {
        self.inner.next.report_stats(out);
        let (used, dirty, capacity) = {
            let s = lock(&self.inner.state);
            (s.used(), s.dirty, s.capacity())
        };
        let c = &self.inner.counters;
        out.line("block_cache_current_size", format!("{used} blocks"));
        out.line(
            "block_cache_initial_size",
            format!("{} blocks", self.inner.initial_size),
        );
        out.ratio("block_cache_dirty_ratio", dirty as u64, u64::from(capacity));
        out.line("block_cache_read_hits", c.read_hits.get());
        out.line("block_cache_read_misses", c.read_misses.get());
        out.ratio(
            "block_cache_read_hit_ratio",
            c.read_hits.get(),
            c.read_hits.get() + c.read_misses.get(),
        );
        out.line("block_cache_write_hits", c.write_hits.get());
        out.line("block_cache_write_misses", c.write_misses.get());
        out.ratio(
            "block_cache_write_hit_ratio",
            c.write_hits.get(),
            c.write_hits.get() + c.write_misses.get(),
        );
        out.line("block_cache_verified", c.verified.get());
        out.line("block_cache_mismatch", c.mismatch.get());
        out.line("block_cache_dirty_blocks", dirty);
        out.line("block_cache_uploads", c.uploads.get());
        out.line("block_cache_upload_errors", c.upload_errors.get());
        out.line("block_cache_read_aheads", c.read_aheads.get());
    }

    fn reset_stats(&self) {
        let c = &self.inner.counters;
        for counter in [
            &c.read_hits,
            &c.read_misses,
            &c.write_hits,
            &c.write_misses,
            &c.verified,
            &c.mismatch,
            &c.uploads,
            &c.upload_errors,
            &c.read_aheads,
        ] {
            counter.reset();
        }
        self.inner.next.reset_stats();
    }

    /// Uploads everything (whatever the durability mode), stops the workers, marks the cache
    /// file clean, then shuts the layer below down.
    fn shutdown(&self) -> StoreResult<()> {
        loop {
            match self.inner.flush(true) {
                Ok(()) => break,
                Err(e) => {
                    // Data is never dropped at shutdown: keep trying, and say so.
                    log::error!(
                        "block cache: cannot write back dirty blocks at shutdown, retrying: {e}"
                    );
                    std::thread::sleep(RETRY_PAUSE);
                }
            }
        }
        self.inner.stopping.store(true, Ordering::Release);
        self.inner.work.wake_everyone();
        self.inner.room.notify_all();
        let workers = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|e| e.into_inner()));
        for w in workers {
            let _ = w.join();
        }
        if let Some(file) = self.inner.slots.cache_file() {
            file.write_header(0, true)
                .and_then(|()| file.sync())
                .map_err(|e| io_error("closing the cache file", e))?;
        }
        self.inner.next.shutdown()
    }
}

#[cfg(test)]
mod tests;
