//! The public request and response types of the operations, and [`Etag`].

use std::fmt;

use md5::{Digest, Md5};

/// An MD5-style ETag (facts §4.7): parsed only from `"` + 32 hex digits + `"`; displayed as 32
/// lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Etag(pub [u8; 16]);

impl Etag {
    /// Parses an `ETag` header value; anything but `"` + 32 hex digits + `"` gives `None`
    /// (multipart ETags such as `"…-3"`, weak ETags, unquoted values).
    pub fn parse_header(value: &str) -> Option<Etag> {
        let hex = value.strip_prefix('"')?.strip_suffix('"')?;
        Etag::from_hex(hex)
    }

    /// Parses exactly 32 hex digits (either case).
    pub fn from_hex(hex: &str) -> Option<Etag> {
        let b = hex.as_bytes();
        if b.len() != 32 {
            return None;
        }
        let mut out = [0u8; 16];
        for (i, pair) in b.chunks_exact(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            out[i] = (hi * 16 + lo) as u8;
        }
        Some(Etag(out))
    }

    /// The MD5 of `data`: the ETag S3 gives an object with this body (single-part upload,
    /// no SSE-KMS).
    pub fn md5_of(data: &[u8]) -> Etag {
        Etag(Md5::digest(data).into())
    }

    /// The header form, `"<32 hex>"` (for `If-Match` / `If-None-Match`).
    pub fn quoted(&self) -> String {
        format!("\"{self}\"")
    }
}

impl fmt::Display for Etag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::sign_v4::hex(&self.0))
    }
}

/// Options of a GET.
#[derive(Clone, Debug, Default)]
pub struct GetRequest {
    /// Send `If-Match: "<etag>"` (strict read: 412 means stale and is retried).
    pub if_match: Option<Etag>,
    /// Send `If-None-Match: "<etag>"` (verification: 304 gives [`GetOutcome::NotModified`]).
    pub if_none_match: Option<Etag>,
    /// Send this `Accept-Encoding` (s3backer sends `deflate, zstd[, encrypt-…]`); bodies are
    /// never decoded by the client.
    pub accept_encoding: Option<String>,
    /// Largest body accepted, in bytes (0 = unlimited); a larger one fails with
    /// [`crate::S3Error::BodyTooLarge`].
    pub max_body: usize,
    /// `(first byte, length)`: send `Range: bytes=first-last`. A 206 answer's body is that range
    /// and [`ObjectData::range_of`] says of how large an object; a server that ignores the
    /// header answers 200 with the whole object, as without it.
    pub range: Option<(u64, u64)>,
}

/// Result of a GET.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GetOutcome {
    /// The object (2xx).
    Found(ObjectData),
    /// 404 (for a block: all zeros). A missing bucket is an error, never this.
    NotFound,
    /// 304 to a conditional GET (`If-None-Match` matched).
    NotModified,
}

/// An object's body and the headers we use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectData {
    /// The raw body, exactly as sent by the server (never decoded); empty when it went to the
    /// caller's buffer (`in_dest`).
    pub body: Vec<u8>,
    /// The body was read into the buffer given to [`crate::S3Client::get_object_into`].
    pub in_dest: bool,
    /// The `ETag`, when it has the MD5 form.
    pub etag: Option<Etag>,
    /// The `Content-Encoding` header.
    pub content_encoding: Option<String>,
    /// `x-amz-meta-*` headers: names lower-cased without the prefix, in response order.
    pub meta: Vec<(String, String)>,
    /// For a 206 answer to a ranged GET: `(first byte, size of the whole object)` from
    /// `Content-Range`; `None` when the body is the whole object.
    pub range_of: Option<(u64, u64)>,
}

/// What HEAD tells about an object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The `ETag`, when it has the MD5 form.
    pub etag: Option<Etag>,
    /// The `Content-Length` header.
    pub content_length: Option<u64>,
    /// The `Content-Encoding` header (how s3backer encoded the block: `deflate`, `zstd`,
    /// `deflate, encrypt-AES-128-CBC`).
    pub content_encoding: Option<String>,
    /// `x-amz-meta-*` headers: names lower-cased without the prefix, in response order.
    pub meta: Vec<(String, String)>,
}

/// Options of a PUT. `Content-MD5`, `x-amz-acl`, SSE and storage-class headers are always
/// added by the client from the settings.
#[derive(Clone, Debug, Default)]
pub struct PutRequest {
    /// `Content-Type` (s3backer: `application/x-s3backer-block`, `text/plain` for the mount
    /// token); omitted when `None`.
    pub content_type: Option<String>,
    /// `Content-Encoding` (e.g. `deflate, encrypt-AES-128-CBC`).
    pub content_encoding: Option<String>,
    /// Metadata: names without the `x-amz-meta-` prefix (sent lower-cased).
    pub meta: Vec<(String, String)>,
    /// The body's CRC-32 (`crc32fast`) when the caller already knows it (the block cache keeps
    /// it up to date as blocks are written): sent as is instead of reading the body once more.
    /// It must be right: a server that checks it refuses the PUT otherwise.
    pub crc32: Option<u32>,
}

/// Result of a PUT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutOutcome {
    /// The `ETag` of the stored object, when it has the MD5 form.
    pub etag: Option<Etag>,
}

/// One page of a listing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListPage {
    /// Keys in the page, in server order (ascending).
    pub keys: Vec<String>,
    /// Whether more keys follow (continue with the last key as the marker).
    pub is_truncated: bool,
}

/// A key a bulk delete could not delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteFailure {
    /// The key.
    pub key: String,
    /// S3 error code (e.g. `AccessDenied`).
    pub code: String,
    /// S3 error message (one line).
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_parsing() {
        let hex = "0123456789abcdef0123456789ABCDEF";
        let e = Etag::parse_header(&format!("\"{hex}\"")).unwrap();
        assert_eq!(e.to_string(), hex.to_ascii_lowercase());
        assert_eq!(e.quoted(), format!("\"{}\"", hex.to_ascii_lowercase()));
        for bad in [
            hex.to_string(),
            format!("\"{hex}"),
            format!("W/\"{hex}\""),
            format!("\"{}-2\"", &hex[..30]),
            format!("\"{}\"", &hex[..31]),
            format!("\"{}0\"", hex),
            "\"0123456789abcdef0123456789abcdeg\"".to_string(),
            "\"\"".to_string(),
            String::new(),
        ] {
            assert_eq!(Etag::parse_header(&bad), None, "{bad}");
        }
    }

    #[test]
    fn etag_md5() {
        assert_eq!(
            Etag::md5_of(b"").to_string(),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
        assert_eq!(
            Etag::from_hex("d41d8cd98f00b204e9800998ecf8427e"),
            Some(Etag::md5_of(b""))
        );
    }
}
