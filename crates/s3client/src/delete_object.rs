//! `DELETE` of one object (zero a block, clear the mount token: facts §2.4, §2.6).
//!
//! 2xx and 404 are success (deleting a missing object is fine), except a 404 whose code is
//! `NoSuchBucket`: that is an error. No `x-amz-storage-class` header is sent (s3backer sends
//! it; open question 9: it means nothing on DELETE). Errors are retried per `retry.rs`.

use crate::client::{Prepared, S3Client, check_key};
use crate::error::S3Error;
use crate::retry::Attempt;
use crate::stats::Op;
use crate::transport::Method;

impl S3Client {
    /// Deletes object `key`; a missing object is not an error.
    pub fn delete_object(&self, key: &str) -> Result<(), S3Error> {
        check_key(key)?;
        let inner = &self.inner;
        let prepared = Prepared {
            op: Op::Delete,
            method: Method::Delete,
            path: inner.endpoint.object_path(key),
            query: Vec::new(),
            subresource: None,
            headers: Vec::new(),
            body: None,
            body_limit: 0,
        };
        inner.execute(&prepared, |target, resp| match resp.status {
            200..=299 => Attempt::Done(()),
            404 => {
                let (code, _) = crate::xml::parse_error(&resp.body);
                if code.as_deref() == Some("NoSuchBucket") {
                    inner.http_failure(target, &resp, false)
                } else {
                    Attempt::Done(())
                }
            }
            _ => inner.http_failure(target, &resp, false),
        })
    }
}
