//! End-to-end tests against a scripted server on 127.0.0.1 (`fake_server.rs`): what goes on
//! the wire, how responses map to outcomes and errors, and how many attempts and pauses a
//! failure costs. Pauses are recorded by a fake sleeper, never slept.

mod fake_server;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use percent_encoding::percent_decode_str;
use s3backer_config::{
    AuthVersion, CredentialSource, Credentials, PayloadHash, S3Settings, Secret,
};

use self::fake_server::{Canned, FakeServer, Recorded};
use crate::sign_v4::{SigV4, V4Request, sha256_hex};
use crate::{ClientOptions, Etag, GetOutcome, GetRequest, PutRequest, S3Client, S3Error};

const ID: &str = "AKIDEXAMPLE";
const SECRET: &str = "very/secret+key";

fn settings(base_url: &str) -> S3Settings {
    S3Settings {
        base_url: base_url.to_owned(),
        base_url_explicit: true,
        region: "garage".into(),
        vhost: false,
        auth_version: AuthVersion::V4,
        payload_hash: PayloadHash::Auto,
        credentials: Some(Credentials {
            access_id: ID.into(),
            access_key: Secret::new(SECRET),
            session_token: None,
            source: CredentialSource::Flags,
        }),
        cacert: None,
        insecure: false,
        http11: false,
        no_connection_reuse: false,
        content_md5: false,
        timeout: Duration::from_secs(5),
        initial_retry_pause: Duration::from_millis(10),
        max_retry_pause: Duration::from_millis(30),
        max_upload_speed: None,
        max_download_speed: None,
        storage_class: None,
        sse: None,
        sse_key_id: None,
        access_type: "private".into(),
        debug_http: true,
    }
}

type Pauses = Arc<Mutex<Vec<Duration>>>;

fn client_with(settings: &S3Settings) -> (S3Client, Pauses) {
    let pauses: Pauses = Arc::default();
    let record = pauses.clone();
    let client = S3Client::with_sleeper(
        settings,
        "bucket",
        ClientOptions {
            max_connections: 4,
            user_agent: "s3backer-test/1".into(),
        },
        Arc::new(move |d| record.lock().unwrap().push(d)),
    )
    .unwrap();
    (client, pauses)
}

fn client(server: &FakeServer) -> (S3Client, Pauses) {
    client_with(&settings(&server.base_url()))
}

/// PUTs `b"block"` as `k` with the test settings changed by `adjust`; returns what arrived.
fn put_block_with(adjust: impl FnOnce(&mut S3Settings)) -> Recorded {
    let server = FakeServer::start(vec![Canned::new(200)]);
    let mut s = settings(&server.base_url());
    adjust(&mut s);
    let (c, _) = client_with(&s);
    c.put_object("k", b"block", &PutRequest::default()).unwrap();
    server.requests().remove(0)
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// Re-computes the SigV4 signature of a received request from what arrived on the wire.
fn verify_v4(req: &Recorded, region: &str) {
    let auth = req.header("authorization").expect("no Authorization");
    let signed = auth
        .split("SignedHeaders=")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap();
    let (path, query) = match req.target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (req.target.as_str(), ""),
    };
    let query: Vec<(String, String)> = query
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let d = |s: &str| percent_decode_str(s).decode_utf8().unwrap().into_owned();
            (d(k), d(v))
        })
        .collect();
    let host = req.header("host").unwrap();
    let headers: Vec<(String, String)> = signed
        .split(';')
        .filter(|n| *n != "host")
        .map(|n| (n.to_owned(), req.header(n).unwrap().to_owned()))
        .collect();
    let amz_date = req.header("x-amz-date").unwrap();
    let payload_hash = match req.header("x-amz-content-sha256") {
        Some("UNSIGNED-PAYLOAD") => "UNSIGNED-PAYLOAD".to_owned(),
        other => {
            let hash = sha256_hex(&req.body);
            assert_eq!(other, Some(hash.as_str()));
            hash
        }
    };
    let expected = SigV4::new(ID, SECRET, region).authorization(
        amz_date,
        &V4Request {
            method: &req.method,
            host,
            path,
            query: &query,
            headers: &headers,
            payload_hash: &payload_hash,
        },
    );
    assert_eq!(auth, expected);
}

