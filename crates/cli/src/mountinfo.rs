//! `/proc/self/mountinfo`, read without touching the mounted filesystems (a hung or dead FUSE
//! server must not hang the check): is a path a mount point, and which mount is it.

use std::path::{Path, PathBuf};

/// One line of mountinfo, the fields we use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountEntry {
    /// `major:minor` of the mounted filesystem (st_dev of its files).
    pub dev: (u32, u32),
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// `fuse.s3backer`, `ext4`, ...
    pub fstype: String,
    /// The mount source (`fsname` for FUSE).
    pub source: String,
}

/// Every mount of this process's namespace, in mount order (a later entry on the same path is
/// mounted over an earlier one).
pub fn entries() -> Vec<MountEntry> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|text| text.lines().filter_map(parse_line).collect())
        .unwrap_or_default()
}

/// The topmost mount on `path`, if `path` is a mount point.
pub fn mounted_at(path: &Path) -> Option<MountEntry> {
    entries().into_iter().rev().find(|e| e.mount_point == path)
}

/// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`
fn parse_line(line: &str) -> Option<MountEntry> {
    let (left, right) = line.split_once(" - ")?;
    let mut l = left.split(' ');
    let dev = l.nth(2)?;
    let mount_point = l.nth(1)?;
    let (major, minor) = dev.split_once(':')?;
    let mut r = right.split(' ');
    let fstype = r.next()?;
    let source = r.next().unwrap_or("");
    Some(MountEntry {
        dev: (major.parse().ok()?, minor.parse().ok()?),
        mount_point: PathBuf::from(unescape(mount_point)),
        fstype: unescape(fstype),
        source: unescape(source),
    })
}

/// The kernel writes space, tab, newline and backslash as `\ooo` octal escapes.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = b[i + 1..i + 4]
                .iter()
                .fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_with_escapes_and_optional_fields() {
        let e = parse_line(
            "36 35 0:52 / /mnt/my\\040disk rw,nosuid,nodev,relatime shared:1 - fuse.s3backer http://h:1/b/ rw,user_id=0",
        );
        assert_eq!(
            e,
            Some(MountEntry {
                dev: (0, 52),
                mount_point: PathBuf::from("/mnt/my disk"),
                fstype: "fuse.s3backer".into(),
                source: "http://h:1/b/".into(),
            })
        );
        assert!(parse_line("garbage").is_none());
    }

    #[test]
    fn the_root_is_a_mount_point() {
        assert!(mounted_at(Path::new("/")).is_some());
        assert!(mounted_at(Path::new("/nonexistent-s3b")).is_none());
    }
}
