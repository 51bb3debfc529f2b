//! [`S3Error`]: every way a request can fail, its one-line message and its errno.
//!
//! Messages are single lines and never contain secrets: URLs carry no credentials (we sign with
//! headers, never with query parameters), and server-supplied texts (`Code`, `Message`) are
//! flattened to one line and truncated when the error is built ([`one_line`]).
//!
//! The errno mapping follows s3backer (facts §4.5): 401 → `EACCES`, 403 → `EPERM`,
//! 412 → `ESTALE`, 3xx → `ELOOP`, other HTTP errors → `EIO`, timeout → `ETIMEDOUT`,
//! connect/DNS failure → `ENXIO`.

use std::time::Duration;

/// Longest server-supplied text (error code or message) kept in an error, in characters.
const MAX_SERVER_TEXT: usize = 300;

/// Why an S3 request failed.
///
/// Built only after retries are exhausted, or at once for failures that retrying cannot fix
/// (see `retry.rs` for the classification).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum S3Error {
    /// The server answered with an error status (after retries, or a non-retryable one).
    #[error("{}", http_message(*status, code.as_deref(), message.as_deref(), method, url))]
    Http {
        /// Request method (`GET`, `PUT`, ...).
        method: &'static str,
        /// Request URL (never contains credentials).
        url: String,
        /// HTTP status code.
        status: u16,
        /// S3 error code from the XML error body (`NoSuchBucket`, `SignatureDoesNotMatch`...).
        code: Option<String>,
        /// S3 error message from the XML error body, flattened to one line.
        message: Option<String>,
    },
    /// No complete response within `--timeout`.
    #[error("request timed out after {after:?} for {method} {url}")]
    Timeout {
        /// Request method.
        method: &'static str,
        /// Request URL.
        url: String,
        /// The per-attempt limit that expired.
        after: Duration,
    },
    /// The connection could not be made (refused, unreachable, DNS failure).
    #[error("cannot connect ({detail}) for {method} {url}")]
    Connect {
        /// Request method.
        method: &'static str,
        /// Request URL.
        url: String,
        /// What the transport reported.
        detail: String,
    },
    /// Another transport failure (TLS, connection reset, protocol error...).
    #[error("transport error ({detail}) for {method} {url}")]
    Transport {
        /// Request method.
        method: &'static str,
        /// Request URL.
        url: String,
        /// What the transport reported.
        detail: String,
    },
    /// A success response we cannot use (bad XML, too many keys, ...).
    #[error("invalid response ({detail}) for {method} {url}")]
    InvalidResponse {
        /// Request method.
        method: &'static str,
        /// Request URL.
        url: String,
        /// What was wrong with it.
        detail: String,
    },
    /// The client settings are unusable (bad base URL, unreadable `--cacert`, ...).
    #[error("S3 client configuration: {detail}")]
    Config {
        /// What is wrong.
        detail: String,
    },
    /// The caller asked for something the client cannot send (empty key, more than 1000 keys
    /// in one bulk delete, a metadata value that is not a valid header value, ...).
    #[error("invalid S3 request: {detail}")]
    InvalidRequest {
        /// What is wrong.
        detail: String,
    },
    /// A response body was larger than the caller's `max_body`.
    #[error("response body larger than {limit} bytes for {method} {url}")]
    BodyTooLarge {
        /// Request method.
        method: &'static str,
        /// Request URL.
        url: String,
        /// The limit that was exceeded.
        limit: usize,
    },
}

impl S3Error {
    /// The errno a front end (nbdkit, FUSE) should report for this error (facts §4.5).
    pub fn errno(&self) -> i32 {
        match self {
            S3Error::Http { status, .. } => match *status {
                401 => libc::EACCES,
                403 => libc::EPERM,
                412 => libc::ESTALE,
                300..=399 => libc::ELOOP,
                _ => libc::EIO,
            },
            S3Error::Timeout { .. } => libc::ETIMEDOUT,
            S3Error::Connect { .. } => libc::ENXIO,
            S3Error::Config { .. } | S3Error::InvalidRequest { .. } => libc::EINVAL,
            S3Error::Transport { .. }
            | S3Error::InvalidResponse { .. }
            | S3Error::BodyTooLarge { .. } => libc::EIO,
        }
    }

    /// Whether the server refused our credentials (HTTP 401 or 403).
    pub fn is_auth_failure(&self) -> bool {
        matches!(
            self,
            S3Error::Http {
                status: 401 | 403,
                ..
            }
        )
    }

