//! The cache's bookkeeping: which versions of which blocks are held, in which slots, in which
//! state, in which flush epoch; the LRU; the upload queue. Pure data under the cache's one mutex:
//! no I/O happens here, so every rule can be unit-tested directly.
//!
//! # Versions and states
//! An entry (one block) holds one or more *versions*, oldest first; the last one is what reads
//! see. Each version occupies one slot.
//!
//! | state     | meaning                                   | next                                  |
//! |-----------|-------------------------------------------|---------------------------------------|
//! | Filling   | a miss is being read from below           | Clean (read done), gone (read failed) |
//! | Clean     | equal to the stored object (tag known)    | Dirty (rewritten in place), evicted   |
//! | Dirty     | written, waiting for upload               | Uploading                             |
//! | Uploading | a worker is storing it                    | Clean (current) / gone (superseded), Dirty (failed) |
//!
//! # Flush epochs (the flush-order rule)
//! Every write belongs to the *open epoch*; FLUSH closes it. A version of epoch `e` may start
//! uploading only when no version of an earlier epoch is still pending, and a block's versions
//! upload oldest first, one at a time. So the bucket always holds every write of every epoch
//! before some epoch `k` and a subset of epoch `k`'s: the state of a disk with a volatile write
//! cache after a power loss. To keep that true when a block is rewritten after a FLUSH while its
//! older version is not yet uploaded, the rewrite goes to a new slot (copy on write) instead of
//! over the old data; within the open epoch a dirty version is simply overwritten in place.
//! The cost: uploads of epoch `k+1` wait for the last upload of epoch `k` (a barrier per FLUSH),
//! and a block rewritten across a FLUSH holds two slots until the older one is stored.

use crate::BlockNum;
use crate::layer::BlockTag;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Instant;

/// A version's state (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VState {
    Filling,
    Clean,
    Dirty,
    Uploading,
}

/// One version of a block.
#[derive(Clone, Debug)]
pub(crate) struct Version {
    /// Unique id, increasing (also the cache file's sequence number).
    pub id: u64,
    pub slot: u32,
    pub epoch: u64,
    pub state: VState,
    /// All zeros: stored as "no object", no data in the slot.
    pub zero: bool,
    /// What the bucket holds when Clean.
    pub tag: BlockTag,
    /// Dirty versions: when the write-back delay runs out.
    pub due: Instant,
    /// CRC-32 of the slot's data, when known: always for cache-file slots (their records carry
    /// it); for memory slots written whole, and kept through patches (the upload sends it
    /// instead of reading the block again). `None` for zero versions and memory fills.
    pub crc: Option<u32>,
    /// Data checksum still to be verified on first use (loaded from the cache file).
    pub crc_unchecked: Option<u32>,
    /// Clean version loaded from the cache file, to be checked against the bucket.
    pub verify: bool,
    /// Being rewritten in place: not to be uploaded until the write commits.
    pub busy: bool,
}

/// One block's versions.
#[derive(Debug, Default)]
pub(crate) struct Entry {
    pub versions: Vec<Version>,
    /// Readers copying out of one of its slots: not evictable meanwhile.
    pub pins: u32,
    /// Position in the LRU (only for entries whose only version is Clean).
    lru: Option<u64>,
    pub last_use: Option<Instant>,
}

impl Entry {
    pub fn current(&self) -> Option<&Version> {
        self.versions.last()
    }

    pub fn current_mut(&mut self) -> Option<&mut Version> {
        self.versions.last_mut()
    }

    fn evictable(&self) -> bool {
        self.pins == 0
            && self.versions.len() == 1
            && self.versions[0].state == VState::Clean
            && !self.versions[0].busy
    }
}

/// Versions of one epoch not yet stored.
#[derive(Debug, Default)]
struct EpochQueue {
    /// Dirty versions in write order: (block, version id).
    waiting: VecDeque<(BlockNum, u64)>,
    /// Versions of this epoch not yet Clean (waiting + uploading).
    pending: usize,
}

/// An upload for a worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Upload {
    pub block: BlockNum,
    pub id: u64,
    pub slot: u32,
    pub zero: bool,
    pub epoch: u64,
    /// The version's CRC-32, when known ([`Version::crc`]).
    pub crc: Option<u32>,
}

/// What a write should do.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum WritePlan {
    /// Write the data into this slot (a new version, or the current one in place); then call
    /// [`State::commit_write`] with the version id.
    Slot { slot: u32, id: u64 },
    /// No slot can be freed now: wait for uploads and try again.
    Wait,
}