#[test]
fn get_retries_a_503_then_succeeds() {
    let body = b"block data".to_vec();
    let etag = Etag::md5_of(&body);
    let server = FakeServer::start(vec![
        Canned::error(503, "SlowDown", "Please reduce your request rate."),
        Canned::new(200)
            .header("ETag", &etag.quoted())
            .header("Content-Encoding", "deflate")
            .header("X-Amz-Meta-S3backer-Blocksize", "4096")
            .body(body.clone()),
    ]);
    let (c, pauses) = client(&server);
    let got = c
        .get_object(
            "vol1/00000000",
            &GetRequest {
                accept_encoding: Some("deflate, zstd".into()),
                ..GetRequest::default()
            },
        )
        .unwrap();
    let GetOutcome::Found(data) = got else {
        panic!("{got:?}")
    };
    assert_eq!(data.body, body);
    assert_eq!(data.etag, Some(etag));
    assert_eq!(data.content_encoding.as_deref(), Some("deflate"));
    assert_eq!(
        data.meta,
        vec![("s3backer-blocksize".to_owned(), "4096".to_owned())]
    );
    assert_eq!(*pauses.lock().unwrap(), vec![ms(10)]);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    let base = server.base_url();
    let host = base.trim_start_matches("http://").trim_end_matches('/');
    for r in &reqs {
        assert_eq!(r.method, "GET");
        assert_eq!(r.target, "/bucket/vol1/00000000");
        assert_eq!(r.header("accept-encoding"), Some("deflate, zstd"));
        assert_eq!(r.header("user-agent"), Some("s3backer-test/1"));
        assert_eq!(r.header("host"), Some(host));
        assert!(r.header("if-match").is_none());
        verify_v4(r, "garage");
    }
    assert!(reqs[0].header("authorization").unwrap().contains(
        "SignedHeaders=accept-encoding;host;x-amz-checksum-mode;x-amz-content-sha256;x-amz-date,"
    ));
    let s = c.stats();
    assert_eq!((s.gets, s.retries, s.http_5xx), (1, 1, 1));
    assert_eq!(s.total_retry_delay, ms(10));
}

#[test]
fn retry_after_raises_the_pause() {
    let server = FakeServer::start(vec![
        Canned::error(503, "SlowDown", "slow down").header("Retry-After", "2"),
        Canned::new(200).body("x"),
    ]);
    let mut s = settings(&server.base_url());
    s.max_retry_pause = Duration::from_secs(30);
    let (c, pauses) = client_with(&s);
    c.get_object("k", &GetRequest::default()).unwrap();
    assert_eq!(*pauses.lock().unwrap(), vec![Duration::from_secs(2)]);
}

#[test]
fn get_404_is_not_found_but_no_such_bucket_is_an_error() {
    let server = FakeServer::start(vec![
        Canned::error(404, "NoSuchKey", "The specified key does not exist."),
        Canned::error(404, "NoSuchBucket", "The specified bucket does not exist"),
    ]);
    let (c, pauses) = client(&server);
    assert_eq!(
        c.get_object("k", &GetRequest::default()).unwrap(),
        GetOutcome::NotFound
    );
    let e = c.get_object("k", &GetRequest::default()).unwrap_err();
    assert_eq!(e.status(), Some(404));
    assert_eq!(e.code(), Some("NoSuchBucket"));
    assert_eq!(e.errno(), libc::EIO);
    assert!(
        e.to_string()
            .starts_with("HTTP 404 Not Found (NoSuchBucket: ")
    );
    assert_eq!(server.requests().len(), 2);
    assert!(pauses.lock().unwrap().is_empty());
    assert_eq!(c.stats().gets, 2);
}

#[test]
fn a_body_that_does_not_match_its_etag_is_fetched_again() {
    let good = Etag::md5_of(b"the block");
    let server = FakeServer::start(vec![
        // Damaged on the way: same ETag, one byte changed.
        Canned::new(200)
            .header("ETag", &good.quoted())
            .body("the blocK"),
        Canned::new(200)
            .header("ETag", &good.quoted())
            .body("the block"),
    ]);
    let (c, pauses) = client(&server);
    match c.get_object("k", &GetRequest::default()).unwrap() {
        GetOutcome::Found(d) => assert_eq!(d.body, b"the block"),
        other => panic!("{other:?}"),
    }
    assert_eq!(server.requests().len(), 2, "retried once");
    assert_eq!(pauses.lock().unwrap().len(), 1);
}

#[test]
fn a_body_that_does_not_match_its_stored_crc32_is_fetched_again() {
    let etag = Etag::md5_of(b"the block");
    let crc = crate::checksum::crc32(b"the block");
    let server = FakeServer::start(vec![
        Canned::new(200)
            .header("ETag", &etag.quoted())
            .header("x-amz-checksum-crc32", &crc)
            .body("the blocK"),
        Canned::new(200)
            .header("ETag", &etag.quoted())
            .header("x-amz-checksum-crc32", &crc)
            .body("the block"),
    ]);
    let (c, pauses) = client(&server);
    match c.get_object("k", &GetRequest::default()).unwrap() {
        GetOutcome::Found(d) => assert_eq!(d.body, b"the block"),
        other => panic!("{other:?}"),
    }
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2, "retried once");
    assert_eq!(reqs[0].header("x-amz-checksum-mode"), Some("ENABLED"));
    assert_eq!(pauses.lock().unwrap().len(), 1);
}

