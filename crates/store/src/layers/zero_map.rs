//! The zero map: one bit per block, "known to be all zeros".
//!
//! A known-zero block is read as zeros with no request, a zero write or trim onto it costs
//! nothing, and a partial write into it is written whole without reading it first. Bits are
//! learned from every read and write, from the background survey (`--listBlocks`: list the
//! bucket while the disk already serves I/O), and from the map saved at the last clean unmount.
//! A clear bit only means "unknown"; clearing one is always safe, setting one needs proof.
//!
//! # Keeping the bits true under concurrency
//! Writes of one block are serialized by the layer above ([`crate::Disk`]'s block locks); reads
//! are not. A read that finds zeros may only set the bit if no write of that block began since
//! the read started, else a slow read of old zeros could mark a freshly written block as empty.
//! So every write bumps a per-stripe generation and clears the bit before going down, and the
//! reader sets the bit only if the generation is unchanged, both under the stripe's mutex.
//!
//! # The survey
//! A second bitmap starts all ones ("not seen in the bucket"). Every block the listing reports,
//! every non-zero read and every write clears its bit there; when the listing completes, the
//! blocks still set are known zero (set under the stripe mutex, re-checking the survey bit, so a
//! write racing with the merge wins). A failed or cancelled survey is simply discarded.
//! Log lines as s3backer's: "starting non-zero block survey", "non-zero block survey completed
//! (N non-zero blocks reported)".
//!
//! Parameters: `--listBlocks`, `--listBlocksThreads`.

use crate::bitmap::AtomicBitmap;
use crate::format::is_zero;
use crate::stats::{Counter, StatsReport};
use crate::{BlockNum, BlockStore, Geometry, StoreError, StoreResult};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Stripes of the generation table (small: only the zero map's bookkeeping waits on them).
const STRIPES: usize = 1024;

/// Saves the map at shutdown (given by the volume; the layer knows nothing of objects).
pub type MapSaver = Box<dyn Fn(&AtomicBitmap) -> StoreResult<()> + Send + Sync>;

/// Where the survey stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum SurveyState {
    /// No survey was asked for.
    Off = 0,
    /// Listing the bucket.
    Running = 1,
    /// Done: every block is known zero or known (possibly) non-zero.
    Complete = 2,
    /// Failed or cancelled; blocks are learned from I/O only.
    Failed = 3,
}

/// The layer.
pub struct ZeroMap {
    next: Arc<dyn BlockStore>,
    geometry: Geometry,
    known_zero: AtomicBitmap,
    /// During a survey: blocks not (yet) seen to hold data.
    unseen: AtomicBitmap,
    /// Generation per stripe: bumped by every write of a block in the stripe.
    generations: Box<[Mutex<u64>]>,
    survey_state: AtomicU8,
    cancel: AtomicBool,
    saver: Mutex<Option<MapSaver>>,
    read_hits: Counter,
    write_hits: Counter,
    reported: AtomicU64,
}

impl ZeroMap {
    /// A zero map over `next`, starting from `initial` (a saved map) or knowing nothing.
    pub fn new(
        next: Arc<dyn BlockStore>,
        initial: Option<AtomicBitmap>,
        saver: Option<MapSaver>,
    ) -> Self {
        let geometry = next.geometry();
        let known_zero = initial
            .filter(|m| m.len() == geometry.num_blocks)
            .unwrap_or_else(|| AtomicBitmap::new(geometry.num_blocks));
        ZeroMap {
            next,
            geometry,
            known_zero,
            unseen: AtomicBitmap::new(geometry.num_blocks),
            generations: (0..STRIPES).map(|_| Mutex::new(0)).collect(),
            survey_state: AtomicU8::new(SurveyState::Off as u8),
            cancel: AtomicBool::new(false),
            saver: Mutex::new(saver),
            read_hits: Counter::default(),
            write_hits: Counter::default(),
            reported: AtomicU64::new(0),
        }
    }

    fn stripe(&self, block: BlockNum) -> MutexGuard<'_, u64> {
        self.generations[block as usize % STRIPES]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Where the survey stands.
    pub fn survey_state(&self) -> SurveyState {
        match self.survey_state.load(Ordering::Acquire) {
            1 => SurveyState::Running,
            2 => SurveyState::Complete,
            3 => SurveyState::Failed,
            _ => SurveyState::Off,
        }
    }