/// What a read should do.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReadPlan {
    /// Copy out of this slot (pinned: call [`State::unpin`] after).
    Hit {
        slot: u32,
        id: u64,
        crc: Option<u32>,
        verify: Option<BlockTag>,
    },
    /// Zeros (a zero version).
    Zero,
    /// A miss: read below into this slot, then [`State::fill_done`] / [`State::fill_failed`].
    Fill { slot: u32, id: u64 },
    /// The block is being filled by another reader: wait.
    Wait,
    /// No room: read below without caching.
    Bypass,
}

/// All the bookkeeping.
#[derive(Debug)]
pub(crate) struct State {
    pub entries: HashMap<BlockNum, Entry>,
    free_slots: Vec<u32>,
    capacity: u32,
    pub open_epoch: u64,
    epochs: BTreeMap<u64, EpochQueue>,
    /// LRU of evictable entries: tick → block, normal and protected (blocks < num_protected).
    lru: BTreeMap<u64, BlockNum>,
    lru_protected: BTreeMap<u64, BlockNum>,
    tick: u64,
    num_protected: u32,
    next_id: u64,
    /// Versions Dirty or Uploading.
    pub dirty: usize,
    /// Epochs up to this are due at once (a FLUSH waits for them).
    pub urgent_through: u64,
    /// Everything is due at once (cache full, shutdown).
    pub pressure: bool,
    /// Writers waiting for a slot (`WritePlan::Wait` for room, not for a busy block).
    pub room_waiters: usize,
}

impl State {
    /// An empty cache of `capacity` slots.
    pub fn new(capacity: u32, num_protected: u32) -> State {
        State {
            entries: HashMap::new(),
            free_slots: (0..capacity).rev().collect(),
            capacity,
            open_epoch: 1,
            epochs: BTreeMap::new(),
            lru: BTreeMap::new(),
            lru_protected: BTreeMap::new(),
            tick: 0,
            num_protected,
            next_id: 1,
            dirty: 0,
            urgent_through: 0,
            pressure: false,
            room_waiters: 0,
        }
    }

    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Slots in use.
    pub fn used(&self) -> u32 {
        self.capacity - self.free_slots.len() as u32
    }

    fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Makes sure the next ids are above `id` (after loading a cache file).
    pub fn bump_ids(&mut self, id: u64) {
        self.next_id = self.next_id.max(id);
    }

    fn lru_remove(&mut self, block: BlockNum) {
        if let Some(tick) = self.entries.get_mut(&block).and_then(|e| e.lru.take()) {
            self.lru.remove(&tick);
            self.lru_protected.remove(&tick);
        }
    }

    /// Puts the entry at the LRU's tail if it is evictable, or takes it out if not.
    fn lru_touch(&mut self, block: BlockNum, now: Instant) {
        self.lru_remove(block);
        self.tick += 1;
        let tick = self.tick;
        let protected = block < self.num_protected;
        let Some(entry) = self.entries.get_mut(&block) else {
            return;
        };
        entry.last_use = Some(now);
        if entry.evictable() {
            entry.lru = Some(tick);
            if protected {
                self.lru_protected.insert(tick, block);
            } else {
                self.lru.insert(tick, block);
            }
        }
    }

    /// Frees a slot by evicting the least recently used clean block (unprotected ones first).
    fn take_slot(&mut self) -> Option<u32> {
        if let Some(slot) = self.free_slots.pop() {
            return Some(slot);
        }
        let victim = self
            .lru
            .first_key_value()
            .or(self.lru_protected.first_key_value())
            .map(|(_, &b)| b)?;
        self.lru_remove(victim);
        let entry = self.entries.remove(&victim)?;
        entry.versions.first().map(|v| v.slot)
    }

    /// A dropped version's slot is NOT free yet: the caller first clears it (the cache file's
    /// record and data, or the memory buffer) and then hands it back with
    /// [`State::return_slots`]. Freeing it at once would let another writer reuse it while the
    /// clearing is still to come, and the late clearing would destroy that writer's data.
    fn release_slot(&mut self, _slot: u32) {}

    /// Slots cleared by the caller are free again.
    pub fn return_slots(&mut self, slots: &[u32]) {
        self.free_slots.extend_from_slice(slots);
    }

    /// Evicts clean blocks unused since `older_than` (`--blockCacheTimeout`); returns their
    /// slots (now free, to be cleared in the cache file).
    pub fn evict_idle(&mut self, older_than: Instant) -> Vec<u32> {
        let victims: Vec<BlockNum> = self
            .lru
            .values()
            .chain(self.lru_protected.values())
            .copied()
            .filter(|b| {
                self.entries
                    .get(b)
                    .and_then(|e| e.last_use)
                    .is_some_and(|t| t < older_than)
            })
            .collect();
        let mut slots = Vec::new();
        for b in victims {
            self.lru_remove(b);
            if let Some(e) = self.entries.remove(&b) {
                slots.extend(e.versions.iter().map(|v| v.slot));
            }
        }
        for &s in &slots {
            self.release_slot(s);
        }
        slots
    }

