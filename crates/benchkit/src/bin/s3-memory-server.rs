//! `s3-memory-server [--listen ADDR]`: an in-memory S3 server for benchmarks.
//!
//! Path-style (`/bucket/key`), HTTP/1.1 with keep-alive, one thread per connection,
//! `TCP_NODELAY`. Buckets exist as soon as they are named. Supported: object PUT / GET / HEAD /
//! DELETE (with `Content-Type`, `Content-Encoding` and `x-amz-meta-*` stored and returned;
//! `ETag` = quoted MD5 hex; `Content-MD5` and `x-amz-checksum-crc32` checked → 400 `BadDigest`
//! (the CRC is returned with the PUT's answer, stored, and returned to a GET or HEAD with `x-amz-checksum-mode: ENABLED`); `If-Match` → 412,
//! `If-None-Match` → 304; `Expect: 100-continue`; with `--trust-content-md5` a PUT's ETag is
//! its `Content-MD5` unchecked, so the server spends no CPU hashing), `Range: bytes=A-B` (one range → 206), ListObjects V1 (`prefix`, `marker`,
//! `max-keys`) and V2 (`list-type=2`, `start-after`, `continuation-token`), DeleteObjects
//! (`POST /bucket?delete`), bucket PUT / HEAD and DELETE (drops the bucket and its objects).
//! **Signatures are not verified**: any `Authorization` is accepted.
//!
//! `GET /__stats` answers the request counters per bucket as JSON (one line):
//! `{"BUCKET":{"get":N,"head":N,"put":N,"delete":N,"list":N,"bulk_delete":N,"bulk_keys":N,
//! "bytes_in":N,"bytes_out":N,"objects":N,"stored_bytes":N},...}`.
//!
//! Prints `listening on ADDR` once it accepts connections.

use std::collections::HashMap;
use std::io::{self, BufReader, BufWriter, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use md5::{Digest, Md5};
use s3backer_benchkit::{
    Head, hex, percent_decode, read_body, read_head, write_all_vectored, xml_escape, xml_unescape,
};

const SHARDS: usize = 64;

struct Object {
    body: Arc<Vec<u8>>,
    /// MD5 hex, unquoted.
    etag: String,
    content_type: Option<String>,
    content_encoding: Option<String>,
    meta: Vec<(String, String)>,
    /// `x-amz-checksum-crc32` given with the PUT (verified), returned when a GET or HEAD asks
    /// with `x-amz-checksum-mode: ENABLED`, as S3 does.
    crc32: Option<String>,
}

#[derive(Default)]
struct Stats {
    get: AtomicU64,
    head: AtomicU64,
    put: AtomicU64,
    delete: AtomicU64,
    list: AtomicU64,
    bulk_delete: AtomicU64,
    bulk_keys: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

struct Bucket {
    shards: Vec<Mutex<HashMap<String, Arc<Object>>>>,
    stats: Stats,
}

impl Bucket {
    fn new() -> Bucket {
        Bucket {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            stats: Stats::default(),
        }
    }

    fn shard(&self, key: &str) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Object>>> {
        // FNV-1a
        let mut h: u64 = 0xcbf29ce484222325;
        for b in key.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
        self.shards[(h % SHARDS as u64) as usize]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self, key: &str) -> Option<Arc<Object>> {
        self.shard(key).get(key).cloned()
    }

    fn put(&self, key: String, obj: Object) {
        let mut shard = self.shard(&key);
        shard.insert(key, Arc::new(obj));
    }

    fn remove(&self, key: &str) {
        self.shard(key).remove(key);
    }

    /// (key, etag, size) of every object with `prefix` whose key sorts after `after`, sorted.
    fn list(&self, prefix: &str, after: &str) -> Vec<(String, String, usize)> {
        let mut out = Vec::new();
        for s in &self.shards {
            let s = s.lock().unwrap_or_else(PoisonError::into_inner);
            for (k, o) in s.iter() {
                if k.starts_with(prefix) && k.as_str() > after {
                    out.push((k.clone(), o.etag.clone(), o.body.len()));
                }
            }
        }
        out.sort();
        out
    }

    fn counts(&self) -> (usize, usize) {
        let mut n = 0;
        let mut bytes = 0;
        for s in &self.shards {
            let s = s.lock().unwrap_or_else(PoisonError::into_inner);
            n += s.len();
            bytes += s.values().map(|o| o.body.len()).sum::<usize>();
        }
        (n, bytes)
    }
}

#[derive(Default)]
struct Server {
    buckets: RwLock<HashMap<String, Arc<Bucket>>>,
    /// `--trust-content-md5`: a PUT's ETag is its `Content-MD5`, not checked.
    trust_md5: bool,
}

impl Server {
    fn bucket(&self, name: &str) -> Arc<Bucket> {
        if let Some(b) = self
            .buckets
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
        {
            return b.clone();
        }
        self.buckets
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(Bucket::new()))
            .clone()
    }

    fn drop_bucket(&self, name: &str) {
        self.buckets
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
    }

    fn stats_json(&self) -> String {
        let buckets = self.buckets.read().unwrap_or_else(PoisonError::into_inner);
        let mut names: Vec<&String> = buckets.keys().collect();
        names.sort();
        let mut out = String::from("{");
        for (i, name) in names.iter().enumerate() {
            let b = &buckets[*name];
            let s = &b.stats;
            let (objects, stored) = b.counts();
            if i > 0 {
                out.push(',');
            }
            out.push_str(&format!(
                "\"{}\":{{\"get\":{},\"head\":{},\"put\":{},\"delete\":{},\"list\":{},\
                 \"bulk_delete\":{},\"bulk_keys\":{},\"bytes_in\":{},\"bytes_out\":{},\
                 \"objects\":{},\"stored_bytes\":{}}}",
                name.replace(['"', '\\'], "_"),
                s.get.load(Relaxed),
                s.head.load(Relaxed),
                s.put.load(Relaxed),
                s.delete.load(Relaxed),
                s.list.load(Relaxed),
                s.bulk_delete.load(Relaxed),
                s.bulk_keys.load(Relaxed),
                s.bytes_in.load(Relaxed),
                s.bytes_out.load(Relaxed),
                objects,
                stored
            ));
        }
        out.push('}');
        out
    }
}

/// A response to send.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Body,
    /// HEAD: headers describe a body that is not sent.
    head_only: bool,
}

