//! Block codec: what happens to a block's bytes between the disk and its object.
//!
//! ```text
//!  write:  data (block_size bytes)
//!            │ compress            zlib stream (RFC 1950, like compress2)  or  one zstd frame
//!            ▼                     (content size recorded)
//!          compressed
//!            │ encrypt (optional)  AES-CBC, key = key[0..natural], IV = IV(block), PKCS#7
//!            ▼
//!          body ─────────────────► object body; Content-MD5 / ETag are over this
//!            │ HMAC (when encrypted)
//!            ▼
//!          HMAC-SHA1(key[0..keylen], "%08x"(block) ‖ "AES-128-CBC" ‖ body)
//!
//!  headers:  Content-Encoding: deflate | zstd | deflate, encrypt-AES-128-CBC | zstd, encrypt-…
//!            (none when neither compressed nor encrypted: the body is the block)
//!            x-amz-meta-s3backer-hmac: "<40 lowercase hex>"   (double quotes included; encrypted only)
//!
//!  keys:     key   = PBKDF2-HMAC-SHA1(password, "<bucket>/<prefix>", 5000, keylen)
//!            ivkey = PBKDF2-HMAC-SHA1(key, key, 5000, keylen)
//!            IV(b) = AES-CBC(key = ivkey[0..natural], IV = ivkey[0..16], no padding)
//!                        of the 16 bytes "%08x"(b) ‖ 8 × 0x00
//!
//!  read:     Content-Encoding (or --defaultContentEncoding when absent) split on ',', trimmed,
//!            layers undone last to first: encrypt-<CIPHER> (verify the HMAC first, then
//!            decrypt), then deflate | zstd (into at most block_size bytes, always the last one
//!            undone); the result must be exactly block_size bytes.
//! ```
//!
//! Encryption implies compression (deflate at the default level if none is chosen). A bucket may
//! mix plain, deflate and zstd blocks: compression can be toggled between mounts. Encryption
//! cannot: with `--encrypt` every block must carry the `encrypt-` layer, without it none may.
//!
//! Deflate output never exceeds zlib's `compressBound`: zlib-rs' level 1 can expand random data
//! by up to 1/8 (static Huffman codes only), and the original's readers refuse bodies above
//! `compressBound + 16`, so such a block is stored (level 0) instead. Compressed bytes differ from
//! C zlib's; only the decoded data is comparable.
//!
//! Cost (`bench/codec-speed.sh`): the AES key schedules and the keyed HMAC state are built once
//! in [`Encryption::derive`]; compressor contexts are made per block (reusing them gained under
//! 5 %, below the noise, and would pin megabytes of zstd/zlib state per I/O thread).

mod compress;
mod crypto;
mod error;
#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use crypto::{Cipher, Encryption};
pub use error::CodecError;

use crypto::AES_BLOCK;

/// A compression algorithm and its level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// zlib stream (`Content-Encoding: deflate`); level -1 (= 6, the default) or 0..=9.
    Deflate {
        /// zlib level.
        level: i32,
    },
    /// zstd frame (`Content-Encoding: zstd`); default level 3.
    Zstd {
        /// zstd level (0 = zstd's default).
        level: i32,
    },
}

impl Compression {
    /// Deflate at zlib's default level (-1 ≙ 6): what encryption uses when no compression is
    /// configured.
    pub const DEFAULT_DEFLATE: Compression = Compression::Deflate { level: -1 };
    /// zstd at its default level (3).
    pub const DEFAULT_ZSTD: Compression = Compression::Zstd { level: 3 };

    /// The `Content-Encoding` token: `deflate` or `zstd`.
    pub fn name(&self) -> &'static str {
        match self {
            Compression::Deflate { .. } => "deflate",
            Compression::Zstd { .. } => "zstd",
        }
    }
}

impl Default for Compression {
    fn default() -> Self {
        Compression::DEFAULT_DEFLATE
    }
}

/// One encoded block, ready to PUT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedBlock {
    /// The object body.
    pub body: Vec<u8>,
    /// `Content-Encoding` header value; `None` for a plain block.
    pub content_encoding: Option<String>,
    /// `x-amz-meta-s3backer-hmac` header value **with** the double quotes
    /// (`"\"<40 hex>\""`); `None` unless encrypted.
    pub hmac: Option<String>,
}