    /// Plans a read of `block`.
    pub fn plan_read(&mut self, block: BlockNum, now: Instant) -> ReadPlan {
        if let Some(entry) = self.entries.get_mut(&block) {
            let Some(cur) = entry.current() else {
                return ReadPlan::Wait;
            };
            if cur.state == VState::Filling {
                return ReadPlan::Wait;
            }
            if cur.zero {
                self.lru_touch(block, now);
                return ReadPlan::Zero;
            }
            let plan = ReadPlan::Hit {
                slot: cur.slot,
                id: cur.id,
                crc: cur.crc_unchecked,
                verify: (cur.verify && cur.state == VState::Clean).then_some(cur.tag),
            };
            entry.pins += 1;
            self.lru_touch(block, now);
            return plan;
        }
        let Some(slot) = self.take_slot() else {
            return ReadPlan::Bypass;
        };
        let id = self.new_id();
        let version = Version {
            id,
            slot,
            epoch: 0,
            state: VState::Filling,
            zero: false,
            tag: BlockTag::Unknown,
            due: now,
            crc: None,
            crc_unchecked: None,
            verify: false,
            busy: false,
        };
        self.entries.insert(
            block,
            Entry {
                versions: vec![version],
                ..Default::default()
            },
        );
        ReadPlan::Fill { slot, id }
    }

    /// Whether a write of `block` that got [`WritePlan::Wait`] waits for a slot (none free or
    /// evictable) rather than for the block's own version (being filled or written).
    pub fn write_waits_for_room(&self, block: BlockNum) -> bool {
        !self
            .entries
            .get(&block)
            .and_then(|e| e.current())
            .is_some_and(|cur| cur.state == VState::Filling || cur.busy)
    }

    /// A reader finished copying out of `block`'s slot.
    pub fn unpin(&mut self, block: BlockNum, now: Instant) {
        if let Some(e) = self.entries.get_mut(&block) {
            e.pins = e.pins.saturating_sub(1);
        }
        self.lru_touch(block, now);
    }

    /// Marks version `id` busy (a verification is replacing its data) if it is still the clean
    /// current version of `block`; false if a write got there first.
    pub fn claim_for_refresh(&mut self, block: BlockNum, id: u64) -> bool {
        match self.entries.get_mut(&block).and_then(|e| e.current_mut()) {
            Some(v) if v.id == id && v.state == VState::Clean && !v.busy => {
                v.busy = true;
                true
            }
            _ => false,
        }
    }

    /// Ends [`State::claim_for_refresh`]: the slot now holds the bucket's data, with `tag`.
    pub fn refreshed(
        &mut self,
        block: BlockNum,
        id: u64,
        tag: BlockTag,
        zero: bool,
        crc: Option<u32>,
    ) -> Option<Version> {
        let v = self
            .entries
            .get_mut(&block)?
            .versions
            .iter_mut()
            .find(|v| v.id == id)?;
        v.busy = false;
        v.tag = tag;
        v.zero = zero;
        v.crc = crc;
        v.verify = false;
        v.crc_unchecked = None;
        Some(v.clone())
    }

    /// The slot of a hit was checked (CRC and/or against the bucket): trust it from now on.
    pub fn mark_checked(&mut self, block: BlockNum, slot: u32, tag: Option<BlockTag>) {
        if let Some(v) = self
            .entries
            .get_mut(&block)
            .and_then(|e| e.versions.iter_mut().find(|v| v.slot == slot))
        {
            v.crc_unchecked = None;
            v.verify = false;
            if let Some(tag) = tag {
                v.tag = tag;
            }
        }
    }

    /// A fill completed: the version is Clean with `tag` (or a zero version).
    pub fn fill_done(
        &mut self,
        block: BlockNum,
        id: u64,
        tag: BlockTag,
        zero: bool,
        crc: Option<u32>,
        now: Instant,
    ) {
        if let Some(v) = self
            .entries
            .get_mut(&block)
            .and_then(|e| e.versions.iter_mut().find(|v| v.id == id))
        {
            v.state = VState::Clean;
            v.tag = tag;
            v.zero = zero;
            v.crc = crc;
        }
        self.lru_touch(block, now);
    }

    /// A fill failed (or its copy turned out damaged): forget it. Returns the slot to clear.
    pub fn fill_failed(&mut self, block: BlockNum, id: u64) -> Option<u32> {
        let slot = match self.entries.get(&block) {
            Some(e) if e.versions.len() == 1 && e.versions[0].id == id => Some(e.versions[0].slot),
            _ => None,
        };
        if let Some(slot) = slot {
            self.lru_remove(block);
            self.entries.remove(&block);
            self.release_slot(slot);
        }
        slot
    }

