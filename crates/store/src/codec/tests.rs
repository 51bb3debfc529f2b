#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};
use sha1::Sha1;

use super::*;

// ---------------------------------------------------------------- helpers

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Deterministic xorshift64* bytes.
fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(n);
    out
}

fn zeros_with_one_byte(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    v[n / 3] = 0x5a;
    v
}

fn text(n: usize) -> Vec<u8> {
    let words = [
        "block", "bucket", "object", "s3backer", "the", "disk", "of", "a", "cache", "write",
        "read", "zero", "\n",
    ];
    let r = random_bytes(n, 77);
    let mut out = Vec::with_capacity(n + 16);
    let mut i = 0;
    while out.len() < n {
        out.extend_from_slice(words[usize::from(r[i % n]) % words.len()].as_bytes());
        out.push(b' ');
        i += 1;
    }
    out.truncate(n);
    out
}

fn patterns(n: usize) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("random", random_bytes(n, n as u64)),
        ("zeros+1", zeros_with_one_byte(n)),
        ("text", text(n)),
    ]
}

/// Key derivation is slow in debug builds: derive each configuration once.
fn enc(cipher: Cipher, key_length: Option<usize>) -> Encryption {
    type Cache = std::sync::Mutex<Vec<((Cipher, Option<usize>), Encryption)>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut c = cache.lock().unwrap();
    if let Some((_, e)) = c.iter().find(|(k, _)| *k == (cipher, key_length)) {
        return e.clone();
    }
    let e = Encryption::derive(cipher, b"secret", "mybucket", "", key_length).unwrap();
    c.push(((cipher, key_length), e.clone()));
    e
}

fn tv_enc() -> Encryption {
    enc(Cipher::Aes128Cbc, None)
}

const TV_ZLIB: &str = "789cedc1010d000000c2a06cef5fca1e0e28000000e0dd00ffad103d";
const TV_CIPHERTEXT: &str = "d90581e82b88eb7c57c777a9d97718e455d41bf2bed0e7c722f927d4cf2d5568";
const TV_HMAC: &str = "3ea8088e19336b3eaed7ee77f42b73feeb8e49ac";

fn tv_body() -> Vec<u8> {
    let e = tv_enc();
    let mut body = unhex(TV_ZLIB);
    e.encrypt_in_place(1, &mut body);
    body
}

// ---------------------------------------------------------------- test vector (facts §3.4)

#[test]
fn test_vector_keys_and_iv() {
    let e = tv_enc();
    assert_eq!(hex(e.key_bytes()), "3b601fa6cc45f747a0a6b71800c44a1b");
    assert_eq!(hex(e.ivkey_bytes()), "1fae41544d23c71dd58be76991fa4b35");
    assert_eq!(hex(&e.iv(1)), "7a3da28260b7b28bf271d99e36fdc864");
}

#[test]
fn test_vector_ciphertext_hmac_md5() {
    let e = tv_enc();
    let body = tv_body();
    assert_eq!(hex(&body), TV_CIPHERTEXT);
    assert_eq!(e.hmac_header(1, &body), format!("\"{TV_HMAC}\""));
    assert_eq!(hex(&Md5::digest(&body)), "bc10e885cce3d67fca0a9323852f899f");
}

#[test]
fn test_vector_decodes() {
    let codec = BlockCodec::new(4096, None, Some(tv_enc()), None);
    let hdr = format!("\"{TV_HMAC}\"");
    let data = codec
        .decode(
            1,
            tv_body(),
            Some("deflate, encrypt-AES-128-CBC"),
            Some(&hdr),
        )
        .unwrap();
    assert_eq!(data, vec![0x41u8; 4096]);
    // Header case and spacing do not matter; upper-case HMAC hex is accepted.
    let hdr_upper = format!("\"{}\"", TV_HMAC.to_uppercase());
    let data = codec
        .decode(
            1,
            tv_body(),
            Some("  DEFLATE ,Encrypt-aes-128-cbc "),
            Some(&hdr_upper),
        )
        .unwrap();
    assert_eq!(data, vec![0x41u8; 4096]);
    // The same body under another block number fails the HMAC.
    let err = codec
        .decode(
            2,
            tv_body(),
            Some("deflate, encrypt-AES-128-CBC"),
            Some(&hdr),
        )
        .unwrap_err();
    assert!(matches!(err, CodecError::BadHmac), "{err}");
}

// ---------------------------------------------------------------- round trips