    fn surveying(&self) -> bool {
        self.survey_state() == SurveyState::Running
    }

    /// Number of blocks known to be zero.
    pub fn known_zero_count(&self) -> u64 {
        self.known_zero.count_ones()
    }

    /// A write of `block` begins: it is no longer known to be zero, and it has been "seen".
    fn begin_write(&self, block: BlockNum) {
        let mut generation = self.stripe(block);
        *generation += 1;
        self.known_zero.clear(block);
        self.unseen.clear(block);
    }

    /// Starts the background survey on its own thread. Call once, after any fork.
    pub fn start_survey(self: &Arc<Self>, threads: usize) -> StoreResult<()> {
        self.unseen.set_all();
        self.survey_state
            .store(SurveyState::Running as u8, Ordering::Release);
        log::info!("starting non-zero block survey");
        let this = Arc::clone(self);
        std::thread::Builder::new()
            .name("s3b-survey".into())
            .spawn(move || this.run_survey(threads))
            .map(drop)
            .map_err(|e| StoreError::Startup(format!("cannot start the survey thread: {e}")))
    }

    fn run_survey(&self, threads: usize) {
        let stale = AtomicU64::new(0);
        let result = self.next.survey(threads, &|block| {
            self.reported.fetch_add(1, Ordering::Relaxed);
            let _generation = self.stripe(block);
            self.unseen.clear(block);
            // The bucket holds this block: a zero bit for it (from a saved map) was wrong.
            if self.known_zero.clear(block) {
                stale.fetch_add(1, Ordering::Relaxed);
            }
        });
        if self.cancel.load(Ordering::Acquire) {
            self.survey_state
                .store(SurveyState::Failed as u8, Ordering::Release);
            return;
        }
        if let Err(e) = result {
            log::warn!("non-zero block survey failed, continuing without it: {e}");
            self.survey_state
                .store(SurveyState::Failed as u8, Ordering::Release);
            return;
        }
        for block in self.unseen.ones() {
            let _generation = self.stripe(block);
            // Re-checked under the stripe lock: a write that began meanwhile cleared it.
            if self.unseen.get(block) {
                self.known_zero.set(block);
            }
        }
        self.survey_state
            .store(SurveyState::Complete as u8, Ordering::Release);
        let stale = stale.into_inner();
        if stale > 0 {
            log::warn!(
                "the saved zero map was out of date: {stale} blocks it had as empty hold data \
                 (the bucket was written by something else since); corrected"
            );
        }
        log::info!(
            "non-zero block survey completed ({} non-zero blocks reported)",
            self.reported.load(Ordering::Relaxed)
        );
    }
}

impl BlockStore for ZeroMap {
    fn geometry(&self) -> Geometry {
        self.geometry
    }

    fn read_block(&self, block: BlockNum, buf: &mut [u8]) -> StoreResult<()> {
        if self.known_zero.get(block) {
            self.read_hits.incr();
            buf.fill(0);
            return Ok(());
        }
        let generation = *self.stripe(block);
        self.next.read_block(block, buf)?;
        if is_zero(buf) {
            let now = self.stripe(block);
            if *now == generation {
                self.known_zero.set(block);
            }
        } else if self.surveying() {
            self.unseen.clear(block);
        }
        Ok(())
    }

    fn read_part(&self, block: BlockNum, offset: u32, buf: &mut [u8]) -> StoreResult<()> {
        if self.known_zero.get(block) {
            self.read_hits.incr();
            buf.fill(0);
            return Ok(());
        }
        // A part cannot prove the block empty; pass it down so a cache below can serve just
        // those bytes.
        self.next.read_part(block, offset, buf)
    }

    fn write_block(&self, block: BlockNum, data: &[u8]) -> StoreResult<()> {
        if is_zero(data) {
            return self.zero_blocks(&[block]);
        }
        self.begin_write(block);
        self.next.write_block(block, data)
    }

    fn write_part(&self, block: BlockNum, offset: u32, data: &[u8]) -> StoreResult<()> {
        if self.known_zero.get(block) {
            if is_zero(data) {
                self.write_hits.incr();
                return Ok(());
            }
            // A hole: the rest of the block is zeros, no need to read it.
            let start = offset as usize;
            let mut whole = vec![0u8; self.geometry.block_size as usize];
            whole[start..start + data.len()].copy_from_slice(data);
            self.begin_write(block);
            return self.next.write_block(block, &whole);
        }
        // Not known to be empty: the layer below patches it (a cache holding the block does so
        // without reading anything).
        self.begin_write(block);
        self.next.write_part(block, offset, data)
    }