enum Body {
    Empty,
    Text(String),
    Object(Arc<Vec<u8>>),
    /// `[start, end)` of an object (a 206 answer).
    Slice(Arc<Vec<u8>>, usize, usize),
}

impl Body {
    fn bytes(&self) -> &[u8] {
        match self {
            Body::Empty => &[],
            Body::Text(s) => s.as_bytes(),
            Body::Object(b) => b,
            Body::Slice(b, start, end) => &b[*start..*end],
        }
    }
}

impl Reply {
    fn new(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Body::Empty,
            head_only: false,
        }
    }

    fn xml(status: u16, xml: String) -> Reply {
        let mut r = Reply::new(status);
        r.headers
            .push(("Content-Type".into(), "application/xml".into()));
        r.body = Body::Text(xml);
        r
    }

    fn error(status: u16, code: &str, message: &str) -> Reply {
        Reply::xml(
            status,
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
                 <Message>{}</Message></Error>",
                xml_escape(message)
            ),
        )
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        206 => "Partial Content",
        304 => "Not Modified",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        412 => "Precondition Failed",
        _ => "Status",
    }
}

fn write_reply(w: &mut TcpStream, reply: &Reply, keep_alive: bool) -> io::Result<u64> {
    let body = reply.body.bytes();
    let mut head = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
    for (n, v) in &reply.headers {
        head.push_str(n);
        head.push_str(": ");
        head.push_str(v);
        head.push_str("\r\n");
    }
    if reply.status != 304 && reply.status != 204 {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("x-amz-request-id: 0\r\nServer: s3-memory-server\r\n");
    if !keep_alive {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    let send_body = if reply.head_only || reply.status == 304 || reply.status == 204 {
        &[][..]
    } else {
        body
    };
    write_all_vectored(w, head.as_bytes(), send_body)?;
    Ok(send_body.len() as u64)
}

/// Splits `target` into (decoded path, decoded query pairs).
fn split_target(target: &str) -> (String, Vec<(String, String)>) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let pairs = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    (percent_decode(path), pairs)
}

fn query<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// `bytes=FIRST-LAST` or `bytes=FIRST-` (one range) → `(first, last)` clamped to `len`; `None`
/// (whole object) otherwise.
fn parse_range(v: &str, len: usize) -> Option<(usize, usize)> {
    let spec = v.trim().strip_prefix("bytes=")?;
    if spec.contains(',') || len == 0 {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let first: usize = a.trim().parse().ok()?;
    let last: usize = if b.trim().is_empty() {
        len - 1
    } else {
        b.trim().parse::<usize>().ok()?.min(len - 1)
    };
    (first <= last).then_some((first, last))
}

fn etag_matches(header: &str, etag: &str) -> bool {
    header
        .split(',')
        .map(|t| t.trim().trim_start_matches("W/").trim_matches('"'))
        .any(|t| t == "*" || t == etag)
}

fn object_headers(o: &Object, checksum_mode: bool, r: &mut Reply) {
    r.headers.push(("ETag".into(), format!("\"{}\"", o.etag)));
    if checksum_mode && let Some(c) = &o.crc32 {
        r.headers.push(("x-amz-checksum-crc32".into(), c.clone()));
    }
    r.headers.push((
        "Content-Type".into(),
        o.content_type
            .clone()
            .unwrap_or_else(|| "binary/octet-stream".into()),
    ));
    if let Some(e) = &o.content_encoding {
        r.headers.push(("Content-Encoding".into(), e.clone()));
    }
    r.headers.push((
        "Last-Modified".into(),
        "Thu, 26 Nov 2026 00:00:00 GMT".into(),
    ));
    for (k, v) in &o.meta {
        r.headers.push((k.clone(), v.clone()));
    }
}

fn handle_object(
    bucket: &Bucket,
    key: String,
    head: &Head,
    body: Vec<u8>,
    method: &str,
    trust_md5: bool,
) -> Reply {
    match method {
        "GET" | "HEAD" => {
            let is_head = method == "HEAD";
            if is_head {
                bucket.stats.head.fetch_add(1, Relaxed);
            } else {
                bucket.stats.get.fetch_add(1, Relaxed);
            }
            let Some(o) = bucket.get(&key) else {
                let mut r = Reply::error(404, "NoSuchKey", "The specified key does not exist.");
                if is_head {
                    r.body = Body::Empty;
                }
                return r;
            };
            if let Some(m) = head.header("if-match")
                && !etag_matches(m, &o.etag)
            {
                return Reply::error(412, "PreconditionFailed", "If-Match failed");
            }
            if let Some(m) = head.header("if-none-match")
                && etag_matches(m, &o.etag)
            {
                let mut r = Reply::new(304);
                r.headers.push(("ETag".into(), format!("\"{}\"", o.etag)));
                return r;
            }
            let mut r = Reply::new(200);
            let checksum_mode = head
                .header("x-amz-checksum-mode")
                .is_some_and(|v| v.eq_ignore_ascii_case("enabled"));
            object_headers(&o, checksum_mode, &mut r);
            r.head_only = is_head;
            if !is_head
                && let Some((first, last)) = head
                    .header("range")
                    .and_then(|v| parse_range(v, o.body.len()))
            {
                r.status = 206;
                r.headers.push((
                    "Content-Range".into(),
                    format!("bytes {first}-{last}/{}", o.body.len()),
                ));
                r.body = Body::Slice(o.body.clone(), first, last + 1);
                return r;
            }
            r.body = Body::Object(o.body.clone());
            r
        }
        "PUT" => {
            bucket.stats.put.fetch_add(1, Relaxed);
            if head.header("x-amz-copy-source").is_some() {
                return Reply::error(501, "NotImplemented", "copy is not supported");
            }
            let given = head
                .header("content-md5")
                .map(|g| BASE64.decode(g).unwrap_or_default());
            let etag = match given {
                Some(d) if trust_md5 && d.len() == 16 => hex(&d),
                Some(d) => {
                    let digest = Md5::digest(&body);
                    if d.as_slice() != digest.as_slice() {
                        return Reply::error(
                            400,
                            "BadDigest",
                            "The Content-MD5 you specified did not match what we received.",
                        );
                    }
                    hex(&digest)
                }
                None => hex(&Md5::digest(&body)),
            };
            let crc32 = head.header("x-amz-checksum-crc32").map(str::to_owned);
            if let Some(given) = &crc32
                && *given != BASE64.encode(crc32fast::hash(&body).to_be_bytes())
            {
                return Reply::error(
                    400,
                    "BadDigest",
                    "The CRC32 you specified did not match the calculated checksum.",
                );
            }
            let meta = head
                .headers
                .iter()
                .filter(|(n, _)| n.starts_with("x-amz-meta-"))
                .cloned()
                .collect();
            let obj = Object {
                body: Arc::new(body),
                etag: etag.clone(),
                content_type: head.header("content-type").map(str::to_owned),
                content_encoding: head.header("content-encoding").map(str::to_owned),
                meta,
                crc32: crc32.clone(),
            };
            bucket.put(key, obj);
            let mut r = Reply::new(200);
            r.headers.push(("ETag".into(), format!("\"{etag}\"")));
            // As S3 does: the checksum it verified comes back with the answer.
            if let Some(c) = crc32 {
                r.headers.push(("x-amz-checksum-crc32".into(), c));
            }
            r
        }
        "DELETE" => {
            bucket.stats.delete.fetch_add(1, Relaxed);
            bucket.remove(&key);
            Reply::new(204)
        }
        _ => Reply::error(405, "MethodNotAllowed", method),
    }
}

fn handle_list(bucket: &Bucket, name: &str, q: &[(String, String)]) -> Reply {
    bucket.stats.list.fetch_add(1, Relaxed);
    let v2 = query(q, "list-type") == Some("2");
    let prefix = query(q, "prefix").unwrap_or("");
    let max_keys = query(q, "max-keys")
        .and_then(|m| m.parse::<usize>().ok())
        .unwrap_or(1000)
        .min(1000);
    let after = if v2 {
        query(q, "continuation-token")
            .or_else(|| query(q, "start-after"))
            .unwrap_or("")
    } else {
        query(q, "marker").unwrap_or("")
    };
    let all = bucket.list(prefix, after);
    let truncated = all.len() > max_keys;
    let page = &all[..all.len().min(max_keys)];
    let mut x = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult \
         xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">",
    );
    x.push_str(&format!(
        "<Name>{}</Name><Prefix>{}</Prefix><MaxKeys>{max_keys}</MaxKeys>\
         <IsTruncated>{truncated}</IsTruncated>",
        xml_escape(name),
        xml_escape(prefix)
    ));
    if v2 {
        x.push_str(&format!("<KeyCount>{}</KeyCount>", page.len()));
        if let Some(t) = query(q, "continuation-token") {
            x.push_str(&format!(
                "<ContinuationToken>{}</ContinuationToken>",
                xml_escape(t)
            ));
        }
        if truncated && let Some(last) = page.last() {
            x.push_str(&format!(
                "<NextContinuationToken>{}</NextContinuationToken>",
                xml_escape(&last.0)
            ));
        }
    } else {
        x.push_str(&format!("<Marker>{}</Marker>", xml_escape(after)));
        if truncated && let Some(last) = page.last() {
            x.push_str(&format!("<NextMarker>{}</NextMarker>", xml_escape(&last.0)));
        }
    }
    for (k, etag, size) in page {
        x.push_str(&format!(
            "<Contents><Key>{}</Key><LastModified>2026-11-26T00:00:00.000Z</LastModified>\
             <ETag>&quot;{etag}&quot;</ETag><Size>{size}</Size>\
             <StorageClass>STANDARD</StorageClass></Contents>",
            xml_escape(k)
        ));
    }
    x.push_str("</ListBucketResult>");
    Reply::xml(200, x)
}

fn handle_bulk_delete(bucket: &Bucket, head: &Head, body: &[u8]) -> Reply {
    bucket.stats.bulk_delete.fetch_add(1, Relaxed);
    if let Some(given) = head.header("content-md5") {
        let digest = Md5::digest(body);
        if BASE64.decode(given).ok().as_deref() != Some(digest.as_slice()) {
            return Reply::error(400, "BadDigest", "Content-MD5 mismatch");
        }
    }
    let text = String::from_utf8_lossy(body);
    let quiet = text.contains("<Quiet>true</Quiet>");
    let mut x = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DeleteResult \
         xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">",
    );
    let mut rest = &text[..];
    while let Some(start) = rest.find("<Key>") {
        let after = &rest[start + 5..];
        let Some(end) = after.find("</Key>") else {
            break;
        };
        let key = xml_unescape(&after[..end]);
        bucket.stats.bulk_keys.fetch_add(1, Relaxed);
        bucket.remove(&key);
        if !quiet {
            x.push_str(&format!(
                "<Deleted><Key>{}</Key></Deleted>",
                xml_escape(&key)
            ));
        }
        rest = &after[end + 6..];
    }
    x.push_str("</DeleteResult>");
    Reply::xml(200, x)
}

