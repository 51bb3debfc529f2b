//! Encryption layer: OpenSSL-compatible key derivation, per-block IVs, AES-CBC with PKCS#7 and the
//! HMAC-SHA1 over each block's ciphertext.

use core::fmt;

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::consts::U16;
use aes::cipher::{
    Block, BlockCipherDecrypt, BlockCipherEncrypt, BlockModeDecrypt, BlockModeEncrypt,
    BlockSizeUser, InnerIvInit, KeyInit,
};
use aes::{Aes128, Aes192, Aes256};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use zeroize::Zeroizing;

use super::CodecError;

/// PBKDF2 iterations for both the data key and the IV key (fixed by the on-bucket format).
const PBKDF2_ROUNDS: u32 = 5000;
/// Largest `--keyLength` (OpenSSL's `EVP_MAX_KEY_LENGTH`).
pub(crate) const MAX_KEY_LEN: usize = 64;
/// AES block size (also the IV length).
pub(crate) const AES_BLOCK: usize = 16;
/// Length of an HMAC-SHA1 value.
const HMAC_LEN: usize = 20;

/// A supported block cipher. Only CBC modes of AES: the format needs a block cipher whose IV is
/// one cipher block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cipher {
    /// `AES-128-CBC` (the default of `--encrypt`).
    Aes128Cbc,
    /// `AES-192-CBC`.
    Aes192Cbc,
    /// `AES-256-CBC`.
    Aes256Cbc,
}

impl Cipher {
    const ALL: [Cipher; 3] = [Cipher::Aes128Cbc, Cipher::Aes192Cbc, Cipher::Aes256Cbc];

    /// Parses a cipher name: OpenSSL's canonical names, case-insensitively (`AES-128-CBC`,
    /// `AES-192-CBC`, `AES-256-CBC`).
    ///
    /// Aliases of those (`AES128`, `aes256`, `id-aes192-CBC`, ...) are refused with
    /// [`CodecError::CipherAlias`] naming the canonical name: the name ends up in every block's
    /// `Content-Encoding` and is compared with the canonical one on read. Anything else is
    /// [`CodecError::UnknownCipher`].
    pub fn from_name(name: &str) -> Result<Cipher, CodecError> {
        let trimmed = name.trim();
        if let Some(c) = Self::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(trimmed))
        {
            return Ok(c);
        }
        // Normalise: upper case, only letters and digits; then recognise OpenSSL's aliases
        // (AES128, AES-128, aes128cbc, id-aes128-CBC, ...).
        let norm: String = trimmed
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let norm = norm.strip_prefix("ID").unwrap_or(&norm);
        for c in Self::ALL {
            let bits = c.key_len() * 8;
            let short = format!("AES{bits}");
            if norm == short || norm == format!("{short}CBC") {
                return Err(CodecError::CipherAlias {
                    given: name.to_owned(),
                    canonical: c.name(),
                });
            }
        }
        Err(CodecError::UnknownCipher(name.to_owned()))
    }

    /// OpenSSL's canonical name, as stored in `Content-Encoding` and fed into the HMAC.
    pub fn name(&self) -> &'static str {
        match self {
            Cipher::Aes128Cbc => "AES-128-CBC",
            Cipher::Aes192Cbc => "AES-192-CBC",
            Cipher::Aes256Cbc => "AES-256-CBC",
        }
    }

    /// The natural key length in bytes: 16, 24 or 32.
    pub fn key_len(&self) -> usize {
        match self {
            Cipher::Aes128Cbc => 16,
            Cipher::Aes192Cbc => 24,
            Cipher::Aes256Cbc => 32,
        }
    }
}

/// Expanded AES key schedules: one for the data key, one for the IV key. `aes` zeroizes them on
/// drop (feature `zeroize`).
#[derive(Clone)]
enum Schedules {
    Aes128 { data: Aes128, iv: Aes128 },
    Aes192 { data: Aes192, iv: Aes192 },
    Aes256 { data: Aes256, iv: Aes256 },
}

/// Encryption keys for one volume, derived once from the password and the bucket/prefix.
///
/// All key material lives in zeroizing storage; `Debug` shows only the cipher and key length.
#[derive(Clone)]
pub struct Encryption {
    cipher: Cipher,
    /// `keylen` bytes: the first `cipher.key_len()` are the AES key, all of them key the HMAC.
    key: Zeroizing<Vec<u8>>,
    /// `keylen` bytes: the first `cipher.key_len()` are the IV cipher's key, the first 16 its IV.
    ivkey: Zeroizing<Vec<u8>>,
    schedules: Schedules,
    /// HMAC-SHA1 state already keyed with `key` (cloned per block; zeroized on drop).
    hmac: Hmac<Sha1>,
}