    fn zero_blocks(&self, blocks: &[BlockNum]) -> StoreResult<()> {
        let todo: Vec<BlockNum> = blocks
            .iter()
            .copied()
            .filter(|&b| !self.known_zero.get(b))
            .collect();
        self.write_hits.add((blocks.len() - todo.len()) as u64);
        if todo.is_empty() {
            return Ok(());
        }
        todo.iter().for_each(|&b| self.begin_write(b));
        self.next.zero_blocks(&todo)?;
        // The writes of these blocks are still serialized by the caller: nothing can race here.
        todo.iter().for_each(|&b| self.known_zero.set(b));
        Ok(())
    }

    fn flush(&self) -> StoreResult<()> {
        self.next.flush()
    }

    fn flush_blocks(&self, blocks: &[BlockNum]) -> StoreResult<()> {
        self.next.flush_blocks(blocks)
    }

    fn survey(&self, threads: usize, report: &(dyn Fn(BlockNum) + Sync)) -> StoreResult<()> {
        self.next.survey(threads, report)
    }

    fn known_zero(&self, block: BlockNum) -> bool {
        self.known_zero.get(block)
    }

    fn report_stats(&self, out: &mut StatsReport) {
        self.next.report_stats(out);
        out.line(
            "zero_block_cache_size",
            format!("{} blocks", self.known_zero_count()),
        );
        out.line("zero_block_cache_read_hits", self.read_hits.get());
        out.line("zero_block_cache_write_hits", self.write_hits.get());
        let state = match self.survey_state() {
            SurveyState::Off => "off",
            SurveyState::Running => "running",
            SurveyState::Complete => "complete",
            SurveyState::Failed => "failed",
        };
        out.line("zero_block_survey", state);
        out.line(
            "zero_block_survey_reported",
            self.reported.load(Ordering::Relaxed),
        );
    }

    fn reset_stats(&self) {
        self.read_hits.reset();
        self.write_hits.reset();
        self.next.reset_stats();
    }

    fn shutdown(&self) -> StoreResult<()> {
        self.cancel.store(true, Ordering::Release);
        self.next.shutdown()?;
        let saver = self.saver.lock().unwrap_or_else(|e| e.into_inner()).take();
        // Not fatal: the next start just knows less.
        if let Some(save) = saver
            && let Err(e) = save(&self.known_zero)
        {
            log::warn!("cannot save the zero map: {e}");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::memory::{MemoryBackend, Op};
    use crate::format::keys::KeyFormat;
    use crate::layers::ObjectBlocks;

    fn stack(blocks: u32) -> (Arc<MemoryBackend>, Arc<ZeroMap>) {
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
                num_blocks: blocks,
            },
            false,
        );
        (mem, Arc::new(ZeroMap::new(Arc::new(objects), None, None)))
    }

