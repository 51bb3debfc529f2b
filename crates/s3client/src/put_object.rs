//! `PUT` of one object (write a block, set the mount token: facts §2.3, §2.6).
//!
//! Headers: `x-amz-checksum-crc32` (+ `x-amz-sdk-checksum-algorithm: CRC32`), `Content-MD5`
//! (base64 MD5 of the body) when the client sends it (`checksum.rs`), `Content-Type` and
//! `Content-Encoding` when given, `x-amz-acl: <--accessType>`, `x-amz-meta-<name>` (names lower-cased),
//! `x-amz-server-side-encryption` (+ `-aws-kms-key-id`) with `--sse`, and
//! `x-amz-storage-class` with `--storageClass`. A 2xx answer returns the stored ETag; errors
//! are retried per `retry.rs` (`BadDigest` included: the body was damaged in transit).

use crate::checksum::{self, CRC32_HEADER, SDK_ALGORITHM_HEADER};
use crate::client::{Prepared, S3Client, check_key};
use crate::error::S3Error;
use crate::retry::Attempt;
use crate::stats::Op;
use crate::transport::Method;
use crate::types::{Etag, PutOutcome, PutRequest};

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
        let crc = match req.crc32 {
            Some(known) => checksum::crc32_header(known),
            None => checksum::crc32(body),
        };
        let mut headers = vec![
            (CRC32_HEADER.to_owned(), crc.clone()),
            (SDK_ALGORITHM_HEADER.to_owned(), "CRC32".to_owned()),
        ];
        if defaults.content_md5 {
            headers.push(("content-md5".to_owned(), checksum::content_md5(body)));
        }
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
            200..=299 => {
                if resp.header(CRC32_HEADER).as_deref() == Some(crc.as_str()) {
                    inner.server_returned_our_crc();
                }
                Attempt::Done(PutOutcome {
                    etag: resp.header("etag").and_then(|v| Etag::parse_header(&v)),
                })
            }
            _ => inner.http_failure(target, &resp, false),
        })
    }
}
