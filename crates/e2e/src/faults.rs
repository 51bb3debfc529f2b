//! Fault injection between the plugin and a real S3 server, and a verifying load to run through
//! it.
//!
//! [`FaultProxy`] is a small HTTP/1.1 proxy (std::net and one thread per connection) that sits
//! on a loopback port in front of Garage and, per a [`FaultPlan`] the test may change at any time,
//! answers a share of the requests itself or damages the answer: `500 InternalError`,
//! `503 SlowDown` with `Retry-After: 1`, a reset before forwarding, a reset after forwarding (the
//! request was applied, the reply is lost), a stall longer than the client's `--timeout`, a body
//! cut short of its `Content-Length`, one flipped body byte, a wrong `ETag`, an answer trickling
//! over a slow link. [`FaultProxy::set_down`]
//! makes the server vanish (listener closed, every connection dropped) and come back. Counters
//! say what was injected, so a test can prove its faults happened.
//!
//! It is a real proxy, not a mock: requests go to Garage byte for byte (the SigV4 signature
//! covers the `Host` header the client sent, which Garage checks but never compares with its own
//! address), so a request that is not faulted is served exactly as without the proxy. Responses
//! are read whole (Garage answers our requests with `Content-Length`; chunked and
//! close-delimited bodies are decoded too, counted, and re-sent with a `Content-Length`), which
//! is what lets a fault cut or flip a body at a chosen byte. Given several servers (a cluster's
//! S3 endpoints), it is also a failover front: new server connections go to the first that
//! accepts, and when a server fails mid-request every client connection forwarded to it is
//! closed, as a load balancer does when it marks a server down.
//!
//! [`VerifyingLoad`] drives a disk served by nbdkit with libnbd (Python, one connection per
//! thread, each thread owning its own blocks so no two requests race on a block): random whole
//! and partial block writes, zeroing and verified reads against a model, FLUSH, and a read-back of
//! the whole area against the model. A write that failed makes its block "either old or new"
//! until the next full verification settles it; nothing else is ever accepted.

use crate::tools::{TempDir, random_u64, system_path};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the proxy does to requests, in percent of the requests it sees (of the methods in
/// `methods`, all methods when empty). At most one fault per request; the shares add up.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultPlan {
    /// Answered `500 InternalError` without forwarding.
    pub error_500: f64,
    /// Answered `503 SlowDown` with `Retry-After: 1` without forwarding.
    pub error_503: f64,
    /// Connection reset (RST) without forwarding.
    pub reset_before: f64,
    /// Forwarded (so applied by the server), then the connection is reset instead of answering.
    pub reset_after: f64,
    /// Forwarded; the answer is held for `stall_for` before it is sent.
    pub stall: f64,
    /// Forwarded; half the body of the answer is sent, then the connection is closed. Only
    /// successful answers with a body are cut (others pass untouched and are not counted): a
    /// cut error document still carries its status, which the client rightly acts on.
    pub truncate: f64,
    /// Forwarded; one byte of a successful answer's body is flipped (answers with a body only).
    pub corrupt_body: f64,
    /// Forwarded; the `ETag` of a successful answer is replaced by another valid-looking one.
    pub wrong_etag: f64,
    /// Forwarded; the answer trickles out at `slow_bytes_per_sec` (a slow link, not a failure:
    /// within the client's `--timeout` it must succeed without a retry).
    pub slow: f64,
    /// The rate of a slow answer.
    pub slow_bytes_per_sec: u64,
    /// How long a stalled answer is held (make it longer than the client's `--timeout`).
    pub stall_for: Duration,
    /// The HTTP methods faults apply to; empty: all.
    pub methods: Vec<&'static str>,
}

impl Default for FaultPlan {
    fn default() -> Self {
        FaultPlan {
            error_500: 0.0,
            error_503: 0.0,
            reset_before: 0.0,
            reset_after: 0.0,
            stall: 0.0,
            truncate: 0.0,
            corrupt_body: 0.0,
            wrong_etag: 0.0,
            slow: 0.0,
            slow_bytes_per_sec: 64 * 1024,
            stall_for: Duration::from_secs(3),
            methods: Vec::new(),
        }
    }
}

impl FaultPlan {
    /// No faults.
    pub fn none() -> Self {
        Self::default()
    }

    /// The share of requests (percent) that get some fault.
    pub fn total(&self) -> f64 {
        self.error_500
            + self.error_503
            + self.reset_before
            + self.reset_after
            + self.stall
            + self.truncate
            + self.corrupt_body
            + self.wrong_etag
            + self.slow
    }
}

/// One fault, as chosen for a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Error500,
    Error503,
    ResetBefore,
    ResetAfter,
    Stall,
    Truncate,
    CorruptBody,
    WrongEtag,
    Slow,
}