fn all_encryptions() -> Vec<Option<Encryption>> {
    let mut v = vec![None];
    for c in [Cipher::Aes128Cbc, Cipher::Aes192Cbc, Cipher::Aes256Cbc] {
        for kl in [None, Some(c.key_len() + 8), Some(64)] {
            v.push(Some(enc(c, kl)));
        }
    }
    v
}

fn compressions() -> [Option<Compression>; 5] {
    [
        None,
        Some(Compression::DEFAULT_DEFLATE),
        Some(Compression::Deflate { level: 1 }),
        Some(Compression::DEFAULT_ZSTD),
        Some(Compression::Zstd { level: -5 }),
    ]
}

fn round_trip(codec: &BlockCodec, block: u32, data: &[u8]) {
    let e = codec.encode(block, data).unwrap();
    assert!(
        e.body.len() <= codec.max_encoded_len(),
        "body {} above max_encoded_len {} ({:?}, bs {})",
        e.body.len(),
        codec.max_encoded_len(),
        codec.compression,
        codec.bs()
    );
    match (&codec.encryption, codec.compression) {
        (None, None) => {
            assert_eq!(e.content_encoding, None);
            assert_eq!(e.body, data);
        }
        (None, Some(c)) => assert_eq!(e.content_encoding.as_deref(), Some(c.name())),
        (Some(enc), c) => {
            let c = c.unwrap();
            assert_eq!(
                e.content_encoding.clone().unwrap(),
                format!("{}, encrypt-{}", c.name(), enc.cipher().name())
            );
            assert_eq!(e.body.len() % 16, 0);
            let h = e.hmac.as_deref().unwrap();
            assert_eq!(h.len(), 42);
            assert!(h.starts_with('"') && h.ends_with('"'));
            assert!(
                h[1..41]
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            );
        }
    }
    if codec.encryption.is_none() {
        assert_eq!(e.hmac, None);
    }
    let back = codec
        .decode(
            block,
            e.body,
            e.content_encoding.as_deref(),
            e.hmac.as_deref(),
        )
        .unwrap();
    assert!(back == data, "round trip differs");
}

#[test]
fn round_trips_all_combinations() {
    for bs in [512u32, 4096, 65536] {
        let pats = patterns(bs as usize);
        for encryption in all_encryptions() {
            for comp in compressions() {
                let codec = BlockCodec::new(bs, comp, encryption.clone(), None);
                assert_eq!(codec.is_identity(), comp.is_none() && encryption.is_none());
                assert_eq!(codec.encrypted(), encryption.is_some());
                for (i, (_, data)) in pats.iter().enumerate() {
                    round_trip(&codec, 0x1234_5670 + i as u32, data);
                }
            }
        }
    }
}

#[test]
fn round_trips_one_mib() {
    let bs = 1u32 << 20;
    let pats = patterns(bs as usize);
    for encryption in [None, Some(enc(Cipher::Aes256Cbc, Some(64)))] {
        for comp in [
            None,
            Some(Compression::DEFAULT_DEFLATE),
            Some(Compression::DEFAULT_ZSTD),
        ] {
            let codec = BlockCodec::new(bs, comp, encryption.clone(), None);
            for (_, data) in &pats {
                round_trip(&codec, 7, data);
            }
        }
    }
}

#[test]
fn encrypted_padding_length_is_pkcs7() {
    let bs = 4096;
    let data = random_bytes(bs, 3);
    let n = compress::deflate(&data, -1, 0).unwrap().len();
    let codec = BlockCodec::new(bs as u32, None, Some(tv_enc()), None);
    let e = codec.encode(9, &data).unwrap();
    assert_eq!(e.body.len(), 16 * (n / 16 + 1));
    assert_eq!(
        e.content_encoding.as_deref(),
        Some("deflate, encrypt-AES-128-CBC")
    );
}

