//! Body checksums: the one we send with each PUT and the check of each GET body.
//!
//! A block body is hashed as few times as the protocol allows (issue 8). Every PUT carries
//! `x-amz-checksum-crc32` (CRC-32 in hardware: almost free), which the server verifies,
//! stores with the object and returns on a GET that asks with `x-amz-checksum-mode:
//! ENABLED`; a GET body is checked against it, and objects without one (written by
//! s3backer, or kept by a server that ignores checksums) against their MD5-form ETag.
//!
//! What else protects a PUT body (`--payloadHash=auto`):
//! * over HTTPS nothing more, as the AWS SDKs do: TLS protects it on the way and the CRC catches
//!   damage at either end; SigV4 signs `UNSIGNED-PAYLOAD`;
//! * over plain HTTP, SigV4 signs the body's SHA-256 (`x-amz-content-sha256`), which every
//!   SigV4 server checks, until a PUT's answer carries our CRC back (AWS, MinIO and Garage
//!   return the checksum they verified). From then on the server is known to refuse a damaged
//!   body by its CRC, and bodies go out `UNSIGNED-PAYLOAD`, as AWS's CRT client (mountpoint-s3)
//!   sends them over any scheme. What that gives up is protection against someone on the path
//!   who changes a body and forges a matching CRC; over plain HTTP that person can already read
//!   every block and change every GET answer, so `--payloadHash=sha256` is there for whoever
//!   wants the signed hash anyway. A server that ignores checksums never returns ours, and keeps
//!   getting the signed SHA-256;
//! * `Content-MD5` (MD5 runs at ~0.5 GB/s: the most expensive hash) only with aws2 or
//!   anonymous requests, which sign no body hash, or with `--contentMD5`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};

use crate::transport::Incoming;
use crate::types::Etag;

/// Request header that carries the CRC-32 of a PUT body.
pub(crate) const CRC32_HEADER: &str = "x-amz-checksum-crc32";
/// Request header naming the checksum algorithm (AWS requires it, or `Content-MD5`, for
/// writes into buckets with Object Lock).
pub(crate) const SDK_ALGORITHM_HEADER: &str = "x-amz-sdk-checksum-algorithm";
/// GET request header asking the server to return the stored checksum.
pub(crate) const MODE_HEADER: &str = "x-amz-checksum-mode";

/// Base64 of the MD5 of `body`: the `Content-MD5` header value.
pub(crate) fn content_md5(body: &[u8]) -> String {
    BASE64.encode(Etag::md5_of(body).0)
}

/// Base64 of the big-endian CRC-32 (ISO-HDLC, as zlib) of `body`: the
/// `x-amz-checksum-crc32` header value.
pub(crate) fn crc32(body: &[u8]) -> String {
    crc32_header(crc32fast::hash(body))
}

/// `x-amz-checksum-crc32` header value of a known CRC-32.
pub(crate) fn crc32_header(crc: u32) -> String {
    BASE64.encode(crc.to_be_bytes())
}

/// Which check a GET body gets, chosen from the response headers.
#[derive(Debug, PartialEq, Eq)]
enum BodyCheck {
    /// `x-amz-checksum-crc32` (base64 value as received).
    Crc32(String),
    /// `x-amz-checksum-sha256` (written by another client).
    Sha256(String),
    /// The MD5-form ETag.
    Md5(Etag),
    /// Nothing to check against (no checksum, ETag absent or not an MD5, SSE-KMS).
    Nothing,
}

/// A whole-object checksum header's value; composite (multipart) values end in `-N` and do
/// not cover the body as one piece.
fn full_object_checksum(resp: &Incoming, name: &str) -> Option<String> {
    resp.header(name)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty() && !v.contains('-'))
}

fn body_check(resp: &Incoming, etag: Option<Etag>, etag_is_md5: bool) -> BodyCheck {
    if let Some(v) = full_object_checksum(resp, CRC32_HEADER) {
        BodyCheck::Crc32(v)
    } else if let Some(v) = full_object_checksum(resp, "x-amz-checksum-sha256") {
        BodyCheck::Sha256(v)
    } else {
        match etag {
            Some(e) if etag_is_md5 => BodyCheck::Md5(e),
            _ => BodyCheck::Nothing,
        }
    }
}