    /// Plans a write of `block` (`zero`: the data is all zeros).
    ///
    /// In place when the current version is Clean, or Dirty in the open epoch (nothing else needs
    /// its data); otherwise (Uploading, or Dirty from a closed epoch) into a new slot, so that the
    /// older data is still there to be uploaded first.
    pub fn plan_write(&mut self, block: BlockNum, now: Instant) -> WritePlan {
        let open = self.open_epoch;
        let in_place = self
            .entries
            .get(&block)
            .and_then(|entry| match entry.current() {
                Some(cur) if cur.state == VState::Filling || cur.busy => Some(None),
                Some(cur)
                    if cur.state == VState::Clean
                        || (cur.state == VState::Dirty && cur.epoch == open) =>
                {
                    Some(Some((cur.slot, cur.id)))
                }
                _ => None,
            });
        match in_place {
            Some(None) => return WritePlan::Wait,
            Some(Some((slot, id))) => {
                self.lru_remove(block);
                if let Some(v) = self.entries.get_mut(&block).and_then(|e| e.current_mut()) {
                    v.busy = true;
                }
                return WritePlan::Slot { slot, id };
            }
            None => {}
        }
        let Some(slot) = self.take_slot() else {
            return WritePlan::Wait;
        };
        let id = self.new_id();
        self.lru_remove(block);
        let entry = self.entries.entry(block).or_default();
        entry.versions.push(Version {
            id,
            slot,
            epoch: open,
            state: VState::Filling,
            zero: false,
            tag: BlockTag::Unknown,
            due: now,
            crc: None,
            crc_unchecked: None,
            verify: false,
            busy: true,
        });
        WritePlan::Slot { slot, id }
    }

    /// Like [`State::plan_write`], but only when the write can go into the current version's
    /// slot in place and that slot holds the block's data (not a zero version): the case where
    /// a partial write can patch the slot directly. `None` otherwise (nothing reserved).
    pub fn plan_patch(&mut self, block: BlockNum) -> Option<(u32, u64, Option<u32>)> {
        let open = self.open_epoch;
        let cur = self.entries.get(&block)?.current()?;
        let eligible = !cur.busy
            && !cur.zero
            && cur.crc_unchecked.is_none()
            && !cur.verify
            && (cur.state == VState::Clean || (cur.state == VState::Dirty && cur.epoch == open));
        if !eligible {
            return None;
        }
        let (slot, id, crc) = (cur.slot, cur.id, cur.crc);
        self.lru_remove(block);
        if let Some(v) = self.entries.get_mut(&block).and_then(|e| e.current_mut()) {
            v.busy = true;
        }
        Some((slot, id, crc))
    }

    /// Abandons a planned write whose data could not be stored: a new version is dropped; an
    /// in-place one keeps its state if dirty (its slot may hold part of the new data, which is
    /// still a write the client was not told succeeded), and is dropped if clean (its data no
    /// longer matches the bucket). Returns a freed slot.
    pub fn abandon_write(&mut self, block: BlockNum, id: u64) -> Option<u32> {
        let entry = self.entries.get_mut(&block)?;
        let pos = entry.versions.iter().position(|v| v.id == id)?;
        entry.versions[pos].busy = false;
        if !matches!(entry.versions[pos].state, VState::Filling | VState::Clean) {
            return None;
        }
        let v = entry.versions.remove(pos);
        if entry.versions.is_empty() {
            self.entries.remove(&block);
        }
        self.release_slot(v.slot);
        Some(v.slot)
    }

    /// The data of version `id` is in its slot: it is Dirty, due at `due` (a version already
    /// dirty keeps its epoch, place in the queue and due time). Returns the version as now
    /// recorded (for the cache file).
    pub fn commit_write(
        &mut self,
        block: BlockNum,
        id: u64,
        zero: bool,
        crc: Option<u32>,
        due: Instant,
        now: Instant,
    ) -> Option<Version> {
        let open = self.open_epoch;
        let entry = self.entries.get_mut(&block)?;
        let v = entry.versions.iter_mut().find(|v| v.id == id)?;
        v.busy = false;
        v.zero = zero;
        v.crc = crc;
        v.crc_unchecked = None;
        v.verify = false;
        if v.state != VState::Dirty {
            v.state = VState::Dirty;
            v.epoch = open;
            v.due = due;
            let q = self.epochs.entry(open).or_default();
            q.waiting.push_back((block, id));
            q.pending += 1;
            self.dirty += 1;
        }
        let v = v.clone();
        self.lru_touch(block, now);
        Some(v)
    }

    /// Closes the open epoch (a FLUSH); returns it.
    pub fn close_epoch(&mut self) -> u64 {
        let closed = self.open_epoch;
        self.open_epoch += 1;
        closed
    }

    /// True when no version of an epoch up to `epoch` is still pending.
    pub fn epochs_done_through(&self, epoch: u64) -> bool {
        self.epochs.range(..=epoch).all(|(_, q)| q.pending == 0)
    }

