//! Size strings (`--size=1g`, `--blockSize=4096`): parsing and printing.
//!
//! Suffixes are powers of two, one letter, any case (`k m g t p e`). Unlike s3backer 2.1.6 we
//! also accept a bare byte count, as its man page documents (facts §11.1), and we refuse a
//! value whose bytes overflow 64 bits instead of wrapping around.

const SUFFIXES: [(char, u32); 6] = [
    ('k', 10),
    ('m', 20),
    ('g', 30),
    ('t', 40),
    ('p', 50),
    ('e', 60),
];

/// Parses a size: an unsigned decimal number, optionally followed by one suffix letter.
///
/// Zero, fractions, signs, unknown suffixes and values above `u64::MAX` are refused with a
/// one-line message such as `invalid size "1.5g": fractions are not allowed`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let fail = |why: &str| Err(format!("invalid size {s:?}: {why}"));
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, suffix) = s.split_at(digits_end);
    if digits.is_empty() {
        return if s.starts_with('-') {
            fail("negative sizes are not allowed")
        } else if s.is_empty() {
            fail("empty value")
        } else {
            fail("expected a number such as 4096, 4k, 1m or 1g")
        };
    }
    if suffix.starts_with(['.', ',']) {
        return fail("fractions are not allowed (use a smaller unit, e.g. 1536m for 1.5g)");
    }
    let shift = match suffix.chars().collect::<Vec<_>>().as_slice() {
        [] => 0,
        [c] => match SUFFIXES
            .iter()
            .find(|(letter, _)| *letter == c.to_ascii_lowercase())
        {
            Some(&(_, shift)) => shift,
            None if matches!(c.to_ascii_lowercase(), 'z' | 'y') => {
                return fail("too big (more than 64 bits)");
            }
            None => return fail("unknown suffix (use k, m, g, t, p or e)"),
        },
        _ => return fail("unknown suffix (use one letter: k, m, g, t, p or e)"),
    };
    let Ok(number) = digits.parse::<u64>() else {
        return fail("too big (more than 64 bits)");
    };
    if number == 0 {
        return fail("must not be zero");
    }
    match number.checked_mul(1u64 << shift) {
        Some(v) => Ok(v),
        None => fail("too big (more than 64 bits)"),
    }
}

/// Largest block size we accept: it must fit the 32-bit block size field (facts §1.6).
pub const MAX_BLOCK_SIZE: u64 = 1 << 31;

/// Parses a `--blockSize`: a size that is a power of two and at most 2^31.
pub(crate) fn parse_block_size(s: &str) -> Result<u32, String> {
    let v = parse_size(s)?;
    if !v.is_power_of_two() {
        return Err(format!("invalid block size {s:?}: must be a power of two"));
    }
    if v > MAX_BLOCK_SIZE {
        return Err(format!(
            "invalid block size {s:?}: must be at most {}",
            format_size(MAX_BLOCK_SIZE)
        ));
    }
    u32::try_from(v).map_err(|_| format!("invalid block size {s:?}: too big"))
}

/// Prints a size with the largest suffix that divides it exactly (`4096` → `4k`,
/// `1000` → `1000`, `0` → `0`).
pub fn format_size(v: u64) -> String {
    if v != 0 {
        for &(letter, shift) in SUFFIXES.iter().rev() {
            if v.is_multiple_of(1u64 << shift) {
                return format!("{}{letter}", v >> shift);
            }
        }
    }
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_are_powers_of_two_any_case() {
        assert_eq!(parse_size("4k"), Ok(4096));
        assert_eq!(parse_size("4K"), Ok(4096));
        assert_eq!(parse_size("1m"), Ok(1 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("2t"), Ok(2 << 40));
        assert_eq!(parse_size("1p"), Ok(1 << 50));
        assert_eq!(parse_size("15e"), Ok(15 << 60));
    }

    #[test]
    fn bare_byte_counts() {
        assert_eq!(parse_size("1073741824"), Ok(1 << 30));
        assert_eq!(parse_size("1"), Ok(1));
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
    }

    #[test]
    fn rejects_with_reason() {
        let err = |s: &str| parse_size(s).unwrap_err();
        assert_eq!(err("0"), "invalid size \"0\": must not be zero");
        assert_eq!(err("0k"), "invalid size \"0k\": must not be zero");
        assert!(err("1.5g").starts_with("invalid size \"1.5g\": fractions"));
        assert!(err("-1g").contains("negative"));
        assert!(err("+1g").contains("expected a number"));
        assert!(err("").contains("empty"));
        assert!(err("1kb").contains("unknown suffix"));
        assert!(err("1x").contains("unknown suffix"));
        assert!(err("1 k").contains("unknown suffix"));
        assert!(err("k").contains("expected a number"));
        assert!(err("1z").contains("too big"));
        assert!(err("1y").contains("too big"));
    }

    #[test]
    fn overflow_is_checked() {
        assert!(parse_size("16e").unwrap_err().contains("too big"));
        assert!(parse_size("16384p").unwrap_err().contains("too big"));
        assert!(
            parse_size("18446744073709551616")
                .unwrap_err()
                .contains("too big")
        );
        assert!(
            parse_size("99999999999999999999999k")
                .unwrap_err()
                .contains("too big")
        );
    }

    #[test]
    fn block_sizes() {
        assert_eq!(parse_block_size("4k"), Ok(4096));
        assert_eq!(parse_block_size("1"), Ok(1));
        assert_eq!(parse_block_size("2g"), Ok(1 << 31));
        assert!(parse_block_size("4g").unwrap_err().contains("at most 2g"));
        assert!(parse_block_size("3k").unwrap_err().contains("power of two"));
        assert!(parse_block_size("1t").is_err());
    }

    #[test]
    fn formatting() {
        assert_eq!(format_size(0), "0");
        assert_eq!(format_size(1000), "1000");
        assert_eq!(format_size(4096), "4k");
        assert_eq!(format_size(1536 << 20), "1536m");
        assert_eq!(format_size(1 << 30), "1g");
        assert_eq!(format_size(3 << 60), "3e");
        assert_eq!(format_size(u64::MAX), u64::MAX.to_string());
    }

    #[test]
    fn round_trip() {
        for v in [1, 512, 4096, 1 << 20, 5 << 30, 7 << 40, (1 << 50) + 1024] {
            assert_eq!(parse_size(&format_size(v)), Ok(v), "{v}");
        }
    }
}