/// Independent check of the OpenSSL semantics with keylen > natural: the AES key is the first
/// natural bytes, the HMAC uses all of them, the IV comes from ivkey.
#[test]
fn long_key_semantics_independently() {
    let e = enc(Cipher::Aes128Cbc, Some(40));
    assert_eq!(e.key_len(), 40);
    let mut key = vec![0u8; 40];
    pbkdf2::pbkdf2_hmac::<Sha1>(b"secret", b"mybucket/", 5000, &mut key);
    assert_eq!(e.key_bytes(), &key[..]);
    let mut ivkey = vec![0u8; 40];
    pbkdf2::pbkdf2_hmac::<Sha1>(&key, &key, 5000, &mut ivkey);
    assert_eq!(e.ivkey_bytes(), &ivkey[..]);
    // The natural-length prefix of a long key equals the natural-length key (PBKDF2 blocks).
    assert_eq!(&key[..16], tv_enc().key_bytes());

    // IV of block 0x2a with the cbc crate directly.
    let mut ivbuf = *b"0000002a\0\0\0\0\0\0\0\0";
    cbc::Encryptor::<aes::Aes128>::new_from_slices(&ivkey[..16], &ivkey[..16])
        .unwrap()
        .encrypt_padded::<aes::cipher::block_padding::NoPadding>(&mut ivbuf, 16)
        .unwrap();
    assert_eq!(e.iv(0x2a), ivbuf);

    let data = text(4096);
    let codec = BlockCodec::new(4096, None, Some(e), None);
    let out = codec.encode(0x2a, &data).unwrap();
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(&key).unwrap();
    mac.update(b"0000002aAES-128-CBC");
    mac.update(&out.body);
    let want = format!("\"{}\"", hex(&mac.finalize().into_bytes()));
    assert_eq!(out.hmac.as_deref(), Some(want.as_str()));
    let mut buf = out.body.clone();
    let plain = cbc::Decryptor::<aes::Aes128>::new_from_slices(&key[..16], &ivbuf)
        .unwrap()
        .decrypt_padded::<Pkcs7>(&mut buf)
        .unwrap();
    assert_eq!(compress::inflate(plain, 4096).unwrap(), data);
}

#[test]
fn salt_includes_bucket_and_prefix() {
    let e = Encryption::derive(Cipher::Aes256Cbc, b"pw", "b", "foo/bar/", None).unwrap();
    let mut key = vec![0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha1>(b"pw", b"b/foo/bar/", 5000, &mut key);
    assert_eq!(e.key_bytes(), &key[..]);
    assert_eq!(e.cipher(), Cipher::Aes256Cbc);
}

#[test]
fn headers_and_bounds() {
    let plain = BlockCodec::new(4096, None, None, None);
    assert!(plain.is_identity());
    assert_eq!(plain.accept_encoding(), "deflate, zstd");
    assert_eq!(
        plain.encode(0, &[1u8; 4096]).unwrap().content_encoding,
        None
    );
    let z = BlockCodec::new(4096, Some(Compression::DEFAULT_ZSTD), None, None);
    assert_eq!(
        z.encode(0, &[1u8; 4096])
            .unwrap()
            .content_encoding
            .as_deref(),
        Some("zstd")
    );
    let e = BlockCodec::new(
        4096,
        Some(Compression::DEFAULT_ZSTD),
        Some(enc(Cipher::Aes256Cbc, None)),
        None,
    );
    assert_eq!(e.accept_encoding(), "deflate, zstd, encrypt-AES-256-CBC");
    assert_eq!(
        e.encode(0, &[1u8; 4096])
            .unwrap()
            .content_encoding
            .as_deref(),
        Some("zstd, encrypt-AES-256-CBC")
    );
    // Encryption implies compression.
    let d = BlockCodec::new(4096, None, Some(tv_enc()), None);
    assert_eq!(d.compression(), Some(Compression::DEFAULT_DEFLATE));
    assert!(!d.is_identity());
    // compressBound(4096) = 4096 + 1 + 0 + 0 + 13; zstd bound larger: 4096 + 16 + 30.
    assert!(plain.max_encoded_len() >= 4096 + 14 + 16);
    assert!(plain.max_encoded_len() < 4096 + 256);
    assert!(BlockCodec::new(1 << 20, None, None, None).max_encoded_len() < (1 << 20) + 8192);
    let err = plain.encode(0, &[0u8; 100]).unwrap_err();
    assert!(matches!(
        err,
        CodecError::WrongLength {
            got: 100,
            expected: 4096
        }
    ));
}

#[test]
fn codec_is_send_sync_and_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<BlockCodec>();
    assert_send_sync::<Encryption>();
    let codec = BlockCodec::new(4096, None, Some(tv_enc()), None);
    std::thread::scope(|s| {
        for t in 0..4u32 {
            let codec = &codec;
            s.spawn(move || {
                for b in 0..8 {
                    round_trip(codec, t * 100 + b, &text(4096));
                }
            });
        }
    });
}

// ---------------------------------------------------------------- zstd interoperability