    fn wait_for_survey(z: &ZeroMap) {
        for _ in 0..500 {
            if z.survey_state() != SurveyState::Running {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("survey did not finish");
    }

    #[test]
    fn after_the_survey_an_empty_disk_reads_without_requests() {
        let (mem, z) = stack(64);
        z.start_survey(4).expect("survey");
        wait_for_survey(&z);
        assert_eq!(z.survey_state(), SurveyState::Complete);
        mem.reset_counts();
        let mut buf = vec![1u8; 512];
        for b in 0..64 {
            z.read_block(b, &mut buf).expect("read");
            assert!(buf.iter().all(|&x| x == 0));
        }
        assert_eq!(mem.calls(Op::Get), 0);
    }

    #[test]
    fn learned_from_io_and_free_operations() {
        let (mem, z) = stack(16);
        let mut buf = vec![0u8; 512];
        z.read_block(3, &mut buf).expect("read");
        assert!(z.known_zero(3), "a 404 teaches that the block is empty");
        mem.reset_counts();
        z.read_block(3, &mut buf).expect("read again");
        z.zero_blocks(&[3]).expect("trim");
        z.write_block(3, &[0u8; 512]).expect("zero write");
        assert_eq!(
            mem.calls(Op::Get) + mem.calls(Op::Delete) + mem.calls(Op::DeleteMany),
            0
        );
        // A partial write into a hole: one PUT, no GET.
        z.write_part(3, 100, &[9u8; 10]).expect("partial");
        assert_eq!((mem.calls(Op::Get), mem.calls(Op::Put)), (0, 1));
        assert!(!z.known_zero(3));
        z.read_block(3, &mut buf).expect("read");
        assert!(buf[100..110].iter().all(|&x| x == 9) && buf[..100].iter().all(|&x| x == 0));
        // Zeroing it again deletes it and it is known zero again.
        z.zero_blocks(&[3]).expect("trim");
        assert!(z.known_zero(3));
        assert!(mem.keys().is_empty());
    }

    #[test]
    fn survey_finds_existing_blocks_and_racing_writes_are_never_zeroed() {
        let (mem, z) = stack(3000);
        // Blocks that already exist in the bucket.
        let existing = stack_with_blocks(&mem, &[5, 700, 2999]);
        drop(existing);
        z.start_survey(3).expect("survey");
        // Writes while the survey runs.
        for b in (0..3000).step_by(97) {
            z.write_block(b, &[1u8; 512]).expect("write");
        }
        wait_for_survey(&z);
        for b in [5, 700, 2999] {
            assert!(!z.known_zero(b), "existing block {b} reported zero");
        }
        for b in (0..3000).step_by(97) {
            assert!(
                !z.known_zero(b),
                "block {b} written during the survey reported zero"
            );
        }
        assert!(z.known_zero(1) && z.known_zero(2998));
        let expected_zero = 3000
            - 3
            - (0..3000)
                .step_by(97)
                .filter(|b| ![5, 700, 2999].contains(b))
                .count() as u64;
        assert_eq!(z.known_zero_count(), expected_zero);
    }

    /// Writes blocks straight into the bucket (another writer, or an earlier session).
    fn stack_with_blocks(mem: &Arc<MemoryBackend>, blocks: &[u32]) -> ObjectBlocks {
        let keys = KeyFormat {
            prefix: String::new(),
            hashed: false,
        };
        let objects = ObjectBlocks::new(
            mem.clone(),
            keys,
            Geometry {
                block_size: 512,
                num_blocks: 3000,
            },
            false,
        );
        for &b in blocks {
            objects.write_block(b, &[7u8; 512]).expect("write");
        }
        objects
    }

    #[test]
    fn a_saved_map_is_used_and_corrected_by_a_survey() {
        let mem = Arc::new(MemoryBackend::new());
        let objects = Arc::new(stack_with_blocks(&mem, &[10]));
        let saved = AtomicBitmap::new(3000);
        saved.set_all(); // claims everything is empty: block 10 is stale
        let z = Arc::new(ZeroMap::new(objects, Some(saved), None));
        mem.reset_counts();
        let mut buf = vec![0u8; 512];
        z.read_block(11, &mut buf).expect("read");
        assert_eq!(mem.calls(Op::Get), 0, "the saved map is used at once");
        z.start_survey(2).expect("survey");
        wait_for_survey(&z);
        assert!(!z.known_zero(10), "the survey corrects the stale bit");
        z.read_block(10, &mut buf).expect("read");
        assert_eq!(buf, [7u8; 512]);
    }

    #[test]
    fn a_slow_read_of_old_zeros_does_not_hide_a_new_write() {
        let (_mem, z) = stack(8);
        // Simulate: a read starts (generation g), a write of block 2 happens, the read finishes.
        let generation = *z.stripe(2);
        z.write_block(2, &[4u8; 512]).expect("write");
        let now = z.stripe(2);
        assert_ne!(*now, generation, "the read must not set the bit");
        drop(now);
        assert!(!z.known_zero(2));
    }

    #[test]
    fn shutdown_saves_the_map() {
        let (_mem, z0) = stack(8);
        let next = z0.next.clone();
        let saved: Arc<Mutex<Option<Vec<u32>>>> = Arc::default();
        let sink = saved.clone();
        let saver: MapSaver = Box::new(move |m| {
            *sink.lock().expect("lock") = Some(m.ones().collect());
            Ok(())
        });
        let z = ZeroMap::new(next, None, Some(saver));
        z.zero_blocks(&[1, 4]).expect("zero");
        z.shutdown().expect("shutdown");
        assert_eq!(saved.lock().expect("lock").clone(), Some(vec![1, 4]));
    }
}