    /// The next uploads a worker may start at `now`: versions of the oldest pending epoch only,
    /// each the oldest pending version of its block, due (or urgent), not already uploading.
    /// Zero versions come in batches of up to `zero_batch` (one bulk delete); data one at a time.
    /// Returns the earliest due time when nothing is due yet.
    pub fn next_uploads(
        &mut self,
        now: Instant,
        zero_batch: usize,
    ) -> Result<Vec<Upload>, Option<Instant>> {
        while let Some((&e, q)) = self.epochs.first_key_value() {
            if q.pending == 0 {
                self.epochs.remove(&e);
            } else {
                break;
            }
        }
        let Some((&epoch, _)) = self.epochs.first_key_value() else {
            return Err(None);
        };
        let urgent = self.pressure || epoch <= self.urgent_through;
        let mut picked: Vec<Upload> = Vec::new();
        let mut earliest: Option<Instant> = None;
        let entries = &self.entries;
        let Some(queue) = self.epochs.get_mut(&epoch) else {
            return Err(None);
        };
        let mut i = 0;
        while i < queue.waiting.len() {
            let (block, id) = queue.waiting[i];
            let Some(entry) = entries.get(&block) else {
                queue.waiting.remove(i);
                continue;
            };
            // Only the oldest not-yet-clean version of a block may go, and only if none is in flight.
            let first_pending = entry
                .versions
                .iter()
                .find(|v| matches!(v.state, VState::Dirty | VState::Uploading));
            let Some(v) =
                first_pending.filter(|v| v.id == id && v.state == VState::Dirty && !v.busy)
            else {
                i += 1;
                continue;
            };
            if !urgent && v.due > now {
                earliest = Some(earliest.map_or(v.due, |t: Instant| t.min(v.due)));
                i += 1;
                continue;
            }
            let batchable = v.zero && picked.iter().all(|u| u.zero) && picked.len() < zero_batch;
            if !picked.is_empty() && !batchable {
                break;
            }
            picked.push(Upload {
                block,
                id,
                slot: v.slot,
                zero: v.zero,
                epoch,
                crc: v.crc,
            });
            queue.waiting.remove(i);
            if !v.zero {
                break;
            }
        }
        if picked.is_empty() {
            return Err(earliest);
        }
        for u in &picked {
            if let Some(v) = self
                .entries
                .get_mut(&u.block)
                .and_then(|e| e.versions.iter_mut().find(|v| v.id == u.id))
            {
                v.state = VState::Uploading;
            }
        }
        Ok(picked)
    }

    /// An upload finished. On success the version is Clean (and dropped, slot freed, if a newer
    /// version exists); on failure it is Dirty again, first in its epoch's queue. Returns slots
    /// freed (to clear in the cache file) and the version now recorded, if it remains.
    pub fn finish_upload(
        &mut self,
        up: &Upload,
        result: Result<BlockTag, ()>,
        now: Instant,
    ) -> (Vec<u32>, Option<Version>) {
        let mut freed = Vec::new();
        let Some(entry) = self.entries.get_mut(&up.block) else {
            return (freed, None);
        };
        let Some(pos) = entry.versions.iter().position(|v| v.id == up.id) else {
            return (freed, None);
        };
        match result {
            Err(()) => {
                entry.versions[pos].state = VState::Dirty;
                let v = entry.versions[pos].clone();
                if let Some(q) = self.epochs.get_mut(&up.epoch) {
                    q.waiting.push_front((up.block, up.id));
                }
                (freed, Some(v))
            }
            Ok(tag) => {
                if let Some(q) = self.epochs.get_mut(&up.epoch) {
                    q.pending = q.pending.saturating_sub(1);
                }
                self.dirty = self.dirty.saturating_sub(1);
                let superseded = pos + 1 < entry.versions.len();
                if superseded {
                    let v = entry.versions.remove(pos);
                    freed.push(v.slot);
                    self.release_slot(v.slot);
                    (freed, None)
                } else {
                    let v = &mut entry.versions[pos];
                    v.state = VState::Clean;
                    v.tag = tag;
                    let v = v.clone();
                    self.lru_touch(up.block, now);
                    (freed, Some(v))
                }
            }
        }
    }

    /// Blocks whose current data may be non-zero (for the survey).
    pub fn nonzero_blocks(&self) -> Vec<BlockNum> {
        self.entries
            .iter()
            .filter(|(_, e)| {
                e.current()
                    .is_some_and(|v| !v.zero && v.state != VState::Filling)
            })
            .map(|(&b, _)| b)
            .collect()
    }