fn zstd_cli(args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = match Command::new("zstd")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!(
            "the zstd command-line tool is needed for this test ({e}): install it \
             (apt-get install zstd)"
        ),
    };
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    writer.join().unwrap().unwrap();
    let status = child.wait_with_output().unwrap();
    assert!(
        status.status.success(),
        "zstd {args:?} failed: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    out
}

#[test]
fn zstd_frames_interoperate_with_the_cli() {
    let bs = 65536;
    let codec = BlockCodec::new(bs as u32, Some(Compression::DEFAULT_ZSTD), None, None);
    for (_, data) in patterns(bs) {
        let e = codec.encode(3, &data).unwrap();
        // One frame, content size recorded.
        assert_eq!(
            zstd::zstd_safe::get_frame_content_size(&e.body).unwrap(),
            Some(bs as u64)
        );
        assert_eq!(
            zstd::zstd_safe::find_frame_compressed_size(&e.body).unwrap(),
            e.body.len()
        );
        assert_eq!(zstd_cli(&["-d", "-c", "-q"], &e.body), data);
        let frame = zstd_cli(&["-c", "-q", "-3"], &data);
        assert_eq!(
            codec.decode(3, frame.clone(), Some("zstd"), None).unwrap(),
            data
        );
        // ... and a codec configured for deflate reads it too.
        let d = BlockCodec::new(bs as u32, Some(Compression::DEFAULT_DEFLATE), None, None);
        assert_eq!(d.decode(3, frame, Some("ZSTD"), None).unwrap(), data);
    }
}

#[test]
fn deflate_output_is_a_zlib_stream() {
    let data = text(4096);
    let codec = BlockCodec::new(4096, Some(Compression::Deflate { level: 9 }), None, None);
    let e = codec.encode(0, &data).unwrap();
    // RFC 1950 header: CM = 8, header checksum.
    assert_eq!(e.body[0] & 0x0f, 8);
    assert_eq!((u16::from(e.body[0]) << 8 | u16::from(e.body[1])) % 31, 0);
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(&e.body[..])
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out, data);
    // Level 0 stores.
    let stored = BlockCodec::new(4096, Some(Compression::Deflate { level: 0 }), None, None);
    assert!(stored.encode(0, &data).unwrap().body.len() > 4096);
}

#[test]
fn deflate_never_exceeds_compress_bound() {
    // zlib-rs' level 1 expands incompressible data past compressBound; the codec stores such
    // blocks instead so readers with the original's GET limit accept them.
    for n in [512usize, 4096, 65536, 262_144] {
        let data = random_bytes(n, 11);
        for level in -1..=9 {
            let out = compress::deflate(&data, level, 16).unwrap();
            assert!(
                out.len() <= compress::zlib_bound(n),
                "level {level} n {n}: {}",
                out.len()
            );
            assert!(out.capacity() >= out.len() + 16);
            assert_eq!(compress::inflate(&out, n).unwrap(), data);
        }
    }
}

// ---------------------------------------------------------------- corruption and misuse

fn encrypted_block(codec: &BlockCodec, block: u32) -> (Vec<u8>, EncodedBlock) {
    let data = text(codec.bs());
    let e = codec.encode(block, &data).unwrap();
    (data, e)
}

fn decode_err(codec: &BlockCodec, e: &EncodedBlock, body: Vec<u8>) -> CodecError {
    codec
        .decode(5, body, e.content_encoding.as_deref(), e.hmac.as_deref())
        .unwrap_err()
}

#[test]
fn flipped_byte_fails_hmac() {
    let codec = BlockCodec::new(4096, None, Some(tv_enc()), None);
    let (_, e) = encrypted_block(&codec, 5);
    for pos in [0, e.body.len() / 2, e.body.len() - 1] {
        let mut body = e.body.clone();
        body[pos] ^= 0x01;
        let err = decode_err(&codec, &e, body);
        assert!(matches!(err, CodecError::BadHmac), "{err}");
        assert!(err.is_wrong_password_symptom());
    }
}

#[test]
fn hmac_header_missing_or_malformed() {
    let codec = BlockCodec::new(4096, None, Some(tv_enc()), None);
    let (_, e) = encrypted_block(&codec, 5);
    let ce = e.content_encoding.as_deref();
    let err = codec.decode(5, e.body.clone(), ce, None).unwrap_err();
    assert!(matches!(err, CodecError::MissingHmac), "{err}");
    assert!(!err.is_wrong_password_symptom());
    let h = e.hmac.clone().unwrap();
    let unquoted = h.trim_matches('"').to_owned();
    let short = format!("\"{}\"", &unquoted[..39]);
    let nonhex = format!("\"{}g\"", &unquoted[..39]);
    for bad in [
        unquoted.as_str(),
        short.as_str(),
        nonhex.as_str(),
        "",
        "\"\"",
    ] {
        let err = codec.decode(5, e.body.clone(), ce, Some(bad)).unwrap_err();
        assert!(matches!(err, CodecError::MalformedHmac), "{bad}: {err}");
    }
    // Whitespace around the header value is tolerated.
    let padded = format!(" {h} ");
    codec.decode(5, e.body.clone(), ce, Some(&padded)).unwrap();
}

