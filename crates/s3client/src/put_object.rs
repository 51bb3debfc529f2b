//! `PUT` of one object (write a block, set the mount token: facts §2.3, §2.6).
//!
//! Headers: `Content-MD5` (base64 MD5 of the body), `Content-Type` and `Content-Encoding`
//! when given, `x-amz-acl: <--accessType>`, `x-amz-meta-<name>` (names lower-cased),
//! `x-amz-server-side-encryption` (+ `-aws-kms-key-id`) with `--sse`, and
//! `x-amz-storage-class` with `--storageClass`. A 2xx answer returns the stored ETag; errors
//! are retried per `retry.rs` (`BadDigest` included: the body was damaged in transit).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::client::{Prepared, S3Client, check_key};
use crate::error::S3Error;
use crate::retry::Attempt;
use crate::stats::Op;
use crate::transport::Method;
use crate::types::{Etag, PutOutcome, PutRequest};

/// Base64 of the MD5 of `body`: the `Content-MD5` header value.
pub(crate) fn content_md5(body: &[u8]) -> String {
    BASE64.encode(Etag::md5_of(body).0)
}

impl S3Client {
    /// Stores `body` as object `key`.
    pub fn put_object(
        &self,
        key: &str,
        body: &[u8],
        req: &PutRequest,
    ) -> Result<PutOutcome, S3Error> {
        check_key(key)?;
        let inner = &self.inner;
        let defaults = &inner.put_defaults;
        let mut headers = vec![("content-md5".to_owned(), content_md5(body))];
        if let Some(ct) = &req.content_type {
            headers.push(("content-type".to_owned(), ct.clone()));
        }
        if let Some(ce) = &req.content_encoding {
            headers.push(("content-encoding".to_owned(), ce.clone()));
        }
        if !defaults.acl.is_empty() {
            headers.push(("x-amz-acl".to_owned(), defaults.acl.clone()));
        }
        for (name, value) in &req.meta {
            headers.push((
                format!("x-amz-meta-{}", name.to_ascii_lowercase()),
                value.clone(),
            ));
        }
        if let Some(sse) = &defaults.sse {
            headers.push(("x-amz-server-side-encryption".to_owned(), sse.clone()));
            if let Some(id) = &defaults.sse_key_id {
                headers.push((
                    "x-amz-server-side-encryption-aws-kms-key-id".to_owned(),
                    id.clone(),
                ));
            }
        }
        if let Some(class) = &defaults.storage_class {
            headers.push(("x-amz-storage-class".to_owned(), class.clone()));
        }
        let prepared = Prepared {
            op: Op::Put,
            method: Method::Put,
            path: inner.endpoint.object_path(key),
            query: Vec::new(),
            subresource: None,
            headers,
            body: Some(body),
            body_limit: 0,
        };
        inner.execute(&prepared, |target, resp| match resp.status {
            200..=299 => Attempt::Done(PutOutcome {
                etag: resp.header("etag").and_then(|v| Etag::parse_header(&v)),
            }),
            _ => inner.http_failure(target, &resp, false),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_md5_is_base64_of_md5() {
        // RFC 1864's example digest for the empty body.
        assert_eq!(content_md5(b""), "1B2M2Y8AsgTpgAmY7PhCfg==");
        assert_eq!(
            content_md5(b"Welcome to Amazon S3."),
            BASE64.encode(Etag::md5_of(b"Welcome to Amazon S3.").0)
        );
    }
}
