//! A fixed-size bitmap of atomic words: one bit per block, readable and writable from many
//! threads without a lock. 4 Mi blocks (1 TiB of 256 KiB blocks) take 512 KiB.

use std::sync::atomic::{AtomicU64, Ordering};

/// One bit per block.
#[derive(Debug)]
pub struct AtomicBitmap {
    words: Box<[AtomicU64]>,
    len: u32,
}

impl AtomicBitmap {
    /// `len` bits, all clear.
    pub fn new(len: u32) -> Self {
        let words = (len as usize).div_ceil(64);
        AtomicBitmap {
            words: (0..words).map(|_| AtomicU64::new(0)).collect(),
            len,
        }
    }

    /// Number of bits.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// True when the bitmap has no bits at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn at(bit: u32) -> (usize, u64) {
        ((bit / 64) as usize, 1u64 << (bit % 64))
    }

    /// Bit `bit`.
    pub fn get(&self, bit: u32) -> bool {
        let (w, m) = Self::at(bit);
        self.words[w].load(Ordering::Acquire) & m != 0
    }

    /// Sets bit `bit`.
    pub fn set(&self, bit: u32) {
        let (w, m) = Self::at(bit);
        self.words[w].fetch_or(m, Ordering::AcqRel);
    }

    /// Clears bit `bit`; returns whether it was set.
    pub fn clear(&self, bit: u32) -> bool {
        let (w, m) = Self::at(bit);
        self.words[w].fetch_and(!m, Ordering::AcqRel) & m != 0
    }

    /// Sets every bit.
    pub fn set_all(&self) {
        for (i, w) in self.words.iter().enumerate() {
            w.store(self.word_mask(i), Ordering::Release);
        }
    }

    /// The bits of word `i` that are inside the bitmap.
    fn word_mask(&self, i: usize) -> u64 {
        let bits_before = i as u64 * 64;
        let remaining = u64::from(self.len).saturating_sub(bits_before);
        if remaining >= 64 {
            u64::MAX
        } else {
            (1u64 << remaining) - 1
        }
    }

    /// Number of set bits.
    pub fn count_ones(&self) -> u64 {
        self.words
            .iter()
            .map(|w| u64::from(w.load(Ordering::Acquire).count_ones()))
            .sum()
    }

    /// Every set bit, in order (a snapshot; bits changing meanwhile may or may not be seen).
    pub fn ones(&self) -> impl Iterator<Item = u32> + '_ {
        self.words.iter().enumerate().flat_map(|(i, w)| {
            let mut word = w.load(Ordering::Acquire);
            std::iter::from_fn(move || {
                if word == 0 {
                    return None;
                }
                let bit = word.trailing_zeros();
                word &= word - 1;
                Some(i as u32 * 64 + bit)
            })
        })
    }

    /// The bits as little-endian bytes (`len.div_ceil(8)` of them).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out: Vec<u8> = self
            .words
            .iter()
            .flat_map(|w| w.load(Ordering::Acquire).to_le_bytes())
            .collect();
        out.truncate((self.len as usize).div_ceil(8));
        out
    }

    /// A bitmap of `len` bits from [`AtomicBitmap::to_bytes`] output; `None` if the length is
    /// wrong or bits beyond `len` are set.
    pub fn from_bytes(len: u32, bytes: &[u8]) -> Option<AtomicBitmap> {
        if bytes.len() != (len as usize).div_ceil(8) {
            return None;
        }
        let map = AtomicBitmap::new(len);
        for (i, chunk) in bytes.chunks(8).enumerate() {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            let word = u64::from_le_bytes(word);
            if word & !map.word_mask(i) != 0 {
                return None;
            }
            map.words[i].store(word, Ordering::Release);
        }
        Some(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits() {
        let b = AtomicBitmap::new(130);
        assert!(!b.get(129));
        b.set(129);
        b.set(0);
        b.set(64);
        assert!(b.get(129) && b.get(0) && b.get(64));
        assert_eq!(b.ones().collect::<Vec<_>>(), vec![0, 64, 129]);
        assert!(b.clear(64));
        assert!(!b.clear(64));
        assert_eq!(b.count_ones(), 2);
        b.set_all();
        assert_eq!(b.count_ones(), 130, "no bits beyond len");
    }

    #[test]
    fn bytes_round_trip() {
        let b = AtomicBitmap::new(70);
        for i in [1, 8, 63, 64, 69] {
            b.set(i);
        }
        let bytes = b.to_bytes();
        assert_eq!(bytes.len(), 9);
        let c = AtomicBitmap::from_bytes(70, &bytes).expect("valid");
        assert_eq!(c.ones().collect::<Vec<_>>(), vec![1, 8, 63, 64, 69]);
        assert!(AtomicBitmap::from_bytes(71, &bytes).is_some());
        assert!(
            AtomicBitmap::from_bytes(80, &bytes).is_none(),
            "wrong length"
        );
        let mut bad = bytes.clone();
        bad[8] |= 0x80;
        assert!(
            AtomicBitmap::from_bytes(70, &bad).is_none(),
            "bit beyond len"
        );
    }
}