#[test]
fn truncated_bodies_fail() {
    // Encrypted: the HMAC no longer matches.
    let codec = BlockCodec::new(4096, None, Some(tv_enc()), None);
    let (_, e) = encrypted_block(&codec, 5);
    let mut body = e.body.clone();
    body.truncate(body.len() - 16);
    assert!(matches!(decode_err(&codec, &e, body), CodecError::BadHmac));
    for comp in [Compression::DEFAULT_DEFLATE, Compression::DEFAULT_ZSTD] {
        let codec = BlockCodec::new(4096, Some(comp), None, None);
        let e = codec.encode(5, &random_bytes(4096, 1)).unwrap();
        for cut in [1, 4, e.body.len() / 2] {
            let body = e.body[..e.body.len() - cut].to_vec();
            let err = decode_err(&codec, &e, body);
            assert!(
                matches!(err, CodecError::Decompress(_)),
                "{comp:?} cut {cut}: {err}"
            );
        }
    }
    let plain = BlockCodec::new(4096, None, None, None);
    let err = plain.decode(5, vec![0u8; 4095], None, None).unwrap_err();
    assert!(matches!(
        err,
        CodecError::WrongLength {
            got: 4095,
            expected: 4096
        }
    ));
    let err = plain.decode(5, vec![0u8; 4097], None, None).unwrap_err();
    assert!(matches!(err, CodecError::WrongLength { got: 4097, .. }));
}

#[test]
fn wrong_password_is_bad_hmac() {
    let codec = BlockCodec::new(4096, None, Some(tv_enc()), None);
    let (_, e) = encrypted_block(&codec, 5);
    let other = Encryption::derive(Cipher::Aes128Cbc, b"Secret", "mybucket", "", None).unwrap();
    let codec2 = BlockCodec::new(4096, None, Some(other), None);
    let err = decode_err(&codec2, &e, e.body.clone());
    assert!(matches!(err, CodecError::BadHmac), "{err}");
    assert!(err.is_wrong_password_symptom());
    assert!(err.to_string().contains("wrong password"));
}

#[test]
fn encrypted_block_without_encryption_configured() {
    let codec = BlockCodec::new(4096, None, Some(tv_enc()), None);
    let (_, e) = encrypted_block(&codec, 5);
    for plain in [
        BlockCodec::new(4096, None, None, None),
        BlockCodec::new(4096, Some(Compression::DEFAULT_ZSTD), None, None),
    ] {
        let err = decode_err(&plain, &e, e.body.clone());
        assert!(matches!(err, CodecError::EncryptedWithoutKey(_)), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("--encrypt") && msg.contains("deflate, encrypt-AES-128-CBC"),
            "{msg}"
        );
    }
}

#[test]
fn plain_block_with_encryption_configured() {
    let codec = BlockCodec::new(4096, None, Some(tv_enc()), None);
    for ce in [None, Some("deflate"), Some("zstd"), Some("")] {
        let err = codec.decode(5, vec![0u8; 4096], ce, None).unwrap_err();
        assert!(matches!(err, CodecError::NotEncrypted), "{ce:?}: {err}");
        assert!(err.to_string().contains("supposed to be encrypted"));
    }
}

#[test]
fn wrong_cipher_in_content_encoding() {
    let codec = BlockCodec::new(4096, None, Some(tv_enc()), None);
    let (_, e) = encrypted_block(&codec, 5);
    let err = codec
        .decode(
            5,
            e.body.clone(),
            Some("deflate, encrypt-AES-256-CBC"),
            e.hmac.as_deref(),
        )
        .unwrap_err();
    assert!(
        matches!(&err, CodecError::WrongCipher { stored, configured: "AES-128-CBC" } if stored == "AES-256-CBC"),
        "{err}"
    );
    // An alias in the header is not our cipher's canonical name either.
    let err = codec
        .decode(
            5,
            e.body.clone(),
            Some("deflate, encrypt-AES128"),
            e.hmac.as_deref(),
        )
        .unwrap_err();
    assert!(matches!(err, CodecError::WrongCipher { .. }), "{err}");
}