/// Encodes and decodes blocks. `Send + Sync`; `Clone` is cheap (the keys are shared), so one codec
/// can serve every I/O thread.
#[derive(Debug, Clone)]
pub struct BlockCodec {
    block_size: u32,
    compression: Option<Compression>,
    encryption: Option<Arc<Encryption>>,
    default_content_encoding: Option<String>,
    /// `Content-Encoding` written by [`BlockCodec::encode`].
    content_encoding: Option<String>,
}

/// How the decoder treats a layer token.
enum Layer<'a> {
    Encrypt(&'a str),
    Deflate,
    Zstd,
}

fn parse_layer(token: &str) -> Result<Layer<'_>, CodecError> {
    const ENCRYPT: &str = "encrypt-";
    if token.len() >= ENCRYPT.len()
        && token.is_char_boundary(ENCRYPT.len())
        && token[..ENCRYPT.len()].eq_ignore_ascii_case(ENCRYPT)
    {
        Ok(Layer::Encrypt(&token[ENCRYPT.len()..]))
    } else if token.eq_ignore_ascii_case("deflate") {
        Ok(Layer::Deflate)
    } else if token.eq_ignore_ascii_case("zstd") {
        Ok(Layer::Zstd)
    } else {
        Err(CodecError::UnknownEncoding(token.to_owned()))
    }
}

impl BlockCodec {
    /// A codec for blocks of `block_size` bytes.
    ///
    /// `compression: None` with `encryption: Some` means deflate at the default level (encryption
    /// implies compression). `default_content_encoding` (`--defaultContentEncoding`) is applied
    /// on read to objects without a `Content-Encoding`; an empty string counts as none.
    ///
    /// Levels and the block size (a multiple of 16 when encrypting) are validated by the config
    /// crate; an out-of-range deflate level falls back to the default (negative) or 9.
    pub fn new(
        block_size: u32,
        compression: Option<Compression>,
        encryption: Option<Encryption>,
        default_content_encoding: Option<String>,
    ) -> BlockCodec {
        let compression = match (&compression, &encryption) {
            (None, Some(_)) => Some(Compression::DEFAULT_DEFLATE),
            _ => compression,
        };
        let content_encoding = compression.map(|c| match &encryption {
            Some(e) => format!("{}, encrypt-{}", c.name(), e.cipher().name()),
            None => c.name().to_owned(),
        });
        BlockCodec {
            block_size,
            compression,
            encryption: encryption.map(Arc::new),
            default_content_encoding: default_content_encoding.filter(|s| !s.trim().is_empty()),
            content_encoding,
        }
    }

    /// True if encoding does nothing (no compression, no encryption): the body is the block.
    pub fn is_identity(&self) -> bool {
        self.compression.is_none() && self.encryption.is_none()
    }

    /// True if blocks are encrypted.
    pub fn encrypted(&self) -> bool {
        self.encryption.is_some()
    }

    /// The block size this codec was made for.
    pub fn block_size(&self) -> u32 {
        self.block_size
    }

    /// The block size as a length.
    fn bs(&self) -> usize {
        self.block_size as usize
    }

    /// The effective compression (`Some` whenever encrypting).
    pub fn compression(&self) -> Option<Compression> {
        self.compression
    }

    /// Whether [`BlockCodec::encode`] would return the block unchanged, with no header: the
    /// object layer then sends the caller's buffer itself (no copy).
    pub fn is_plain(&self) -> bool {
        self.compression.is_none() && self.encryption.is_none() && self.content_encoding.is_none()
    }

    /// Whether part of a block can be fetched as that part of its object (a ranged GET): plain
    /// blocks, with no default content encoding to apply to a header-less object. The caller
    /// still checks the answer carries no `Content-Encoding` (another writer may have
    /// compressed that block).
    pub fn reads_ranges(&self) -> bool {
        self.is_plain() && self.default_content_encoding.is_none()
    }

    /// Encodes one block (`data` must be exactly `block_size` bytes, else
    /// [`CodecError::WrongLength`]): compress, encrypt, HMAC. `content_encoding` is
    /// `deflate`, `zstd` or e.g. `deflate, encrypt-AES-128-CBC`; `None` for the identity codec,
    /// whose body is a copy of `data`.
    pub fn encode(&self, block: u32, data: &[u8]) -> Result<EncodedBlock, CodecError> {
        if data.len() != self.bs() {
            return Err(CodecError::WrongLength {
                got: data.len(),
                expected: self.bs(),
            });
        }
        let spare = if self.encryption.is_some() {
            AES_BLOCK
        } else {
            0
        };
        let mut body = match self.compression {
            None => data.to_vec(),
            Some(Compression::Deflate { level }) => compress::deflate(data, level, spare)?,
            Some(Compression::Zstd { level }) => compress::zstd_compress(data, level, spare)?,
        };
        let hmac = match &self.encryption {
            None => None,
            Some(enc) => {
                enc.encrypt_in_place(block, &mut body);
                Some(enc.hmac_header(block, &body))
            }
        };
        Ok(EncodedBlock {
            body,
            content_encoding: self.content_encoding.clone(),
            hmac,
        })
    }

