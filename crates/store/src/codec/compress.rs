//! Compression layer: zlib streams (`deflate`) and zstd frames (`zstd`).

use flate2::{Compress, Decompress, FlushCompress, FlushDecompress, Status};

use super::CodecError;

/// zlib's `compressBound`: the largest zlib stream `compress2` produces for `n` input bytes.
pub(crate) fn zlib_bound(n: usize) -> usize {
    n + (n >> 12) + (n >> 14) + (n >> 25) + 13
}

/// zstd's `ZSTD_COMPRESSBOUND`: the largest frame `ZSTD_compress` produces for `n` input bytes.
pub(crate) fn zstd_bound(n: usize) -> usize {
    const LIMIT: usize = 128 << 10;
    n + (n >> 8) + if n < LIMIT { (LIMIT - n) >> 11 } else { 0 }
}

/// Maps a zlib level (-1 = default, 0..=9) to flate2's; out-of-range values (the config crate
/// rejects them) fall back to the default or to 9.
fn deflate_level(level: i32) -> flate2::Compression {
    match u32::try_from(level) {
        Ok(l) => flate2::Compression::new(l.min(9)),
        Err(_) => flate2::Compression::default(),
    }
}

/// A zlib stream (RFC 1950, like zlib's `compress2`) of `data`, in a `Vec` with at least
/// `spare` bytes of capacity left over (room for the cipher's padding). Never longer than
/// [`zlib_bound`] of the input.
pub(crate) fn deflate(data: &[u8], level: i32, spare: usize) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(zlib_bound(data.len()) + spare);
    let mut c = Compress::new(deflate_level(level), true);
    loop {
        let consumed = usize::try_from(c.total_in()).unwrap_or(usize::MAX);
        let input = data.get(consumed..).unwrap_or_default();
        match c.compress_vec(input, &mut out, FlushCompress::Finish) {
            // zlib-rs' level 1 ("quick", static Huffman codes only) can expand incompressible
            // data by up to 1/8, past compressBound, which C zlib never does and which the
            // original's readers reject (GET limit compressBound + 16). Store such a block
            // instead: level 0 always fits the bound.
            Ok(Status::StreamEnd) if out.len() > zlib_bound(data.len()) && level != 0 => {
                return deflate(data, 0, spare);
            }
            Ok(Status::StreamEnd) => return Ok(out),
            // Only if compressBound was not enough (never for zlib): make room and go on.
            Ok(Status::Ok | Status::BufError) => out.reserve(out.capacity().max(64)),
            Err(e) => return Err(CodecError::Compress(e.to_string())),
        }
    }
}

/// Decodes a zlib stream into at most `max` bytes. Rejects a stream that inflates to more than
/// `max` bytes, a truncated stream and bytes after the stream's end.
pub(crate) fn inflate(body: &[u8], max: usize) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(max);
    let mut d = Decompress::new(true);
    let status = d
        .decompress_vec(body, &mut out, FlushDecompress::Finish)
        .map_err(|e| CodecError::Decompress(format!("invalid zlib stream: {e}")))?;
    if out.len() > max {
        return Err(CodecError::Decompress(format!(
            "zlib stream inflates to more than {max} bytes"
        )));
    }
    match status {
        Status::StreamEnd => {
            let consumed = usize::try_from(d.total_in()).unwrap_or(usize::MAX);
            if consumed != body.len() {
                return Err(CodecError::Decompress(format!(
                    "{} bytes of garbage after the zlib stream",
                    body.len().saturating_sub(consumed)
                )));
            }
            Ok(out)
        }
        Status::Ok | Status::BufError if out.len() >= max => Err(CodecError::Decompress(format!(
            "zlib stream inflates to more than {max} bytes"
        ))),
        Status::Ok | Status::BufError => {
            Err(CodecError::Decompress("truncated zlib stream".to_owned()))
        }
    }
}

/// One zstd frame (content size recorded, like `ZSTD_compress`) of `data`, in a `Vec` with at
/// least `spare` bytes of capacity left over.
pub(crate) fn zstd_compress(data: &[u8], level: i32, spare: usize) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(zstd_bound(data.len()) + spare);
    let mut c =
        zstd::bulk::Compressor::new(level).map_err(|e| CodecError::Compress(e.to_string()))?;
    c.compress_to_buffer(data, &mut out)
        .map_err(|e| CodecError::Compress(e.to_string()))?;
    Ok(out)
}

/// Decodes zstd frames into at most `max` bytes (an error if they hold more).
pub(crate) fn zstd_decompress(body: &[u8], max: usize) -> Result<Vec<u8>, CodecError> {
    zstd::bulk::decompress(body, max).map_err(|e| CodecError::Decompress(format!("zstd: {e}")))
}