/// Checks a whole-object GET body (`body`: the response's, or the buffer it was read into)
/// against the checksum the server returned, else against its ETag when `etag_is_md5`. `Err`
/// says what did not match.
pub(crate) fn verify_body(
    resp: &Incoming,
    body: &[u8],
    etag: Option<Etag>,
    etag_is_md5: bool,
) -> Result<(), String> {
    match body_check(resp, etag, etag_is_md5) {
        BodyCheck::Crc32(expected) => {
            let got = crc32(body);
            if got == expected {
                Ok(())
            } else {
                Err(format!(
                    "the body's CRC-32 {got} does not match its {CRC32_HEADER} {expected} \
                     (damaged in transit?)"
                ))
            }
        }
        BodyCheck::Sha256(expected) => {
            let got = BASE64.encode(Sha256::digest(body));
            if got == expected {
                Ok(())
            } else {
                Err(format!(
                    "the body's SHA-256 does not match its x-amz-checksum-sha256 {expected} \
                     (damaged in transit?)"
                ))
            }
        }
        BodyCheck::Md5(e) => {
            if Etag::md5_of(body) == e {
                Ok(())
            } else {
                Err(format!(
                    "the body does not match its ETag {e} (damaged in transit?)"
                ))
            }
        }
        BodyCheck::Nothing => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(headers: &[(&str, &str)], body: &[u8]) -> Incoming {
        let mut map = http::HeaderMap::new();
        for (name, value) in headers {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).expect("test header name"),
                http::HeaderValue::from_str(value).expect("test header value"),
            );
        }
        Incoming {
            status: 200,
            headers: map,
            body: body.to_vec(),
            in_dest: false,
        }
    }

    #[test]
    fn crc32_is_aws_encoding() {
        // CRC-32 of "123456789" is 0xCBF43926 (the catalogue check value); AWS sends the
        // four big-endian bytes in base64.
        assert_eq!(crc32(b"123456789"), BASE64.encode([0xcb, 0xf4, 0x39, 0x26]));
        assert_eq!(crc32(b""), "AAAAAA==");
    }

    #[test]
    fn content_md5_is_base64_of_md5() {
        assert_eq!(content_md5(b""), "1B2M2Y8AsgTpgAmY7PhCfg==");
    }

    #[test]
    fn checksum_header_is_preferred_to_the_etag() {
        let body = b"the block";
        let wrong_etag = Some(Etag::md5_of(b"something else"));
        let resp = response(&[(CRC32_HEADER, &crc32(body))], body);
        assert_eq!(verify_body(&resp, &resp.body, wrong_etag, true), Ok(()));
        let resp = response(&[(CRC32_HEADER, &crc32(b"other"))], body);
        let err = verify_body(&resp, &resp.body, Some(Etag::md5_of(body)), true).unwrap_err();
        assert!(err.contains("CRC-32"), "{err}");
    }

    #[test]
    fn sha256_checksum_is_checked() {
        let body = b"the block";
        let good = BASE64.encode(Sha256::digest(body));
        let resp = response(&[("x-amz-checksum-sha256", &good)], body);
        assert_eq!(verify_body(&resp, &resp.body, None, true), Ok(()));
        let resp = response(&[("x-amz-checksum-sha256", &good)], b"the bloc!");
        assert!(verify_body(&resp, &resp.body, None, true).is_err());
    }

    #[test]
    fn without_checksum_the_md5_etag_is_checked() {
        let body = b"the block";
        let resp = response(&[], body);
        assert_eq!(
            verify_body(&resp, &resp.body, Some(Etag::md5_of(body)), true),
            Ok(())
        );
        let err = verify_body(&resp, &resp.body, Some(Etag::md5_of(b"x")), true).unwrap_err();
        assert!(err.contains("ETag"), "{err}");
        // SSE-KMS ETags are not MD5s: nothing to check.
        assert_eq!(
            verify_body(&resp, &resp.body, Some(Etag::md5_of(b"x")), false),
            Ok(())
        );
        assert_eq!(verify_body(&resp, &resp.body, None, true), Ok(()));
    }

    #[test]
    fn composite_checksums_fall_back_to_the_etag() {
        let body = b"the block";
        let resp = response(&[(CRC32_HEADER, "AAAAAA==-3")], body);
        assert_eq!(
            verify_body(&resp, &resp.body, Some(Etag::md5_of(body)), true),
            Ok(())
        );
        assert!(verify_body(&resp, &resp.body, Some(Etag::md5_of(b"x")), true).is_err());
    }
}
