//! [`S3Client`]: construction, and the machinery every operation shares — signing an
//! attempt, sending it, turning error responses into [`S3Error`]s and retrying.
//!
//! An operation (one file each: `get_object.rs`, ...) builds a [`Prepared`] request (path,
//! query, the headers *it* sets) and an `interpret` closure that maps a response to an
//! [`Attempt`]; [`Inner::execute`] does the rest. Each attempt is signed afresh (new date), so
//! retries never reuse a stale signature.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime};

use s3backer_config::{AuthVersion, PayloadHash, S3Settings};

use crate::date::UtcTime;
use crate::error::S3Error;
use crate::retry::{self, Attempt, RetryPolicy, Sleeper};
use crate::sign_v2::{self, SigV2};
use crate::sign_v4::{self, SigV4, V4Request};
use crate::stats::{ClientStats, Counters, Op};
use crate::transport::{Failure, Incoming, Method, Outgoing, Transport};
use crate::url::Endpoint;
use crate::xml;

/// Client-wide options that are not S3 settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientOptions {
    /// Idle connections kept for reuse (the caller's thread-pool size is a good value).
    pub max_connections: usize,
    /// `User-Agent` header (s3backer: `s3backer/<version>`); empty sends none.
    pub user_agent: String,
}

/// A synchronous S3 client for one bucket. Cheap to clone (one `Arc`); `Send + Sync`, so one
/// client serves a whole thread pool.
#[derive(Clone)]
pub struct S3Client {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for S3Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Client")
            .field("endpoint", &self.inner.endpoint)
            .finish_non_exhaustive()
    }
}

/// How requests are signed.
enum Signer {
    Anonymous,
    V2 {
        signer: SigV2,
        token: Option<String>,
    },
    V4 {
        signer: SigV4,
        token: Option<String>,
    },
}

/// Settings applied to PUTs.
pub(crate) struct PutDefaults {
    pub(crate) acl: String,
    pub(crate) sse: Option<String>,
    pub(crate) sse_key_id: Option<String>,
    pub(crate) storage_class: Option<String>,
    /// Send `Content-MD5` (aws2, anonymous, or `--contentMD5`): see `checksum.rs`.
    pub(crate) content_md5: bool,
}

pub(crate) struct Inner {
    pub(crate) endpoint: Endpoint,
    signer: Signer,
    /// When SigV4 signs a body's SHA-256 (else `UNSIGNED-PAYLOAD`): see `checksum.rs`.
    payload_signing: PayloadSigning,
    /// The server answered a PUT with the CRC-32 we sent: it checks them.
    server_checks_crc: AtomicBool,
    transport: Transport,
    policy: RetryPolicy,
    sleeper: Sleeper,
    timeout: std::time::Duration,
    pub(crate) stats: Counters,
    pub(crate) put_defaults: PutDefaults,
}

/// When a SigV4 request with a body signs the body's SHA-256 (from `--payloadHash`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PayloadSigning {
    Always,
    Never,
    /// Plain HTTP with `auto`: until the server shows that it checks our CRC-32s.
    UntilServerChecksCrc,
}

/// A request as an operation describes it: everything but the signature.
pub(crate) struct Prepared<'a> {
    pub(crate) op: Op,
    pub(crate) method: Method,
    /// Encoded path (from [`Endpoint::object_path`] or [`Endpoint::bucket_path`]).
    pub(crate) path: String,
    /// Raw query parameters.
    pub(crate) query: Vec<(String, String)>,
    /// SigV2 sub-resource (`delete`), also present in `query`.
    pub(crate) subresource: Option<&'static str>,
    /// Headers the operation sets (lower-case names); all are signed.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Option<&'a [u8]>,
    /// Largest success body accepted (0 = unlimited).
    pub(crate) body_limit: usize,
}

/// Method and URL of the request being interpreted (for error values).
pub(crate) struct Target<'a> {
    pub(crate) method: &'static str,
    pub(crate) url: &'a str,
}

/// Checks that a header set by the caller can be sent as is.
fn check_header(name: &str, value: &str) -> Result<(), String> {
    http::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("invalid header name \"{name}\""))?;
    http::HeaderValue::from_str(value).map_err(|_| format!("invalid value for header {name}"))?;
    Ok(())
}

