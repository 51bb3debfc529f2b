//! The HTTP transport: one ureq [`Agent`] (connection pool, timeout, TLS) and one call that
//! sends a fully prepared request and reads the response (facts §4.6).
//!
//! * Statuses are never errors here (`http_status_as_error(false)`); redirects are not
//!   followed (`max_redirects(0)`): a 3xx reaching us is an error the retry layer handles, as
//!   in s3backer.
//! * `--timeout` bounds one whole attempt (connect included); zero means no limit.
//! * Idle connections kept: `max_connections` (in total and per host); none with
//!   `--noCurlCache`.
//! * TLS is the system's OpenSSL (through native-tls), as in s3backer (libcurl + OpenSSL): the
//!   same trust store, and a self-signed server certificate given with `--cacert` is accepted
//!   even when it is marked as a CA (rustls/webpki refuses that as `CaUsedAsEndEntity`, and it is
//!   how `openssl req -x509` and many MinIO setups make them). `--insecure` disables
//!   verification (native-tls cannot keep the host-name check alone); `--cacert FILE` trusts
//!   exactly the PEM certificates in FILE (like curl's `--cacert`); otherwise the system roots.
//! * Bodies are never decoded (no `Accept-Encoding` of ureq's own; compressed blocks are
//!   passed through raw). Success bodies are read up to the caller's limit; error bodies up to
//!   [`ERROR_BODY_LIMIT`] (enough for an XML error document).
//! * `--maxUploadSpeed` / `--maxDownloadSpeed` (bits/s): after a transfer, sleep until
//!   `bytes / (speed / 8)` seconds have passed since it started (a per-transfer cap, like
//!   curl's).
//! * Every request's method, URL and status at debug level (shown with `--debug`);
//!   `--debug-http` adds transport failures and (≤ 2000 bytes of) error bodies.
//!   Request headers are never logged, so neither is `Authorization`.

use std::io::Read;
use std::time::{Duration, Instant};

use std::collections::HashMap;
use std::sync::Mutex;

use ureq::Agent;
use ureq::tls::{PemItem, RootCerts, TlsConfig, TlsProvider};
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use crate::error::S3Error;
use crate::stats::TransportClass;
use s3backer_config::S3Settings;

/// Largest error body read (bytes); the rest is dropped with the connection.
pub(crate) const ERROR_BODY_LIMIT: u64 = 64 * 1024;
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

    fn to_http(self) -> http::Method {
        match self {
            Method::Get => http::Method::GET,
            Method::Head => http::Method::HEAD,
            Method::Put => http::Method::PUT,
            Method::Post => http::Method::POST,
            Method::Delete => http::Method::DELETE,
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

/// A response: status, headers and (possibly truncated, for errors) body.
#[derive(Debug)]
pub(crate) struct Incoming {
    pub(crate) status: u16,
    pub(crate) headers: http::HeaderMap,
    /// The body, unless it went to the caller's buffer (`in_dest`).
    pub(crate) body: Vec<u8>,
    /// The success body was read straight into the `dest` given to [`Transport::send`].
    pub(crate) in_dest: bool,
}

impl Incoming {
    /// A header as text (non-UTF-8 bytes replaced).
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }
}

/// Why an attempt got no response.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    Timeout,
    Connect(String),
    HostUnknown(String),
    Other(String),
    /// The success body exceeded `body_limit`.
    TooLarge,
    /// The server's TLS certificate did not verify: retrying cannot help.
    Certificate(String),
}

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

fn classify(e: ureq::Error) -> Failure {
    use std::io::ErrorKind;
    match e {
        ureq::Error::Timeout(_) => Failure::Timeout,
        ureq::Error::BodyExceedsLimit(_) => Failure::TooLarge,
        ureq::Error::HostNotFound => Failure::HostUnknown("host not found".into()),
        ureq::Error::ConnectionFailed => Failure::Connect("connection failed".into()),
        ureq::Error::NativeTls(e) if e.to_string().contains("certificate verify failed") => {
            Failure::Certificate(e.to_string())
        }
        ureq::Error::Io(io) => match io.kind() {
            ErrorKind::TimedOut | ErrorKind::WouldBlock => Failure::Timeout,
            ErrorKind::ConnectionRefused
            | ErrorKind::HostUnreachable
            | ErrorKind::NetworkUnreachable
            | ErrorKind::AddrNotAvailable => Failure::Connect(io.to_string()),
            _ => match io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<ureq::Error>())
            {
                Some(ureq::Error::Timeout(_)) => Failure::Timeout,
                Some(ureq::Error::BodyExceedsLimit(_)) => Failure::TooLarge,
                _ => Failure::Other(io.to_string()),
            },
        },
        other => Failure::Other(other.to_string()),
    }
}

