//! ListObjects (V1): `GET <bucket URL>?marker=…&max-keys=N&prefix=…` (facts §2.7).
//!
//! Unlike s3backer we also send `prefix=` (harmless, and lets the server filter); empty
//! `marker`/`prefix` are left out. Parameters are sorted by name and percent-encoded (`/` as
//! `%2F`). The page is parsed for `IsTruncated` and `Contents/Key` (XML escapes resolved);
//! more than 1000 keys, or more than `max_keys`, is an invalid response.

use crate::client::{Inner, Prepared, S3Client};
use crate::error::S3Error;
use crate::retry::Attempt;
use crate::stats::Op;
use crate::transport::Method;
use crate::types::ListPage;
use crate::xml;

/// Most keys a page may hold (S3's limit).
const MAX_PAGE_KEYS: usize = 1000;
/// Largest page accepted (1000 keys of up to 1024 bytes, XML-escaped, plus per-key data).
const PAGE_LIMIT: usize = 32 << 20;

impl S3Client {
    /// Lists keys starting with `prefix` that sort after `marker`, at most `max_keys`.
    pub fn list_objects(
        &self,
        prefix: &str,
        marker: &str,
        max_keys: u32,
    ) -> Result<ListPage, S3Error> {
        let inner = &self.inner;
        let mut query = vec![("max-keys".to_owned(), max_keys.to_string())];
        if !marker.is_empty() {
            query.push(("marker".to_owned(), marker.to_owned()));
        }
        if !prefix.is_empty() {
            query.push(("prefix".to_owned(), prefix.to_owned()));
        }
        let prepared = Prepared {
            op: Op::List,
            method: Method::Get,
            path: inner.endpoint.bucket_path(),
            query,
            subresource: None,
            headers: Vec::new(),
            body: None,
            body_limit: PAGE_LIMIT,
        };
        let limit = MAX_PAGE_KEYS.min(max_keys as usize);
        inner.execute(&prepared, |target, resp| match resp.status {
            200..=299 => match xml::parse_list(&resp.body) {
                Ok(page) if page.keys.len() > limit => Attempt::Fail(Inner::invalid_response(
                    target,
                    format!("{} keys in a page of at most {limit}", page.keys.len()),
                )),
                Ok(page) => Attempt::Done(ListPage {
                    keys: page.keys,
                    is_truncated: page.is_truncated,
                }),
                Err(detail) => Attempt::Fail(Inner::invalid_response(target, detail)),
            },
            _ => inner.http_failure(target, &resp, false),
        })
    }
}
