//! s3backer's on-bucket format as pure functions: object names, metadata headers, the mount
//! token object. No I/O here, so all of it is unit-tested and fuzzable.

pub mod keys;
pub mod meta;
pub mod zero_map;

/// True when every byte of `data` is zero. All-zero blocks are never stored (a zero write
/// deletes the object), so this runs on every block written; it compares eight bytes at a time.
pub fn is_zero(data: &[u8]) -> bool {
    // OR-folding fixed 64-byte chunks lets the compiler vectorize; checking once per chunk
    // rejects a non-zero block early.
    let chunks = data.chunks_exact(64);
    let tail = chunks.remainder();
    for chunk in chunks {
        if chunk.iter().fold(0u8, |acc, &b| acc | b) != 0 {
            return false;
        }
    }
    tail.iter().all(|&b| b == 0)
}

#[cfg(test)]
mod tests {
    use super::is_zero;

    #[test]
    fn zero_detection() {
        assert!(is_zero(&[]));
        assert!(is_zero(&[0; 4096]));
        for pos in [0, 7, 8, 4095, 4090] {
            let mut b = vec![0u8; 4096];
            b[pos] = 1;
            assert!(!is_zero(&b), "{pos}");
        }
        let mut odd = vec![0u8; 13];
        assert!(is_zero(&odd));
        odd[12] = 9;
        assert!(!is_zero(&odd));
    }
}