fn route(server: &Server, head: &Head, body: Vec<u8>) -> Reply {
    let (path, q) = split_target(&head.second);
    let method = head.first.as_str();
    if path == "/__stats" {
        let mut r = Reply::new(200);
        r.headers
            .push(("Content-Type".into(), "application/json".into()));
        r.body = Body::Text(server.stats_json());
        return r;
    }
    let trimmed = path.trim_start_matches('/');
    let (bucket_name, key) = trimmed.split_once('/').unwrap_or((trimmed, ""));
    if bucket_name.is_empty() {
        return Reply::error(400, "InvalidBucketName", "no bucket in the path");
    }
    if key.is_empty() {
        return match method {
            "GET" => handle_list(&server.bucket(bucket_name), bucket_name, &q),
            "POST" if query(&q, "delete").is_some() => {
                handle_bulk_delete(&server.bucket(bucket_name), head, &body)
            }
            "HEAD" | "PUT" => {
                server.bucket(bucket_name);
                Reply::new(200)
            }
            "DELETE" => {
                server.drop_bucket(bucket_name);
                Reply::new(204)
            }
            _ => Reply::error(405, "MethodNotAllowed", method),
        };
    }
    let bucket = server.bucket(bucket_name);
    let bytes_in = body.len() as u64;
    bucket.stats.bytes_in.fetch_add(bytes_in, Relaxed);
    handle_object(
        &bucket,
        key.to_owned(),
        head,
        body,
        method,
        server.trust_md5,
    )
}

