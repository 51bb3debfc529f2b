//! A thin, synchronous S3 client with exactly the requests s3backer makes (facts §4): GET,
//! HEAD, PUT and DELETE of one object, ListObjects V1, and Multi-Object Delete.
//!
//! # Brief overview
//! [`S3Client::new`] takes the resolved [`s3backer_config::S3Settings`] and a bucket and
//! builds one HTTP/1.1 client (`http1`: connection pool, timeout, TLS). Each operation lives in its own module and returns a typed
//! result ([`GetOutcome`], [`ObjectInfo`], [`ListPage`], ...) or an [`S3Error`] carrying the
//! errno the front ends report.
//!
//! # Key decisions
//! * **Blocking, not async.** The nbdkit plugin forks after loading and our layers call from a
//!   bounded thread pool; a blocking client on std sockets needs no runtime and nothing to restart
//!   after the fork. [`S3Client`] is `Clone + Send + Sync` and cheap to clone.
//! * **Hand-written signing** (`sign_v4.rs`, `sign_v2.rs`) on RustCrypto: s3backer signs
//!   exactly the headers it sets, and needs SigV2, which no crate offers.
//! * **Retries inside the client** (`retry.rs`), with s3backer's schedule and classification,
//!   plus a few deliberate exceptions (definitive error codes, 501, fail-fast HEAD at
//!   startup).
//!
//! # Deliberate differences from s3backer
//! * Keys (prefix included) are percent-encoded in URLs, and the same string is signed.
//! * Bulk delete uses the configured URL style, and SigV2 signs its `?delete` sub-resource.
//! * SigV2 sends the session token too; DELETE does not carry `x-amz-storage-class`.
//! * ListObjects sends `prefix=`.
//! * A block body is hashed once (`checksum.rs`): under SigV4 the signed payload hash protects
//!   a PUT body, so `Content-MD5` is sent only with aws2, anonymous requests or
//!   `--contentMD5`; every PUT carries `x-amz-checksum-crc32`, and GET bodies are checked
//!   against it (or against their MD5 ETag when the object has no checksum).
//!
//! # Modules
//! `checksum` (what a PUT sends and a GET body is checked against), `client` (construction, the shared execute/sign/classify path), one file per operation
//! (`get_object`, `head_object`, `put_object`, `delete_object`, `delete_objects`,
//! `list_objects`), `sign_v4`, `sign_v2`, `retry`, `transport` (one attempt: logging, speed caps), `http1` (the
//! wire: connections, framing, TLS, proxies), `url`, `xml`, `date`,
//! `stats`, `error`, `types`.
#![deny(missing_docs)]
// Tests may unwrap; library code may not (workspace lint `clippy::unwrap_used`).
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod checksum;
mod client;
mod date;
mod delete_object;
mod delete_objects;
mod error;
mod get_object;
mod head_object;
mod http1;
mod list_objects;
mod put_object;
mod retry;
mod sign_v2;
mod sign_v4;
mod stats;
mod transport;
mod types;
mod url;
mod xml;

#[cfg(test)]
mod tests;

pub use client::{ClientOptions, S3Client};

/// Entry points for the fuzz targets in `fuzz/`; not part of the API.
#[doc(hidden)]
pub mod fuzzing {
    /// The `ListBucketResult` parser (keys, is-truncated); exists for fuzzing.
    pub fn parse_list(body: &[u8]) -> Result<(Vec<String>, bool), String> {
        crate::xml::parse_list(body).map(|p| (p.keys, p.is_truncated))
    }

    /// The `DeleteResult` parser ((key, code, message) per error); exists for fuzzing.
    pub fn parse_delete_result(body: &[u8]) -> Result<Vec<(String, String, String)>, String> {
        crate::xml::parse_delete_result(body)
    }

    /// What the HTTP/1.1 client read from one answer (`http1.rs`).
    #[derive(Debug)]
    pub struct Answer {
        /// The status code.
        pub status: u16,
        /// The body kept (empty if it went to the caller's buffer).
        pub body: Vec<u8>,
        /// The body went to the caller's buffer.
        pub in_dest: bool,
        /// The connection would carry the next request.
        pub reusable: bool,
        /// Bytes of the input read.
        pub consumed: usize,
    }

    /// Reads one answer to a `method` request from `input` as the client reads it from a
    /// socket: a 2xx plain body of `dest.len()` bytes into `dest`, success bodies within
    /// `body_limit` (0 = none), error documents within `error_body_limit`; exists for fuzzing.
    pub fn read_answer(
        input: &[u8],
        method: &str,
        dest: Option<&mut [u8]>,
        body_limit: usize,
        error_body_limit: usize,
    ) -> Result<Answer, String> {
        crate::http1::read_answer(input.to_vec(), method, dest, body_limit, error_body_limit)
            .map(|a| Answer {
                status: a.status,
                body: a.body,
                in_dest: a.in_dest,
                reusable: a.reusable,
                consumed: a.consumed,
            })
            .map_err(|f| format!("{f:?}"))
    }
}
pub use date::format_amz_timestamp;
pub use delete_objects::MAX_DELETE_KEYS;
pub use error::S3Error;
pub use stats::ClientStats;
pub use types::{
    DeleteFailure, Etag, GetOutcome, GetRequest, ListPage, ObjectData, ObjectInfo, PutOutcome,
    PutRequest,
};