impl S3Client {
    /// Builds a client: validates the base URL and bucket, loads `--cacert` (an error if it
    /// is unreadable or holds no PEM certificate) and builds the HTTP agent. No request is
    /// sent.
    pub fn new(
        settings: &S3Settings,
        bucket: &str,
        opts: ClientOptions,
    ) -> Result<S3Client, S3Error> {
        Self::with_sleeper(settings, bucket, opts, retry::thread_sleeper())
    }

    pub(crate) fn with_sleeper(
        settings: &S3Settings,
        bucket: &str,
        opts: ClientOptions,
        sleeper: Sleeper,
    ) -> Result<S3Client, S3Error> {
        let endpoint = Endpoint::new(&settings.base_url, bucket, settings.vhost)?;
        let config_header = |name: &str, value: &str| {
            check_header(name, value).map_err(|detail| S3Error::Config { detail })
        };
        config_header("x-amz-acl", &settings.access_type)?;
        for (name, value) in [
            ("x-amz-storage-class", &settings.storage_class),
            ("x-amz-server-side-encryption", &settings.sse),
            (
                "x-amz-server-side-encryption-aws-kms-key-id",
                &settings.sse_key_id,
            ),
        ] {
            if let Some(v) = value {
                config_header(name, v)?;
            }
        }
        if settings.vhost && endpoint.bucket().contains('.') && endpoint.is_https() {
            log::debug!(
                "bucket name \"{}\" contains dots: TLS certificates for virtual-hosted URLs \
                 usually do not match it",
                endpoint.bucket()
            );
        }
        let signer = match settings
            .credentials
            .as_ref()
            .filter(|c| !c.access_id.is_empty())
        {
            None => Signer::Anonymous,
            Some(c) => {
                let token = c.session_token.as_ref().map(|t| t.expose().to_owned());
                if let Some(t) = &token {
                    config_header("x-amz-security-token", t)?;
                }
                match settings.auth_version {
                    AuthVersion::V2 => Signer::V2 {
                        signer: SigV2::new(&c.access_id, c.access_key.expose()),
                        token,
                    },
                    AuthVersion::V4 => Signer::V4 {
                        signer: SigV4::new(&c.access_id, c.access_key.expose(), &settings.region),
                        token,
                    },
                }
            }
        };
        let transport = Transport::new(settings, opts.max_connections, &opts.user_agent)?;
        let payload_signing = match settings.payload_hash {
            PayloadHash::Sha256 => PayloadSigning::Always,
            PayloadHash::Unsigned => PayloadSigning::Never,
            PayloadHash::Auto if endpoint.is_https() => PayloadSigning::Never,
            PayloadHash::Auto => PayloadSigning::UntilServerChecksCrc,
        };
        // Without SigV4 nothing else makes a server that ignores checksums check the body.
        let content_md5 = settings.content_md5 || !matches!(signer, Signer::V4 { .. });
        Ok(S3Client {
            inner: Arc::new(Inner {
                endpoint,
                signer,
                payload_signing,
                server_checks_crc: AtomicBool::new(false),
                transport,
                policy: RetryPolicy {
                    initial_pause: settings.initial_retry_pause,
                    max_total_pause: settings.max_retry_pause,
                },
                sleeper,
                timeout: settings.timeout,
                stats: Counters::default(),
                put_defaults: PutDefaults {
                    acl: settings.access_type.clone(),
                    sse: settings.sse.clone(),
                    sse_key_id: settings.sse_key_id.clone(),
                    storage_class: settings.storage_class.clone(),
                    content_md5,
                },
            }),
        })
    }

    /// Human-readable location of the volume (facts §4.1): path style
    /// `baseURL + bucket + "/" + prefix`, vhost `scheme://bucket.host/path/ + prefix`.
    pub fn description(&self, prefix: &str) -> String {
        self.inner.endpoint.description(prefix)
    }

    /// The URL of object `key` (key percent-encoded, `/` kept).
    pub fn object_url(&self, key: &str) -> String {
        let e = &self.inner.endpoint;
        e.url(&e.object_path(key), &[])
    }