#[test]
fn bad_layer_structures() {
    let plain = BlockCodec::new(4096, None, None, None);
    let err = plain
        .decode(0, vec![0u8; 4096], Some("gzip"), None)
        .unwrap_err();
    assert!(
        matches!(&err, CodecError::UnknownEncoding(l) if l == "gzip"),
        "{err}"
    );
    let err = plain
        .decode(0, vec![0u8; 4096], Some("deflate, br"), None)
        .unwrap_err();
    assert!(
        matches!(&err, CodecError::UnknownEncoding(l) if l == "br"),
        "{err}"
    );
    let err = plain
        .decode(0, vec![0u8; 4096], Some("deflate,"), None)
        .unwrap_err();
    assert!(
        matches!(&err, CodecError::UnknownEncoding(l) if l.is_empty()),
        "{err}"
    );

    let deflated = compress::deflate(&[7u8; 4096], -1, 0).unwrap();
    for ce in ["deflate, deflate", "zstd, deflate", "deflate, zstd"] {
        let err = plain
            .decode(0, deflated.clone(), Some(ce), None)
            .unwrap_err();
        assert!(
            matches!(err, CodecError::UnexpectedLayer { .. }),
            "{ce}: {err}"
        );
    }
    let codec = BlockCodec::new(4096, None, Some(tv_enc()), None);
    let (_, e) = encrypted_block(&codec, 5);
    for ce in [
        "encrypt-AES-128-CBC, deflate",
        "deflate, encrypt-AES-128-CBC, encrypt-AES-128-CBC",
        "deflate, deflate, encrypt-AES-128-CBC",
    ] {
        let err = codec
            .decode(5, e.body.clone(), Some(ce), e.hmac.as_deref())
            .unwrap_err();
        assert!(
            matches!(err, CodecError::UnexpectedLayer { .. }),
            "{ce}: {err}"
        );
    }
}

#[test]
fn encrypt_only_layer_is_accepted() {
    // Not written by us, but a valid reading of the format: encrypted, uncompressed.
    let e = tv_enc();
    let data = random_bytes(4096, 9);
    let mut body = data.clone();
    body.reserve(16);
    e.encrypt_in_place(4, &mut body);
    let hdr = e.hmac_header(4, &body);
    let codec = BlockCodec::new(4096, None, Some(e), None);
    let out = codec
        .decode(4, body, Some("encrypt-AES-128-CBC"), Some(&hdr))
        .unwrap();
    assert_eq!(out, data);
}

#[test]
fn bad_padding_after_valid_hmac_is_decrypt_error() {
    // A body whose HMAC verifies but whose plaintext padding is wrong (e.g. written by a broken
    // client that knows the key).
    let e = tv_enc();
    let mut body = vec![0u8; 64];
    let iv = e.iv(5);
    cbc::Encryptor::<aes::Aes128>::new_from_slices(e.key_bytes(), &iv)
        .unwrap()
        .encrypt_padded::<aes::cipher::block_padding::NoPadding>(&mut body, 64)
        .unwrap();
    let hdr = e.hmac_header(5, &body);
    let codec = BlockCodec::new(4096, None, Some(e.clone()), None);
    let err = codec
        .decode(
            5,
            body.clone(),
            Some("deflate, encrypt-AES-128-CBC"),
            Some(&hdr),
        )
        .unwrap_err();
    assert!(matches!(err, CodecError::Decrypt), "{err}");
    // Length not a multiple of 16.
    body.truncate(63);
    let hdr = e.hmac_header(5, &body);
    let err = codec
        .decode(5, body, Some("deflate, encrypt-AES-128-CBC"), Some(&hdr))
        .unwrap_err();
    assert!(matches!(err, CodecError::Decrypt), "{err}");
}

