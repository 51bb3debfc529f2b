//! Random numbers from the kernel (mount tokens, temporary file names, test delays).

/// A random u32 from `getrandom(2)`; falls back to time and pid mixing if the call fails
/// (it cannot on Linux ≥ 3.17 once the pool is initialized).
pub fn random_u32() -> u32 {
    let mut buf = [0u8; 4];
    // SAFETY: buf is valid for 4 writable bytes.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n == 4 {
        return u32::from_ne_bytes(buf);
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
        .unwrap_or(0);
    nanos ^ std::process::id().rotate_left(16)
}
