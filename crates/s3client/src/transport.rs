//! One attempt of a request: the hand-off to the HTTP/1.1 client (`http1.rs`: connection
//! pool, framing, timeout, TLS, proxies) and what surrounds it (facts §4.6).
//!
//! * Statuses are never errors here; redirects are not followed: a 3xx reaching us is an
//!   error the retry layer handles, as in s3backer.
//! * `--timeout` bounds one whole attempt (connect included); zero means no limit.
//! * Idle connections kept: `max_connections`; none with `--noCurlCache`.
//! * TLS is the system's OpenSSL (through native-tls), as in s3backer (libcurl + OpenSSL): the
//!   same trust store, and a self-signed server certificate given with `--cacert` is accepted
//!   even when it is marked as a CA (rustls/webpki refuses that as `CaUsedAsEndEntity`, and it is
//!   how `openssl req -x509` and many MinIO setups make them). `--insecure` disables
//!   verification (native-tls cannot keep the host-name check alone); `--cacert FILE` trusts
//!   exactly the PEM certificates in FILE (like curl's `--cacert`); otherwise the system roots.
//! * Bodies are never decoded (no `Accept-Encoding` of our own; compressed blocks are passed
//!   through raw). Success bodies are read up to the caller's limit; error bodies up to
//!   [`ERROR_BODY_LIMIT`] (enough for an XML error document).
//! * `--maxUploadSpeed` / `--maxDownloadSpeed` (bits/s): after a transfer, sleep until
//!   `bytes / (speed / 8)` seconds have passed since it started (a per-transfer cap, like
//!   curl's).
//! * Every request's method, URL and status at debug level (shown with `--debug`);
//!   `--debug-http` adds transport failures and (≤ 2000 bytes of) error bodies.
//!   Request headers are never logged, so neither is `Authorization`.

use std::time::{Duration, Instant};

use crate::error::S3Error;
pub(crate) use crate::http1::Failure;
use crate::http1::{ConnectOptions, Http1, Origin, Request};
use crate::stats::TransportClass;
use s3backer_config::S3Settings;

/// Largest error body read (bytes); the rest is dropped with the connection.
pub(crate) const ERROR_BODY_LIMIT: usize = 64 * 1024;
/// Largest error body excerpt logged with `--debug-http`.
const DEBUG_BODY_LIMIT: usize = 2000;

/// HTTP methods we use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Head,
    Put,
    Post,
    Delete,
}

impl Method {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Put => "PUT",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }
}

/// A request ready to go: URL, every header (signed ones included), body.
pub(crate) struct Outgoing<'a> {
    pub(crate) method: Method,
    pub(crate) url: &'a str,
    /// `Host` header value.
    pub(crate) host: &'a str,
    pub(crate) headers: &'a [(String, String)],
    /// Body for PUT/POST (`None` sends none).
    pub(crate) body: Option<&'a [u8]>,
    /// Largest success body accepted (0 = unlimited).
    pub(crate) body_limit: usize,
}

/// A response: status, headers and (possibly truncated, for errors) body; the body is empty
/// when it went to the `dest` given to [`Transport::send`] (`in_dest`).
pub(crate) type Incoming = crate::http1::Response;

impl Failure {
    pub(crate) fn class(&self) -> TransportClass {
        match self {
            Failure::Timeout => TransportClass::Timeout,
            Failure::Connect(_) => TransportClass::Connect,
            Failure::HostUnknown(_) => TransportClass::HostUnknown,
            Failure::Other(_) | Failure::TooLarge | Failure::Certificate(_) => {
                TransportClass::Other
            }
        }
    }
}

/// The HTTP client plus the settings that shape each transfer.
pub(crate) struct Transport {
    http: Http1,
    timeout: Option<Duration>,
    debug_http: bool,
    max_upload_bps: Option<u64>,
    max_download_bps: Option<u64>,
}

