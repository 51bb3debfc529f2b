//! `s3-load --url http://HOST:PORT/ --bucket NAME [--conns 16] [--size 262144] [--count 2048]
//! [--rand-secs 10] [--lat-count 200] [--no-content-md5 | --crc32] [--server-pid PID]
//! [--rand-range BYTES]`: the raw S3 ceiling of a server. An `https://` URL (with `--cacert
//! PEM`) speaks TLS itself (OpenSSL through native-tls, like our client), so a TLS ceiling
//! costs the load generator what it costs us.
//!
//! `--conns` keep-alive connections (`TCP_NODELAY`), each a thread sending one request at a time:
//! 1. PUT of `--count` objects of `--size` bytes (`Content-MD5` sent; the body and its MD5 are
//!    computed once, so the client costs next to nothing; with `--no-content-md5` the PUTs carry
//!    the body's SHA-256 in `x-amz-content-sha256` instead, as s3backer-rs's SigV4 PUTs do, so
//!    the server computes the ETag itself; with `--crc32` they carry `x-amz-checksum-crc32`
//!    instead of `Content-MD5`, as s3backer-rs's default SigV4 PUTs do, which the server
//!    verifies),
//! 2. GET of every object once (sequential keys over the connections),
//! 3. GET of random objects for `--rand-secs` seconds (then, with `--rand-range`, as long again
//!    GETs of one random `Range` of that many bytes each: `randrange_rps`),
//! 4. on one connection, `--lat-count` PUTs then GETs one at a time (the round trip at queue
//!    depth 1).
//!
//! Prints one JSON object: `put_mibs`, `put_rps`, `get_mibs`, `get_rps`, `randget_rps`,
//! `randget_mibs`, `put_qd1_us`, `get_qd1_us` (medians of the round trips), and with
//! `--server-pid` the server's CPU seconds per GiB moved in steps 1 and 2
//! (`put_server_cpu_per_gib`, `get_server_cpu_per_gib`, from `/proc/PID/stat`).
//! The server is not asked to verify signatures (a dummy `Authorization` is sent).

use std::io::{self, BufReader, IoSlice, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use md5::{Digest, Md5};
use s3backer_benchkit::{read_body, read_head, write_all_vectored};

struct Opts {
    host: String,
    bucket: String,
    conns: usize,
    size: usize,
    count: u64,
    rand_secs: f64,
    lat_count: usize,
    no_md5: bool,
    crc32: bool,
    server_pid: Option<u32>,
    rand_range: u64,
    tls: Option<native_tls::TlsConnector>,
}

/// A connection to the server, plain or TLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<native_tls::TlsStream<TcpStream>>),
}

impl io::Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write_vectored(bufs),
            Stream::Tls(s) => s.write_vectored(bufs),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

struct Conn {
    s: BufReader<Stream>,
    buf: Vec<u8>,
}

const AUTH: &str = "AWS4-HMAC-SHA256 Credential=benchkit/20261126/us-east-1/s3/aws4_request, \
                    SignedHeaders=content-md5;host;x-amz-content-sha256;x-amz-date, \
                    Signature=0000000000000000000000000000000000000000000000000000000000000000";

impl Conn {
    fn open(o: &Opts) -> io::Result<Conn> {
        let s = TcpStream::connect(&o.host)?;
        s.set_nodelay(true)?;
        let stream = match &o.tls {
            None => Stream::Plain(s),
            Some(connector) => {
                let name = o.host.rsplit_once(':').map_or(o.host.as_str(), |(h, _)| h);
                Stream::Tls(Box::new(
                    connector
                        .connect(name, s)
                        .map_err(|e| io::Error::other(format!("TLS: {e}")))?,
                ))
            }
        };
        Ok(Conn {
            s: BufReader::with_capacity(64 * 1024, stream),
            buf: Vec::new(),
        })
    }

    /// Sends one request; returns (status, body length).
    fn request(
        &mut self,
        o: &Opts,
        method: &str,
        key: &str,
        extra: &str,
        body: &[u8],
    ) -> io::Result<(u16, usize)> {
        let head = format!(
            "{method} /{}/{key} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n{extra}\
             x-amz-date: 20261126T000000Z\r\n\
             Authorization: {AUTH}\r\n\r\n",
            o.bucket,
            o.host,
            body.len()
        );
        write_all_vectored(self.s.get_mut(), head.as_bytes(), body)?;
        let resp = read_head(&mut self.s)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"))?;
        if method != "HEAD" {
            read_body(&mut self.s, &resp, &mut self.buf)?;
        }
        let status = resp.second.parse().unwrap_or(0);
        Ok((status, self.buf.len()))
    }
}

fn key(i: u64) -> String {
    format!("load{i:08x}")
}

fn fail(msg: String) -> ! {
    eprintln!("s3-load: {msg}");
    std::process::exit(1)
}

fn check(r: io::Result<(u16, usize)>, what: &str) -> usize {
    match r {
        Ok((200, n)) => n,
        Ok((s, _)) => fail(format!("{what}: HTTP {s}")),
        Err(e) => fail(format!("{what}: {e}")),
    }
}

