//! Multi-Object Delete: `POST <bucket URL>?delete` (NBD trim/zero, facts §2.8).
//!
//! Unlike s3backer, which always uses the virtual-hosted URL, we use the configured style
//! (open question 2: path-only servers would fail otherwise), and SigV2 signs the `?delete`
//! sub-resource. Body: `<Delete><Quiet>true</Quiet><Object><Key>…</Key></Object>…</Delete>`
//! with `Content-MD5` and `Content-Type: application/xml`; at most 1000 keys.
//!
//! A 2xx answer is parsed for `DeleteResult/Error` entries, returned as [`DeleteFailure`]s.
//! An error status (e.g. 501 `NotImplemented` or 403 from servers without bulk delete) is an
//! [`S3Error::Http`], so the caller can fall back to single DELETEs; `NotImplemented` and 501
//! are not retried.

use crate::checksum::content_md5;
use crate::client::{Inner, Prepared, S3Client};
use crate::error::S3Error;
use crate::retry::Attempt;
use crate::stats::Op;
use crate::transport::Method;
use crate::types::DeleteFailure;
use crate::xml;

/// Most keys one request may carry (S3's limit).
pub const MAX_DELETE_KEYS: usize = 1000;

/// Largest DeleteResult accepted (1000 errors with long messages fit easily).
const RESULT_LIMIT: usize = 16 << 20;

impl S3Client {
    /// Deletes up to [`MAX_DELETE_KEYS`] objects in one request; returns the keys the server
    /// could not delete. An empty `keys` sends nothing.
    pub fn delete_objects(&self, keys: &[String]) -> Result<Vec<DeleteFailure>, S3Error> {
        if keys.len() > MAX_DELETE_KEYS {
            return Err(S3Error::InvalidRequest {
                detail: format!(
                    "bulk delete of {} keys (at most {MAX_DELETE_KEYS} per request)",
                    keys.len()
                ),
            });
        }
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        if keys.iter().any(String::is_empty) {
            return Err(S3Error::InvalidRequest {
                detail: "empty object key in bulk delete".into(),
            });
        }
        let inner = &self.inner;
        let body = xml::delete_body(keys);
        let prepared = Prepared {
            op: Op::BulkDelete,
            method: Method::Post,
            path: inner.endpoint.bucket_path(),
            query: vec![("delete".to_owned(), String::new())],
            subresource: Some("delete"),
            headers: vec![
                ("content-md5".to_owned(), content_md5(body.as_bytes())),
                ("content-type".to_owned(), "application/xml".to_owned()),
            ],
            body: Some(body.as_bytes()),
            body_limit: RESULT_LIMIT,
        };
        inner.execute(&prepared, |target, resp| match resp.status {
            200..=299 => match xml::parse_delete_result(&resp.body) {
                Ok(errors) => Attempt::Done(
                    errors
                        .into_iter()
                        .map(|(key, code, message)| DeleteFailure { key, code, message })
                        .collect(),
                ),
                Err(detail) => Attempt::Fail(Inner::invalid_response(target, detail)),
            },
            _ => inner.http_failure(target, &resp, false),
        })
    }
}
