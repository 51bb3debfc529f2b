//! AWS Signature Version 4 (the default, facts §4.4), hand-written on RustCrypto.
//!
//! We sign `host` plus exactly the headers we set ourselves (`content-type`, `content-md5`,
//! `content-encoding`, `accept-encoding`, `if-match`, `if-none-match`, every `x-amz-*`),
//! lower-cased and sorted. The payload hash (`x-amz-content-sha256`) is the body's SHA-256,
//! or `UNSIGNED-PAYLOAD` as `--payloadHash` decides (`checksum.rs`). The canonical URI is the request path exactly as sent (already
//! encoded by `url.rs`), the canonical query is the sorted, encoded parameter list with `=`
//! even for empty values.
//!
//! The signing key (`"AWS4"+secret` → date → region → `s3` → `aws4_request`) changes once a
//! day; it is derived once per (date, region) and cached.

use std::sync::Mutex;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::url::query_string;

/// Hex SHA-256 of the empty string.
pub(crate) const EMPTY_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// `x-amz-content-sha256` of a body that is not signed (`--payloadHash`).
pub(crate) const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// Hex SHA-256 of `data`.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().into()
        }
        // HMAC takes keys of any length.
        Err(_) => unreachable!("HMAC-SHA256 rejected a key"),
    }
}

/// What SigV4 looks at in a request.
pub(crate) struct V4Request<'a> {
    /// `GET`, `PUT`, ...
    pub(crate) method: &'a str,
    /// `Host` header value (`host[:port]`).
    pub(crate) host: &'a str,
    /// Encoded path, exactly as sent.
    pub(crate) path: &'a str,
    /// Raw (unencoded) query parameters, any order.
    pub(crate) query: &'a [(String, String)],
    /// Every header to sign except `host`: lower-case names, including `x-amz-date` and
    /// `x-amz-content-sha256`.
    pub(crate) headers: &'a [(String, String)],
    /// Hex SHA-256 of the body.
    pub(crate) payload_hash: &'a str,
}