#[test]
fn a_plain_body_of_the_buffer_size_is_read_into_it_and_checked_there() {
    let crc = crate::checksum::crc32(b"the block");
    let server = FakeServer::start(vec![
        // Damaged on the way: caught in the buffer, fetched again.
        Canned::new(200)
            .header("x-amz-checksum-crc32", &crc)
            .body("the blocK"),
        Canned::new(200)
            .header("x-amz-checksum-crc32", &crc)
            .body("the block"),
        // Another size, or an encoded body: returned as a vector, the buffer untouched.
        Canned::new(200).body("longer than the buffer"),
        Canned::new(200)
            .header("Content-Encoding", "deflate")
            .body("123456789"),
    ]);
    let (c, pauses) = client(&server);
    let mut buf = [0u8; 9];
    match c
        .get_object_into("k", &GetRequest::default(), &mut buf)
        .unwrap()
    {
        GetOutcome::Found(d) => assert!(d.in_dest && d.body.is_empty(), "{d:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(&buf, b"the block");
    assert_eq!(
        pauses.lock().unwrap().len(),
        1,
        "the damaged body was retried"
    );
    let mut buf = [0u8; 9];
    for expected in [&b"longer than the buffer"[..], b"123456789"] {
        match c
            .get_object_into("k", &GetRequest::default(), &mut buf)
            .unwrap()
        {
            GetOutcome::Found(d) => {
                assert!(!d.in_dest);
                assert_eq!(d.body, expected);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(buf, [0u8; 9]);
    // Ranged reads never go into a block buffer.
    let ranged = GetRequest {
        range: Some((0, 4)),
        ..GetRequest::default()
    };
    assert!(matches!(
        c.get_object_into("k", &ranged, &mut buf),
        Err(S3Error::InvalidRequest { .. })
    ));
    assert_eq!(server.requests().len(), 4);
}

#[test]
fn conditional_gets() {
    let etag = Etag::md5_of(b"abc");
    let server = FakeServer::start(vec![
        Canned::new(304),
        Canned::error(
            412,
            "PreconditionFailed",
            "At least one of the pre-conditions failed",
        ),
        Canned::new(200).header("ETag", &etag.quoted()).body("abc"),
        // An unconditional GET answered 304 is an error (retried until the budget is gone).
        Canned::new(304),
        Canned::new(304),
        Canned::new(304),
    ]);
    let (c, _) = client(&server);
    let verify = GetRequest {
        if_none_match: Some(etag),
        ..GetRequest::default()
    };
    assert_eq!(c.get_object("k", &verify).unwrap(), GetOutcome::NotModified);
    let strict = GetRequest {
        if_match: Some(etag),
        ..GetRequest::default()
    };
    assert!(matches!(
        c.get_object("k", &strict).unwrap(),
        GetOutcome::Found(_)
    ));
    let e = c.get_object("k", &GetRequest::default()).unwrap_err();
    assert_eq!(e.status(), Some(304));
    let reqs = server.requests();
    assert_eq!(reqs[0].header("if-none-match"), Some(&*etag.quoted()));
    assert_eq!(reqs[1].header("if-match"), Some(&*etag.quoted()));
    assert!(
        reqs[1]
            .header("authorization")
            .unwrap()
            .contains("if-match;")
    );
    assert_eq!(reqs.len(), 6);
    let s = c.stats();
    assert_eq!((s.http_stale, s.http_3xx, s.retries), (1, 3, 3));
}

#[test]
fn max_body_is_enforced_without_retry() {
    let server = FakeServer::start(vec![Canned::new(200).body(vec![7u8; 100])]);
    let (c, _) = client(&server);
    let e = c
        .get_object(
            "k",
            &GetRequest {
                max_body: 99,
                ..GetRequest::default()
            },
        )
        .unwrap_err();
    assert!(matches!(e, S3Error::BodyTooLarge { limit: 99, .. }), "{e}");
    assert_eq!(server.requests().len(), 1);
    // Exactly the limit is fine.
    let server = FakeServer::start(vec![Canned::new(200).body(vec![7u8; 100])]);
    let (c, _) = client(&server);
    let got = c
        .get_object(
            "k",
            &GetRequest {
                max_body: 100,
                ..GetRequest::default()
            },
        )
        .unwrap();
    assert!(matches!(got, GetOutcome::Found(d) if d.body.len() == 100));
}

#[test]
fn signature_mismatch_fails_without_retry() {
    let server = FakeServer::start(vec![Canned::error(
        403,
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided.",
    )]);
    let (c, pauses) = client(&server);
    let e = c
        .put_object("00000000", b"data", &PutRequest::default())
        .unwrap_err();
    assert!(e.is_auth_failure());
    assert_eq!(e.errno(), libc::EPERM);
    let msg = e.to_string();
    assert!(
        msg.starts_with("HTTP 403 Forbidden (SignatureDoesNotMatch: The request signature"),
        "{msg}"
    );
    assert!(msg.ends_with(&format!("for PUT {}bucket/00000000", server.base_url())));
    assert!(!msg.contains(SECRET));
    assert_eq!(server.requests().len(), 1);
    assert!(pauses.lock().unwrap().is_empty());
    let s = c.stats();
    assert_eq!((s.puts, s.http_forbidden, s.retries), (1, 1, 0));
}

#[test]
fn bad_digest_is_retried() {
    let server = FakeServer::start(vec![
        Canned::error(
            400,
            "BadDigest",
            "The Content-MD5 you specified did not match",
        ),
        Canned::new(200).header("ETag", &Etag::md5_of(b"data").quoted()),
    ]);
    let (c, _) = client(&server);
    let out = c.put_object("k", b"data", &PutRequest::default()).unwrap();
    assert_eq!(out.etag, Some(Etag::md5_of(b"data")));
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn put_sends_the_s3backer_headers() {
    let server = FakeServer::start(vec![Canned::new(200).header("ETag", "\"not-an-md5\"")]);
    let mut s = settings(&server.base_url());
    s.storage_class = Some("STANDARD_IA".into());
    s.sse = Some("aws:kms".into());
    s.sse_key_id = Some("key-1".into());
    s.access_type = "public-read".into();
    let (c, _) = client_with(&s);
    let body = vec![0x5au8; 4096];
    let out = c
        .put_object(
            "vol1/00000000",
            &body,
            &PutRequest {
                content_type: Some("application/x-s3backer-block".into()),
                content_encoding: Some("deflate, encrypt-AES-128-CBC".into()),
                meta: vec![
                    ("s3backer-blocksize".into(), "4096".into()),
                    ("S3backer-Hmac".into(), "\"0123\"".into()),
                ],
                crc32: None,
            },
        )
        .unwrap();
    assert_eq!(out.etag, None);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "PUT");
    assert_eq!(r.target, "/bucket/vol1/00000000");
    assert_eq!(r.body, body);
    assert_eq!(r.header("content-length"), Some("4096"));
    // One hash of the body under SigV4: the signed payload hash, no Content-MD5 (checksum.rs).
    assert_eq!(r.header("content-md5"), None);
    assert_eq!(
        r.header("x-amz-content-sha256"),
        Some(&*crate::sign_v4::sha256_hex(&body))
    );
    assert_eq!(
        r.header("x-amz-checksum-crc32"),
        Some(&*crate::checksum::crc32(&body))
    );
    assert_eq!(r.header("x-amz-sdk-checksum-algorithm"), Some("CRC32"));
    assert_eq!(
        r.header("content-type"),
        Some("application/x-s3backer-block")
    );
    assert_eq!(
        r.header("content-encoding"),
        Some("deflate, encrypt-AES-128-CBC")
    );
    assert_eq!(r.header("x-amz-acl"), Some("public-read"));
    assert_eq!(r.header("x-amz-meta-s3backer-blocksize"), Some("4096"));
    assert_eq!(r.header("x-amz-meta-s3backer-hmac"), Some("\"0123\""));
    assert_eq!(r.header("x-amz-storage-class"), Some("STANDARD_IA"));
    assert_eq!(r.header("x-amz-server-side-encryption"), Some("aws:kms"));
    assert_eq!(
        r.header("x-amz-server-side-encryption-aws-kms-key-id"),
        Some("key-1")
    );
    assert!(r.header("expect").is_none());
    let auth = r.header("authorization").unwrap();
    assert!(auth.starts_with(&format!("AWS4-HMAC-SHA256 Credential={ID}/")));
    assert!(auth.contains("/garage/s3/aws4_request, SignedHeaders=content-encoding;content-type;host;x-amz-acl;x-amz-checksum-crc32;x-amz-content-sha256;x-amz-date;x-amz-meta-s3backer-blocksize;x-amz-meta-s3backer-hmac;x-amz-sdk-checksum-algorithm;x-amz-server-side-encryption;x-amz-server-side-encryption-aws-kms-key-id;x-amz-storage-class, Signature="));
    verify_v4(r, "garage");
}

#[test]
fn a_known_crc32_is_sent_as_given() {
    // The caller's CRC-32 (the block cache keeps one per block) goes out without the body
    // being read again; here a value that is not the body's shows it is not recomputed.
    let server = FakeServer::start(vec![Canned::new(200)]);
    let (c, _) = client(&server);
    let req = PutRequest {
        crc32: Some(0x0102_0304),
        ..PutRequest::default()
    };
    c.put_object("k", &[7u8; 100], &req).unwrap();
    let r = &server.requests()[0];
    assert_eq!(r.header("x-amz-checksum-crc32"), Some("AQIDBA=="));
}

#[test]
fn empty_put_sends_a_zero_content_length() {
    let server = FakeServer::start(vec![Canned::new(200)]);
    let (c, _) = client(&server);
    c.put_object("k", b"", &PutRequest::default()).unwrap();
    let r = &server.requests()[0];
    assert_eq!(r.header("content-length"), Some("0"));
    assert_eq!(r.header("content-md5"), None);
    assert_eq!(r.header("x-amz-checksum-crc32"), Some("AAAAAA=="));
    assert_eq!(
        r.header("x-amz-content-sha256"),
        Some(crate::sign_v4::EMPTY_SHA256)
    );
    verify_v4(r, "garage");
}

#[test]
fn content_md5_flag_sends_it_under_sigv4_too() {
    let r = &put_block_with(|s| s.content_md5 = true);
    assert_eq!(
        r.header("content-md5"),
        Some(&*crate::checksum::content_md5(b"block"))
    );
    assert_eq!(
        r.header("x-amz-checksum-crc32"),
        Some(&*crate::checksum::crc32(b"block"))
    );
    assert!(
        r.header("authorization")
            .unwrap()
            .contains("SignedHeaders=content-md5;host;")
    );
    verify_v4(r, "garage");
}

#[test]
fn unsigned_payload_puts_carry_only_the_crc() {
    let r = &put_block_with(|s| s.payload_hash = PayloadHash::Unsigned);
    assert_eq!(r.header("x-amz-content-sha256"), Some("UNSIGNED-PAYLOAD"));
    assert_eq!(r.header("content-md5"), None);
    assert_eq!(
        r.header("x-amz-checksum-crc32"),
        Some(&*crate::checksum::crc32(b"block"))
    );
    verify_v4(r, "garage");
    // Over plain HTTP "auto" signs the body's SHA-256 (tested above); "sha256" always does.
    let r = &put_block_with(|s| s.payload_hash = PayloadHash::Sha256);
    assert_eq!(
        r.header("x-amz-content-sha256"),
        Some(&*crate::sign_v4::sha256_hex(b"block"))
    );
}

#[test]
fn auto_over_http_stops_signing_bodies_once_the_server_returns_our_crc() {
    let crc = crate::checksum::crc32(b"block");
    let server = FakeServer::start(vec![
        // A server that returns some other CRC proves nothing.
        Canned::new(200).header("x-amz-checksum-crc32", "AAAAAA=="),
        Canned::new(200),
        Canned::new(200).header("x-amz-checksum-crc32", &crc),
        Canned::new(200),
    ]);
    let (c, _) = client(&server);
    for _ in 0..4 {
        c.put_object("k", b"block", &PutRequest::default()).unwrap();
    }
    let sent: Vec<_> = server
        .requests()
        .iter()
        .map(|r| r.header("x-amz-content-sha256").unwrap().to_owned())
        .collect();
    let signed = crate::sign_v4::sha256_hex(b"block");
    assert_eq!(sent, [&*signed, &*signed, &*signed, "UNSIGNED-PAYLOAD"]);
    for r in &server.requests() {
        assert_eq!(r.header("x-amz-checksum-crc32"), Some(crc.as_str()));
        verify_v4(r, "garage");
    }
}

#[test]
fn sha256_keeps_signing_bodies_whatever_the_server_returns() {
    let crc = crate::checksum::crc32(b"block");
    let server = FakeServer::start(vec![
        Canned::new(200).header("x-amz-checksum-crc32", &crc),
        Canned::new(200),
    ]);
    let mut s = settings(&server.base_url());
    s.payload_hash = PayloadHash::Sha256;
    let (c, _) = client_with(&s);
    for _ in 0..2 {
        c.put_object("k", b"block", &PutRequest::default()).unwrap();
    }
    for r in &server.requests() {
        assert_eq!(
            r.header("x-amz-content-sha256"),
            Some(&*crate::sign_v4::sha256_hex(b"block"))
        );
    }
}

#[test]
fn anonymous_puts_carry_content_md5() {
    let r = &put_block_with(|s| s.credentials = None);
    assert_eq!(
        r.header("content-md5"),
        Some(&*crate::checksum::content_md5(b"block"))
    );
    assert!(r.header("authorization").is_none());
}

#[test]
fn delete_accepts_404_and_sends_no_storage_class() {
    let server = FakeServer::start(vec![
        Canned::new(204),
        Canned::error(404, "NoSuchKey", "gone"),
        Canned::error(404, "NoSuchBucket", "no bucket"),
    ]);
    let mut s = settings(&server.base_url());
    s.storage_class = Some("STANDARD_IA".into());
    let (c, _) = client_with(&s);
    c.delete_object("vol1/00000001").unwrap();
    c.delete_object("vol1/00000001").unwrap();
    assert_eq!(
        c.delete_object("x").unwrap_err().code(),
        Some("NoSuchBucket")
    );
    let reqs = server.requests();
    assert_eq!(reqs[0].method, "DELETE");
    assert!(reqs[0].header("x-amz-storage-class").is_none());
    assert!(reqs[0].header("content-md5").is_none());
    verify_v4(&reqs[0], "garage");
    assert_eq!(c.stats().deletes, 3);
}

#[test]
fn head_object_outcomes() {
    let server = FakeServer::start(vec![
        Canned::new(200)
            .header("content-length", "1048576")
            .header("etag", "\"d41d8cd98f00b204e9800998ecf8427e\"")
            .header("x-amz-meta-s3backer-filesize", "1073741824")
            .header("X-AMZ-META-S3BACKER-BLOCKSIZE", "1048576"),
        Canned::new(404),
        Canned::new(403),
        Canned::new(403),
        Canned::new(403),
        Canned::new(403),
    ]);
    let (c, _) = client(&server);
    let info = c.head_object("00000000", false).unwrap().unwrap();
    assert_eq!(info.content_length, Some(1_048_576));
    assert_eq!(info.etag, Some(Etag::md5_of(b"")));
    assert_eq!(
        info.meta,
        vec![
            ("s3backer-filesize".to_owned(), "1073741824".to_owned()),
            ("s3backer-blocksize".to_owned(), "1048576".to_owned()),
        ]
    );
    assert_eq!(c.head_object("s3backer-mounted", false).unwrap(), None);
    // Fail fast: one request only.
    let e = c.head_object("k", true).unwrap_err();
    assert!(e.is_auth_failure());
    assert_eq!(server.requests().len(), 3);
    // Otherwise 403 is retried (10 + 20 ms budget: 3 attempts).
    let e = c.head_object("k", false).unwrap_err();
    assert_eq!(e.status(), Some(403));
    assert_eq!(server.requests().len(), 6);
    assert_eq!(server.requests()[0].method, "HEAD");
    assert_eq!(c.stats().heads, 4);
}

#[test]
fn redirects_are_errors_with_a_hint() {
    let server = FakeServer::start_with_default(
        vec![],
        Canned::error(301, "PermanentRedirect", "use the right endpoint")
            .header("location", "http://127.0.0.1:1/elsewhere"),
    );
    let (c, _) = client(&server);
    let e = c.get_object("k", &GetRequest::default()).unwrap_err();
    assert_eq!(e.errno(), libc::ELOOP);
    assert!(e.to_string().contains("--vhost"));
    assert_eq!(server.requests().len(), 3);
    assert_eq!(c.stats().http_redirect, 3);
}

#[test]
fn timeouts_surface_as_timeout() {
    let server = FakeServer::start_with_default(
        vec![],
        Canned::new(200).body("late").delay(Duration::from_secs(2)),
    );
    let mut s = settings(&server.base_url());
    s.timeout = ms(200);
    s.max_retry_pause = Duration::ZERO;
    let (c, _) = client_with(&s);
    let started = std::time::Instant::now();
    let e = c.get_object("k", &GetRequest::default()).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        matches!(e, S3Error::Timeout { after, .. } if after == ms(200)),
        "{e}"
    );
    assert_eq!(e.errno(), libc::ETIMEDOUT);
    assert_eq!(c.stats().timeouts, 1);
}

#[test]
fn connection_refused_is_connect_with_enxio() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (c, pauses) = client_with(&settings(&format!("http://127.0.0.1:{port}/")));
    let e = c.head_object("k", false).unwrap_err();
    assert!(matches!(e, S3Error::Connect { .. }), "{e}");
    assert_eq!(e.errno(), libc::ENXIO);
    assert_eq!(*pauses.lock().unwrap(), vec![ms(10), ms(20)]);
    let s = c.stats();
    assert_eq!((s.connect_failed, s.retries), (3, 2));
}

#[test]
fn list_objects_sends_sorted_encoded_parameters() {
    let page = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
        <ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
        <Name>bucket</Name><IsTruncated>true</IsTruncated>\
        <Contents><Key>vol 1/00000001</Key></Contents>\
        <Contents><Key>vol 1/0000000&amp;</Key></Contents></ListBucketResult>";
    let server = FakeServer::start(vec![
        Canned::new(200).body(page),
        Canned::new(200).body(page),
        Canned::new(200)
            .body("<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>"),
    ]);
    let (c, _) = client(&server);
    let got = c.list_objects("vol 1/", "vol 1/0000000/", 1000).unwrap();
    assert!(got.is_truncated);
    assert_eq!(got.keys, ["vol 1/00000001", "vol 1/0000000&"]);
    // More keys than asked for is invalid.
    let e = c.list_objects("vol 1/", "", 1).unwrap_err();
    assert!(matches!(e, S3Error::InvalidResponse { .. }), "{e}");
    let empty = c.list_objects("", "", 1000).unwrap();
    assert!(empty.keys.is_empty() && !empty.is_truncated);
    let reqs = server.requests();
    assert_eq!(
        reqs[0].target,
        "/bucket?marker=vol%201%2F0000000%2F&max-keys=1000&prefix=vol%201%2F"
    );
    assert_eq!(reqs[1].target, "/bucket?max-keys=1&prefix=vol%201%2F");
    assert_eq!(reqs[2].target, "/bucket?max-keys=1000");
    for r in &reqs {
        verify_v4(r, "garage");
    }
    assert_eq!(c.stats().lists, 3);
}

#[test]
fn bulk_delete_request_and_result() {
    let result = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
        <DeleteResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
        <Error><Key>b&amp;c</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>\
        </DeleteResult>";
    let server = FakeServer::start(vec![
        Canned::new(200).body(result),
        Canned::error(
            501,
            "NotImplemented",
            "A header you provided implies functionality that is not implemented",
        ),
    ]);
    let (c, pauses) = client(&server);
    let keys = vec!["a".to_owned(), "b&c".to_owned()];
    let failures = c.delete_objects(&keys).unwrap();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].key, "b&c");
    assert_eq!(failures[0].code, "AccessDenied");
    assert_eq!(failures[0].message, "Access Denied");
    let r = &server.requests()[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.target, "/bucket?delete");
    let body = "<Delete><Quiet>true</Quiet><Object><Key>a</Key></Object>\
                <Object><Key>b&amp;c</Key></Object></Delete>";
    assert_eq!(r.body, body.as_bytes());
    assert_eq!(r.header("content-type"), Some("application/xml"));
    assert_eq!(
        r.header("content-md5"),
        Some(&*crate::checksum::content_md5(body.as_bytes()))
    );
    verify_v4(r, "garage");
    // A server without bulk delete: an HTTP error at once, so the caller can fall back.
    let e = c.delete_objects(&keys).unwrap_err();
    assert_eq!(e.status(), Some(501));
    assert_eq!(e.code(), Some("NotImplemented"));
    assert!(pauses.lock().unwrap().is_empty());
    assert_eq!(server.requests().len(), 2);
    // Limits are checked before sending.
    assert!(c.delete_objects(&[]).unwrap().is_empty());
    let too_many: Vec<String> = (0..1001).map(|i| format!("{i:08x}")).collect();
    assert!(matches!(
        c.delete_objects(&too_many),
        Err(S3Error::InvalidRequest { .. })
    ));
    assert_eq!(server.requests().len(), 2);
    assert_eq!(c.stats().bulk_deletes, 2);
}

#[test]
fn sigv2_requests_carry_date_token_and_signature() {
    let server = FakeServer::start(vec![
        Canned::new(200),
        Canned::new(200).body("<DeleteResult/>"),
    ]);
    let mut s = settings(&server.base_url());
    s.auth_version = AuthVersion::V2;
    if let Some(c) = s.credentials.as_mut() {
        c.session_token = Some(Secret::new("TOKEN"));
    }
    let (c, _) = client_with(&s);
    c.put_object(
        "k",
        b"v2",
        &PutRequest {
            content_type: Some("text/plain".into()),
            ..PutRequest::default()
        },
    )
    .unwrap();
    c.delete_objects(&["k".to_owned()]).unwrap();
    let reqs = server.requests();
    // SigV2 signs no payload hash, so its PUTs carry Content-MD5 (facts §4.7).
    assert_eq!(
        reqs[0].header("content-md5"),
        Some(&*crate::checksum::content_md5(b"v2"))
    );
    for r in &reqs {
        let date = r.header("date").unwrap();
        assert!(date.ends_with(" GMT"), "{date}");
        assert_eq!(r.header("x-amz-security-token"), Some("TOKEN"));
        assert!(r.header("x-amz-date").is_none());
        assert!(r.header("x-amz-content-sha256").is_none());
    }
    // Re-sign what arrived and compare.
    let signer = crate::sign_v2::SigV2::new(ID, SECRET);
    for (r, resource) in reqs.iter().zip(["/bucket/k", "/bucket?delete"]) {
        let headers: Vec<(String, String)> = r.headers.clone();
        let sts = crate::sign_v2::string_to_sign(&r.method, &headers, resource);
        assert_eq!(
            r.header("authorization"),
            Some(&*signer.authorization(&sts))
        );
    }
}

#[test]
fn anonymous_requests_are_unsigned() {
    let server = FakeServer::start(vec![Canned::new(404)]);
    let mut s = settings(&server.base_url());
    s.credentials = None;
    let (c, _) = client_with(&s);
    assert_eq!(c.head_object("k", true).unwrap(), None);
    let r = &server.requests()[0];
    assert!(r.header("authorization").is_none());
    assert!(r.header("x-amz-date").is_none());
    assert!(r.header("date").is_none());
}

#[test]
fn invalid_inputs_are_rejected_before_sending() {
    let server = FakeServer::start(vec![]);
    let (c, _) = client(&server);
    assert!(matches!(
        c.get_object("", &GetRequest::default()),
        Err(S3Error::InvalidRequest { .. })
    ));
    let bad_meta = PutRequest {
        meta: vec![("x".into(), "line\nbreak".into())],
        ..PutRequest::default()
    };
    let e = c.put_object("k", b"", &bad_meta).unwrap_err();
    assert!(matches!(e, S3Error::InvalidRequest { .. }), "{e}");
    assert_eq!(e.errno(), libc::EINVAL);
    assert!(server.requests().is_empty());
}

#[test]
fn construction_errors_and_description() {
    let opts = || ClientOptions {
        max_connections: 1,
        user_agent: String::new(),
    };
    let mut s = settings("ftp://example/");
    assert!(matches!(
        S3Client::new(&s, "b", opts()),
        Err(S3Error::Config { .. })
    ));
    s.base_url = "https://s3.example.com/".into();
    s.cacert = Some("/nonexistent/ca.pem".into());
    let e = S3Client::new(&s, "b", opts()).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
    s.cacert = None;
    s.access_type = "bad\nacl".into();
    assert!(matches!(
        S3Client::new(&s, "b", opts()),
        Err(S3Error::Config { .. })
    ));
    s.access_type = "private".into();
    let c = S3Client::new(&s, "b", opts()).unwrap();
    assert_eq!(c.description("vol/"), "https://s3.example.com/b/vol/");
    assert_eq!(
        c.object_url("vol/0000 001"),
        "https://s3.example.com/b/vol/0000%20001"
    );
    s.vhost = true;
    let v = S3Client::new(&s, "b", opts()).unwrap();
    assert_eq!(v.description("vol/"), "https://b.s3.example.com/vol/");
    assert_eq!(
        v.object_url("vol/00000001"),
        "https://b.s3.example.com/vol/00000001"
    );
    // Debug output shows no secret.
    assert!(!format!("{v:?}").contains(SECRET));
    fn assert_traits<T: Clone + Send + Sync + 'static>() {}
    assert_traits::<S3Client>();
}

#[test]
fn ranged_get_sends_range_and_reads_a_206() {
    let whole = Etag::md5_of(b"the whole object");
    let server = FakeServer::start(vec![
        Canned::new(206)
            .header("ETag", &whole.quoted())
            .header("Content-Range", "bytes 4-8/16")
            .body(b"whole".to_vec()),
        // A 206 without Content-Range is not an answer we can place.
        Canned::new(206).body(b"whole".to_vec()),
        // A server that ignores Range answers with the whole object (its MD5 is checked).
        Canned::new(200)
            .header("ETag", &whole.quoted())
            .body(b"the whole object".to_vec()),
    ]);
    let (c, _) = client(&server);
    let req = GetRequest {
        range: Some((4, 5)),
        ..GetRequest::default()
    };
    let GetOutcome::Found(d) = c.get_object("k", &req).unwrap() else {
        panic!("not found")
    };
    // The body is not checked against the whole object's ETag.
    assert_eq!(d.body, b"whole");
    assert_eq!(d.range_of, Some((4, 16)));
    let e = c.get_object("k", &req).unwrap_err();
    assert!(e.to_string().contains("Content-Range"), "{e}");
    let GetOutcome::Found(d) = c.get_object("k", &req).unwrap() else {
        panic!("not found")
    };
    assert_eq!(d.body, b"the whole object");
    assert_eq!(d.range_of, None);
    let reqs = server.requests();
    assert_eq!(reqs[0].header("range"), Some("bytes=4-8"));
    for r in &reqs {
        verify_v4(r, "garage");
    }
    assert!(
        c.get_object(
            "k",
            &GetRequest {
                range: Some((0, 0)),
                ..GetRequest::default()
            }
        )
        .is_err()
    );
}