    /// Decodes one object back into its block of `block_size` bytes, undoing whatever encoding
    /// it carries.
    ///
    /// `content_encoding` `None` or empty ⇒ the configured default content encoding, else plain.
    /// The value is split on `,`, each token trimmed, and layers undone last to first:
    /// `encrypt-<X>` (prefix case-insensitive; needs encryption configured, `X` must be our
    /// cipher's canonical name in any case, and `hmac` must be `"` + 40 hex + `"` and verify
    /// before anything is decrypted), then `deflate` / `zstd` (case-insensitive, into at most
    /// `block_size` bytes, and always the last layer undone). Unknown layers, a missing `encrypt-`
    /// layer while encrypting, and a result that is not exactly `block_size` bytes are errors.
    pub fn decode(
        &self,
        block: u32,
        body: Vec<u8>,
        content_encoding: Option<&str>,
        hmac: Option<&str>,
    ) -> Result<Vec<u8>, CodecError> {
        let encoding = content_encoding
            .filter(|s| !s.trim().is_empty())
            .or(self.default_content_encoding.as_deref());
        let layers = match encoding {
            None => Vec::new(),
            Some(e) => e
                .split(',')
                .map(|t| {
                    let t = t.trim();
                    parse_layer(t).map(|l| (t, l))
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        let encoding = encoding.unwrap_or_default();
        let has_encrypt = layers.iter().any(|(_, l)| matches!(l, Layer::Encrypt(_)));
        match &self.encryption {
            Some(_) if !has_encrypt => return Err(CodecError::NotEncrypted),
            None if has_encrypt => {
                return Err(CodecError::EncryptedWithoutKey(encoding.to_owned()));
            }
            _ => {}
        }

        // Structure first, before any work: read last to first, an optional `encrypt-` layer,
        // then an optional compression layer, nothing else.
        let mut cipher_name = None;
        let mut decompress = None;
        for (i, (token, layer)) in layers.iter().rev().enumerate() {
            match layer {
                Layer::Encrypt(name) if i == 0 => cipher_name = Some(*name),
                Layer::Deflate | Layer::Zstd if decompress.is_none() => decompress = Some(layer),
                _ => {
                    return Err(CodecError::UnexpectedLayer {
                        layer: (*token).to_owned(),
                        encoding: encoding.to_owned(),
                    });
                }
            }
        }

        let mut data = body;
        if let Some(name) = cipher_name {
            let Some(enc) = &self.encryption else {
                return Err(CodecError::EncryptedWithoutKey(encoding.to_owned()));
            };
            if !name.eq_ignore_ascii_case(enc.cipher().name()) {
                return Err(CodecError::WrongCipher {
                    stored: name.to_owned(),
                    configured: enc.cipher().name(),
                });
            }
            enc.verify(block, &data, hmac)?;
            enc.decrypt_in_place(block, &mut data)?;
        }
        match decompress {
            Some(Layer::Deflate) => data = compress::inflate(&data, self.bs())?,
            Some(Layer::Zstd) => data = compress::zstd_decompress(&data, self.bs())?,
            _ => {}
        }
        if data.len() != self.bs() {
            return Err(CodecError::WrongLength {
                got: data.len(),
                expected: self.bs(),
            });
        }
        Ok(data)
    }

    /// The GET `Accept-Encoding` value: `deflate, zstd`, plus `, encrypt-<CIPHER>` when
    /// encrypting.
    pub fn accept_encoding(&self) -> String {
        match &self.encryption {
            Some(e) => format!("deflate, zstd, encrypt-{}", e.cipher().name()),
            None => "deflate, zstd".to_owned(),
        }
    }

    /// The largest body a GET may return for one block: the larger of zlib's `compressBound` and
    /// zstd's bound for `block_size`, + 16 (as the original allows), + one cipher block of
    /// padding. Anything larger cannot be a block we wrote.
    pub fn max_encoded_len(&self) -> usize {
        let n = self.bs();
        compress::zlib_bound(n).max(compress::zstd_bound(n)) + 16 + AES_BLOCK
    }
}