/// Canonical header value: trimmed, inner runs of blanks collapsed to one space.
fn canonical_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for word in v.split([' ', '\t']).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// The canonical request and the `SignedHeaders` list.
pub(crate) fn canonical_request(req: &V4Request<'_>) -> (String, String) {
    let mut headers: Vec<(String, String)> = Vec::with_capacity(req.headers.len() + 1);
    headers.push(("host".to_owned(), req.host.to_owned()));
    for (name, value) in req.headers {
        let name = name.to_ascii_lowercase();
        let value = canonical_value(value);
        match headers.iter_mut().find(|(n, _)| *n == name) {
            // A repeated header: values joined with ','.
            Some((_, existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            None => headers.push((name, value)),
        }
    }
    headers.sort();
    let mut canonical_headers = String::new();
    for (n, v) in &headers {
        canonical_headers.push_str(n);
        canonical_headers.push(':');
        canonical_headers.push_str(v);
        canonical_headers.push('\n');
    }
    let signed: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
    let signed = signed.join(";");
    let canonical = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        req.path,
        query_string(req.query, false),
        canonical_headers,
        signed,
        req.payload_hash
    );
    (canonical, signed)
}

/// SigV4 signer for one set of credentials and one region.
pub(crate) struct SigV4 {
    access_id: String,
    secret: String,
    region: String,
    /// `(YYYYMMDD, key)` of the last derived signing key.
    key_cache: Mutex<Option<(String, [u8; 32])>>,
}

impl SigV4 {
    pub(crate) fn new(access_id: &str, secret: &str, region: &str) -> SigV4 {
        SigV4 {
            access_id: access_id.to_owned(),
            secret: secret.to_owned(),
            region: region.to_owned(),
            key_cache: Mutex::new(None),
        }
    }

    fn signing_key(&self, date: &str) -> [u8; 32] {
        let mut cache = match self.key_cache.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some((d, key)) = cache.as_ref()
            && d == date
        {
            return *key;
        }
        let k_date = hmac_sha256(format!("AWS4{}", self.secret).as_bytes(), date.as_bytes());
        let k_region = hmac_sha256(&k_date, self.region.as_bytes());
        let k_service = hmac_sha256(&k_region, b"s3");
        let key = hmac_sha256(&k_service, b"aws4_request");
        *cache = Some((date.to_owned(), key));
        key
    }

    /// The `Authorization` header value for `req`, signed at `amz_datetime`
    /// (`YYYYMMDDTHHMMSSZ`, which must also be the `x-amz-date` header in `req.headers`).
    pub(crate) fn authorization(&self, amz_datetime: &str, req: &V4Request<'_>) -> String {
        let date = amz_datetime.get(..8).unwrap_or(amz_datetime);
        let scope = format!("{date}/{}/s3/aws4_request", self.region);
        let (canonical, signed_headers) = canonical_request(req);
        let string_to_sign = format!(
            "{ALGORITHM}\n{amz_datetime}\n{scope}\n{}",
            sha256_hex(canonical.as_bytes())
        );
        let signature = hex(&hmac_sha256(
            &self.signing_key(date),
            string_to_sign.as_bytes(),
        ));
        format!(
            "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            self.access_id
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // AWS's published examples ("Signature Calculations for the Authorization Header:
    // Transferring Payload in a Single Chunk").
    const ID: &str = "AKIAIOSFODNN7EXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const HOST: &str = "examplebucket.s3.amazonaws.com";
    const WHEN: &str = "20130524T000000Z";

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn signature(auth: &str) -> &str {
        auth.rsplit("Signature=").next().unwrap()
    }

    fn signer() -> SigV4 {
        SigV4::new(ID, SECRET, "us-east-1")
    }

    #[test]
    fn aws_example_get_object() {
        let headers = h(&[
            ("range", "bytes=0-9"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", WHEN),
        ]);
        let req = V4Request {
            method: "GET",
            host: HOST,
            path: "/test.txt",
            query: &[],
            headers: &headers,
            payload_hash: EMPTY_SHA256,
        };
        let (canonical, signed) = canonical_request(&req);
        assert_eq!(
            canonical,
            "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n\
             x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n\
             x-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(signed, "host;range;x-amz-content-sha256;x-amz-date");
        let auth = signer().authorization(WHEN, &req);
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn aws_example_put_object() {
        let body = b"Welcome to Amazon S3.";
        let hash = sha256_hex(body);
        assert_eq!(
            hash,
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
        );
        let headers = h(&[
            ("date", "Fri, 24 May 2013 00:00:00 GMT"),
            ("x-amz-date", WHEN),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
            ("x-amz-content-sha256", &hash),
        ]);
        let req = V4Request {
            method: "PUT",
            host: HOST,
            path: &crate::url::uri_encode("/test$file.text", true),
            query: &[],
            headers: &headers,
            payload_hash: &hash,
        };
        let (canonical, _) = canonical_request(&req);
        assert!(canonical.starts_with("PUT\n/test%24file.text\n\ndate:"));
        let auth = signer().authorization(WHEN, &req);
        assert_eq!(
            signature(&auth),
            "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
        );
        assert!(auth.contains(
            "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,"
        ));
    }

    #[test]
    fn aws_example_get_bucket_lifecycle() {
        let headers = h(&[("x-amz-content-sha256", EMPTY_SHA256), ("x-amz-date", WHEN)]);
        let query = h(&[("lifecycle", "")]);
        let req = V4Request {
            method: "GET",
            host: HOST,
            path: "/",
            query: &query,
            headers: &headers,
            payload_hash: EMPTY_SHA256,
        };
        let (canonical, _) = canonical_request(&req);
        assert!(canonical.starts_with("GET\n/\nlifecycle=\nhost:"));
        assert_eq!(
            signature(&signer().authorization(WHEN, &req)),
            "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
        );
    }

    #[test]
    fn aws_example_list_objects() {
        let headers = h(&[("x-amz-content-sha256", EMPTY_SHA256), ("x-amz-date", WHEN)]);
        // Deliberately out of order: the signer sorts.
        let query = h(&[("prefix", "J"), ("max-keys", "2")]);
        let req = V4Request {
            method: "GET",
            host: HOST,
            path: "/",
            query: &query,
            headers: &headers,
            payload_hash: EMPTY_SHA256,
        };
        assert_eq!(
            signature(&signer().authorization(WHEN, &req)),
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
        );
    }

    #[test]
    fn header_values_are_trimmed_and_collapsed_and_names_lowered() {
        let headers = h(&[("X-Amz-Meta-A", "  x   y \t z  "), ("x-amz-date", WHEN)]);
        let req = V4Request {
            method: "GET",
            host: "h",
            path: "/",
            query: &[],
            headers: &headers,
            payload_hash: EMPTY_SHA256,
        };
        let (canonical, signed) = canonical_request(&req);
        assert!(canonical.contains("\nx-amz-meta-a:x y z\n"));
        assert_eq!(signed, "host;x-amz-date;x-amz-meta-a");
    }

    #[test]
    fn signing_key_is_cached_per_date() {
        let s = signer();
        let k1 = s.signing_key("20130524");
        assert_eq!(s.key_cache.lock().unwrap().as_ref().unwrap().0, "20130524");
        let k2 = s.signing_key("20130525");
        assert_ne!(k1, k2);
        assert_eq!(s.signing_key("20130524"), k1);
    }

    #[test]
    fn hex_and_sha() {
        assert_eq!(hex(&[0, 1, 0xab, 0xff]), "0001abff");
        assert_eq!(sha256_hex(b""), EMPTY_SHA256);
    }
}
