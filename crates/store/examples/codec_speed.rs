//! Speed of the block codec against its raw stages.
//!
//! Data: 256 KiB blocks, each half random bytes (incompressible, like media or already
//! compressed files) and half text-like (words from a small vocabulary with numbers and
//! punctuation, about 3-4× compressible with zlib, like logs or source code). All numbers are
//! MiB/s of the stage's own input, best of several runs; the codec rows count block bytes.
//!
//! Run with `cargo run --release -p s3backer-store --example codec_speed` (or
//! `bench/codec-speed.sh`).
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use aes::Aes128;
use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyInit, KeyIvInit};
use flate2::{Compress, Decompress, FlushCompress, FlushDecompress, Status};
use hmac::{Hmac, Mac};
use s3backer_store::codec::{BlockCodec, Cipher, Compression, EncodedBlock, Encryption};
use sha1::Sha1;

const BS: usize = 256 << 10;
const BLOCKS: usize = 16;
const RUNS: usize = 5;

type Enc = cbc::Encryptor<Aes128>;
type Dec = cbc::Decryptor<Aes128>;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn make_block(rng: &mut Rng) -> Vec<u8> {
    let mut b = Vec::with_capacity(BS + 64);
    while b.len() < BS / 2 {
        b.extend_from_slice(&rng.next().to_le_bytes());
    }
    b.truncate(BS / 2);
    const WORDS: &[&str] = &[
        "the", "block", "cache", "is", "written", "to", "bucket", "object", "error:", "read",
        "size", "of", "and", "a", "for", "mount", "thread", "request", "PUT", "GET", "=", "{", "}",
        "return", "if", "else", "while", "fn", "let", "mut",
    ];
    while b.len() < BS {
        let r = rng.next();
        let w = WORDS[(r % WORDS.len() as u64) as usize];
        b.extend_from_slice(w.as_bytes());
        match (r >> 32) % 8 {
            0 => b.extend_from_slice(format!(" {}", (r >> 40) % 100_000).as_bytes()),
            1 => b.push(b'\n'),
            _ => {}
        }
        b.push(b' ');
    }
    b.truncate(BS);
    b
}

/// Best wall time of `RUNS` runs of `f`.
fn best(mut f: impl FnMut()) -> Duration {
    (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn mib_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / d.as_secs_f64()
}

fn row(name: &str, bytes: usize, d: Duration) {
    println!(
        "  {name:<52} {:>8.1} MiB/s  {:>8.1} µs/block",
        mib_s(bytes, d),
        // Per block of work done (the 2-thread rows do twice the blocks).
        d.as_secs_f64() * 1e6 / (bytes as f64 / BS as f64)
    );
}

fn total(v: &[Vec<u8>]) -> usize {
    v.iter().map(Vec::len).sum()
}

fn deflate(c: &mut Compress, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 1000 + 64);
    match c.compress_vec(data, &mut out, FlushCompress::Finish) {
        Ok(Status::StreamEnd) => out,
        other => panic!("deflate: {other:?}"),
    }
}

fn inflate(d: &mut Decompress, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(BS);
    match d.decompress_vec(data, &mut out, FlushDecompress::Finish) {
        Ok(Status::StreamEnd) => out,
        other => panic!("inflate: {other:?}"),
    }
}

fn decrypt_all(mut bufs: Vec<Vec<u8>>) {
    let (key, iv) = ([0x3bu8; 16], [0x7au8; 16]);
    for c in &mut bufs {
        black_box(
            Dec::new(&key.into(), &iv.into())
                .decrypt_padded::<Pkcs7>(c)
                .expect("unpad")
                .len(),
        );
    }
}