impl fmt::Debug for Encryption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encryption")
            .field("cipher", &self.cipher)
            .field("key_len", &self.key.len())
            .finish_non_exhaustive()
    }
}

fn schedule<C: KeyInit>(key: &[u8]) -> C {
    // The caller passes exactly the natural key length; `KeyInit` can only reject a length.
    match C::new_from_slice(key) {
        Ok(c) => c,
        Err(_) => unreachable!("AES key slice has the natural length"),
    }
}

impl Encryption {
    /// Derives the keys the way s3backer (OpenSSL) does:
    /// `key = PBKDF2-HMAC-SHA1(password, salt = "<bucket>/<prefix>", 5000, keylen)` and
    /// `ivkey = PBKDF2-HMAC-SHA1(key, key, 5000, keylen)`.
    ///
    /// `prefix` is the effective object-name prefix including its trailing slash (`""` when
    /// there is none, giving the salt `"<bucket>/"`).
    ///
    /// `key_length`: `None` = the cipher's natural length; `Some(n)` needs natural ≤ n ≤ 64.
    /// With n above natural only the first natural bytes are the AES key, but all n bytes feed
    /// the IV-key derivation and the HMAC (OpenSSL semantics).
    pub fn derive(
        cipher: Cipher,
        password: &[u8],
        bucket: &str,
        prefix: &str,
        key_length: Option<usize>,
    ) -> Result<Encryption, CodecError> {
        let natural = cipher.key_len();
        let keylen = key_length.unwrap_or(natural);
        if !(natural..=MAX_KEY_LEN).contains(&keylen) {
            return Err(CodecError::BadKeyLength {
                cipher: cipher.name(),
                given: keylen,
                min: natural,
                max: MAX_KEY_LEN,
            });
        }
        let salt = format!("{bucket}/{prefix}");
        let mut key = Zeroizing::new(vec![0u8; keylen]);
        pbkdf2::pbkdf2_hmac::<Sha1>(password, salt.as_bytes(), PBKDF2_ROUNDS, &mut key);
        let mut ivkey = Zeroizing::new(vec![0u8; keylen]);
        pbkdf2::pbkdf2_hmac::<Sha1>(&key, &key, PBKDF2_ROUNDS, &mut ivkey);
        let (k, ik) = (&key[..natural], &ivkey[..natural]);
        let schedules = match cipher {
            Cipher::Aes128Cbc => Schedules::Aes128 {
                data: schedule(k),
                iv: schedule(ik),
            },
            Cipher::Aes192Cbc => Schedules::Aes192 {
                data: schedule(k),
                iv: schedule(ik),
            },
            Cipher::Aes256Cbc => Schedules::Aes256 {
                data: schedule(k),
                iv: schedule(ik),
            },
        };
        // HMAC accepts keys of any length.
        let hmac = match <Hmac<Sha1> as KeyInit>::new_from_slice(&key) {
            Ok(h) => h,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        Ok(Encryption {
            cipher,
            key,
            ivkey,
            schedules,
            hmac,
        })
    }

    /// The configured cipher.
    pub fn cipher(&self) -> Cipher {
        self.cipher
    }

    /// The key length in bytes (natural or `--keyLength`).
    pub fn key_len(&self) -> usize {
        self.key.len()
    }

    /// The derived data key (tests only).
    #[cfg(test)]
    pub(crate) fn key_bytes(&self) -> &[u8] {
        &self.key
    }

    /// The derived IV key (tests only).
    #[cfg(test)]
    pub(crate) fn ivkey_bytes(&self) -> &[u8] {
        &self.ivkey
    }

    /// The IV of `block`: CBC-encrypt (key = ivkey, IV = ivkey[0..16], no padding) the 16-byte
    /// buffer holding ASCII `%08x` of the block number followed by eight zero bytes.
    pub(crate) fn iv(&self, block: u32) -> [u8; AES_BLOCK] {
        let mut b = [0u8; AES_BLOCK];
        b[..8].copy_from_slice(&hex8(block));
        // One CBC block: E_ivkey(B xor IV).
        for (x, k) in b.iter_mut().zip(&self.ivkey[..AES_BLOCK]) {
            *x ^= k;
        }
        let mut blk: Block<Aes128> = b.into();
        match &self.schedules {
            Schedules::Aes128 { iv, .. } => iv.encrypt_block(&mut blk),
            Schedules::Aes192 { iv, .. } => iv.encrypt_block(&mut blk),
            Schedules::Aes256 { iv, .. } => iv.encrypt_block(&mut blk),
        }
        blk.into()
    }

    /// Encrypts `buf[..msg_len]` in place with PKCS#7 padding; `buf` grows to the padded length
    /// (16·(⌊n/16⌋+1)). Reserve 16 bytes of capacity beforehand to avoid a reallocation.
    pub(crate) fn encrypt_in_place(&self, block: u32, buf: &mut Vec<u8>) {
        let msg_len = buf.len();
        let padded = (msg_len / AES_BLOCK + 1) * AES_BLOCK;
        buf.resize(padded, 0);
        let iv = self.iv(block);
        match &self.schedules {
            Schedules::Aes128 { data, .. } => cbc_encrypt(data, &iv, buf, msg_len),
            Schedules::Aes192 { data, .. } => cbc_encrypt(data, &iv, buf, msg_len),
            Schedules::Aes256 { data, .. } => cbc_encrypt(data, &iv, buf, msg_len),
        }
    }

    /// Decrypts `buf` in place and strips the PKCS#7 padding.
    pub(crate) fn decrypt_in_place(&self, block: u32, buf: &mut Vec<u8>) -> Result<(), CodecError> {
        let iv = self.iv(block);
        let len = match &self.schedules {
            Schedules::Aes128 { data, .. } => cbc_decrypt(data, &iv, buf),
            Schedules::Aes192 { data, .. } => cbc_decrypt(data, &iv, buf),
            Schedules::Aes256 { data, .. } => cbc_decrypt(data, &iv, buf),
        }?;
        buf.truncate(len);
        Ok(())
    }

    /// HMAC-SHA1 (keyed with all `keylen` key bytes) over ASCII `%08x` block ‖ canonical cipher
    /// name ‖ ciphertext.
    fn mac(&self, block: u32, ciphertext: &[u8]) -> Hmac<Sha1> {
        let mut mac = self.hmac.clone();
        mac.update(&hex8(block));
        mac.update(self.cipher.name().as_bytes());
        mac.update(ciphertext);
        mac
    }

    /// The `x-amz-meta-s3backer-hmac` header value for a ciphertext: `"` + 40 lowercase hex + `"`.
    pub(crate) fn hmac_header(&self, block: u32, ciphertext: &[u8]) -> String {
        let tag = self.mac(block, ciphertext).finalize().into_bytes();
        let mut s = String::with_capacity(2 * HMAC_LEN + 2);
        s.push('"');
        for b in tag.iter() {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        s.push('"');
        s
    }

    /// Parses an HMAC header value and verifies it against the ciphertext in constant time.
    pub(crate) fn verify(
        &self,
        block: u32,
        ciphertext: &[u8],
        header: Option<&str>,
    ) -> Result<(), CodecError> {
        let header = header.ok_or(CodecError::MissingHmac)?;
        let tag = parse_hmac_header(header).ok_or(CodecError::MalformedHmac)?;
        self.mac(block, ciphertext)
            .verify_slice(&tag)
            .map_err(|_| CodecError::BadHmac)
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// ASCII `%08x` of `n`.
pub(crate) fn hex8(n: u32) -> [u8; 8] {
    let mut out = [0u8; 8];
    for (i, o) in out.iter_mut().enumerate() {
        let shift = 28 - 4 * i;
        *o = HEX[((n >> shift) & 0xf) as usize];
    }
    out
}

/// `"` + exactly 40 hex digits (either case) + `"`, surrounding whitespace ignored.
fn parse_hmac_header(value: &str) -> Option<[u8; HMAC_LEN]> {
    let hex = value
        .trim()
        .strip_prefix('"')?
        .strip_suffix('"')?
        .as_bytes();
    if hex.len() != 2 * HMAC_LEN {
        return None;
    }
    let mut out = [0u8; HMAC_LEN];
    for (o, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let hi = char::from(pair[0]).to_digit(16)?;
        let lo = char::from(pair[1]).to_digit(16)?;
        *o = u8::try_from(hi << 4 | lo).ok()?;
    }
    Some(out)
}

fn cbc_encrypt<C>(cipher: &C, iv: &[u8; AES_BLOCK], buf: &mut [u8], msg_len: usize)
where
    C: BlockCipherEncrypt + BlockSizeUser<BlockSize = U16> + Clone,
{
    let enc = cbc::Encryptor::<C>::inner_iv_init(cipher.clone(), &(*iv).into());
    // `buf` was resized to the padded length, so padding cannot run out of room.
    if enc.encrypt_padded::<Pkcs7>(buf, msg_len).is_err() {
        unreachable!("buffer holds the padded length");
    }
}

fn cbc_decrypt<C>(cipher: &C, iv: &[u8; AES_BLOCK], buf: &mut [u8]) -> Result<usize, CodecError>
where
    C: BlockCipherDecrypt + BlockSizeUser<BlockSize = U16> + Clone,
{
    let dec = cbc::Decryptor::<C>::inner_iv_init(cipher.clone(), &(*iv).into());
    dec.decrypt_padded::<Pkcs7>(buf)
        .map(<[u8]>::len)
        .map_err(|_| CodecError::Decrypt)
}