#[test]
fn bad_compressed_data() {
    let codec = BlockCodec::new(4096, Some(Compression::DEFAULT_DEFLATE), None, None);
    // Garbage.
    let err = codec
        .decode(0, random_bytes(300, 5), Some("deflate"), None)
        .unwrap_err();
    assert!(matches!(err, CodecError::Decompress(_)), "{err}");
    let err = codec
        .decode(0, random_bytes(300, 5), Some("zstd"), None)
        .unwrap_err();
    assert!(matches!(err, CodecError::Decompress(_)), "{err}");
    let err = codec
        .decode(0, Vec::new(), Some("deflate"), None)
        .unwrap_err();
    assert!(matches!(err, CodecError::Decompress(_)), "{err}");
    // Inflates to more than block_size.
    let big = compress::deflate(&[1u8; 8192], -1, 0).unwrap();
    let err = codec.decode(0, big, Some("deflate"), None).unwrap_err();
    assert!(
        matches!(&err, CodecError::Decompress(m) if m.contains("more than 4096")),
        "{err}"
    );
    let just_over = compress::deflate(&[1u8; 4097], -1, 0).unwrap();
    let err = codec
        .decode(0, just_over, Some("deflate"), None)
        .unwrap_err();
    assert!(matches!(err, CodecError::Decompress(_)), "{err}");
    let big = zstd::bulk::compress(&[1u8; 8192], 3).unwrap();
    let err = codec.decode(0, big, Some("zstd"), None).unwrap_err();
    assert!(matches!(err, CodecError::Decompress(_)), "{err}");
    // Inflates to less.
    let small = compress::deflate(&[1u8; 4000], -1, 0).unwrap();
    let err = codec.decode(0, small, Some("deflate"), None).unwrap_err();
    assert!(
        matches!(
            err,
            CodecError::WrongLength {
                got: 4000,
                expected: 4096
            }
        ),
        "{err}"
    );
    let small = zstd::bulk::compress(&[1u8; 4000], 3).unwrap();
    let err = codec.decode(0, small, Some("zstd"), None).unwrap_err();
    assert!(
        matches!(err, CodecError::WrongLength { got: 4000, .. }),
        "{err}"
    );
    // Trailing garbage after the zlib stream.
    let mut trailing = compress::deflate(&[1u8; 4096], -1, 0).unwrap();
    trailing.extend_from_slice(b"xyz");
    let err = codec
        .decode(0, trailing, Some("deflate"), None)
        .unwrap_err();
    assert!(
        matches!(&err, CodecError::Decompress(m) if m.contains("garbage")),
        "{err}"
    );
    // Raw deflate (no zlib header) is not accepted as "deflate".
    let mut raw2 = Vec::new();
    {
        let mut enc = flate2::write::DeflateEncoder::new(&mut raw2, flate2::Compression::default());
        enc.write_all(&[1u8; 4096]).unwrap();
        enc.finish().unwrap();
    }
    let err = codec.decode(0, raw2, Some("deflate"), None).unwrap_err();
    assert!(matches!(err, CodecError::Decompress(_)), "{err}");
}

#[test]
fn mixed_bucket_decodes_with_one_codec() {
    let bs = 4096u32;
    let data = text(bs as usize);
    let plain_body = data.clone();
    let deflate_body = BlockCodec::new(bs, Some(Compression::Deflate { level: 9 }), None, None)
        .encode(1, &data)
        .unwrap();
    let zstd_body = BlockCodec::new(bs, Some(Compression::Zstd { level: 19 }), None, None)
        .encode(2, &data)
        .unwrap();
    for reader in [
        BlockCodec::new(bs, None, None, None),
        BlockCodec::new(bs, Some(Compression::DEFAULT_DEFLATE), None, None),
        BlockCodec::new(bs, Some(Compression::DEFAULT_ZSTD), None, None),
    ] {
        assert_eq!(
            reader.decode(0, plain_body.clone(), None, None).unwrap(),
            data
        );
        assert_eq!(
            reader
                .decode(0, plain_body.clone(), Some(""), None)
                .unwrap(),
            data
        );
        let d = &deflate_body;
        assert_eq!(
            reader
                .decode(1, d.body.clone(), d.content_encoding.as_deref(), None)
                .unwrap(),
            data
        );
        let z = &zstd_body;
        assert_eq!(
            reader
                .decode(2, z.body.clone(), z.content_encoding.as_deref(), None)
                .unwrap(),
            data
        );
    }
    // --defaultContentEncoding applies to objects without a Content-Encoding only.
    let dflt = BlockCodec::new(bs, None, None, Some("deflate".to_owned()));
    assert_eq!(
        dflt.decode(1, deflate_body.body.clone(), None, None)
            .unwrap(),
        data
    );
    assert_eq!(
        dflt.decode(2, zstd_body.body.clone(), Some("zstd"), None)
            .unwrap(),
        data
    );
    assert!(dflt.decode(0, plain_body.clone(), None, None).is_err());
    let empty_default = BlockCodec::new(bs, None, None, Some(String::new()));
    assert_eq!(
        empty_default.decode(0, plain_body, None, None).unwrap(),
        data
    );
}