    /// Installs a version loaded from the cache file.
    pub fn load(&mut self, block: BlockNum, v: Version) {
        if let Some(pos) = self.free_slots.iter().position(|&s| s == v.slot) {
            self.free_slots.swap_remove(pos);
        }
        self.bump_ids(v.id);
        self.open_epoch = self.open_epoch.max(v.epoch + 1);
        if v.state == VState::Dirty {
            let q = self.epochs.entry(v.epoch).or_default();
            q.waiting.push_back((block, v.id));
            q.pending += 1;
            self.dirty += 1;
        }
        let entry = self.entries.entry(block).or_default();
        entry.versions.push(v);
        entry.versions.sort_by_key(|v| v.id);
    }

    /// After loading: the LRU for the clean entries, all recovered epochs closed.
    pub fn finish_load(&mut self, now: Instant) {
        let blocks: Vec<BlockNum> = self.entries.keys().copied().collect();
        for b in blocks {
            self.lru_touch(b, now);
        }
        self.urgent_through = self.open_epoch.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn write(s: &mut State, b: BlockNum, now: Instant) -> u64 {
        match s.plan_write(b, now) {
            WritePlan::Slot { id, .. } => {
                s.commit_write(b, id, false, None, now, now);
                id
            }
            WritePlan::Wait => panic!("no slot"),
        }
    }

    fn upload_all_due(s: &mut State, now: Instant) -> Vec<Upload> {
        let mut done = Vec::new();
        while let Ok(ups) = s.next_uploads(now, 1000) {
            for u in ups {
                let (freed, _) = s.finish_upload(&u, Ok(BlockTag::Unknown), now);
                s.return_slots(&freed);
                done.push(u);
            }
        }
        done
    }

    #[test]
    fn rewrites_in_the_open_epoch_are_in_place_and_across_a_flush_copy_on_write() {
        let now = Instant::now();
        let mut s = State::new(4, 0);
        let a = write(&mut s, 1, now);
        let a2 = write(&mut s, 1, now);
        assert_eq!(a, a2, "same epoch: the same version, in place");
        assert_eq!((s.dirty, s.used()), (1, 1));
        s.close_epoch();
        let b = write(&mut s, 1, now);
        assert_ne!(a, b, "after a FLUSH: a new version");
        assert_eq!((s.dirty, s.used()), (2, 2));
        let order: Vec<u64> = upload_all_due(&mut s, now).iter().map(|u| u.id).collect();
        assert_eq!(order, vec![a, b], "oldest version first");
        assert_eq!(
            (s.dirty, s.used()),
            (0, 1),
            "the superseded version's slot is freed"
        );
    }

    #[test]
    fn a_later_epoch_waits_for_every_upload_of_the_earlier_one() {
        let now = Instant::now();
        let mut s = State::new(8, 0);
        write(&mut s, 1, now);
        write(&mut s, 2, now);
        s.close_epoch();
        write(&mut s, 3, now);
        let first = s.next_uploads(now, 1000).expect("epoch 1 due");
        assert_eq!(first[0].epoch, 1);
        let second = s.next_uploads(now, 1000).expect("epoch 1 again");
        assert_eq!(second[0].epoch, 1);
        // Epoch 1 has both its blocks in flight: nothing of epoch 2 may start.
        assert!(s.next_uploads(now, 1000).is_err());
        s.finish_upload(&first[0], Ok(BlockTag::Unknown), now);
        assert!(
            s.next_uploads(now, 1000).is_err(),
            "still one of epoch 1 in flight"
        );
        s.finish_upload(&second[0], Ok(BlockTag::Unknown), now);
        let third = s.next_uploads(now, 1000).expect("epoch 2 now");
        assert_eq!((third[0].block, third[0].epoch), (3, 2));
    }

    #[test]
    fn write_delay_and_urgency() {
        let now = Instant::now();
        let mut s = State::new(4, 0);
        let later = now + Duration::from_secs(10);
        if let WritePlan::Slot { id, .. } = s.plan_write(7, now) {
            s.commit_write(7, id, false, None, later, now);
        }
        assert_eq!(s.next_uploads(now, 1000), Err(Some(later)), "not due yet");
        let closed = s.close_epoch();
        s.urgent_through = closed;
        assert!(s.next_uploads(now, 1000).is_ok(), "a FLUSH makes it due");
    }

    #[test]
    fn failed_uploads_go_back_to_the_front() {
        let now = Instant::now();
        let mut s = State::new(4, 0);
        write(&mut s, 1, now);
        write(&mut s, 2, now);
        let u = s.next_uploads(now, 1000).expect("due");
        s.finish_upload(&u[0], Err(()), now);
        let again = s.next_uploads(now, 1000).expect("due");
        assert_eq!(again[0].block, u[0].block);
        assert_eq!(s.dirty, 2);
    }

    #[test]
    fn zero_versions_upload_in_batches() {
        let now = Instant::now();
        let mut s = State::new(8, 0);
        for b in 0..5 {
            if let WritePlan::Slot { id, .. } = s.plan_write(b, now) {
                s.commit_write(b, id, true, None, now, now);
            }
        }
        let batch = s.next_uploads(now, 3).expect("due");
        assert_eq!(batch.len(), 3);
        assert!(batch.iter().all(|u| u.zero));
    }

    #[test]
    fn eviction_takes_clean_lru_unprotected_first_and_never_dirty() {
        let now = Instant::now();
        let mut s = State::new(3, 1);
        for b in [0, 5, 6] {
            match s.plan_read(b, now) {
                ReadPlan::Fill { id, .. } => s.fill_done(b, id, BlockTag::Absent, false, None, now),
                p => panic!("{p:?}"),
            }
        }
        // Block 0 is protected and the oldest; 5 goes first.
        assert!(matches!(s.plan_read(9, now), ReadPlan::Fill { .. }));
        assert!(!s.entries.contains_key(&5) && s.entries.contains_key(&0));
        // Make everything dirty: nothing can be evicted, a read bypasses, a write waits.
        for b in [0, 6] {
            write(&mut s, b, now);
        }
        if let Some(e) = s.entries.get(&9) {
            let id = e.versions[0].id;
            s.fill_done(9, id, BlockTag::Absent, false, None, now);
        }
        write(&mut s, 9, now);
        assert_eq!(s.plan_read(11, now), ReadPlan::Bypass);
        assert_eq!(s.plan_write(12, now), WritePlan::Wait);
    }

    #[test]
    fn idle_clean_blocks_expire() {
        let now = Instant::now();
        let mut s = State::new(4, 0);
        if let ReadPlan::Fill { id, .. } = s.plan_read(3, now) {
            s.fill_done(3, id, BlockTag::Absent, false, None, now);
        }
        assert!(s.evict_idle(now).is_empty());
        let freed = s.evict_idle(now + Duration::from_secs(1));
        assert_eq!(freed.len(), 1);
        assert_eq!(s.used(), 1, "not free until the caller has cleared it");
        s.return_slots(&freed);
        assert_eq!(s.used(), 0);
    }
}

/// A randomized scheduler over the state machine (the cache's concurrency, without threads):
/// writers, uploaders with several uploads in flight (some failing), readers, FLUSHes and
/// evictions interleave in random orders, against a model. Checked at every step: reads see the
/// newest write; no slot belongs to two live versions; an upload of epoch `e` starts only when
/// every version of an earlier epoch is stored (flush order); and after draining, the store holds
/// the newest write of every block (no lost write) and nothing is left dirty (no deadlock: the
/// queue always drains).
#[cfg(test)]
mod model {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, HashSet};

