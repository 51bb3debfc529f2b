//! The block codec's decoder (decompression, decryption, HMAC) on arbitrary objects, and
//! encode → decode round trips.
//!
//! Input: `SEL BLOCK[4] CONTENT-ENCODING \0 HMAC \0 BODY`.
//! * `SEL` picks the codec: bits 0-1 compression (none, deflate, zstd, deflate level 1),
//!   bits 2-3 encryption (none, AES-128/192/256-CBC with a fixed password), bits 4-5 the block
//!   size (16, 512, 4096, 1024), bits 6-7 `--defaultContentEncoding` (none, `deflate`,
//!   `zstd`, blank).
//! * `BLOCK`: the block number (little-endian).
//! * `CONTENT-ENCODING`: empty = header absent, `\x01` = present but empty, else the value.
//! * `HMAC`: empty = header absent, else the value.
//!
//! Properties:
//! 1. `decode` never panics and any `Ok` is exactly `block_size` bytes.
//! 2. Round trip: a block made from BODY (repeated or cut to `block_size`) encodes to a body
//!    of at most `max_encoded_len()` bytes that decodes back to the block, also with the
//!    header's case changed.
//! 3. With encryption, the decoder refuses the encoded body after any one-byte change (at a
//!    position taken from the input), under another block number, without or with a changed
//!    HMAC header, and through a codec without the key; a codec with encryption refuses an
//!    unencrypted body.
#![no_main]

mod common;

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use s3backer_store::codec::{BlockCodec, Cipher, Compression, Encryption};

const PASSWORD: &[u8] = b"fuzz-password";

/// Keys derived once per cipher (PBKDF2 with 2 × 5000 rounds is slow).
fn encryption(i: usize) -> Encryption {
    static KEYS: OnceLock<[Encryption; 3]> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        [Cipher::Aes128Cbc, Cipher::Aes192Cbc, Cipher::Aes256Cbc]
            .map(|c| Encryption::derive(c, PASSWORD, "bucket", "disk/", None).expect("derive"))
    });
    keys[i].clone()
}

fn codec(sel: u8) -> BlockCodec {
    let compression = match sel & 3 {
        0 => None,
        1 => Some(Compression::DEFAULT_DEFLATE),
        2 => Some(Compression::DEFAULT_ZSTD),
        _ => Some(Compression::Deflate { level: 1 }),
    };
    let enc = match (sel >> 2) & 3 {
        0 => None,
        n => Some(encryption(usize::from(n - 1))),
    };
    let block_size = [16, 512, 4096, 1024][usize::from((sel >> 4) & 3)];
    let default_ce = match sel >> 6 {
        0 => None,
        1 => Some("deflate".to_owned()),
        2 => Some("zstd".to_owned()),
        _ => Some(" ".to_owned()),
    };
    BlockCodec::new(block_size, compression, enc, default_ce)
}

/// Splits at the first NUL: (before, after); no NUL: (all, empty).
fn field(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

fn swap_case(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_lowercase() {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 5 {
        return;
    }
    let sel = data[0];
    let block = u32::from_le_bytes([data[1], data[2], data[3], data[4]]);
    let (ce_raw, rest) = field(&data[5..]);
    let (hmac_raw, body) = field(rest);
    let ce_text = String::from_utf8_lossy(ce_raw);
    let ce: Option<&str> = match ce_raw {
        [] => None,
        [1] => Some(""),
        _ => Some(&ce_text),
    };
    let hmac_text = String::from_utf8_lossy(hmac_raw);
    let hmac = (!hmac_raw.is_empty()).then_some(&*hmac_text);

    let codec = codec(sel);
    let bs = codec.block_size() as usize;

    // 1. Arbitrary objects.
    if let Ok(d) = codec.decode(block, body.to_vec(), ce, hmac) {
        assert_eq!(
            d.len(),
            bs,
            "decode returned {} bytes, not a block",
            d.len()
        );
    }

    // 2. Round trip of a block made from the body.
    let block_data: Vec<u8> = if body.is_empty() {
        vec![0; bs]
    } else {
        body.iter().copied().cycle().take(bs).collect()
    };
    let enc = codec
        .encode(block, &block_data)
        .expect("encode a whole block");
    assert!(
        enc.body.len() <= codec.max_encoded_len(),
        "encoded body of {} bytes exceeds max_encoded_len {}",
        enc.body.len(),
        codec.max_encoded_len()
    );
    assert_eq!(enc.hmac.is_some(), codec.encrypted());
    assert_eq!(enc.content_encoding.is_none(), codec.is_identity());
    let ce_enc = enc.content_encoding.as_deref();
    let default_applies = ce_enc.is_none() && sel >> 6 != 0 && sel >> 6 != 3;
    if !default_applies {
        let back = codec
            .decode(block, enc.body.clone(), ce_enc, enc.hmac.as_deref())
            .expect("decode what encode made");
        assert!(back == block_data, "round trip changed the block");
    }
    if let Some(ce) = ce_enc {
        let swapped = swap_case(ce);
        let back = codec
            .decode(block, enc.body.clone(), Some(&swapped), enc.hmac.as_deref())
            .expect("Content-Encoding is case-insensitive");
        assert!(
            back == block_data,
            "round trip (header case swapped) changed the block"
        );
    }

    // 3. Encrypted bodies do not decode after tampering.
    if let Some(h) = enc.hmac.as_deref() {
        let refused = |b: u32, body: Vec<u8>, hmac: Option<&str>, what: &str| {
            let r = codec.decode(b, body, ce_enc, hmac);
            assert!(r.is_err(), "encrypted block decoded despite {what}");
        };
        let mut flipped = enc.body.clone();
        let at = usize::from(u16::from_le_bytes([data[1], data[2]])) % flipped.len();
        flipped[at] ^= data[3] | 1;
        refused(block, flipped, Some(h), "a changed body byte");
        refused(
            block.wrapping_add(1),
            enc.body.clone(),
            Some(h),
            "another block number",
        );
        refused(block, enc.body.clone(), None, "no HMAC header");
        let mut bad = h.to_owned().into_bytes();
        let i = 1 + usize::from(data[4]) % 40;
        bad[i] = if bad[i] == b'0' { b'1' } else { b'0' };
        let bad = String::from_utf8(bad).expect("hex stays ASCII");
        refused(block, enc.body.clone(), Some(&bad), "a changed HMAC");
        let keyless = BlockCodec::new(codec.block_size(), codec.compression(), None, None);
        assert!(
            keyless
                .decode(block, enc.body.clone(), ce_enc, Some(h))
                .is_err(),
            "encrypted block decoded without the key"
        );
        let plain = keyless
            .encode(block, &block_data)
            .expect("encode a whole block");
        assert!(
            codec
                .decode(
                    block,
                    plain.body,
                    plain.content_encoding.as_deref(),
                    plain.hmac.as_deref()
                )
                .is_err(),
            "an encrypting codec accepted an unencrypted block"
        );
    }
});