/// Runs `job(conn, thread index)` on `o.conns` threads with a connection each.
fn parallel<F>(o: &Arc<Opts>, job: F) -> Duration
where
    F: Fn(&mut Conn, usize) + Send + Sync + 'static,
{
    let job = Arc::new(job);
    let mut conns: Vec<Conn> = (0..o.conns)
        .map(|_| Conn::open(o).unwrap_or_else(|e| fail(format!("connect: {e}"))))
        .collect();
    let start = Instant::now();
    let handles: Vec<_> = conns
        .drain(..)
        .enumerate()
        .map(|(i, mut c)| {
            let job = job.clone();
            std::thread::spawn(move || job(&mut c, i))
        })
        .collect();
    for h in handles {
        if h.join().is_err() {
            fail("a load thread panicked".into());
        }
    }
    start.elapsed()
}

/// CPU seconds (user + system) a process has used so far; 0 without a pid or when unreadable.
fn cpu_secs(pid: Option<u32>) -> f64 {
    let Some(pid) = pid else { return 0.0 };
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) end at its ')'.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name; USER_HZ is
    // 100 on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

/// GETs of random objects (of `range` bytes at a random aligned offset each, when not 0) on
/// every connection for `o.rand_secs`; returns the rate (requests per second).
fn random_gets(o: &Arc<Opts>, range: u64) -> f64 {
    let done = Arc::new(AtomicBool::new(false));
    let gets = Arc::new(AtomicU64::new(0));
    let stop = done.clone();
    let secs = o.rand_secs;
    let timer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs_f64(secs));
        stop.store(true, Relaxed);
    });
    let (o2, d2, g2) = (o.clone(), done, gets.clone());
    let took = parallel(o, move |c, t| {
        let mut s: u64 = 0x2545f4914f6cdd1d ^ ((t as u64 + 1) * 0x9e3779b97f4a7c15);
        while !d2.load(Relaxed) {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let header = match (o2.size as u64).checked_div(range) {
                Some(slots) => {
                    let first = (s >> 32) % slots.max(1) * range;
                    format!("Range: bytes={first}-{}\r\n", first + range - 1)
                }
                None => String::new(),
            };
            match c.request(&o2, "GET", &key(s % o2.count), &header, &[]) {
                Ok((200 | 206, _)) => {}
                Ok((st, _)) => fail(format!("random GET: HTTP {st}")),
                Err(e) => fail(format!("random GET: {e}")),
            }
            g2.fetch_add(1, Relaxed);
        }
    });
    let _ = timer.join();
    gets.load(Relaxed) as f64 / took.as_secs_f64().max(1e-9)
}

fn median_us(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v.get(v.len() / 2).map_or(0.0, |d| d.as_secs_f64() * 1e6)
}

fn parse_opts() -> Opts {
    let mut o = Opts {
        host: String::new(),
        bucket: String::new(),
        conns: 16,
        size: 256 * 1024,
        count: 2048,
        rand_secs: 10.0,
        lat_count: 200,
        no_md5: false,
        crc32: false,
        server_pid: None,
        rand_range: 0,
        tls: None,
    };
    let mut cacert = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || {
            args.next()
                .unwrap_or_else(|| fail(format!("{a} needs a value")))
        };
        let num = |s: String| -> u64 {
            s.parse()
                .unwrap_or_else(|_| fail(format!("bad number {s}")))
        };
        match a.as_str() {
            "--url" => {
                let u = val();
                let rest = match (u.strip_prefix("http://"), u.strip_prefix("https://")) {
                    (Some(rest), _) => rest,
                    (None, Some(rest)) => {
                        o.tls = Some(
                            native_tls::TlsConnector::new()
                                .unwrap_or_else(|e| fail(format!("TLS: {e}"))),
                        );
                        rest
                    }
                    _ => fail("--url must be http:// or https://".into()),
                };
                o.host = rest.trim_end_matches('/').to_owned();
            }
            "--bucket" => o.bucket = val(),
            "--conns" => o.conns = num(val()) as usize,
            "--size" => o.size = num(val()) as usize,
            "--count" => o.count = num(val()),
            "--rand-secs" => {
                let v = val();
                o.rand_secs = v
                    .parse()
                    .unwrap_or_else(|_| fail(format!("bad number {v}")));
            }
            "--lat-count" => o.lat_count = num(val()) as usize,
            "--no-content-md5" => o.no_md5 = true,
            "--crc32" => o.crc32 = true,
            "--server-pid" => o.server_pid = Some(num(val()) as u32),
            "--rand-range" => o.rand_range = num(val()),
            "--cacert" => cacert = Some(val()),
            other => fail(format!("unknown argument {other}")),
        }
    }
    if let (Some(path), Some(_)) = (&cacert, &o.tls) {
        let pem = std::fs::read(path).unwrap_or_else(|e| fail(format!("{path}: {e}")));
        let cert = native_tls::Certificate::from_pem(&pem)
            .unwrap_or_else(|e| fail(format!("{path}: {e}")));
        o.tls = Some(
            native_tls::TlsConnector::builder()
                .add_root_certificate(cert)
                .build()
                .unwrap_or_else(|e| fail(format!("TLS: {e}"))),
        );
    }
    if o.host.is_empty() || o.bucket.is_empty() || o.conns == 0 || o.count == 0 {
        fail("usage: s3-load --url http://HOST:PORT/ --bucket NAME [--conns N] [--size BYTES] [--count N] [--rand-secs S] [--lat-count N]".into());
    }
    o
}

