//! `HEAD` of one object (size auto-detection, mount token: facts §2.5, §2.6).
//!
//! 2xx → `Some(ObjectInfo)` (ETag, Content-Length, `x-amz-meta-*`); 404 → `None` (HEAD has no
//! body, so a missing bucket cannot be told apart here). With `startup_probe`, a client error
//! (4xx other than 404, 408 and 429: wrong secret, wrong region, malformed request) fails at once
//! instead of being retried for `--maxRetryPause`: used at startup, where such an answer means a
//! configuration mistake the user should hear about now. Other errors are retried per `retry.rs`.

use crate::client::{Prepared, S3Client, check_key, response_meta};
use crate::error::S3Error;
use crate::retry::Attempt;
use crate::stats::Op;
use crate::transport::Method;
use crate::types::{Etag, ObjectInfo};

impl S3Client {
    /// Reads the headers of object `key`; `Ok(None)` if it does not exist.
    pub fn head_object(
        &self,
        key: &str,
        startup_probe: bool,
    ) -> Result<Option<ObjectInfo>, S3Error> {
        check_key(key)?;
        let inner = &self.inner;
        let prepared = Prepared {
            op: Op::Head,
            method: Method::Head,
            path: inner.endpoint.object_path(key),
            query: Vec::new(),
            subresource: None,
            headers: Vec::new(),
            body: None,
            body_limit: 0,
        };
        inner.execute(&prepared, |target, resp| match resp.status {
            200..=299 => Attempt::Done(Some(ObjectInfo {
                etag: resp.header("etag").and_then(|v| Etag::parse_header(&v)),
                content_length: resp
                    .header("content-length")
                    .and_then(|v| v.trim().parse().ok()),
                content_encoding: resp.header("content-encoding"),
                meta: response_meta(&resp),
            })),
            404 => Attempt::Done(None),
            400..=499 if startup_probe && !matches!(resp.status, 408 | 429) => {
                Attempt::Fail(inner.http_error(target, &resp))
            }
            _ => inner.http_failure(target, &resp, false),
        })
    }
}