/// How long a host name's addresses are reused: curl's default DNS cache time
/// (`CURLOPT_DNS_CACHE_TIMEOUT`), what s3backer gets through libcurl.
const DNS_CACHE_TTL: Duration = Duration::from_secs(60);

/// ureq's resolver with a cache in front. ureq resolves the host name on **every** request, a
/// pooled connection's included, and with a timeout set it does each lookup on a new thread
/// (measured: a thread created and joined per PUT, about 1.5 ms of a FLUSH's latency at queue
/// depth 1 on two loaded cores; docs/performance.md). Addresses are kept for
/// [`DNS_CACHE_TTL`], as curl does; a failed lookup is not cached.
#[derive(Debug, Default)]
struct CachingResolver {
    inner: DefaultResolver,
    cache: Mutex<HashMap<String, (Instant, ResolvedSocketAddrs)>>,
}

impl Resolver for CachingResolver {
    fn resolve(
        &self,
        uri: &http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let key = match (uri.scheme(), uri.authority()) {
            (Some(scheme), Some(authority)) => DefaultResolver::host_and_port(scheme, authority),
            _ => None,
        };
        if let Some(k) = &key {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, addrs)) = cache.get(k)
                && at.elapsed() < DNS_CACHE_TTL
            {
                return Ok(addrs.clone());
            }
        }
        let addrs = self.inner.resolve(uri, config, timeout)?;
        if let Some(k) = key {
            self.cache
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(k, (Instant::now(), addrs.clone()));
        }
        Ok(addrs)
    }
}

/// The agent plus the settings that shape each transfer.
pub(crate) struct Transport {
    agent: Agent,
    debug_http: bool,
    max_upload_bps: Option<u64>,
    max_download_bps: Option<u64>,
}

/// Reads a PEM bundle; an error if unreadable or without any certificate.
fn load_cacert(path: &std::path::Path) -> Result<RootCerts, S3Error> {
    let pem = std::fs::read(path).map_err(|e| S3Error::Config {
        detail: format!("cannot read CA file {}: {e}", path.display()),
    })?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => {
                return Err(S3Error::Config {
                    detail: format!("bad PEM in CA file {}: {e}", path.display()),
                });
            }
        }
    }
    if certs.is_empty() {
        return Err(S3Error::Config {
            detail: format!("no PEM certificate in CA file {}", path.display()),
        });
    }
    Ok(RootCerts::new_with_certs(&certs))
}