    #[derive(Clone, Debug)]
    enum Step {
        /// Plan a write of block (index) with a fresh value; committed by a later `Commit`.
        PlanWrite(u8),
        Commit,
        Read(u8),
        StartUpload,
        FinishUpload {
            index: u8,
            fail: bool,
        },
        Flush,
        Evict,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0..6u8).prop_map(Step::PlanWrite),
            4 => Just(Step::Commit),
            2 => (0..6u8).prop_map(Step::Read),
            3 => Just(Step::StartUpload),
            3 => (any::<u8>(), prop::bool::weighted(0.2)).prop_map(|(index, fail)| Step::FinishUpload { index, fail }),
            1 => Just(Step::Flush),
            1 => Just(Step::Evict),
        ]
    }

    struct World {
        s: State,
        now: Instant,
        /// Slot contents (the data a version holds): value written.
        slots: BTreeMap<u32, u64>,
        /// Newest committed value per block (what reads must see).
        newest: BTreeMap<BlockNum, u64>,
        /// Planned, not yet committed: (block, slot, id, value).
        planned: Option<(BlockNum, u32, u64, u64)>,
        /// In flight: the upload and the value it carries.
        in_flight: Vec<(Upload, u64)>,
        /// The store: block → value.
        store: BTreeMap<BlockNum, u64>,
        /// Slots freed by the state, waiting to be "cleared" and returned.
        to_return: Vec<u32>,
        next_value: u64,
    }

    impl World {
        fn check_slots(&self) {
            let mut seen = HashSet::new();
            for v in self.s.entries.values().flat_map(|e| e.versions.iter()) {
                assert!(seen.insert(v.slot), "slot {} held by two versions", v.slot);
            }
            for s in &self.s.free_slots {
                assert!(!seen.contains(s), "slot {s} both free and used");
            }
        }

        fn pending_before(&self, epoch: u64) -> bool {
            self.s
                .entries
                .values()
                .flat_map(|e| e.versions.iter())
                .any(|v| v.epoch < epoch && matches!(v.state, VState::Dirty | VState::Uploading))
        }

        fn apply(&mut self, step: &Step) {
            match *step {
                Step::PlanWrite(b) if self.planned.is_none() => {
                    let b = BlockNum::from(b);
                    if let WritePlan::Slot { slot, id } = self.s.plan_write(b, self.now) {
                        self.next_value += 1;
                        self.planned = Some((b, slot, id, self.next_value));
                    }
                }
                Step::Commit => {
                    if let Some((b, slot, id, value)) = self.planned.take() {
                        self.slots.insert(slot, value);
                        self.s.commit_write(b, id, false, None, self.now, self.now);
                        self.newest.insert(b, value);
                    }
                }
                Step::Read(b) => {
                    let b = BlockNum::from(b);
                    match self.s.plan_read(b, self.now) {
                        ReadPlan::Hit { slot, .. } => {
                            assert_eq!(
                                self.slots.get(&slot),
                                self.newest.get(&b),
                                "read of block {b}"
                            );
                            self.s.unpin(b, self.now);
                        }
                        ReadPlan::Fill { id, slot } => {
                            // A miss reads the store.
                            assert_eq!(
                                self.store.get(&b),
                                self.newest.get(&b),
                                "miss of block {b}"
                            );
                            if let Some(&v) = self.store.get(&b) {
                                self.slots.insert(slot, v);
                            }
                            let zero = !self.store.contains_key(&b);
                            self.s
                                .fill_done(b, id, BlockTag::Unknown, zero, None, self.now);
                        }
                        ReadPlan::Zero => assert_eq!(self.newest.get(&b), None),
                        ReadPlan::Bypass => assert_eq!(self.store.get(&b), self.newest.get(&b)),
                        ReadPlan::Wait => {}
                    }
                }
                Step::StartUpload => {
                    if let Ok(ups) = self.s.next_uploads(self.now, 4) {
                        for u in ups {
                            assert!(
                                !self.pending_before(u.epoch),
                                "epoch {} upload started while an earlier one is pending",
                                u.epoch
                            );
                            let value = self.slots[&u.slot];
                            self.in_flight.push((u, value));
                        }
                    }
                }
                Step::FinishUpload { index, fail } => {
                    if self.in_flight.is_empty() {
                        return;
                    }
                    let (u, value) = self.in_flight.remove(index as usize % self.in_flight.len());
                    if fail {
                        self.s.finish_upload(&u, Err(()), self.now);
                    } else {
                        self.store.insert(u.block, value);
                        let (freed, _) = self.s.finish_upload(&u, Ok(BlockTag::Unknown), self.now);
                        self.to_return.extend(freed);
                    }
                }
                Step::Flush => {
                    let e = self.s.close_epoch();
                    self.s.urgent_through = e;
                }
                Step::Evict => {
                    let freed = self
                        .s
                        .evict_idle(self.now + std::time::Duration::from_secs(1));
                    self.to_return.extend(freed);
                }
                Step::PlanWrite(_) => {}
            }
            // Clearing a freed slot happens "later": return them now and then.
            if self.to_return.len() > 1 {
                let slots = std::mem::take(&mut self.to_return);
                for s in &slots {
                    self.slots.remove(s);
                }
                self.s.return_slots(&slots);
            }
            self.check_slots();
        }

        /// Commits what is planned, then uploads everything.
        fn drain(&mut self) {
            self.apply(&Step::Commit);
            for (u, value) in std::mem::take(&mut self.in_flight) {
                self.store.insert(u.block, value);
                let (freed, _) = self.s.finish_upload(&u, Ok(BlockTag::Unknown), self.now);
                self.to_return.extend(freed);
            }
            let e = self.s.close_epoch();
            self.s.urgent_through = e;
            for _ in 0..10_000 {
                match self.s.next_uploads(self.now, 4) {
                    Ok(ups) => {
                        for u in ups {
                            assert!(!self.pending_before(u.epoch));
                            let value = self.slots[&u.slot];
                            self.store.insert(u.block, value);
                            let (freed, _) =
                                self.s.finish_upload(&u, Ok(BlockTag::Unknown), self.now);
                            self.to_return.extend(freed);
                        }
                    }
                    Err(_) => break,
                }
            }
            assert_eq!(self.s.dirty, 0, "the queue drains");
            assert_eq!(
                self.store, self.newest,
                "every block's newest write is stored"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn interleavings_keep_the_invariants(steps in proptest::collection::vec(step(), 1..120), capacity in 3u32..8) {
            let now = Instant::now();
            let mut w = World {
                s: State::new(capacity, 2),
                now,
                slots: BTreeMap::new(),
                newest: BTreeMap::new(),
                planned: None,
                in_flight: Vec::new(),
                store: BTreeMap::new(),
                to_return: Vec::new(),
                next_value: 0,
            };
            for step in &steps {
                w.apply(step);
            }
            w.drain();
        }
    }
}
