//! Metadata headers (`x-amz-meta-*`, names given here without that prefix) and the mount token.

/// Block size, on block 0 only (decimal).
pub const META_BLOCK_SIZE: &str = "s3backer-blocksize";
/// Total size in bytes, on block 0 only (decimal).
pub const META_FILE_SIZE: &str = "s3backer-filesize";
/// Mount token (`%08x`), on the mount-token object.
pub const META_MOUNT_TOKEN: &str = "s3backer-mount-token";
/// HMAC of an encrypted block: `"<40 hex>"`, quotes included.
pub const META_HMAC: &str = "s3backer-hmac";
/// Content-Type of every block object.
pub const BLOCK_CONTENT_TYPE: &str = "application/x-s3backer-block";
/// Content-Type of the mount-token object.
pub const TOKEN_CONTENT_TYPE: &str = "text/plain";
/// The token value of a `--sharedDiskMode` mount.
pub const SHARED_DISK_TOKEN: u32 = 0x7fff_ffff;

/// Looks a metadata value up by name, case-insensitively (servers vary in case).
pub fn find<'a>(meta: &'a [(String, String)], name: &str) -> Option<&'a str> {
    meta.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

/// Block size and total size recorded on block 0. `None` unless both are present and non-zero
/// (s3backer's rule: then auto-detection "failed" and `--size` is needed).
pub fn parse_geometry(meta: &[(String, String)]) -> Option<(u32, u64)> {
    let block_size: u32 = find(meta, META_BLOCK_SIZE)?.parse().ok()?;
    let file_size: u64 = find(meta, META_FILE_SIZE)?.parse().ok()?;
    (block_size != 0 && file_size != 0).then_some((block_size, file_size))
}

/// The metadata written on block 0.
pub fn geometry_meta(block_size: u32, file_size: u64) -> Vec<(String, String)> {
    vec![
        (META_BLOCK_SIZE.to_string(), block_size.to_string()),
        (META_FILE_SIZE.to_string(), file_size.to_string()),
    ]
}

/// The token an existing mount-token object carries: its header parsed as hex, or 1 (the legacy
/// boolean flag) when the header is absent, unparseable or zero.
pub fn parse_mount_token(meta: &[(String, String)]) -> u32 {
    match find(meta, META_MOUNT_TOKEN)
        .and_then(|v| u32::from_str_radix(v.trim_start_matches("0x"), 16).ok())
    {
        Some(t) if t != 0 => t,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn geometry_needs_both_non_zero() {
        assert_eq!(
            parse_geometry(&m(&[
                ("s3backer-blocksize", "4096"),
                ("S3backer-Filesize", "1048576")
            ])),
            Some((4096, 1 << 20))
        );
        assert_eq!(parse_geometry(&m(&[("s3backer-blocksize", "4096")])), None);
        assert_eq!(
            parse_geometry(&m(&[
                ("s3backer-blocksize", "0"),
                ("s3backer-filesize", "10")
            ])),
            None
        );
        assert_eq!(
            parse_geometry(&m(&[
                ("s3backer-blocksize", "x"),
                ("s3backer-filesize", "10")
            ])),
            None
        );
        assert_eq!(
            parse_geometry(&geometry_meta(65536, 1 << 30)),
            Some((65536, 1 << 30))
        );
    }

    #[test]
    fn tokens() {
        assert_eq!(
            parse_mount_token(&m(&[("s3backer-mount-token", "1a2b3c4d")])),
            0x1a2b3c4d
        );
        assert_eq!(parse_mount_token(&m(&[])), 1);
        assert_eq!(
            parse_mount_token(&m(&[("s3backer-mount-token", "00000000")])),
            1
        );
        assert_eq!(parse_mount_token(&m(&[("s3backer-mount-token", "zz")])), 1);
    }
}