    /// Whether requests go over TLS: a damaged body cannot arrive undetected then, even where
    /// no checksum covers it (a ranged GET's body).
    pub fn uses_tls(&self) -> bool {
        self.inner.endpoint.is_tls()
    }

    /// A snapshot of the request counters.
    pub fn stats(&self) -> ClientStats {
        self.inner.stats.snapshot()
    }
}

/// An empty key would address the bucket itself.
pub(crate) fn check_key(key: &str) -> Result<(), S3Error> {
    if key.is_empty() {
        return Err(S3Error::InvalidRequest {
            detail: "empty object key".into(),
        });
    }
    Ok(())
}

/// `x-amz-meta-*` headers of a response: names lower-cased without the prefix.
pub(crate) fn response_meta(resp: &Incoming) -> Vec<(String, String)> {
    resp.headers
        .iter()
        .filter_map(|(name, value)| {
            let n = name.as_str().to_ascii_lowercase();
            n.strip_prefix("x-amz-meta-").map(|m| {
                (
                    m.to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
        })
        .collect()
}

impl Inner {
    /// Adds the auth headers for one attempt made at `now`.
    fn sign(
        &self,
        req: &Prepared<'_>,
        payload_hash: &str,
        headers: &mut Vec<(String, String)>,
        now: SystemTime,
    ) {
        let t = UtcTime::from_system(now);
        match &self.signer {
            Signer::Anonymous => {}
            Signer::V4 { signer, token } => {
                let amz_date = t.amz_datetime();
                headers.push(("x-amz-date".into(), amz_date.clone()));
                headers.push(("x-amz-content-sha256".into(), payload_hash.to_owned()));
                if let Some(tok) = token {
                    headers.push(("x-amz-security-token".into(), tok.clone()));
                }
                let auth = signer.authorization(
                    &amz_date,
                    &V4Request {
                        method: req.method.as_str(),
                        host: self.endpoint.host(),
                        path: &req.path,
                        query: &req.query,
                        headers: headers.as_slice(),
                        payload_hash,
                    },
                );
                headers.push(("authorization".into(), auth));
            }
            Signer::V2 { signer, token } => {
                headers.push(("date".into(), t.rfc1123()));
                if let Some(tok) = token {
                    headers.push(("x-amz-security-token".into(), tok.clone()));
                }
                let resource = self.endpoint.v2_resource(&req.path, req.subresource);
                let sts = sign_v2::string_to_sign(req.method.as_str(), headers, &resource);
                headers.push(("authorization".into(), signer.authorization(&sts)));
            }
        }
    }

    fn signs_payload(&self) -> bool {
        match self.payload_signing {
            PayloadSigning::Always => true,
            PayloadSigning::Never => false,
            PayloadSigning::UntilServerChecksCrc => !self.server_checks_crc.load(Ordering::Relaxed),
        }
    }

    /// A PUT came back with the CRC-32 we sent: the server checks and keeps them (AWS, MinIO,
    /// Garage do), so over plain HTTP a damaged body no longer needs the signed SHA-256 to be
    /// refused (`--payloadHash=auto`; see `checksum.rs`).
    pub(crate) fn server_returned_our_crc(&self) {
        if self.payload_signing == PayloadSigning::UntilServerChecksCrc
            && !self.server_checks_crc.swap(true, Ordering::Relaxed)
        {
            log::info!(
                "s3: the server checks CRC-32 checksums (it returned ours); PUT bodies are sent unsigned from now on (--payloadHash=sha256 keeps signing them)"
            );
        }
    }

    /// Runs `req` with retries; `interpret` maps each response to an outcome.
    pub(crate) fn execute<T>(
        &self,
        req: &Prepared<'_>,
        mut interpret: impl FnMut(&Target<'_>, Incoming) -> Attempt<T>,
    ) -> Result<T, S3Error> {
        self.execute_into(req, None, |target, resp, _| interpret(target, resp))
    }

    /// [`Inner::execute`] with a buffer a success body of exactly its size is read into
    /// (`Incoming::in_dest`); `interpret` sees that buffer.
    pub(crate) fn execute_into<T>(
        &self,
        req: &Prepared<'_>,
        mut dest: Option<&mut [u8]>,
        mut interpret: impl FnMut(&Target<'_>, Incoming, Option<&[u8]>) -> Attempt<T>,
    ) -> Result<T, S3Error> {
        let started = Instant::now();
        for (name, value) in &req.headers {
            check_header(name, value).map_err(|detail| S3Error::InvalidRequest { detail })?;
        }
        let url = self.endpoint.url(&req.path, &req.query);
        let target = Target {
            method: req.method.as_str(),
            url: &url,
        };
        let payload_hash = match (&self.signer, req.body) {
            (Signer::V4 { .. }, Some(body)) if self.signs_payload() => sign_v4::sha256_hex(body),
            (Signer::V4 { .. }, Some(_)) => sign_v4::UNSIGNED_PAYLOAD.to_owned(),
            _ => sign_v4::EMPTY_SHA256.to_owned(),
        };
        let result = retry::run(
            self.policy,
            &self.sleeper,
            &self.stats,
            target.method,
            &url,
            || {
                let mut headers = req.headers.clone();
                self.sign(req, &payload_hash, &mut headers, SystemTime::now());
                let outgoing = Outgoing {
                    method: req.method,
                    url: &url,
                    host: self.endpoint.host(),
                    headers: &headers,
                    body: req.body,
                    body_limit: req.body_limit,
                };
                match self.transport.send(&outgoing, dest.as_deref_mut()) {
                    Ok(resp) => interpret(&target, resp, dest.as_deref()),
                    Err(failure) => self.transport_failure(&target, req, failure),
                }
            },
        );
        self.stats.record_op(req.op, started.elapsed());
        result
    }

    fn transport_failure<T>(
        &self,
        target: &Target<'_>,
        req: &Prepared<'_>,
        failure: Failure,
    ) -> Attempt<T> {
        self.stats.record_transport_error(failure.class());
        let method = target.method;
        let url = target.url.to_owned();
        let error = match failure {
            Failure::Timeout => S3Error::Timeout {
                method,
                url,
                after: self.timeout,
            },
            Failure::Connect(detail) => S3Error::Connect {
                method,
                url,
                detail,
            },
            Failure::HostUnknown(detail) => S3Error::Connect {
                method,
                url,
                detail,
            },
            Failure::Other(detail) => S3Error::Transport {
                method,
                url,
                detail,
            },
            // Deterministic: the same certificate will fail the same way next time.
            Failure::Certificate(detail) => {
                return Attempt::Fail(S3Error::Transport {
                    method,
                    url,
                    detail: format!(
                        "TLS certificate verification failed ({detail}); trust the server's \
                         certificate with --cacert=FILE, or skip verification with --insecure"
                    ),
                });
            }
            // Deterministic: the same object will be as large next time.
            Failure::TooLarge => {
                return Attempt::Fail(S3Error::BodyTooLarge {
                    method,
                    url,
                    limit: req.body_limit,
                });
            }
        };
        Attempt::Retry {
            error,
            at_least: None,
        }
    }

    /// The [`S3Error::Http`] for an error response (counted in the stats).
    pub(crate) fn http_error(&self, target: &Target<'_>, resp: &Incoming) -> S3Error {
        self.stats.record_http_error(resp.status);
        let (code, message) = xml::parse_error(&resp.body);
        S3Error::Http {
            method: target.method,
            url: target.url.to_owned(),
            status: resp.status,
            code,
            message,
        }
    }

    /// An error response, retried or not per `retry.rs` (`expected_304`: see
    /// [`retry::classify_http`]).
    pub(crate) fn http_failure<T>(
        &self,
        target: &Target<'_>,
        resp: &Incoming,
        expected_304: bool,
    ) -> Attempt<T> {
        let error = self.http_error(target, resp);
        if !retry::classify_http(resp.status, error.code(), expected_304) {
            return Attempt::Fail(error);
        }
        let at_least = if resp.status == 503 {
            resp.header("retry-after")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(std::time::Duration::from_secs)
        } else {
            None
        };
        Attempt::Retry { error, at_least }
    }

    /// A success response whose body we could not use.
    pub(crate) fn invalid_response(target: &Target<'_>, detail: String) -> S3Error {
        S3Error::InvalidResponse {
            method: target.method,
            url: target.url.to_owned(),
            detail,
        }
    }
}
