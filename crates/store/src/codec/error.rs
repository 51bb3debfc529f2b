//! The codec's error type.
//!
//! Every message is one line and never carries key material, the password or an HMAC value; the
//! caller adds the block number (see `StoreError::Corrupt`).

/// What can go wrong while configuring the codec or encoding/decoding one block.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// `--encrypt=NAME` names a cipher we do not support.
    #[error("unsupported cipher \"{0}\": supported are AES-128-CBC, AES-192-CBC, AES-256-CBC")]
    UnknownCipher(String),
    /// `--encrypt=NAME` names a supported cipher by an alias instead of its canonical name.
    #[error(
        "cipher name \"{given}\" is an alias: give the canonical name \"{canonical}\" (the name is \
         stored in every block's Content-Encoding, and only the canonical one reads back)"
    )]
    CipherAlias {
        /// What was given.
        given: String,
        /// The canonical name to use instead.
        canonical: &'static str,
    },
    /// `--keyLength` outside `[natural key length, 64]`.
    #[error("key length {given} is not valid for {cipher}: it must be between {min} and {max}")]
    BadKeyLength {
        /// The cipher's canonical name.
        cipher: &'static str,
        /// The requested key length.
        given: usize,
        /// The cipher's natural key length.
        min: usize,
        /// The largest supported key length (64).
        max: usize,
    },
    /// A `Content-Encoding` layer we do not know.
    #[error("unknown Content-Encoding layer \"{0}\"")]
    UnknownEncoding(String),
    /// A known layer in a place where it cannot be (e.g. `deflate, deflate`).
    #[error(
        "unexpected layer \"{layer}\" in Content-Encoding \"{encoding}\" (compression must be the \
         first layer, encryption the last, each at most once)"
    )]
    UnexpectedLayer {
        /// The offending layer.
        layer: String,
        /// The whole header value.
        encoding: String,
    },
    /// Encryption is configured but the block carries no `encrypt-` layer.
    #[error("block was supposed to be encrypted but wasn't")]
    NotEncrypted,
    /// The block is encrypted but no encryption is configured.
    #[error("the disk is encrypted (Content-Encoding \"{0}\"): give --encrypt and the password")]
    EncryptedWithoutKey(String),
    /// The block was encrypted with a different cipher than the configured one.
    #[error("block is encrypted with \"{stored}\" but the configured cipher is {configured}")]
    WrongCipher {
        /// The cipher named in the block's `Content-Encoding`.
        stored: String,
        /// The configured cipher's canonical name.
        configured: &'static str,
    },
    /// An encrypted block without its `x-amz-meta-s3backer-hmac` header.
    #[error("encrypted block has no x-amz-meta-s3backer-hmac header")]
    MissingHmac,
    /// The HMAC header is not `"` + 40 hex digits + `"`.
    #[error("malformed x-amz-meta-s3backer-hmac header (expected 40 hex digits in double quotes)")]
    MalformedHmac,
    /// The HMAC does not match the body: wrong password, or a changed object.
    #[error("HMAC does not verify: wrong password, or the object was changed")]
    BadHmac,
    /// Decryption failed (ciphertext length not a multiple of the cipher block, bad padding).
    #[error("decryption failed: bad ciphertext length or padding")]
    Decrypt,
    /// The compressed data is invalid, truncated, followed by garbage or too large.
    #[error("cannot decompress block: {0}")]
    Decompress(String),
    /// The decoded block (or the data given to encode) is not exactly one block long.
    #[error("block data is {got} bytes, expected {expected}")]
    WrongLength {
        /// Actual length.
        got: usize,
        /// The block size.
        expected: usize,
    },
    /// The compressor failed.
    #[error("cannot compress block: {0}")]
    Compress(String),
}

impl CodecError {
    /// True for the error a wrong password produces (the HMAC does not verify), so a front end
    /// can hint at the password on the first read.
    pub fn is_wrong_password_symptom(&self) -> bool {
        matches!(self, CodecError::BadHmac)
    }
}