fn main() {
    let o = Arc::new(parse_opts());
    // Pseudo-random, incompressible body; hashed once.
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let body: Arc<Vec<u8>> = Arc::new(
        (0..o.size)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect(),
    );
    let md5_header = if o.crc32 {
        format!(
            "x-amz-checksum-crc32: {}\r\nx-amz-content-sha256: {}\r\n\
             Content-Type: application/x-s3backer-block\r\n",
            BASE64.encode(crc32fast::hash(body.as_slice()).to_be_bytes()),
            "5".repeat(64)
        )
    } else if o.no_md5 {
        // A fixed stand-in for the body's SHA-256 (the server does not verify it).
        format!(
            "x-amz-content-sha256: {}\r\nContent-Type: application/x-s3backer-block\r\n",
            "5".repeat(64)
        )
    } else {
        format!(
            "Content-MD5: {}\r\nx-amz-content-sha256: UNSIGNED-PAYLOAD\r\n\
             Content-Type: application/x-s3backer-block\r\n",
            BASE64.encode(Md5::digest(body.as_slice()))
        )
    };
    let md5_header = Arc::new(md5_header);
    let mib = (o.count as f64 * o.size as f64) / 1048576.0;

    let gib = mib / 1024.0;
    let cpu0 = cpu_secs(o.server_pid);
    // 1. PUT
    let next = Arc::new(AtomicU64::new(0));
    let (o2, n2, b2, h2) = (o.clone(), next.clone(), body.clone(), md5_header.clone());
    let put_time = parallel(&o, move |c, _| {
        loop {
            let i = n2.fetch_add(1, Relaxed);
            if i >= o2.count {
                break;
            }
            check(c.request(&o2, "PUT", &key(i), &h2, &b2), "PUT");
        }
    });

    let cpu1 = cpu_secs(o.server_pid);
    // 2. GET, each object once
    next.store(0, Relaxed);
    let (o2, n2) = (o.clone(), next.clone());
    let get_time = parallel(&o, move |c, _| {
        loop {
            let i = n2.fetch_add(1, Relaxed);
            if i >= o2.count {
                break;
            }
            let n = check(c.request(&o2, "GET", &key(i), "", &[]), "GET");
            if n != o2.size {
                fail(format!("GET returned {n} bytes"));
            }
        }
    });

    let cpu2 = cpu_secs(o.server_pid);
    // 3. random GET for rand_secs (then ranged ones)
    let randget_rps = random_gets(&o, 0);
    let randrange_rps = if o.rand_range > 0 {
        random_gets(&o, o.rand_range)
    } else {
        0.0
    };

    // 4. round trips at queue depth 1
    let mut c = Conn::open(&o).unwrap_or_else(|e| fail(format!("connect: {e}")));
    let mut put_lat = Vec::with_capacity(o.lat_count);
    let mut get_lat = Vec::with_capacity(o.lat_count);
    for i in 0..o.lat_count as u64 {
        let t = Instant::now();
        check(
            c.request(&o, "PUT", &key(i % o.count), &md5_header, &body),
            "PUT",
        );
        put_lat.push(t.elapsed());
    }
    for i in 0..o.lat_count as u64 {
        let t = Instant::now();
        check(c.request(&o, "GET", &key(i % o.count), "", &[]), "GET");
        get_lat.push(t.elapsed());
    }

    println!(
        "{{\"conns\":{},\"size\":{},\"count\":{},\"put_mibs\":{:.1},\"put_rps\":{:.0},\
         \"get_mibs\":{:.1},\"get_rps\":{:.0},\"randget_rps\":{:.0},\"randget_mibs\":{:.1},\
         \"put_qd1_us\":{:.0},\"get_qd1_us\":{:.0},\"put_server_cpu_per_gib\":{:.3},\
         \"get_server_cpu_per_gib\":{:.3},\"randrange_rps\":{:.0}}}",
        o.conns,
        o.size,
        o.count,
        mib / put_time.as_secs_f64(),
        o.count as f64 / put_time.as_secs_f64(),
        mib / get_time.as_secs_f64(),
        o.count as f64 / get_time.as_secs_f64(),
        randget_rps,
        randget_rps * o.size as f64 / 1048576.0,
        median_us(put_lat),
        median_us(get_lat),
        (cpu1 - cpu0) / gib,
        (cpu2 - cpu1) / gib,
        randrange_rps,
    );
    // Free the server's memory.
    let _ = c.request(&o, "DELETE", "", "", &[]);
}