    /// The HTTP status, for [`S3Error::Http`].
    pub fn status(&self) -> Option<u16> {
        match self {
            S3Error::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The S3 error code (`NoSuchBucket`, `NotImplemented`, ...), for [`S3Error::Http`] when
    /// the server sent an XML error body.
    pub fn code(&self) -> Option<&str> {
        match self {
            S3Error::Http { code, .. } => code.as_deref(),
            _ => None,
        }
    }
}

fn http_message(
    status: u16,
    code: Option<&str>,
    message: Option<&str>,
    method: &str,
    url: &str,
) -> String {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let mut out = format!("HTTP {status}");
    if !reason.is_empty() {
        out.push(' ');
        out.push_str(reason);
    }
    match (code, message) {
        (Some(c), Some(m)) => out.push_str(&format!(" ({c}: {m})")),
        (Some(c), None) => out.push_str(&format!(" ({c})")),
        (None, Some(m)) => out.push_str(&format!(" ({m})")),
        (None, None) => {}
    }
    out.push_str(&format!(" for {method} {url}"));
    if (300..400).contains(&status) {
        out.push_str(
            "; the server redirects us: the bucket may need virtual-hosted URLs or another \
             region (try --vhost and/or --region)",
        );
    }
    out
}

/// Flattens a server-supplied text to one printable line of bounded length.
pub(crate) fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_SERVER_TEXT));
    let mut last_space = false;
    for (n, c) in s.trim().chars().enumerate() {
        if n >= MAX_SERVER_TEXT {
            out.push_str("...");
            break;
        }
        let c = if c.is_control() || c.is_whitespace() {
            ' '
        } else {
            c
        };
        if c == ' ' && last_space {
            continue;
        }
        last_space = c == ' ';
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(status: u16, code: Option<&str>, message: Option<&str>) -> S3Error {
        S3Error::Http {
            method: "PUT",
            url: "http://127.0.0.1:3900/bucket/00000000".into(),
            status,
            code: code.map(str::to_owned),
            message: message.map(str::to_owned),
        }
    }

    #[test]
    fn http_display_matches_the_documented_example() {
        let e = http(
            403,
            Some("SignatureDoesNotMatch"),
            Some("The request signature we calculated does not match"),
        );
        assert_eq!(
            e.to_string(),
            "HTTP 403 Forbidden (SignatureDoesNotMatch: The request signature we calculated \
             does not match) for PUT http://127.0.0.1:3900/bucket/00000000"
        );
        assert!(e.is_auth_failure());
        assert_eq!(e.errno(), libc::EPERM);
        assert_eq!(e.status(), Some(403));
        assert_eq!(e.code(), Some("SignatureDoesNotMatch"));
    }

    #[test]
    fn http_display_without_body_and_with_redirect_hint() {
        assert_eq!(
            http(500, None, None).to_string(),
            "HTTP 500 Internal Server Error for PUT http://127.0.0.1:3900/bucket/00000000"
        );
        let redirect = http(301, Some("PermanentRedirect"), None).to_string();
        assert!(redirect.starts_with("HTTP 301 Moved Permanently (PermanentRedirect) for PUT"));
        assert!(redirect.contains("--vhost"));
        assert!(redirect.contains("--region"));
        assert!(!redirect.contains('\n'));
    }

    #[test]
    fn errno_mapping() {
        assert_eq!(http(401, None, None).errno(), libc::EACCES);
        assert_eq!(http(403, None, None).errno(), libc::EPERM);
        assert_eq!(http(412, None, None).errno(), libc::ESTALE);
        assert_eq!(http(307, None, None).errno(), libc::ELOOP);
        assert_eq!(http(500, None, None).errno(), libc::EIO);
        assert_eq!(http(404, None, None).errno(), libc::EIO);
        let t = S3Error::Timeout {
            method: "GET",
            url: "u".into(),
            after: Duration::from_secs(30),
        };
        assert_eq!(t.errno(), libc::ETIMEDOUT);
        assert_eq!(t.to_string(), "request timed out after 30s for GET u");
        let c = S3Error::Connect {
            method: "GET",
            url: "u".into(),
            detail: "refused".into(),
        };
        assert_eq!(c.errno(), libc::ENXIO);
        assert!(!c.is_auth_failure());
        assert_eq!(S3Error::Config { detail: "x".into() }.errno(), libc::EINVAL);
    }

    #[test]
    fn one_line_flattens_and_truncates() {
        assert_eq!(one_line("  a\nb\r\n\tc  "), "a b c");
        let long = "x".repeat(1000);
        let flat = one_line(&long);
        assert!(flat.len() <= MAX_SERVER_TEXT + 3);
        assert!(flat.ends_with("..."));
    }
}