/// Reads a PEM bundle; an error if unreadable, without any certificate, or with one OpenSSL
/// cannot load.
fn load_cacert(path: &std::path::Path) -> Result<Vec<native_tls::Certificate>, S3Error> {
    let config = |detail: String| S3Error::Config { detail };
    let file = path.display();
    let pem =
        std::fs::read(path).map_err(|e| config(format!("cannot read CA file {file}: {e}")))?;
    // OpenSSL's own error for a cut file is "bad end line"; say what it means.
    let count = |marker: &[u8]| pem.windows(marker.len()).filter(|w| w == &marker).count();
    if count(b"-----BEGIN CERTIFICATE-----") > count(b"-----END CERTIFICATE-----") {
        return Err(config(format!(
            "bad PEM in CA file {file}: unterminated certificate"
        )));
    }
    let certs = native_tls::Certificate::stack_from_pem(&pem)
        .map_err(|e| config(format!("bad certificate in CA file {file}: {e}")))?;
    if certs.is_empty() {
        return Err(config(format!("no PEM certificate in CA file {file}")));
    }
    Ok(certs)
}

/// The TLS verification `settings` ask for.
fn tls_connector(settings: &S3Settings) -> Result<native_tls::TlsConnector, S3Error> {
    let mut tls = native_tls::TlsConnector::builder();
    if settings.insecure {
        tls.danger_accept_invalid_certs(true)
            .danger_accept_invalid_hostnames(true);
    } else if let Some(path) = &settings.cacert {
        tls.disable_built_in_roots(true);
        for cert in load_cacert(path)? {
            tls.add_root_certificate(cert);
        }
    }
    tls.build().map_err(|e| S3Error::Config {
        detail: format!("cannot set up TLS: {e}"),
    })
}

impl Transport {
    pub(crate) fn new(
        settings: &S3Settings,
        max_connections: usize,
        user_agent: &str,
    ) -> Result<Transport, S3Error> {
        let https = settings
            .base_url
            .to_ascii_lowercase()
            .starts_with("https://");
        let tls = if https || settings.cacert.is_some() {
            Some(tls_connector(settings)?)
        } else {
            None
        };
        let max_idle = if settings.no_connection_reuse {
            0
        } else {
            max_connections
        };
        Ok(Transport {
            http: Http1::new(ConnectOptions {
                tls,
                max_idle,
                user_agent: user_agent.to_owned(),
            }),
            timeout: (!settings.timeout.is_zero()).then_some(settings.timeout),
            debug_http: settings.debug_http,
            max_upload_bps: settings.max_upload_speed.filter(|&s| s > 0),
            max_download_bps: settings.max_download_speed.filter(|&s| s > 0),
        })
    }

    /// Sends one attempt. A 2xx body of exactly `dest.len()` bytes without `Content-Encoding`
    /// is read straight into `dest` (`Incoming::in_dest`): no buffer to zero, no copy after.
    pub(crate) fn send(
        &self,
        out: &Outgoing<'_>,
        dest: Option<&mut [u8]>,
    ) -> Result<Incoming, Failure> {
        let started = Instant::now();
        let dest_len = dest.as_ref().map(|d| d.len());
        let tls = out.url.len() > 8 && out.url[..8].eq_ignore_ascii_case("https://");
        let origin = Origin::new(tls, out.host)
            .ok_or_else(|| Failure::Other(format!("bad host \"{}\"", out.host)))?;
        // The request target: the URL without `scheme://authority`.
        let target = out
            .url
            .split_once("://")
            .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
            .unwrap_or("/");
        let request = Request {
            method: out.method.as_str(),
            origin: &origin,
            host: out.host,
            target,
            headers: out.headers,
            body: out.body,
            body_limit: out.body_limit,
            error_body_limit: ERROR_BODY_LIMIT,
        };
        let response = match self.http.exchange(&request, dest, self.timeout) {
            Ok(r) => r,
            Err(f) => {
                if self.debug_http {
                    log::debug!("{} {} failed: {f:?}", out.method.as_str(), out.url);
                }
                return Err(f);
            }
        };
        let (status, body) = (response.status, &response.body);
        // Every request at debug level (`--debug`), as s3backer logs them; bodies need
        // `--debug-http`.
        log::debug!("{} {} -> {status}", out.method.as_str(), out.url);
        if self.debug_http && status >= 300 && !body.is_empty() {
            let shown = &body[..body.len().min(DEBUG_BODY_LIMIT)];
            log::debug!(
                "error body: {}",
                String::from_utf8_lossy(shown).escape_debug()
            );
        }
        let received = match (response.in_dest, dest_len) {
            (true, Some(len)) => len as u64,
            _ => body.len() as u64,
        };
        self.throttle(started, out.body.map_or(0, <[u8]>::len) as u64, received);
        Ok(response)
    }

