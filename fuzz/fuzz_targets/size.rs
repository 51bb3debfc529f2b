//! `parse_size` and `format_size`.
//!
//! Input: a size string (UTF-8; other inputs are skipped), and, read as 8 little-endian bytes,
//! a number.
//!
//! Properties: `parse_size` never panics; it agrees with an independent model (decimal digits,
//! at most one suffix letter k/m/g/t/p/e in any case, non-zero, no overflow; computed in
//! u128) on every input, Ok values included; an error is one line; for every accepted value
//! and every non-zero number, `parse_size(format_size(v)) == Ok(v)`, and `format_size` picks
//! the largest suffix that divides v.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use s3backer_config::{format_size, parse_size};

use common::assert_one_line;

/// The grammar, independently: `[0-9]+[kmgtpeKMGTPE]?`, value in 1..=u64::MAX.
fn model(s: &str) -> Option<u64> {
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, suffix) = s.split_at(digits_end);
    if digits.is_empty() {
        return None;
    }
    let shift = match suffix {
        "" => 0,
        "k" | "K" => 10,
        "m" | "M" => 20,
        "g" | "G" => 30,
        "t" | "T" => 40,
        "p" | "P" => 50,
        "e" | "E" => 60,
        _ => return None,
    };
    let significant = digits.trim_start_matches('0');
    if significant.len() > 20 {
        return None;
    }
    let n: u128 = if significant.is_empty() {
        0
    } else {
        significant.parse().ok()?
    };
    let v = n << shift;
    if v == 0 || v > u128::from(u64::MAX) {
        return None;
    }
    u64::try_from(v).ok()
}

fn check_format(v: u64) {
    let f = format_size(v);
    assert_eq!(
        parse_size(&f),
        Ok(v),
        "format_size({v}) = {f:?} does not parse back"
    );
    // The largest suffix that divides v exactly, and no larger unit could hold it.
    if let Some(last) = f.chars().last().filter(|c| c.is_ascii_alphabetic()) {
        let shift = match last {
            'k' => 10,
            'm' => 20,
            'g' => 30,
            't' => 40,
            'p' => 50,
            'e' => 60,
            other => panic!("format_size({v}) = {f:?}: unexpected suffix {other:?}"),
        };
        assert!(v.is_multiple_of(1u64 << shift));
        if shift < 60 {
            assert!(
                !v.is_multiple_of(1u64 << (shift + 10)),
                "format_size({v}) = {f:?} is not the largest unit"
            );
        }
    } else {
        assert_eq!(f, v.to_string());
        assert!(
            !v.is_multiple_of(1024),
            "format_size({v}) = {f:?} missed a unit"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() >= 8 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&data[..8]);
        let v = u64::from_le_bytes(b);
        if v != 0 {
            check_format(v);
        }
    }
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let got = parse_size(s);
    match (&got, model(s)) {
        (Ok(v), Some(m)) => {
            assert_eq!(*v, m, "parse_size({s:?})");
            check_format(*v);
        }
        (Err(e), None) => {
            assert_one_line("parse_size error", e);
            assert!(e.starts_with("invalid size "), "{e:?}");
        }
        (Ok(v), None) => panic!("parse_size({s:?}) = Ok({v}), the model refuses it"),
        (Err(e), Some(m)) => panic!("parse_size({s:?}) = Err({e:?}), the model gives {m}"),
    }
});