impl Transport {
    pub(crate) fn new(
        settings: &S3Settings,
        max_connections: usize,
        user_agent: &str,
    ) -> Result<Transport, S3Error> {
        let mut tls = TlsConfig::builder().provider(TlsProvider::NativeTls);
        if settings.insecure {
            tls = tls.disable_verification(true);
        } else if let Some(path) = &settings.cacert {
            tls = tls.root_certs(load_cacert(path)?);
        } else {
            tls = tls.root_certs(RootCerts::PlatformVerifier);
        }
        let idle = if settings.no_connection_reuse {
            0
        } else {
            max_connections
        };
        let timeout = (!settings.timeout.is_zero()).then_some(settings.timeout);
        let config = Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(timeout)
            .max_idle_connections(idle)
            .max_idle_connections_per_host(idle)
            .user_agent(user_agent)
            .accept_encoding("")
            .tls_config(tls.build())
            .build();
        Ok(Transport {
            agent: Agent::with_parts(
                config,
                DefaultConnector::default(),
                CachingResolver::default(),
            ),
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
        let mut builder = http::Request::builder()
            .method(out.method.to_http())
            .uri(out.url)
            .header(http::header::HOST, out.host);
        for (name, value) in out.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let result = match out.body {
            Some(body) => builder
                .header(http::header::CONTENT_LENGTH, body.len())
                .body(body)
                .map_err(|e| Failure::Other(format!("bad request: {e}")))
                .and_then(|r| self.agent.run(r).map_err(classify)),
            None => builder
                .body(())
                .map_err(|e| Failure::Other(format!("bad request: {e}")))
                .and_then(|r| self.agent.run(r).map_err(classify)),
        };
        let response = match result {
            Ok(r) => r,
            Err(f) => {
                if self.debug_http {
                    log::debug!("{} {} failed: {f:?}", out.method.as_str(), out.url);
                }
                return Err(f);
            }
        };
        let status = response.status().as_u16();
        let (parts, body) = response.into_parts();
        let fits_dest = |dest: &[u8]| {
            status < 300
                && body.content_length() == Some(dest.len() as u64)
                && (out.body_limit == 0 || dest.len() <= out.body_limit)
                && !parts.headers.contains_key(http::header::CONTENT_ENCODING)
        };
        // Bytes that went to `dest` (then `body` stays empty).
        let mut in_dest_len = None;
        let body = if out.method == Method::Head {
            Vec::new()
        } else if let Some(dest) = dest.filter(|d| fits_dest(d)) {
            let mut reader = body.into_reader();
            reader
                .read_exact(dest)
                .map_err(|e| classify(ureq::Error::from(e)))?;
            // Reading the end is what hands the connection back to the pool.
            let mut past_end = [0u8; 1];
            let extra = reader
                .read(&mut past_end)
                .map_err(|e| classify(ureq::Error::from(e)))?;
            if extra != 0 {
                return Err(Failure::Other("body longer than its Content-Length".into()));
            }
            in_dest_len = Some(dest.len() as u64);
            Vec::new()
        } else if status >= 300 {
            // An error document: read what we need, tolerate a broken body.
            let mut buf = Vec::new();
            let _ = body
                .into_reader()
                .take(ERROR_BODY_LIMIT)
                .read_to_end(&mut buf);
            buf
        } else {
            let limit = if out.body_limit == 0 {
                u64::MAX
            } else {
                out.body_limit as u64
            };
            // Sized once from Content-Length: growing the vector while reading would copy a
            // 256 KiB block about twice over (docs/performance.md).
            let expected = body.content_length().unwrap_or(0).min(limit);
            let mut buf = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
            body.into_with_config()
                .limit(limit)
                .reader()
                .read_to_end(&mut buf)
                .map_err(|e| classify(ureq::Error::from(e)))?;
            buf
        };
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
        let received = in_dest_len.unwrap_or(body.len() as u64);
        self.throttle(started, out.body.map_or(0, <[u8]>::len) as u64, received);
        Ok(Incoming {
            status,
            headers: parts.headers,
            body,
            in_dest: in_dest_len.is_some(),
        })
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

    #[test]
    fn cacert_errors() {
        let dir = std::env::temp_dir().join(format!("s3client-cacert-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let e = load_cacert(&missing).unwrap_err();
        assert!(e.to_string().contains("cannot read CA file"), "{e}");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, b"not a certificate\n").unwrap();
        let e = load_cacert(&empty).unwrap_err();
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
        // A PEM certificate block is accepted (its contents are checked at handshake time).
        let good = dir.join("good.pem");
        std::fs::write(
            &good,
            b"# comment\n-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQoLDA0ODw==\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(load_cacert(&good).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ureq_errors_are_classified() {
        use std::io;
        assert_eq!(
            classify(ureq::Error::Io(io::Error::from(
                io::ErrorKind::ConnectionRefused
            ))),
            Failure::Connect(io::Error::from(io::ErrorKind::ConnectionRefused).to_string())
        );
        assert_eq!(
            classify(ureq::Error::Io(io::Error::from(io::ErrorKind::TimedOut))),
            Failure::Timeout
        );
        assert!(matches!(
            classify(ureq::Error::HostNotFound),
            Failure::HostUnknown(_)
        ));
        assert_eq!(
            classify(ureq::Error::BodyExceedsLimit(5)),
            Failure::TooLarge
        );
        assert!(matches!(
            classify(ureq::Error::Io(io::Error::from(
                io::ErrorKind::ConnectionReset
            ))),
            Failure::Other(_)
        ));
    }
}