    /// Sleeps so the transfer does not beat the configured speed caps.
    fn throttle(&self, started: Instant, sent: u64, received: u64) {
        let need = |bytes: u64, bps: Option<u64>| {
            bps.map_or(Duration::ZERO, |bps| {
                Duration::from_secs_f64(bytes as f64 * 8.0 / bps as f64)
            })
        };
        let wanted = need(sent, self.max_upload_bps).max(need(received, self.max_download_bps));
        let elapsed = started.elapsed();
        if wanted > elapsed {
            std::thread::sleep(wanted - elapsed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate (`openssl req -x509`, P-256, valid until 2126).
    const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIBdDCCARugAwIBAgIUaCq/vyxBMJMWNKcHnP3mHY2kDvgwCgYIKoZIzj0EAwIw\nDzENMAsGA1UEAwwEdGVzdDAgFw0yNjExMjYxMzI4MDNaGA8yMTI2MTEwMjEzMjgw\nM1owDzENMAsGA1UEAwwEdGVzdDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABLHV\nuFW8d5QJfU9fbUjFUY8rDjDBejUajoY7ua93SGv+1JusSqOk4q7lwELTOWG4jxbS\n/ReVv0hgpZbTLx3pHlKjUzBRMB0GA1UdDgQWBBQtuG5bLqoYHi7X+tW/trMKn1cO\ncDAfBgNVHSMEGDAWgBQtuG5bLqoYHi7X+tW/trMKn1cOcDAPBgNVHRMBAf8EBTAD\nAQH/MAoGCCqGSM49BAMCA0cAMEQCIBM3bkencqDUEL5qEaE+gov8MwOr/Uw0T/x9\ngrwlXEnKAiBcOaQAPeFsDKGYtucnlg9wQfReHBDFal+TLKa/JYZyxg==\n-----END CERTIFICATE-----\n";

    #[test]
    fn cacert_errors() {
        let dir = std::env::temp_dir().join(format!("s3client-cacert-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let error = |path: &std::path::Path| match load_cacert(path) {
            Ok(_) => panic!("{} loaded", path.display()),
            Err(e) => e.to_string(),
        };
        let e = error(&dir.join("missing.pem"));
        assert!(e.contains("cannot read CA file"), "{e}");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, b"not a certificate\n").unwrap();
        let e = error(&empty);
        assert!(e.contains("no PEM certificate"), "{e}");
        // A block that is not a certificate is refused when the file is read, not at the
        // first handshake.
        let bad = dir.join("bad.pem");
        std::fs::write(
            &bad,
            b"-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQoLDA0ODw==\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = error(&bad);
        assert!(e.contains("bad certificate in CA file"), "{e}");
        let cut = dir.join("cut.pem");
        std::fs::write(&cut, &CERT[..CERT.len() - 30]).unwrap();
        let e = error(&cut);
        assert!(e.contains("unterminated"), "{e}");
        // Two certificates with text around them.
        let good = dir.join("good.pem");
        std::fs::write(&good, format!("# comment\n{CERT}between\n{CERT}")).unwrap();
        assert_eq!(load_cacert(&good).map(|c| c.len()).ok(), Some(2));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