// ---------------------------------------------------------------- configuration

#[test]
fn cipher_names() {
    for (name, c) in [
        ("AES-128-CBC", Cipher::Aes128Cbc),
        ("aes-192-cbc", Cipher::Aes192Cbc),
        ("Aes-256-Cbc", Cipher::Aes256Cbc),
    ] {
        let got = Cipher::from_name(name).unwrap();
        assert_eq!(got, c);
        assert_eq!(got.name(), name.to_uppercase());
    }
    assert_eq!(Cipher::Aes128Cbc.key_len(), 16);
    assert_eq!(Cipher::Aes192Cbc.key_len(), 24);
    assert_eq!(Cipher::Aes256Cbc.key_len(), 32);
    for (alias, canonical) in [
        ("AES128", "AES-128-CBC"),
        ("aes256", "AES-256-CBC"),
        ("aes-192", "AES-192-CBC"),
        ("id-aes128-CBC", "AES-128-CBC"),
        ("AES_256_CBC", "AES-256-CBC"),
    ] {
        let err = Cipher::from_name(alias).unwrap_err();
        assert!(
            matches!(&err, CodecError::CipherAlias { given, canonical: c } if given == alias && *c == canonical),
            "{alias}: {err}"
        );
        assert!(err.to_string().contains(canonical));
    }
    for unknown in [
        "DES-EDE3-CBC",
        "AES-128-GCM",
        "AES-128-ECB",
        "aes-128-ctr",
        "",
        "bf-cbc",
    ] {
        let err = Cipher::from_name(unknown).unwrap_err();
        assert!(
            matches!(err, CodecError::UnknownCipher(_)),
            "{unknown}: {err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("AES-128-CBC") && msg.contains("AES-256-CBC"),
            "{msg}"
        );
    }
}

#[test]
fn key_length_bounds() {
    for (c, bad) in [
        (Cipher::Aes128Cbc, [0, 15, 65]),
        (Cipher::Aes192Cbc, [16, 23, 65]),
        (Cipher::Aes256Cbc, [24, 31, 100]),
    ] {
        for kl in bad {
            let err = Encryption::derive(c, b"pw", "b", "", Some(kl)).unwrap_err();
            assert!(
                matches!(err, CodecError::BadKeyLength { given, .. } if given == kl),
                "{err}"
            );
            assert!(err.to_string().contains(&c.key_len().to_string()));
        }
    }
    assert_eq!(enc(Cipher::Aes128Cbc, Some(64)).key_len(), 64);
    assert_eq!(enc(Cipher::Aes256Cbc, None).key_len(), 32);
}

#[test]
fn debug_does_not_leak_keys() {
    for e in [tv_enc(), enc(Cipher::Aes256Cbc, Some(64))] {
        let codec = BlockCodec::new(4096, None, Some(e.clone()), None);
        let dbg = format!("{e:?} {e:#?} {codec:?} {codec:#?}");
        for secret in [e.key_bytes(), e.ivkey_bytes()] {
            let h = hex(secret);
            assert!(!dbg.contains(&h), "{dbg}");
            assert!(!dbg.to_lowercase().contains(&h[..8]), "{dbg}");
            assert!(
                !dbg.contains(
                    &format!("{:?}", &secret[..4])
                        .trim_end_matches(']')
                        .to_owned()
                )
            );
        }
        assert!(dbg.contains("Aes"));
    }
}

#[test]
fn errors_never_carry_secrets() {
    let e = tv_enc();
    let key_hex = hex(e.key_bytes());
    let codec = BlockCodec::new(4096, None, Some(e), None);
    let (_, blk) = encrypted_block(&codec, 5);
    let mut body = blk.body.clone();
    body[0] ^= 1;
    let errs = [
        decode_err(&codec, &blk, body),
        codec
            .decode(5, blk.body.clone(), blk.content_encoding.as_deref(), None)
            .unwrap_err(),
        codec
            .decode(
                5,
                blk.body.clone(),
                blk.content_encoding.as_deref(),
                Some("x"),
            )
            .unwrap_err(),
    ];
    for err in errs {
        let msg = format!("{err} {err:?}");
        assert!(!msg.contains(&key_hex) && !msg.contains("secret"), "{msg}");
        assert!(!msg.contains(&blk.hmac.clone().unwrap()[1..41]), "{msg}");
        assert!(!msg.contains('\n'));
    }
}
