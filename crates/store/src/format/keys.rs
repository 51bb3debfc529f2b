//! Object names: `<prefix>[<hash>-]<%08x block>` and `<prefix>s3backer-mounted`.
//!
//! Parsing accepts a name only if it is exactly the prefix, the optional 8-hex-digit hash and a
//! dash, and 8 lowercase hex digits, nothing after, the block is below `num_blocks`, and (when
//! hashed) the hash matches. Everything else in a bucket is someone else's object.

use crate::BlockNum;

/// Name of the mount-token object, after the prefix.
pub const MOUNT_TOKEN_NAME: &str = "s3backer-mounted";

/// s3backer's block-name hash (`--blockHashPrefix`): spreads keys over the key space so that
/// S3 partitions by prefix evenly. u32 wrapping arithmetic.
pub fn block_hash(block: BlockNum) -> u32 {
    let mut h = block;
    for n in (1..=12u32).rev() {
        h = ((h >> 8) ^ h).wrapping_mul(0x6b).wrapping_add(n);
    }
    h
}

/// How block numbers become object names in one bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyFormat {
    /// Prepended verbatim to every name.
    pub prefix: String,
    /// `--blockHashPrefix`.
    pub hashed: bool,
}

impl KeyFormat {
    /// The object name of `block`.
    pub fn block_key(&self, block: BlockNum) -> String {
        if self.hashed {
            format!("{}{:08x}-{:08x}", self.prefix, block_hash(block), block)
        } else {
            format!("{}{:08x}", self.prefix, block)
        }
    }

    /// The mount-token object name.
    pub fn mount_token_key(&self) -> String {
        format!("{}{}", self.prefix, MOUNT_TOKEN_NAME)
    }

    /// The saved zero-map object name.
    pub fn zero_map_key(&self) -> String {
        format!("{}{}", self.prefix, super::zero_map::ZERO_MAP_NAME)
    }

    /// The block a name denotes, or `None` if it is not one of our block objects.
    pub fn parse_block_key(&self, key: &str, num_blocks: u32) -> Option<BlockNum> {
        let rest = key.strip_prefix(self.prefix.as_str())?;
        let block = if self.hashed {
            let (hash, block) = rest.split_once('-')?;
            let hash = parse_hex8(hash)?;
            let block = parse_hex8(block)?;
            (block_hash(block) == hash).then_some(block)?
        } else {
            parse_hex8(rest)?
        };
        (block < num_blocks).then_some(block)
    }

    /// The first 8 hex digits after the prefix of `key` (block number, or hash when hashed):
    /// the value listing ranges partition on.
    pub fn sort_value(&self, key: &str) -> Option<u32> {
        let rest = key.strip_prefix(self.prefix.as_str())?;
        parse_hex8(rest.get(..8)?)
    }

    /// The largest first-8-hex-digit value a block key can have.
    pub fn last_sort_value(&self, num_blocks: u32) -> u32 {
        if self.hashed {
            u32::MAX
        } else {
            num_blocks.saturating_sub(1)
        }
    }
}

/// Exactly eight lowercase hex digits.
fn parse_hex8(s: &str) -> Option<u32> {
    if s.len() != 8
        || !s
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_vectors_from_the_facts_file() {
        assert_eq!(block_hash(0), 0xc448b72c);
        assert_eq!(block_hash(1), 0xd211cad9);
        assert_eq!(block_hash(2), 0x7183baa1);
        assert_eq!(block_hash(0x12345678), 0x7fbf2916);
        assert_eq!(block_hash(0xffffffff), 0x0f447858);
    }

    #[test]
    fn names() {
        let plain = KeyFormat {
            prefix: "vol1/".into(),
            hashed: false,
        };
        assert_eq!(plain.block_key(26), "vol1/0000001a");
        assert_eq!(plain.mount_token_key(), "vol1/s3backer-mounted");
        let hashed = KeyFormat {
            prefix: String::new(),
            hashed: true,
        };
        assert_eq!(hashed.block_key(1), "d211cad9-00000001");
    }

    #[test]
    fn parsing_accepts_only_exact_block_names() {
        let plain = KeyFormat {
            prefix: "p/".into(),
            hashed: false,
        };
        assert_eq!(plain.parse_block_key("p/0000001a", 100), Some(26));
        for bad in [
            "p/0000001A",
            "p/0000001a.x",
            "p/000001a",
            "q/0000001a",
            "0000001a",
            "p/s3backer-mounted",
        ] {
            assert_eq!(plain.parse_block_key(bad, 100), None, "{bad}");
        }
        assert_eq!(
            plain.parse_block_key("p/00000064", 100),
            None,
            "beyond num_blocks"
        );
        let hashed = KeyFormat {
            prefix: String::new(),
            hashed: true,
        };
        assert_eq!(hashed.parse_block_key("d211cad9-00000001", 10), Some(1));
        assert_eq!(
            hashed.parse_block_key("d211cad8-00000001", 10),
            None,
            "wrong hash"
        );
        assert_eq!(hashed.parse_block_key("00000001", 10), None);
        for b in [0, 5, 9] {
            assert_eq!(hashed.parse_block_key(&hashed.block_key(b), 10), Some(b));
        }
    }

    #[test]
    fn sort_values() {
        let hashed = KeyFormat {
            prefix: "x".into(),
            hashed: true,
        };
        assert_eq!(hashed.sort_value("xd211cad9-00000001"), Some(0xd211cad9));
        assert_eq!(hashed.last_sort_value(10), u32::MAX);
        let plain = KeyFormat {
            prefix: String::new(),
            hashed: false,
        };
        assert_eq!(plain.last_sort_value(10), 9);
    }
}