/// What the proxy saw and did (a snapshot of its counters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Requests read from clients.
    pub requests: u64,
    /// Requests forwarded to the server.
    pub forwarded: u64,
    /// `500` answers injected.
    pub error_500: u64,
    /// `503 SlowDown` answers injected.
    pub error_503: u64,
    /// Resets before forwarding.
    pub reset_before: u64,
    /// Resets after forwarding (the server applied the request).
    pub reset_after: u64,
    /// Answers held for `stall_for`.
    pub stall: u64,
    /// Bodies cut short.
    pub truncate: u64,
    /// Bodies with a flipped byte.
    pub corrupt_body: u64,
    /// Wrong ETags.
    pub wrong_etag: u64,
    /// Answers sent slowly (not failures: not in [`FaultCounts::injected`]).
    pub slow: u64,
    /// Requests dropped and connections refused while the server was down.
    pub refused: u64,
    /// Server answers framed by `Content-Length` (or bodiless by definition: HEAD, 204, 304).
    pub length_framed: u64,
    /// Server answers with a chunked body.
    pub chunked: u64,
    /// Server answers whose body ended with the connection.
    pub close_delimited: u64,
}

impl FaultCounts {
    /// Faults injected that fail a request (the down switch and slow answers not included).
    pub fn injected(&self) -> u64 {
        self.error_500
            + self.error_503
            + self.reset_before
            + self.reset_after
            + self.stall
            + self.truncate
            + self.corrupt_body
            + self.wrong_etag
    }
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    forwarded: AtomicU64,
    error_500: AtomicU64,
    error_503: AtomicU64,
    reset_before: AtomicU64,
    reset_after: AtomicU64,
    stall: AtomicU64,
    truncate: AtomicU64,
    corrupt_body: AtomicU64,
    wrong_etag: AtomicU64,
    slow: AtomicU64,
    refused: AtomicU64,
    length_framed: AtomicU64,
    chunked: AtomicU64,
    close_delimited: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Longest request or response head we accept (Garage's are a few hundred bytes).
const MAX_HEAD: usize = 64 * 1024;
/// Longest body we buffer (blocks in these tests are at most a few hundred KiB).
const MAX_BODY: usize = 64 << 20;
/// How long the proxy waits for the server before giving up on a connection (a hung server
/// must not hang the proxy; the client's own `--timeout` is much shorter anyway).
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(120);

/// A live client connection: a clone of its socket, and the server it is forwarded to.
struct Conn {
    stream: TcpStream,
    upstream: Option<SocketAddr>,
}

struct Shared {
    /// Server addresses, in order of preference: the first that accepts a connection is used
    /// (so a proxy over several cluster nodes is also a failover front).
    upstreams: Vec<SocketAddr>,
    port: u16,
    plan: Mutex<FaultPlan>,
    down: AtomicBool,
    stop: AtomicBool,
    rng: Mutex<u64>,
    counts: Counters,
    /// Every live client connection, so `down` and drop can cut them all, and a server that
    /// failed takes its clients' connections with it.
    conns: Mutex<HashMap<u64, Conn>>,
    next_conn: AtomicU64,
    journal: Mutex<Vec<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A fault-injecting HTTP proxy in front of an S3 server (see the module doc).
pub struct FaultProxy {
    /// `http://127.0.0.1:PORT/`: give it to the plugin as `baseURL`.
    pub endpoint: String,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

fn parse_endpoint(endpoint: &str) -> SocketAddr {
    let hostport = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    hostport
        .parse()
        .unwrap_or_else(|e| panic!("proxy upstream {endpoint}: not http://IP:PORT/ ({e})"))
}

impl FaultProxy {
    /// A proxy in front of `upstream` (`http://127.0.0.1:PORT/`), with no faults planned.
    pub fn start(upstream: &str) -> FaultProxy {
        Self::start_failover(&[upstream])
    }

    /// A proxy in front of several equivalent servers (the S3 endpoints of one cluster): each
    /// new server connection goes to the first of them that accepts it.
    pub fn start_failover(upstreams: &[&str]) -> FaultProxy {
        // A port outside the ephemeral range: it is closed and reopened by `set_down`.
        let port = crate::cluster::stable_port();
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("proxy bind");
        let shared = Arc::new(Shared {
            upstreams: upstreams.iter().map(|u| parse_endpoint(u)).collect(),
            port,
            plan: Mutex::new(FaultPlan::none()),
            down: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            rng: Mutex::new(random_u64() | 1),
            counts: Counters::default(),
            conns: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(0),
            journal: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        let acceptor = std::thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || accept_loop(s, listener))
            .expect("proxy thread");
        FaultProxy {
            endpoint: format!("http://127.0.0.1:{port}/"),
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// Replaces the plan (takes effect for the next request).
    pub fn set_plan(&self, plan: FaultPlan) {
        assert!(plan.total() <= 100.0, "fault shares add up to over 100 %");
        *lock(&self.shared.plan) = plan;
    }

    /// The server goes away (`true`: the listening socket is closed, so connecting is refused,
    /// and every open connection is cut, as when a server process dies) or comes back.
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
        if down {
            self.shared.cut_all();
            // The acceptor closes the listener within one poll interval; wait for it, so the
            // caller can rely on "down" once this returns.
            let gone = crate::tools::wait_until(Duration::from_secs(5), || {
                TcpStream::connect(("127.0.0.1", self.shared.port)).is_err()
            });
            assert!(gone, "the proxy's listener did not close");
        } else {
            let back = crate::tools::wait_until(Duration::from_secs(5), || {
                TcpStream::connect(("127.0.0.1", self.shared.port)).is_ok()
            });
            assert!(back, "the proxy's listener did not come back");
        }
    }

    /// What was injected so far.
    pub fn counts(&self) -> FaultCounts {
        let c = &self.shared.counts;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        FaultCounts {
            requests: g(&c.requests),
            forwarded: g(&c.forwarded),
            error_500: g(&c.error_500),
            error_503: g(&c.error_503),
            reset_before: g(&c.reset_before),
            reset_after: g(&c.reset_after),
            stall: g(&c.stall),
            truncate: g(&c.truncate),
            corrupt_body: g(&c.corrupt_body),
            wrong_etag: g(&c.wrong_etag),
            slow: g(&c.slow),
            refused: g(&c.refused),
            length_framed: g(&c.length_framed),
            chunked: g(&c.chunked),
            close_delimited: g(&c.close_delimited),
        }
    }

    /// The last injected faults, one line each (`METHOD PATH: fault`), for failure messages.
    pub fn journal(&self) -> Vec<String> {
        lock(&self.shared.journal).clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.cut_all();
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

impl Shared {
    fn cut_all(&self) {
        for c in lock(&self.conns).values() {
            let _ = c.stream.shutdown(Shutdown::Both);
        }
    }

    /// A server failed: close every client connection forwarded to it, as a load balancer
    /// does when it marks a server down (HAProxy's `on-marked-down shutdown-sessions`).
    /// Without this, the client's pool keeps idle connections whose server is dead, and each
    /// retry picks the next one and fails again (seen: 25 s of failing retries).
    fn cut_clients_of(&self, server: SocketAddr) {
        for c in lock(&self.conns).values() {
            if c.upstream == Some(server) {
                let _ = c.stream.shutdown(Shutdown::Both);
            }
        }
    }

    fn set_upstream(&self, id: u64, server: Option<SocketAddr>) {
        if let Some(c) = lock(&self.conns).get_mut(&id) {
            c.upstream = server;
        }
    }

    fn note(&self, method: &str, path: &str, what: &str) {
        let mut j = lock(&self.journal);
        if j.len() >= 500 {
            j.remove(0);
        }
        j.push(format!("{method} {path}: {what}"));
    }

    fn uniform(&self) -> f64 {
        let mut x = lock(&self.rng);
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        (*x >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&self, n: usize) -> usize {
        ((self.uniform() * n as f64) as usize).min(n.saturating_sub(1))
    }

    /// Draws this request's fault (if any) from the plan.
    fn pick(&self, method: &str) -> (Option<Fault>, Duration) {
        let plan = lock(&self.plan).clone();
        if !plan.methods.is_empty() && !plan.methods.contains(&method) {
            return (None, plan.stall_for);
        }
        let r = self.uniform() * 100.0;
        let table = [
            (plan.error_500, Fault::Error500),
            (plan.error_503, Fault::Error503),
            (plan.reset_before, Fault::ResetBefore),
            (plan.reset_after, Fault::ResetAfter),
            (plan.stall, Fault::Stall),
            (plan.truncate, Fault::Truncate),
            (plan.corrupt_body, Fault::CorruptBody),
            (plan.wrong_etag, Fault::WrongEtag),
            (plan.slow, Fault::Slow),
        ];
        let mut acc = 0.0;
        for (share, fault) in table {
            acc += share;
            if r < acc {
                return (Some(fault), plan.stall_for);
            }
        }
        (None, plan.stall_for)
    }
}

fn accept_loop(shared: Arc<Shared>, first: TcpListener) {
    // Non-blocking accept polled every few milliseconds: the loop must notice `down` and `stop`
    // without a connection arriving. Connections are kept alive by the client, so the polling
    // delay is paid rarely.
    let mut listener = Some(first);
    if let Some(l) = &listener {
        l.set_nonblocking(true).expect("nonblocking listener");
    }
    while !shared.stop.load(Ordering::SeqCst) {
        let down = shared.down.load(Ordering::SeqCst);
        if down && listener.is_some() {
            listener = None;
        }
        if !down && listener.is_none() {
            // Same port again: the client's base URL must keep working. The port was ours a
            // moment ago; std sets SO_REUSEADDR, so TIME_WAIT connections do not block it.
            match TcpListener::bind(("127.0.0.1", shared.port)) {
                Ok(l) => {
                    l.set_nonblocking(true).expect("nonblocking listener");
                    listener = Some(l);
                }
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
            }
        }
        let Some(l) = &listener else {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        };
        match l.accept() {
            Ok((stream, _)) => {
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_nodelay(true);
                let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
                if let Ok(clone) = stream.try_clone() {
                    lock(&shared.conns).insert(
                        id,
                        Conn {
                            stream: clone,
                            upstream: None,
                        },
                    );
                }
                let s = shared.clone();
                let spawned = std::thread::Builder::new()
                    .name("fault-proxy-conn".into())
                    .spawn(move || {
                        serve(&s, id, stream);
                        lock(&s.conns).remove(&id);
                    });
                if spawned.is_err() {
                    lock(&shared.conns).remove(&id);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Makes the coming close of `s` send a RST instead of a FIN: the client sees "connection
/// reset by peer", as from a crashed server or a middlebox dropping state.
fn set_reset_on_close(s: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a socket we own, with a correctly sized linger struct.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// A request as read from the client.
struct Request {
    method: String,
    path: String,
    /// The head exactly as received (request line, headers, blank line).
    head: Vec<u8>,
    body: Vec<u8>,
    close: bool,
}

/// A response as read from the server, body decoded from whatever framing it had.
struct Response {
    status: u16,
    status_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// The answer has no body by definition (HEAD, 204, 304): headers are passed verbatim,
    /// `Content-Length` included.
    bodiless: bool,
    close: bool,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Head bytes: status line, headers (a body's framing replaced by `Content-Length`).
    fn head_bytes(&self) -> Vec<u8> {
        let mut out = format!("{}\r\n", self.status_line);
        for (n, v) in &self.headers {
            let framing = n.eq_ignore_ascii_case("content-length")
                || n.eq_ignore_ascii_case("transfer-encoding");
            if framing && !self.bodiless {
                continue;
            }
            out.push_str(&format!("{n}: {v}\r\n"));
        }
        if !self.bodiless {
            out.push_str(&format!("content-length: {}\r\n", self.body.len()));
        }
        out.push_str("\r\n");
        out.into_bytes()
    }
}

/// Reads a head (up to and including the blank line); `Ok(None)` on EOF before any byte.
fn read_head(r: &mut impl BufRead) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = Vec::new();
    loop {
        let n = r.read_until(b'\n', &mut head)?;
        if n == 0 {
            return if head.is_empty() {
                Ok(None)
            } else {
                Err(std::io::ErrorKind::UnexpectedEof.into())
            };
        }
        if head.ends_with(b"\r\n\r\n") || head == b"\r\n" || head.ends_with(b"\n\n") {
            return Ok(Some(head));
        }
        if head.len() > MAX_HEAD {
            return Err(std::io::Error::other("head too long"));
        }
    }
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::other(what.to_string())
}

/// The first line and the `name: value` pairs of a head.
fn split_head(head: &[u8]) -> std::io::Result<(String, Vec<(String, String)>)> {
    let text = std::str::from_utf8(head).map_err(|_| bad("head is not UTF-8"))?;
    let mut lines = text.split("\r\n").filter(|l| !l.is_empty());
    let first = lines.next().ok_or_else(|| bad("empty head"))?.to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok((first, headers))
}

fn find<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn wants_close(headers: &[(String, String)]) -> bool {
    find(headers, "connection").is_some_and(|v| v.eq_ignore_ascii_case("close"))
}

fn read_exact_vec(r: &mut impl Read, n: usize) -> std::io::Result<Vec<u8>> {
    if n > MAX_BODY {
        return Err(bad("body too large"));
    }
    let mut body = vec![0; n];
    r.read_exact(&mut body)?;
    Ok(body)
}

fn read_request(r: &mut impl BufRead) -> std::io::Result<Option<Request>> {
    let Some(head) = read_head(r)? else {
        return Ok(None);
    };
    let (line, headers) = split_head(&head)?;
    let mut parts = line.split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    if find(&headers, "transfer-encoding").is_some() {
        // Our client always sends a Content-Length; anything else is a harness bug.
        return Err(bad(
            "chunked request bodies are not supported by the fault proxy",
        ));
    }
    let len = match find(&headers, "content-length") {
        Some(v) => v.parse().map_err(|_| bad("bad content-length"))?,
        None => 0,
    };
    let body = read_exact_vec(r, len)?;
    Ok(Some(Request {
        method,
        path,
        close: wants_close(&headers),
        head,
        body,
    }))
}

fn read_chunked(r: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let size = line.trim().split(';').next().unwrap_or_default();
        let size = usize::from_str_radix(size, 16).map_err(|_| bad("bad chunk size"))?;
        if size == 0 {
            // Trailers, up to the blank line.
            loop {
                let mut t = String::new();
                if r.read_line(&mut t)? == 0 || t.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        body.extend(read_exact_vec(r, size)?);
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf)?;
        if body.len() > MAX_BODY {
            return Err(bad("body too large"));
        }
    }
}

/// Reads the server's answer to a request with `method`; interim `1xx` answers are passed to
/// `client` as they come.
fn read_response(
    shared: &Shared,
    r: &mut impl BufRead,
    method: &str,
    client: &mut TcpStream,
) -> std::io::Result<Response> {
    loop {
        let head = read_head(r)?.ok_or_else(|| bad("server closed the connection"))?;
        let (status_line, headers) = split_head(&head)?;
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("bad status line"))?;
        if (100..200).contains(&status) {
            client.write_all(&head)?;
            continue;
        }
        let close = wants_close(&headers);
        let bodiless = method == "HEAD" || status == 204 || status == 304;
        let chunked = find(&headers, "transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let c = &shared.counts;
        let (body, close) = if bodiless {
            bump(&c.length_framed);
            (Vec::new(), close)
        } else if chunked {
            bump(&c.chunked);
            (read_chunked(r)?, close)
        } else if let Some(len) = find(&headers, "content-length") {
            bump(&c.length_framed);
            let len = len.parse().map_err(|_| bad("bad content-length"))?;
            (read_exact_vec(r, len)?, close)
        } else {
            bump(&c.close_delimited);
            let mut body = Vec::new();
            r.take(MAX_BODY as u64).read_to_end(&mut body)?;
            (body, true)
        };
        return Ok(Response {
            status,
            status_line,
            headers,
            body,
            bodiless,
            close,
        });
    }
}

/// A server connection: reader and writer halves, and the server's address.
struct Upstream {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    addr: SocketAddr,
}

fn connect_upstream(shared: &Shared) -> Option<Upstream> {
    for addr in &shared.upstreams {
        if let Ok(s) = TcpStream::connect_timeout(addr, Duration::from_secs(2)) {
            let _ = s.set_nodelay(true);
            let _ = s.set_read_timeout(Some(UPSTREAM_TIMEOUT));
            let _ = s.set_write_timeout(Some(UPSTREAM_TIMEOUT));
            let reader = BufReader::new(s.try_clone().ok()?);
            return Some(Upstream {
                reader,
                writer: s,
                addr: *addr,
            });
        }
    }
    None
}

/// The answer S3 servers give a throttled or failing request.
fn error_answer(status: u16) -> Vec<u8> {
    let (reason, code, extra) = match status {
        503 => ("Service Unavailable", "SlowDown", "retry-after: 1\r\n"),
        _ => ("Internal Server Error", "InternalError", ""),
    };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
         <Message>injected by the fault proxy</Message></Error>"
    );
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/xml\r\n{extra}content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Serves one client connection until it closes, a fault ends it, or the server goes down.
fn serve(shared: &Shared, id: u64, client: TcpStream) {
    let Ok(read_half) = client.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut client = client;
    let mut upstream: Option<Upstream> = None;
    let c = &shared.counts;
    loop {
        let req = match read_request(&mut reader) {
            Ok(Some(r)) => r,
            _ => return,
        };
        bump(&c.requests);
        if shared.down.load(Ordering::SeqCst) || shared.stop.load(Ordering::SeqCst) {
            bump(&c.refused);
            set_reset_on_close(&client);
            return;
        }
        let (fault, stall_for) = shared.pick(&req.method);
        let note = |what: &str| shared.note(&req.method, &req.path, what);
        match fault {
            Some(Fault::Error500) | Some(Fault::Error503) => {
                let status = if fault == Some(Fault::Error500) {
                    bump(&c.error_500);
                    500
                } else {
                    bump(&c.error_503);
                    503
                };
                note(&format!("answered {status}"));
                if client.write_all(&error_answer(status)).is_err() || req.close {
                    return;
                }
                continue;
            }
            Some(Fault::ResetBefore) => {
                bump(&c.reset_before);
                note("reset before forwarding");
                set_reset_on_close(&client);
                return;
            }
            _ => {}
        }
        if upstream.is_none() {
            upstream = connect_upstream(shared);
            shared.set_upstream(id, upstream.as_ref().map(|u| u.addr));
        }
        let Some(up) = upstream.as_mut() else {
            // No server accepts connections: the client sees what it would see talking to
            // the dead server directly, a failed connection.
            set_reset_on_close(&client);
            return;
        };
        let sent = up
            .writer
            .write_all(&req.head)
            .and_then(|_| up.writer.write_all(&req.body));
        let resp =
            sent.and_then(|_| read_response(shared, &mut up.reader, &req.method, &mut client));
        let mut resp = match resp {
            Ok(r) => r,
            Err(e) => {
                // The server went away mid-request (a killed cluster node): pass the failure
                // on as a reset, and drop every client connection forwarded to that server;
                // new connections go to a live one. Not retried here, so the client's own
                // handling is what is tested. (Garage does not close idle kept-alive
                // connections in these tests: the transient-fault test counts exactly one
                // client retry per injected fault.)
                shared.note(
                    &req.method,
                    &req.path,
                    &format!("server {} failed: {e}", up.addr),
                );
                shared.cut_clients_of(up.addr);
                set_reset_on_close(&client);
                return;
            }
        };
        bump(&c.forwarded);
        if resp.close {
            upstream = None;
        }
        let ok = (200..300).contains(&resp.status);
        let mut cut_at = None;
        match fault {
            Some(Fault::ResetAfter) => {
                bump(&c.reset_after);
                note(&format!("forwarded ({}), reply lost", resp.status));
                set_reset_on_close(&client);
                return;
            }
            Some(Fault::Stall) => {
                bump(&c.stall);
                note(&format!("answer held for {stall_for:?}"));
                std::thread::sleep(stall_for);
            }
            Some(Fault::Truncate) if ok && !resp.body.is_empty() => {
                bump(&c.truncate);
                note(&format!(
                    "body cut at {} of {}",
                    resp.body.len() / 2,
                    resp.body.len()
                ));
                cut_at = Some(resp.body.len() / 2);
            }
            Some(Fault::CorruptBody) if ok && !resp.body.is_empty() => {
                bump(&c.corrupt_body);
                let at = shared.below(resp.body.len());
                resp.body[at] ^= 1 << shared.below(8);
                note(&format!("body byte {at} flipped"));
            }
            Some(Fault::WrongEtag) if ok && resp.header("etag").is_some() => {
                bump(&c.wrong_etag);
                let fake = format!("\"{:016x}{:016x}\"", random_u64(), random_u64());
                for (n, v) in &mut resp.headers {
                    if n.eq_ignore_ascii_case("etag") {
                        *v = fake.clone();
                    }
                }
                note("etag replaced");
            }
            _ => {}
        }
        let mut out = resp.head_bytes();
        match cut_at {
            Some(n) => {
                out.extend_from_slice(&resp.body[..n]);
                // A FIN after a short body: the client must notice the missing bytes itself.
                let _ = client.write_all(&out);
                let _ = client.shutdown(Shutdown::Both);
                return;
            }
            None => out.extend_from_slice(&resp.body),
        }
        let written = if fault == Some(Fault::Slow) {
            bump(&c.slow);
            let rate = lock(&shared.plan).slow_bytes_per_sec.max(1024);
            note(&format!("answer sent at {rate} bytes/s"));
            write_slowly(&mut client, &out, rate)
        } else {
            client.write_all(&out)
        };
        if written.is_err() || req.close || resp.close {
            return;
        }
    }
}

/// Writes `bytes` in 1 KiB pieces paced to `rate` bytes per second: a slow link.
fn write_slowly(w: &mut impl Write, bytes: &[u8], rate: u64) -> std::io::Result<()> {
    const PIECE: usize = 1024;
    let pause = Duration::from_secs_f64(PIECE as f64 / rate as f64);
    for piece in bytes.chunks(PIECE) {
        w.write_all(piece)?;
        w.flush()?;
        std::thread::sleep(pause);
    }
    Ok(())
}

/// Checks a disk image read back after a test against a [`VerifyingLoad`]'s saved model,
/// block by block (`block_size`); anything past the model's end must be zeros (blocks the load
/// never touched). Returns the bytes compared.
pub fn assert_image_matches_model(image: &[u8], model: &Path, block_size: u32) -> usize {
    let expected = std::fs::read(model).expect("model");
    assert!(
        image.len() >= expected.len(),
        "image shorter than the model"
    );
    let bs = block_size as usize;
    let differing: Vec<usize> = (0..expected.len() / bs)
        .filter(|&b| image[b * bs..(b + 1) * bs] != expected[b * bs..(b + 1) * bs])
        .collect();
    assert!(
        differing.is_empty(),
        "the bucket differs from the model in blocks {differing:?}"
    );
    assert!(
        image[expected.len()..].iter().all(|&b| b == 0),
        "blocks outside the load's area were written"
    );
    image.len()
}

/// The verifying load, in Python with libnbd (see the module doc). Commands on stdin, one reply
/// line each on stdout: `ok|err|corrupt key=value... [msg=text]`.
const DRIVER: &str = r#"
import random, struct, sys, threading, time
import nbd

uri, nblocks, bs, seed, nthreads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
handles = []
for _ in range(nthreads):
    h = nbd.NBD()
    h.connect_uri(uri)
    handles.append(h)
assert handles[0].get_size() >= nblocks * bs, (handles[0].get_size(), nblocks, bs)
zero = bytes(bs)
model = [zero] * nblocks      # what each block must hold
alt = {}                      # block -> other contents it may hold (a write of it failed)
lock = threading.Lock()
stats = dict(writes=0, partial_writes=0, zeroings=0, reads=0, flushes=0, bytes_written=0, bytes_verified=0)
seq = [0]
master = random.Random(seed)

def add(k, n):
    with lock:
        stats[k] += n

def fresh(b, r):
    with lock:
        seq[0] += 1
        s = seq[0]
    head = struct.pack("<8sII", b"S3BFAULT", b, s)
    return head + r.randbytes(bs - len(head))

def describe(data):
    if data == zero:
        return "zeros"
    if data[:8] == b"S3BFAULT":
        b, s = struct.unpack("<II", data[8:16])
        return "block %d write #%d" % (b, s)
    return "bytes %s..." % data[:16].hex()

def mismatch(b, got, wanted):
    # Which write the block holds, and where it differs from the nearest expected content.
    w = wanted[0]
    at = next((i for i in range(bs) if got[i] != w[i]), -1)
    return "block %d reads as %s, expected %s (first difference at byte %d: %02x, expected %02x)" % (
        b, describe(got), " or ".join(describe(x) for x in wanted), at, got[at], w[at])

def expected(b):
    # Blocks past the load's area are never written: zeros.
    return ([model[b]] if b < nblocks else [zero]) + list(alt.get(b, ()))

def errno_of(e):
    # .errno is the symbolic name; .errnum the number.
    return getattr(e, "errnum", None) or 0

def worker(t, n, r, out):
    h = handles[t]
    mine = [b for b in range(nblocks) if b % nthreads == t and b not in alt]
    if not mine:
        return
    try:
        for _ in range(n):
            b = r.choice(mine)
            k = r.random()
            if k < 0.45:
                data = fresh(b, r)
                h.pwrite(data, b * bs)
                model[b] = data
                add("writes", 1); add("bytes_written", bs)
            elif k < 0.65:
                off = r.randrange(bs)
                ln = r.randrange(1, bs - off + 1)
                part = r.randbytes(ln)
                h.pwrite(part, b * bs + off)
                model[b] = model[b][:off] + part + model[b][off + ln:]
                add("partial_writes", 1); add("bytes_written", ln)
            elif k < 0.70:
                h.zero(bs, b * bs)
                model[b] = zero
                add("zeroings", 1)
            else:
                got = h.pread(bs, b * bs)
                add("reads", 1)
                if got != model[b]:
                    out.append(("corrupt", 0, mismatch(b, got, [model[b]])))
                    return
                add("bytes_verified", bs)
    except nbd.Error as e:
        out.append(("err", errno_of(e), "thread %d: %s" % (t, e)))

def reply(status, msg=None, **kv):
    line = status + "".join(" %s=%s" % (k, v) for k, v in kv.items())
    if msg is not None:
        line += " msg=" + msg.replace("\n", " ")
    sys.stdout.write(line + "\n")
    sys.stdout.flush()

def timed(f):
    t = time.monotonic()
    try:
        f()
        return None, time.monotonic() - t
    except nbd.Error as e:
        return e, time.monotonic() - t

def verify():
    bad = []
    per = (nblocks + nthreads - 1) // nthreads
    errors = []
    def part(t):
        h = handles[t]
        try:
            for b in range(t * per, min(nblocks, (t + 1) * per)):
                got = h.pread(bs, b * bs)
                ok = expected(b)
                if got in ok:
                    with lock:
                        model[b] = got
                        alt.pop(b, None)
                else:
                    bad.append(mismatch(b, got, ok))
        except nbd.Error as e:
            errors.append(e)
    ts = [threading.Thread(target=part, args=(t,)) for t in range(nthreads)]
    for x in ts: x.start()
    for x in ts: x.join()
    return bad, errors

for line in sys.stdin:
    cmd = line.split()
    if not cmd:
        continue
    op = cmd[0]
    if op == "load":
        n = int(cmd[1])
        out = []
        before = dict(stats)
        ts = []
        for t in range(nthreads):
            r = random.Random(master.getrandbits(64))
            ts.append(threading.Thread(target=worker, args=(t, n // nthreads, r, out)))
        start = time.monotonic()
        for x in ts: x.start()
        for x in ts: x.join()
        secs = "%.3f" % (time.monotonic() - start)
        delta = {k: stats[k] - before[k] for k in stats}
        if out:
            status, e, msg = out[0]
            reply(status, msg, errno=e, secs=secs, **delta)
        else:
            reply("ok", secs=secs, **delta)
    elif op == "flush":
        e, secs = timed(lambda: handles[0].flush())
        if e is None:
            add("flushes", 1)
            reply("ok", secs="%.3f" % secs)
        else:
            reply("err", str(e), errno=errno_of(e), secs="%.3f" % secs)
    elif op == "write":
        b = int(cmd[1])
        assert b < nblocks, "write outside the load's area"
        data = fresh(b, master)
        e, secs = timed(lambda: handles[0].pwrite(data, b * bs))
        if e is None:
            model[b] = data
            alt.pop(b, None)
            add("writes", 1); add("bytes_written", bs)
            reply("ok", secs="%.3f" % secs)
        else:
            alt.setdefault(b, []).append(data)
            reply("err", str(e), errno=errno_of(e), secs="%.3f" % secs)
    elif op == "read":
        b = int(cmd[1])
        got = []
        e, secs = timed(lambda: got.append(handles[0].pread(bs, b * bs)))
        if e is not None:
            reply("err", str(e), errno=errno_of(e), secs="%.3f" % secs)
        elif got[0] in expected(b):
            add("reads", 1); add("bytes_verified", bs)
            reply("ok", secs="%.3f" % secs)
        else:
            reply("corrupt", mismatch(b, got[0], expected(b)), secs="%.3f" % secs)
    elif op == "verify":
        start = time.monotonic()
        bad, errors = verify()
        secs = "%.3f" % (time.monotonic() - start)
        if errors:
            reply("err", str(errors[0]), errno=errno_of(errors[0]), secs=secs)
        elif bad:
            reply("corrupt", "; ".join(bad[:5]), blocks=len(bad), secs=secs)
        else:
            add("bytes_verified", nblocks * bs)
            reply("ok", bytes=nblocks * bs, secs=secs)
    elif op == "save":
        if alt:
            reply("err", "blocks with unsettled failed writes: verify first")
        else:
            with open(cmd[1], "wb") as f:
                for b in range(nblocks):
                    f.write(model[b])
            reply("ok")
    elif op == "stats":
        reply("ok", **stats)
    elif op == "quit":
        for h in handles:
            try:
                h.shutdown()
            except nbd.Error:
                pass
        reply("ok")
        break
    else:
        reply("err", "unknown command " + op)
"#;

/// One reply of the verifying load.
#[derive(Clone, Debug)]
pub struct Reply {
    /// `ok`, `err` (an I/O error reached the client) or `corrupt` (data differed from the model).
    pub status: String,
    fields: HashMap<String, String>,
    /// The error or mismatch, if any.
    pub msg: String,
    /// The command it answers.
    pub command: String,
}

impl Reply {
    fn parse(command: &str, line: &str) -> Reply {
        let (head, msg) = match line.split_once(" msg=") {
            Some((h, m)) => (h, m.to_string()),
            None => (line, String::new()),
        };
        let mut words = head.split_whitespace();
        let status = words.next().unwrap_or_default().to_string();
        let fields = words
            .filter_map(|w| w.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Reply {
            status,
            fields,
            msg,
            command: command.to_string(),
        }
    }

    /// The command succeeded (and any data read matched the model).
    pub fn is_ok(&self) -> bool {
        self.status == "ok"
    }

    /// A numeric field (0 when absent).
    pub fn num(&self, key: &str) -> u64 {
        self.fields
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// How long the command took.
    pub fn secs(&self) -> f64 {
        self.fields
            .get("secs")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    /// The errno the client got (0 if none).
    pub fn errno(&self) -> i32 {
        self.num("errno") as i32
    }
}

/// A verifying load on an NBD disk (see the module doc).
pub struct VerifyingLoad {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    dir: TempDir,
    /// Blocks under test (from 0).
    pub blocks: u32,
    /// Their size.
    pub block_size: u32,
}

/// Longest any one command may take before the test calls it a hang.
const COMMAND_LIMIT: Duration = Duration::from_secs(180);

impl VerifyingLoad {
    /// Connects `threads` libnbd handles to `uri`; the load uses blocks `0..blocks`.
    pub fn start(uri: &str, blocks: u32, block_size: u32, threads: u32) -> VerifyingLoad {
        let dir = TempDir::new("load");
        let stderr = std::fs::File::create(dir.join("stderr")).expect("driver stderr");
        let mut child = Command::new("/usr/bin/python3")
            .env("PATH", system_path())
            .arg("-c")
            .arg(DRIVER)
            .args([
                uri.to_string(),
                blocks.to_string(),
                block_size.to_string(),
                random_u64().to_string(),
                threads.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("cannot run /usr/bin/python3 (python3-libnbd is needed)");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        VerifyingLoad {
            child,
            stdin,
            lines,
            dir,
            blocks,
            block_size,
        }
    }

    /// Sends one command and waits for its reply; panics if the driver dies or the command
    /// takes longer than [`COMMAND_LIMIT`] (a hang).
    pub fn cmd(&mut self, command: &str) -> Reply {
        self.send(command);
        let started = Instant::now();
        self.reply_within(command, COMMAND_LIMIT)
            .unwrap_or_else(|| panic!("`{command}` hung: no answer after {:?}", started.elapsed()))
    }

    /// Sends a command without waiting (collect the reply with [`VerifyingLoad::reply_within`];
    /// commands are answered in order).
    pub fn send(&mut self, command: &str) {
        if writeln!(self.stdin, "{command}")
            .and_then(|_| self.stdin.flush())
            .is_err()
        {
            self.died(command);
        }
    }

    /// The reply to the oldest command not answered yet, if it comes within `limit`.
    pub fn reply_within(&mut self, command: &str, limit: Duration) -> Option<Reply> {
        match self.lines.recv_timeout(limit) {
            Ok(line) => Some(Reply::parse(command, &line)),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => self.died(command),
        }
    }

    fn died(&mut self, command: &str) -> ! {
        let _ = self.child.wait();
        panic!(
            "the load driver died during `{command}`: {}",
            std::fs::read_to_string(self.dir.join("stderr")).unwrap_or_default()
        )
    }

    /// `n` random operations spread over the threads; asserts no error and no mismatch.
    pub fn load_ok(&mut self, n: u32) -> Reply {
        let r = self.cmd(&format!("load {n}"));
        assert!(r.is_ok(), "load {n}: {} {}", r.status, r.msg);
        r
    }

    /// FLUSH; asserts success.
    pub fn flush_ok(&mut self) -> Reply {
        let r = self.cmd("flush");
        assert!(r.is_ok(), "flush: {} {}", r.status, r.msg);
        r
    }

    /// Reads every block back and compares with the model; asserts a match.
    pub fn verify_ok(&mut self) -> Reply {
        let r = self.cmd("verify");
        assert!(r.is_ok(), "verify: {} {}", r.status, r.msg);
        r
    }

    /// Writes the model (the expected content of blocks `0..blocks`) to `path`.
    pub fn save_model(&mut self, path: &Path) {
        let r = self.cmd(&format!("save {}", path.display()));
        assert!(r.is_ok(), "save: {}", r.msg);
    }

    /// The totals (`writes`, `partial_writes`, `zeroings`, `reads`, `flushes`, `bytes_written`,
    /// `bytes_verified`).
    pub fn stats(&mut self) -> Reply {
        self.cmd("stats")
    }

    /// Closes the connections and ends the driver.
    pub fn finish(mut self) -> Reply {
        let stats = self.stats();
        let _ = self.cmd("quit");
        let _ = self.child.wait();
        stats
    }
}

impl Drop for VerifyingLoad {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
