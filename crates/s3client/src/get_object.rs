//! `GET` of one object (read a block, facts §4.2 / §4.7).
//!
//! * Sends `If-Match` / `If-None-Match` (`"<hex>"`) and `Accept-Encoding` only when asked.
//! * Never decodes the body; enforces `max_body`; asks for the stored checksum
//!   (`x-amz-checksum-mode`) and checks a whole body against it, else against an MD5-form
//!   ETag except under SSE-KMS whose ETags are not MD5s (`checksum.rs`); a mismatch is
//!   retried.
//! * 2xx → [`GetOutcome::Found`]; 304 to a conditional GET → [`GetOutcome::NotModified`];
//!   404 → [`GetOutcome::NotFound`], **except** a 404 whose error code is `NoSuchBucket`,
//!   which is an error: a missing bucket must never read as zeros.
//! * 412 (If-Match failed: stale content) and every other error status are retried per
//!   `retry.rs` and end as [`S3Error::Http`].

use crate::checksum::{self, MODE_HEADER};
use crate::client::{Prepared, S3Client, check_key, response_meta};
use crate::error::S3Error;
use crate::retry::Attempt;
use crate::stats::Op;
use crate::transport::Method;
use crate::types::{Etag, GetOutcome, GetRequest, ObjectData};

impl S3Client {
    /// Reads object `key`.
    pub fn get_object(&self, key: &str, req: &GetRequest) -> Result<GetOutcome, S3Error> {
        self.get_object_maybe_into(key, req, None)
    }

    /// Reads object `key`; a body of exactly `dest.len()` bytes without `Content-Encoding` (a
    /// plain block) is read straight into `dest`, checked there, and reported with
    /// [`ObjectData::in_dest`] and an empty `body`. Not for ranged requests.
    pub fn get_object_into(
        &self,
        key: &str,
        req: &GetRequest,
        dest: &mut [u8],
    ) -> Result<GetOutcome, S3Error> {
        if req.range.is_some() {
            return Err(S3Error::InvalidRequest {
                detail: "a ranged GET cannot be read into a block buffer".into(),
            });
        }
        self.get_object_maybe_into(key, req, Some(dest))
    }

    fn get_object_maybe_into(
        &self,
        key: &str,
        req: &GetRequest,
        dest: Option<&mut [u8]>,
    ) -> Result<GetOutcome, S3Error> {
        check_key(key)?;
        let inner = &self.inner;
        let mut headers = Vec::new();
        if let Some(e) = &req.if_match {
            headers.push(("if-match".to_owned(), e.quoted()));
        }
        if let Some(e) = &req.if_none_match {
            headers.push(("if-none-match".to_owned(), e.quoted()));
        }
        if let Some(enc) = &req.accept_encoding {
            headers.push(("accept-encoding".to_owned(), enc.clone()));
        }
        if let Some((first, len)) = req.range {
            if len == 0 {
                return Err(S3Error::InvalidRequest {
                    detail: "empty range".into(),
                });
            }
            headers.push((
                "range".to_owned(),
                format!("bytes={first}-{}", first.saturating_add(len - 1)),
            ));
        }
        if req.range.is_none() {
            headers.push((MODE_HEADER.to_owned(), "ENABLED".to_owned()));
        }
        let conditional = req.if_match.is_some() || req.if_none_match.is_some();
        let prepared = Prepared {
            op: Op::Get,
            method: Method::Get,
            path: inner.endpoint.object_path(key),
            query: Vec::new(),
            subresource: None,
            headers,
            body: None,
            body_limit: req.max_body,
        };
        // SSE-KMS objects have ETags that are not the MD5 of their body.
        let check_md5 = inner.put_defaults.sse.as_deref() != Some("aws:kms");
        inner.execute_into(&prepared, dest, |target, resp, dest| match resp.status {
            206 if req.range.is_some() => {
                // Part of the object: the ETag covers the whole, so there is nothing to check
                // the body against; the caller checks the range is what it asked for.
                let range_of = resp
                    .header("content-range")
                    .and_then(|v| parse_content_range(&v));
                if range_of.is_none() {
                    return Attempt::Fail(crate::client::Inner::invalid_response(
                        target,
                        "206 without a valid Content-Range".into(),
                    ));
                }
                Attempt::Done(GetOutcome::Found(ObjectData {
                    etag: resp.header("etag").and_then(|v| Etag::parse_header(&v)),
                    content_encoding: resp.header("content-encoding"),
                    meta: response_meta(&resp),
                    body: resp.body,
                    in_dest: false,
                    range_of,
                }))
            }
            200..=299 => {
                let etag = resp.header("etag").and_then(|v| Etag::parse_header(&v));
                // A body damaged on the way (or a lying proxy) is caught here and fetched
                // again, never returned.
                let body = match dest {
                    Some(d) if resp.in_dest => d,
                    _ => &resp.body,
                };
                if let Err(detail) = checksum::verify_body(&resp, body, etag, check_md5) {
                    return Attempt::Retry {
                        error: S3Error::InvalidResponse {
                            method: target.method,
                            url: target.url.to_owned(),
                            detail,
                        },
                        at_least: None,
                    };
                }
                Attempt::Done(GetOutcome::Found(ObjectData {
                    etag,
                    content_encoding: resp.header("content-encoding"),
                    meta: response_meta(&resp),
                    in_dest: resp.in_dest,
                    body: resp.body,
                    range_of: None,
                }))
            }
            304 if conditional => Attempt::Done(GetOutcome::NotModified),
            404 => {
                let (code, _) = crate::xml::parse_error(&resp.body);
                if code.as_deref() == Some("NoSuchBucket") {
                    inner.http_failure(target, &resp, conditional)
                } else {
                    Attempt::Done(GetOutcome::NotFound)
                }
            }
            _ => inner.http_failure(target, &resp, conditional),
        })
    }
}

/// `Content-Range: bytes FIRST-LAST/TOTAL` → `(FIRST, TOTAL)`; `None` if malformed or the
/// total is unknown (`*`).
fn parse_content_range(v: &str) -> Option<(u64, u64)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let (first, last, total) = (
        first.trim().parse::<u64>().ok()?,
        last.trim().parse::<u64>().ok()?,
        total.trim().parse::<u64>().ok()?,
    );
    (first <= last && last < total).then_some((first, total))
}

#[cfg(test)]
mod tests {
    use super::parse_content_range;

    #[test]
    fn content_range() {
        assert_eq!(
            parse_content_range("bytes 4096-8191/262144"),
            Some((4096, 262144))
        );
        assert_eq!(parse_content_range("bytes 0-0/1"), Some((0, 1)));
        assert_eq!(parse_content_range("bytes 0-9/*"), None);
        assert_eq!(parse_content_range("bytes 9-0/10"), None);
        assert_eq!(parse_content_range("bytes 0-10/10"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
    }
}