fn main() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let blocks: Vec<Vec<u8>> = (0..BLOCKS).map(|_| make_block(&mut rng)).collect();
    let bytes = BLOCKS * BS;
    let key = [0x3bu8; 16];
    let iv = [0x7au8; 16];
    println!(
        "codec speed: {BLOCKS} blocks of {} KiB, each half random, half text-like; best of {RUNS} runs",
        BS >> 10
    );

    // ------------------------------------------------------------ raw stages
    println!("raw stages (MiB/s of each stage's own input):");
    let level6 = flate2::Compression::new(6);
    let mut zlib_out = Vec::new();
    let t_deflate = best(|| {
        zlib_out = blocks
            .iter()
            .map(|b| deflate(&mut Compress::new(level6, true), b))
            .collect();
    });
    row("zlib-rs deflate level 6 (new ctx/block)", bytes, t_deflate);
    let mut ctx = Compress::new(level6, true);
    let t = best(|| {
        for b in &blocks {
            ctx.reset();
            black_box(deflate(&mut ctx, b));
        }
    });
    row("zlib-rs deflate level 6 (reused ctx)", bytes, t);
    let t_inflate = best(|| {
        for z in &zlib_out {
            black_box(inflate(&mut Decompress::new(true), z));
        }
    });
    row("zlib-rs inflate (new ctx/block)", bytes, t_inflate);
    let mut dctx = Decompress::new(true);
    let t = best(|| {
        for z in &zlib_out {
            dctx.reset(true);
            black_box(inflate(&mut dctx, z));
        }
    });
    row("zlib-rs inflate (reused ctx)", bytes, t);

    let mut zstd_out = Vec::new();
    let t_zstd = best(|| {
        zstd_out = blocks
            .iter()
            .map(|b| zstd::bulk::compress(b, 3).expect("zstd"))
            .collect();
    });
    row("zstd level 3 (new ctx/block)", bytes, t_zstd);
    let mut zc = zstd::bulk::Compressor::new(3).expect("zstd ctx");
    let t = best(|| {
        for b in &blocks {
            black_box(zc.compress(b).expect("zstd"));
        }
    });
    row("zstd level 3 (reused ctx)", bytes, t);
    let t_unzstd = best(|| {
        for z in &zstd_out {
            black_box(zstd::bulk::decompress(z, BS).expect("unzstd"));
        }
    });
    row("zstd decompress (new ctx/block)", bytes, t_unzstd);
    let mut zd = zstd::bulk::Decompressor::new().expect("zstd dctx");
    let t = best(|| {
        for z in &zstd_out {
            black_box(zd.decompress(z, BS).expect("unzstd"));
        }
    });
    row("zstd decompress (reused ctx)", bytes, t);

    let enc_one = |data: &[u8]| {
        let mut buf = Vec::with_capacity(data.len() + 16);
        buf.extend_from_slice(data);
        buf.resize(data.len() / 16 * 16 + 16, 0);
        let n = Enc::new(&key.into(), &iv.into())
            .encrypt_padded::<Pkcs7>(&mut buf, data.len())
            .expect("pad")
            .len();
        buf.truncate(n);
        buf
    };
    let t = best(|| {
        for b in &blocks {
            black_box(enc_one(b));
        }
    });
    row("AES-128-CBC encrypt (incl. copy)", bytes, t);
    let plain_ct: Vec<Vec<u8>> = blocks.iter().map(|b| enc_one(b)).collect();
    let t = best_with_setup(|| plain_ct.clone(), decrypt_all);
    row("AES-128-CBC decrypt in place", total(&plain_ct), t);
    let t = best(|| {
        for b in &blocks {
            let mut m = <Hmac<Sha1> as KeyInit>::new_from_slice(&key).expect("hmac");
            m.update(b);
            black_box(m.finalize().into_bytes());
        }
    });
    row("HMAC-SHA1", bytes, t);
    let n = 100_000;
    let t0 = Instant::now();
    for _ in 0..n {
        black_box(Aes128::new(black_box(&key.into())));
    }
    let t_new = t0.elapsed();
    let sched = Aes128::new(&key.into());
    let t0 = Instant::now();
    for _ in 0..n {
        black_box(black_box(&sched).clone());
    }
    let t_clone = t0.elapsed();
    println!(
        "  AES-128 key schedule: build {:.0} ns, clone {:.0} ns (per block, vs ~{:.0} µs of work)",
        t_new.as_secs_f64() * 1e9 / n as f64,
        t_clone.as_secs_f64() * 1e9 / n as f64,
        t_deflate.as_secs_f64() * 1e6 / BLOCKS as f64
    );

    // The two halves separately: incompressible vs text-like input.
    for (half, range) in [("random half", 0..BS / 2), ("text half", BS / 2..BS)] {
        let halves: Vec<&[u8]> = blocks.iter().map(|b| &b[range.clone()]).collect();
        let mut out_len = 0;
        let t = best(|| {
            out_len = halves
                .iter()
                .map(|h| deflate(&mut Compress::new(level6, true), h).len())
                .sum();
        });
        row(
            &format!("zlib-rs deflate level 6, {half} only"),
            bytes / 2,
            t,
        );
        let pct = 100.0 * out_len as f64 / (bytes / 2) as f64;
        let t = best(|| {
            for h in &halves {
                black_box(zstd::bulk::compress(h, 3).expect("zstd"));
            }
        });
        row(
            &format!("zstd level 3, {half} only ({pct:.0} % after deflate)"),
            bytes / 2,
            t,
        );
    }

    // Stage times on the real intermediate sizes (deflate → encrypt → HMAC).
    let mut ct = Vec::new();
    let t_enc_z = best(|| ct = zlib_out.iter().map(|z| enc_one(z)).collect());
    let t_hmac_ct = best(|| {
        for c in &ct {
            let mut m = <Hmac<Sha1> as KeyInit>::new_from_slice(&key).expect("hmac");
            m.update(c);
            black_box(m.finalize().into_bytes());
        }
    });
    let t_dec_z = best_with_setup(|| ct.clone(), decrypt_all);
    let ratio = total(&zlib_out) as f64 / bytes as f64;
    let zratio = total(&zstd_out) as f64 / bytes as f64;
    println!(
        "  compressed size: deflate-6 {:.1} % of the data, zstd-3 {:.1} %",
        ratio * 100.0,
        zratio * 100.0
    );

    // ------------------------------------------------------------ the codec
    println!("BlockCodec (MiB/s of block data):");
    let enc =
        Encryption::derive(Cipher::Aes128Cbc, b"secret", "mybucket", "", None).expect("derive");
    let configs: [(&str, BlockCodec, Duration, Duration); 3] = [
        (
            "deflate",
            BlockCodec::new(BS as u32, Some(Compression::DEFAULT_DEFLATE), None, None),
            t_deflate,
            t_inflate,
        ),
        (
            "deflate + AES-128-CBC",
            BlockCodec::new(BS as u32, None, Some(enc), None),
            t_deflate + t_enc_z + t_hmac_ct,
            t_hmac_ct + t_dec_z + t_inflate,
        ),
        (
            "zstd",
            BlockCodec::new(BS as u32, Some(Compression::DEFAULT_ZSTD), None, None),
            t_zstd,
            t_unzstd,
        ),
    ];
    for (name, codec, raw_enc, raw_dec) in &configs {
        let mut encoded: Vec<EncodedBlock> = Vec::new();
        let t_e = best(|| {
            encoded = blocks
                .iter()
                .enumerate()
                .map(|(i, b)| codec.encode(i as u32, b).expect("encode"))
                .collect();
        });
        let t_d = best_with_setup(
            || encoded.iter().map(|e| e.body.clone()).collect::<Vec<_>>(),
            |bodies| {
                for (i, (e, body)) in encoded.iter().zip(bodies).enumerate() {
                    black_box(
                        codec
                            .decode(
                                i as u32,
                                body,
                                e.content_encoding.as_deref(),
                                e.hmac.as_deref(),
                            )
                            .expect("decode"),
                    );
                }
            },
        );
        let t_2 = best(|| {
            std::thread::scope(|s| {
                for _ in 0..2 {
                    s.spawn(|| {
                        for (i, b) in blocks.iter().enumerate() {
                            black_box(codec.encode(i as u32, b).expect("encode"));
                        }
                    });
                }
            });
        });
        row(&format!("{name}: encode"), bytes, t_e);
        row(&format!("{name}: decode"), bytes, t_d);
        row(
            &format!("{name}: encode, 2 threads (aggregate)"),
            2 * bytes,
            t_2,
        );
        println!(
            "  {:<52} encode {:.3}, decode {:.3}  (codec time / sum of raw stage times)",
            format!("{name}: ratio codec/raw pipeline"),
            t_e.as_secs_f64() / raw_enc.as_secs_f64(),
            t_d.as_secs_f64() / raw_dec.as_secs_f64()
        );
    }
}

/// Best time of `RUNS` runs of `f`, each on the output of an untimed `setup`.
fn best_with_setup<T>(mut setup: impl FnMut() -> T, mut f: impl FnMut(T)) -> Duration {
    (0..RUNS)
        .map(|_| {
            let input = setup();
            let t = Instant::now();
            f(input);
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}