fn serve(server: Arc<Server>, stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    loop {
        let Some(head) = read_head(&mut reader)? else {
            return Ok(());
        };
        let keep_alive = !head
            .header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"));
        if head
            .header("expect")
            .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
        {
            writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        let mut body = Vec::new();
        read_body(&mut reader, &head, &mut body)?;
        let reply = route(&server, &head, body);
        let sent = write_reply(&mut writer, &reply, keep_alive)?;
        if let Some(bucket) = head
            .second
            .trim_start_matches('/')
            .split(['/', '?'])
            .next()
            .filter(|b| !b.is_empty() && *b != "__stats")
            && sent > 0
        {
            server
                .bucket(&percent_decode(bucket))
                .stats
                .bytes_out
                .fetch_add(sent, Relaxed);
        }
        if !keep_alive {
            return Ok(());
        }
    }
}

fn main() {
    let mut listen = "127.0.0.1:0".to_owned();
    let mut trust_md5 = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => listen = args.next().unwrap_or(listen),
            "--trust-content-md5" => trust_md5 = true,
            "-h" | "--help" => {
                println!(
                    "usage: s3-memory-server [--listen ADDR] [--trust-content-md5]\n  \
                     --listen ADDR          default 127.0.0.1:0 (prints the port chosen)\n  \
                     --trust-content-md5    a PUT's Content-MD5 becomes its ETag unchecked \
                     (the server's MD5 would\n                         otherwise take CPU \
                     from the client on a shared machine)"
                );
                return;
            }
            other => {
                eprintln!("s3-memory-server: unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    let listener = match TcpListener::bind(&listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("s3-memory-server: cannot listen on {listen}: {e}");
            std::process::exit(1);
        }
    };
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or(listen);
    println!("listening on {addr}");
    let _ = io::stdout().flush();
    let server = Arc::new(Server {
        trust_md5,
        ..Server::default()
    });
    for conn in listener.incoming() {
        let Ok(stream) = conn else { continue };
        let server = server.clone();
        let _ = std::thread::Builder::new()
            .name("conn".into())
            .spawn(move || {
                // A broken connection only ends that connection.
                let _ = serve(server, stream);
            });
    }
    let _ = BufWriter::new(io::stdout()).flush();
}
