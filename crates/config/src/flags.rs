//! The flag table: one [`FlagDef`] per s3backer flag, and the only place a flag is described.
//!
//! Parsing (`raw.rs`), value checks and support answers (`resolve.rs`), `--help` (`help.rs`)
//! and the nbdkit `key=value` mapping (`nbdkit.rs`) all read this table, so adding a flag
//! means adding one entry here (and its test in `tests/flags.rs`, which fails for a flag
//! without one).

use crate::size;

/// How a flag takes its argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `--name` (we also accept `--name=true|false|yes|no|1|0`).
    Bool,
    /// `--name=value`; the `=` is mandatory.
    Value,
    /// Either `--name` or `--name=value` (`compress`, `encrypt`).
    BoolOrValue,
}

/// Topic a flag is listed under in `--help`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Group {
    /// Bucket layout and disk geometry.
    Target,
    /// Endpoint, TLS and signing.
    Connection,
    /// Where the access key comes from.
    Credentials,
    /// Timeouts, retries, speed limits, parallelism.
    Requests,
    /// Headers sent with each object.
    ObjectOptions,
    /// What the invocation does (read-only, erase, test backend, config files).
    Modes,
    /// Diagnostics.
    Logging,
    /// Options of the FUSE mount.
    Fuse,
    /// Compression and encryption.
    Codec,
    /// Block cache, read-ahead and MD5 cache.
    Cache,
    /// Block survey and stats file.
    Other,
    /// `s3backer --nbd`: the kernel NBD device.
    Nbd,
}

impl Group {
    /// Every group, in `--help` order.
    pub const ALL: [Group; 12] = [
        Group::Target,
        Group::Connection,
        Group::Credentials,
        Group::Requests,
        Group::ObjectOptions,
        Group::Modes,
        Group::Logging,
        Group::Fuse,
        Group::Codec,
        Group::Cache,
        Group::Other,
        Group::Nbd,
    ];

    /// Heading used in `--help`.
    pub fn title(self) -> &'static str {
        match self {
            Group::Target => "Target and geometry",
            Group::Connection => "S3 connection",
            Group::Credentials => "Credentials",
            Group::Requests => "Requests and retries",
            Group::ObjectOptions => "Object options",
            Group::Modes => "Modes",
            Group::Logging => "Logging",
            Group::Fuse => "FUSE mount (accepted and ignored by the nbdkit plugin)",
            Group::Codec => "Compression and encryption",
            Group::Cache => "Cache (not supported yet)",
            Group::Other => "Survey and stats file",
            Group::Nbd => "NBD device (s3backer --nbd [flags] bucket[/subdir] /dev/nbdX)",
        }
    }
}

/// What this release does with a flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    /// Implemented.
    Yes,
    /// Only means something to a FUSE mount; accepted (value checked) and otherwise inert.
    FuseOnly,
    /// A standalone command-line mode; rejected as an nbdkit parameter.
    CommandLineOnly,
    /// Only means something to `s3backer --nbd` (the wrapper itself, never the plugin): an error
    /// without `--nbd` and as an nbdkit parameter.
    NbdOnly,
    /// Accepted with this warning, which follows the flag's name (the original accepts it and
    /// it has no effect either).
    Warn(&'static str),
    /// Not in this release: an error naming `feature`, except that the value `noop` (what we do
    /// anyway) is accepted. Boolean flags given as `false` never get here: false = not given.
    NotYet {
        /// The planned feature, for the error message.
        feature: &'static str,
        /// A value that asks for exactly what we do without the feature (`0` for a cache size).
        noop: Option<&'static str>,
    },
}

/// Syntax check applied to a flag's value wherever the flag came from (even for flags that are
/// then refused as not supported yet, so a typo is reported as a typo).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// Anything, including the empty string.
    Any,
    /// Any non-empty string.
    NonEmpty,
    /// A size ([`crate::parse_size`]).
    Size,
    /// A size that is a power of two and at most 2^31.
    BlockSize,
    /// Unsigned decimal integer that fits in 32 bits.
    Uint,
    /// Like `Uint`, but at least 1.
    Positive,
    /// Signed decimal integer that fits in 32 bits.
    Int,
    /// Octal permission bits (at most `7777`).
    Octal,
    /// One of these exact words.
    OneOf(&'static [&'static str]),
    /// An `--ipTOS` name or a C-style integer 0..255.
    IpTos,
    /// `http://` or `https://`, non-empty host, ending in `/`.
    Url,
    /// A region name: letters, digits, `-`, `_`, `.`.
    Region,
    /// A non-empty file name without `/`.
    FileName,
    /// A file name without `/`, possibly empty.
    NoSlash,
}

/// One flag.
#[derive(Debug)]
pub struct FlagDef {
    /// Name, spelled exactly as on s3backer's command line (without `--`).
    pub name: &'static str,
    /// Argument style.
    pub kind: Kind,
    /// Placeholder for the value in `--help` (empty for booleans).
    pub arg: &'static str,
    /// Value syntax.
    pub check: Check,
    /// `--help` topic.
    pub group: Group,
    /// Default shown in `--help`, if worth showing.
    pub default: Option<&'static str>,
    /// One line of help.
    pub help: &'static str,
    /// What this release does with it.
    pub support: Support,
}

/// `--accessType` values.
pub const ACCESS_TYPES: &[&str] = &[
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
];
/// `--storageClass` values.
pub const STORAGE_CLASSES: &[&str] = &[
    "STANDARD",
    "STANDARD_IA",
    "ONEZONE_IA",
    "REDUCED_REDUNDANCY",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "DEEP_ARCHIVE",
    "OUTPOSTS",
];
/// `--sse` values.
pub const SSE_TYPES: &[&str] = &["AES256", "aws:kms"];
/// `--nbd-sector-size` values: what the kernel accepts as a logical block size.
pub const NBD_SECTOR_SIZES: &[&str] = &["512", "1024", "2048", "4096"];
/// `--authVersion` values.
pub const AUTH_VERSIONS: &[&str] = &["aws2", "aws4"];
/// Values of `--payloadHash`.
pub const PAYLOAD_HASHES: &[&str] = &["auto", "sha256", "unsigned"];

const MD5: &str = "MD5 cache";
const IAM: &str = "EC2 IAM credentials";
const SHARED: &str = "shared disk mode";
const IP_TOS: &str = "IP type-of-service";

const fn not_yet(feature: &'static str) -> Support {
    Support::NotYet {
        feature,
        noop: None,
    }
}

const fn not_yet_unless_zero(feature: &'static str) -> Support {
    Support::NotYet {
        feature,
        noop: Some("0"),
    }
}

const fn value(
    name: &'static str,
    arg: &'static str,
    check: Check,
    group: Group,
    help: &'static str,
) -> FlagDef {
    FlagDef {
        name,
        kind: Kind::Value,
        arg,
        check,
        group,
        default: None,
        help,
        support: Support::Yes,
    }
}

const fn boolean(name: &'static str, group: Group, help: &'static str) -> FlagDef {
    FlagDef {
        name,
        kind: Kind::Bool,
        arg: "",
        check: Check::Any,
        group,
        default: None,
        help,
        support: Support::Yes,
    }
}

impl FlagDef {
    const fn default(mut self, default: &'static str) -> Self {
        self.default = Some(default);
        self
    }
    const fn support(mut self, support: Support) -> Self {
        self.support = support;
        self
    }
    const fn bool_or_value(mut self) -> Self {
        self.kind = Kind::BoolOrValue;
        self
    }
}

use Check as C;
use Group as G;

/// Every flag, in `--help` order within each group.
#[rustfmt::skip]
pub static FLAGS: &[FlagDef] = &[
    // Target and geometry.
    value("prefix", "STR", C::Any, G::Target, "object-name prefix, used verbatim (no '/' added)").default("\"\""),
    boolean("blockHashPrefix", G::Target, "prefix object names with a hash of the block number (use consistently)"),
    value("blockSize", "SIZE", C::BlockSize, G::Target, "block size: a power of two, at most 2g").default("auto-detected, else 4k"),
    value("size", "SIZE", C::Size, G::Target, "disk size: a multiple of the block size, fewer than 2^32 blocks").default("auto-detected"),
    boolean("noAutoDetect", G::Target, "do not read size and block size from the bucket (then --size is required)"),
    // S3 connection.
    value("baseURL", "URL", C::Url, G::Connection, "S3 endpoint: http:// or https://, ending in '/'").default("http://s3.amazonaws.com/"),
    value("region", "REGION", C::Region, G::Connection, "signing region; also picks the default endpoint and turns on --vhost").default("us-east-1"),
    boolean("vhost", G::Connection, "virtual-hosted style URLs (bucket in the host name)"),
    boolean("no-vhost", G::Connection, "path style URLs even with --region (last of --vhost/--no-vhost wins)"),
    boolean("ssl", G::Connection, "use https:// for the default endpoint"),
    value("cacert", "FILE", C::NonEmpty, G::Connection, "extra CA certificates (PEM) to trust"),
    boolean("insecure", G::Connection, "do not verify the server's certificate"),
    boolean("http11", G::Connection, "use HTTP/1.1 (always the case; kept for compatibility)"),
    boolean("noCurlCache", G::Connection, "never reuse connections"),
    boolean("contentMD5", G::Connection, "also send Content-MD5 on block writes signed with aws4, as s3backer does (one more hash per block)"),
    value("authVersion", "aws2|aws4", C::OneOf(AUTH_VERSIONS), G::Connection, "request signature version").default("aws4"),
    value("payloadHash", "auto|sha256|unsigned", C::OneOf(PAYLOAD_HASHES), G::Connection, "aws4 body hash: sha256 signs it, unsigned relies on TLS and the CRC-32 checksum; auto = unsigned over https, and over http once the server returns our CRC-32").default("auto"),
    value("ipTOS", "TOS", C::IpTos, G::Connection, "IP type of service: lowdelay, throughput, reliability, lowcost, mincost or 0..255").support(not_yet(IP_TOS)),
    // Credentials.
    value("accessId", "ID", C::Any, G::Credentials, "access key id; empty = anonymous requests").default("from the access file or AWS_ACCESS_KEY_ID"),
    value("accessKey", "KEY", C::Any, G::Credentials, "secret access key (needs --accessId)").default("from the access file"),
    value("accessKeyEnv", "VAR", C::NonEmpty, G::Credentials, "read the secret access key from this environment variable"),
    value("accessFile", "FILE", C::NonEmpty, G::Credentials, "file of id:key lines").default("$HOME/.s3backer_passwd"),
    value("accessEC2IAM", "ROLE", C::NonEmpty, G::Credentials, "fetch credentials for this IAM role from the EC2 instance metadata").support(not_yet(IAM)),
    boolean("accessEC2IAM-IMDSv2", G::Credentials, "use the IMDSv2 token flow with --accessEC2IAM").support(not_yet(IAM)),
    // Requests and retries.
    value("timeout", "SECONDS", C::Positive, G::Requests, "limit for one whole HTTP attempt, connect included").default("30"),
    value("initialRetryPause", "MILLIS", C::Uint, G::Requests, "first pause before a retry; doubles each time").default("200"),
    value("maxRetryPause", "MILLIS", C::Uint, G::Requests, "give up once the pauses add up to this").default("30000"),
    value("maxUploadSpeed", "BITS/S", C::Size, G::Requests, "upload speed cap per transfer, bits per second (size suffixes allowed)").default("unlimited"),
    value("maxDownloadSpeed", "BITS/S", C::Size, G::Requests, "download speed cap per transfer, bits per second (size suffixes allowed)").default("unlimited"),
    value("ioThreads", "N", C::Positive, G::Requests, "block operations one request may run in parallel (bounds S3 requests in flight)").default("32"),
    // Object options.
    value("accessType", "ACL", C::OneOf(ACCESS_TYPES), G::ObjectOptions, "x-amz-acl for written blocks: private, public-read, public-read-write, authenticated-read").default("private"),
    value("storageClass", "CLASS", C::OneOf(STORAGE_CLASSES), G::ObjectOptions, "x-amz-storage-class: STANDARD, STANDARD_IA, ONEZONE_IA, REDUCED_REDUNDANCY, INTELLIGENT_TIERING, GLACIER, DEEP_ARCHIVE, OUTPOSTS"),
    value("sse", "AES256|aws:kms", C::OneOf(SSE_TYPES), G::ObjectOptions, "server-side encryption"),
    boolean("rrs", G::ObjectOptions, "deprecated s3backer 1.x flag: same as --storageClass=REDUCED_REDUNDANCY").support(Support::Warn("is deprecated (s3backer 1.x): use --storageClass=REDUCED_REDUNDANCY")),
    value("sse-key-id", "ID", C::NonEmpty, G::ObjectOptions, "KMS key id; required with --sse=aws:kms, only then"),
    // Modes.
    boolean("readOnly", G::Modes, "refuse writes; never write the mounted flag"),
    boolean("force", G::Modes, "ignore a size mismatch or an \"already mounted\" flag; do not ask before --erase"),
    boolean("erase", G::Modes, "delete every block and the mounted flag, then exit (no mount point)").support(Support::CommandLineOnly),
    boolean("reset-mounted-flag", G::Modes, "clear the \"already mounted\" flag, then exit (no mount point)").support(Support::CommandLineOnly),
    boolean("test", G::Modes, "the bucket argument is a local directory (testing backend)"),
    boolean("test-delays", G::Modes, "--test: random 0-199 ms delay before each read and write"),
    boolean("test-discard", G::Modes, "--test: reads return zeros, writes are dropped"),
    boolean("test-errors", G::Modes, "--test: random errors (no effect, as in s3backer)").support(Support::Warn("has no effect (as in s3backer)")),
    value("configFile", "FILE", C::NonEmpty, G::Modes, "read more arguments from FILE, one per line (also -F FILE, -o configFile=FILE)"),
    boolean("sharedDiskMode", G::Modes, "for cluster filesystems: no caches, special mounted flag").support(not_yet(SHARED)),
    // Logging.
    boolean("debug", G::Logging, "debug messages (each request, the configuration)"),
    boolean("debug-http", G::Logging, "log HTTP details and error response bodies"),
    boolean("quiet", G::Logging, "no startup progress messages"),
    // FUSE mount.
    value("filename", "NAME", C::FileName, G::Fuse, "name of the disk file in the mount").default("file").support(Support::FuseOnly),
    value("statsFilename", "NAME", C::NoSlash, G::Fuse, "name of the statistics file in the mount").default("stats").support(Support::FuseOnly),
    value("fileMode", "OCTAL", C::Octal, G::Fuse, "permission bits of the disk file").default("0600, 0400 with --readOnly").support(Support::FuseOnly),
    boolean("directIO", G::Fuse, "FUSE direct_io on the disk file").support(Support::FuseOnly),
    // Compression and encryption.
    value("compress", "ALG|LEVEL", C::Any, G::Codec, "compress blocks: deflate (bare flag), zstd, or a deflate level").bool_or_value().default("off"),
    value("compress-level", "LEVEL", C::Int, G::Codec, "compression level (with --compress=ALG): deflate -1, 0..9; zstd up to 22").default("deflate -1 (= 6), zstd 3"),
    value("encrypt", "CIPHER", C::Any, G::Codec, "encrypt blocks: AES-128-CBC (bare flag), AES-192-CBC or AES-256-CBC; implies --compress").bool_or_value().default("off"),
    value("password", "PASSWORD", C::Any, G::Codec, "encryption password (visible in ps: prefer --passwordFile)").default("asked on the terminal"),
    value("passwordFile", "FILE", C::NonEmpty, G::Codec, "read the encryption password from the first line of FILE"),
    value("keyLength", "N", C::Uint, G::Codec, "encryption key length in bytes, up to 64").default("the cipher's"),
    value("defaultContentEncoding", "STR", C::NonEmpty, G::Codec, "Content-Encoding assumed when a block has none"),
    // Cache.
    value("blockCacheSize", "BLOCKS", C::Uint, G::Cache, "block cache size in blocks; 0 disables the cache").default("1000"),
    value("blockCacheThreads", "N", C::Positive, G::Cache, "parallel uploads of dirty blocks").default("20"),
    value("blockCacheWriteDelay", "MILLIS", C::Uint, G::Cache, "longest time a block stays dirty before it is uploaded; 0 = at once").default("250"),
    value("blockCacheTimeout", "MILLIS", C::Uint, G::Cache, "longest time a clean block stays cached; 0 = no limit").default("0"),
    value("blockCacheMaxDirty", "BLOCKS", C::Uint, G::Cache, "most dirty blocks before writers wait; 0 = no limit").default("0"),
    boolean("blockCacheSync", G::Cache, "a write returns only once uploaded (needs --blockCacheWriteDelay=0)"),
    value("blockCacheNumProtected", "N", C::Uint, G::Cache, "blocks below N are evicted last").default("0"),
    value("blockCacheFile", "FILE", C::NonEmpty, G::Cache, "keep the cache (data and dirty blocks) in this file instead of memory").default("in memory"),
    boolean("blockCacheRecoverDirtyBlocks", G::Cache, "after a crash, upload the dirty blocks found in the cache file (without it, such a file stops the start)"),
    boolean("blockCacheNoVerify", G::Cache, "trust clean blocks in the cache file without checking them against the bucket"),
    boolean("blockCacheFileAdvise", G::Cache, "posix_fadvise(DONTNEED) after each cache-file data access"),
    boolean("blockCacheLocalFlush", G::Cache, "FLUSH returns once data is fsync'd in the cache file; uploads follow in flush order (needs --blockCacheFile)"),
    value("readAhead", "BLOCKS", C::Uint, G::Cache, "blocks to read ahead of a sequential reader").default("4 (FUSE), 0 (nbdkit)"),
    value("readAheadTrigger", "N", C::Uint, G::Cache, "sequential block reads before read-ahead starts").default("2 (FUSE), 0 (nbdkit)"),
    value("md5CacheSize", "BLOCKS", C::Uint, G::Cache, "MD5 cache size (eventual consistency protection); only 0 is accepted").default("0").support(not_yet_unless_zero(MD5)),
    value("md5CacheTime", "MILLIS", C::Uint, G::Cache, "MD5 cache entry lifetime; only 0 is accepted").default("0").support(not_yet_unless_zero(MD5)),
    value("minWriteDelay", "MILLIS", C::Uint, G::Cache, "least time between writes of a block; only 0 is accepted").default("0").support(not_yet_unless_zero(MD5)),
    // Survey and stats file.
    boolean("listBlocks", G::Other, "survey existing blocks in the background at startup (the disk serves I/O meanwhile)"),
    value("listBlocksThreads", "N", C::Positive, G::Other, "parallel listings for --listBlocks").default("16"),
    value("statsFileMirror", "PATH", C::NonEmpty, G::Other, "keep a copy of the statistics in this file"),
    value("statsFileMirrorInterval", "MILLIS", C::Positive, G::Other, "how often to rewrite --statsFileMirror").default("1000"),
    // NBD device.
    boolean("nbd", G::Nbd, "attach the disk as the kernel block device /dev/nbdX (nbdkit + nbd-client); give it first, not in a config file").support(Support::NbdOnly),
    value("nbd-flag", "ARG", C::NonEmpty, G::Nbd, "extra nbdkit argument before the plugin name (repeatable)").support(Support::NbdOnly),
    value("nbd-param", "ARG", C::NonEmpty, G::Nbd, "extra nbdkit argument after the plugin parameters (repeatable)").support(Support::NbdOnly),
    value("nbd-plugin", "NAME|PATH", C::NonEmpty, G::Nbd, "nbdkit plugin: a name in nbdkit's plugin directory, or the path of the .so").default("s3backer").support(Support::NbdOnly),
    value("nbd-connections", "N", C::Positive, G::Nbd, "connections from the kernel to nbdkit, used in parallel (nbd-client -C), at most 64").default("4").support(Support::NbdOnly),
    value("nbd-timeout", "SECONDS", C::Uint, G::Nbd, "kernel request timeout (nbd-client -t): an unanswered request drops its connection; 0 = not set (the kernel then gives up after 30 s)").default("600").support(Support::NbdOnly),
    value("nbd-sector-size", "BYTES", C::OneOf(NBD_SECTOR_SIZES), G::Nbd, "logical sector size of the device (nbd-client -b): 512, 1024, 2048 or 4096").default("4096").support(Support::NbdOnly),
    value("nbd-max-request", "SIZE", C::Any, G::Nbd, "largest request the kernel sends (the device's max_sectors_kb); 0 = the kernel's default").default("the block size").support(Support::NbdOnly),
];

/// The flag with exactly this name.
pub fn lookup(name: &str) -> Option<&'static FlagDef> {
    FLAGS.iter().find(|f| f.name == name)
}

/// A flag that `name` probably meant: same name ignoring case, else the closest name within
/// edit distance 2 (ties go to the earlier table entry).
pub fn suggest(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    if let Some(f) = FLAGS.iter().find(|f| f.name.eq_ignore_ascii_case(name)) {
        return Some(f.name);
    }
    FLAGS
        .iter()
        .map(|f| (edit_distance(&lower, &f.name.to_ascii_lowercase()), f.name))
        .filter(|&(d, _)| d <= 2)
        .min_by_key(|&(d, _)| d)
        .map(|(_, n)| n)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        for (j, &cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != cb);
            cur.push(substitute.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Parses a boolean word (`true|false|yes|no|1|0`, any case).
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Some(true),
        "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

/// For `compress`/`encrypt`: only words are booleans, because `--compress=1` is a deflate level.
pub(crate) fn parse_bool_word(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "yes" => Some(true),
        "false" | "no" => Some(false),
        _ => None,
    }
}

/// Unsigned decimal (`%u`), digits only.
pub(crate) fn parse_uint(s: &str) -> Result<u32, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "invalid value {s:?}: expected an unsigned decimal integer"
        ));
    }
    s.parse::<u32>()
        .map_err(|_| format!("invalid value {s:?}: too large (at most {})", u32::MAX))
}

fn parse_int(s: &str) -> Result<i32, String> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid value {s:?}: expected a decimal integer"));
    }
    s.parse::<i32>()
        .map_err(|_| format!("invalid value {s:?}: out of range"))
}

pub(crate) fn parse_octal(s: &str) -> Result<u32, String> {
    let bad = || format!("invalid value {s:?}: expected octal permission bits such as 0644");
    if s.is_empty() || !s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(bad());
    }
    match u32::from_str_radix(s, 8) {
        Ok(v) if v <= 0o7777 => Ok(v),
        _ => Err(bad()),
    }
}

/// `--ipTOS`: a name, or an integer in C `strtol(…, 0)` syntax (decimal, `0x` hex, `0` octal).
pub(crate) fn parse_ip_tos(s: &str) -> Result<u8, String> {
    match s {
        "lowdelay" => return Ok(0x10),
        "throughput" => return Ok(0x08),
        "reliability" => return Ok(0x04),
        "lowcost" | "mincost" => return Ok(0x02),
        _ => {}
    }
    let parsed = if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u32::from_str_radix(hex, 16).ok()
    } else if s.len() > 1 && s.starts_with('0') {
        u32::from_str_radix(&s[1..], 8).ok()
    } else if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse::<u32>().ok()
    } else {
        None
    };
    match parsed.map(u8::try_from) {
        Some(Ok(v)) => Ok(v),
        Some(Err(_)) => Err(format!("invalid value {s:?}: must be 0..255")),
        None => Err(format!(
            "invalid value {s:?}: expected lowdelay, throughput, reliability, lowcost, mincost or an integer 0..255"
        )),
    }
}

/// Checks a `--baseURL`: scheme, non-empty host, trailing `/`.
pub(crate) fn check_url(s: &str) -> Result<(), String> {
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))
        .ok_or_else(|| format!("invalid URL {s:?}: must start with http:// or https://"))?;
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() {
        return Err(format!("invalid URL {s:?}: empty host name"));
    }
    if !s.ends_with('/') {
        return Err(format!("invalid URL {s:?}: must end with '/'"));
    }
    Ok(())
}

impl Check {
    /// Checks `value`; the error describes the value, not the flag.
    pub fn check(self, value: &str) -> Result<(), String> {
        match self {
            Check::Any => Ok(()),
            Check::NonEmpty => {
                if value.is_empty() {
                    Err("empty value".to_owned())
                } else {
                    Ok(())
                }
            }
            Check::Size => size::parse_size(value).map(drop),
            Check::BlockSize => size::parse_block_size(value).map(drop),
            Check::Uint => parse_uint(value).map(drop),
            Check::Positive => match parse_uint(value)? {
                0 => Err(format!("invalid value {value:?}: must be at least 1")),
                _ => Ok(()),
            },
            Check::Int => parse_int(value).map(drop),
            Check::Octal => parse_octal(value).map(drop),
            Check::OneOf(words) => {
                if words.contains(&value) {
                    Ok(())
                } else {
                    Err(format!(
                        "invalid value {value:?}: must be one of {}",
                        words.join(", ")
                    ))
                }
            }
            Check::IpTos => parse_ip_tos(value).map(drop),
            Check::Url => check_url(value),
            Check::Region => {
                let ok = !value.is_empty()
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
                if ok {
                    Ok(())
                } else {
                    Err(format!(
                        "invalid region {value:?}: only letters, digits, '-', '_' and '.' are allowed"
                    ))
                }
            }
            Check::FileName => {
                if value.is_empty() || value.contains('/') {
                    Err(format!(
                        "invalid file name {value:?}: must be non-empty and contain no '/'"
                    ))
                } else {
                    Ok(())
                }
            }
            Check::NoSlash => {
                if value.contains('/') {
                    Err(format!("invalid file name {value:?}: must not contain '/'"))
                } else {
                    Ok(())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_well_formed() {
        let mut seen = std::collections::BTreeSet::new();
        for f in FLAGS {
            assert!(seen.insert(f.name), "duplicate flag {}", f.name);
            assert!(!f.help.is_empty() && !f.help.contains('\n'), "{}", f.name);
            assert_eq!(f.kind == Kind::Bool, f.arg.is_empty(), "{}", f.name);
            assert!(
                !f.name.starts_with('-') && !f.name.contains('='),
                "{}",
                f.name
            );
        }
    }

    #[test]
    fn lookup_is_exact() {
        assert!(lookup("blockSize").is_some());
        assert!(lookup("blocksize").is_none());
        assert!(lookup("accessEC2IAM-IMDSv2").is_some());
        assert!(lookup("sse-key-id").is_some());
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("blocksize"), Some("blockSize"));
        assert_eq!(suggest("blokSize"), Some("blockSize"));
        assert_eq!(suggest("readonly"), Some("readOnly"));
        assert_eq!(suggest("ss-key-id"), Some("sse-key-id"));
        assert_eq!(suggest("frobnicate"), None);
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn booleans() {
        for t in ["true", "TRUE", "Yes", "1"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["false", "No", "0"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        assert_eq!(parse_bool("on"), None);
        assert_eq!(parse_bool_word("1"), None);
        assert_eq!(parse_bool_word("False"), Some(false));
    }

    #[test]
    fn integers() {
        assert_eq!(parse_uint("0"), Ok(0));
        assert_eq!(parse_uint("4294967295"), Ok(u32::MAX));
        assert!(parse_uint("4294967296").is_err());
        assert!(parse_uint("-1").is_err());
        assert!(parse_uint("+1").is_err());
        assert!(parse_uint("").is_err());
        assert!(parse_uint("1.0").is_err());
        assert_eq!(parse_int("-1"), Ok(-1));
        assert!(parse_int("-").is_err());
        assert_eq!(parse_octal("0644"), Ok(0o644));
        assert_eq!(parse_octal("7777"), Ok(0o7777));
        assert!(parse_octal("0888").is_err());
        assert!(parse_octal("17777").is_err());
    }

    #[test]
    fn ip_tos_values() {
        assert_eq!(parse_ip_tos("lowdelay"), Ok(0x10));
        assert_eq!(parse_ip_tos("mincost"), Ok(0x02));
        assert_eq!(parse_ip_tos("0x10"), Ok(16));
        assert_eq!(parse_ip_tos("010"), Ok(8));
        assert_eq!(parse_ip_tos("255"), Ok(255));
        assert_eq!(parse_ip_tos("0"), Ok(0));
        assert!(parse_ip_tos("256").unwrap_err().contains("0..255"));
        assert!(parse_ip_tos("fast").unwrap_err().contains("lowdelay"));
        assert!(parse_ip_tos("").is_err());
        assert!(parse_ip_tos("09").is_err());
    }

    #[test]
    fn urls() {
        assert!(check_url("http://s3.amazonaws.com/").is_ok());
        assert!(check_url("https://localhost:9000/path/").is_ok());
        assert!(check_url("ftp://x/").unwrap_err().contains("http://"));
        assert!(check_url("http:///").unwrap_err().contains("empty host"));
        assert!(check_url("http://x").unwrap_err().contains("end with '/'"));
    }

    #[test]
    fn checks() {
        assert!(Check::NonEmpty.check("").is_err());
        assert!(Check::Positive.check("0").is_err());
        assert!(Check::Positive.check("1").is_ok());
        assert!(Check::Region.check("eu-west-1").is_ok());
        assert!(Check::Region.check("a/b").is_err());
        assert!(Check::FileName.check("").is_err());
        assert!(Check::FileName.check("a/b").is_err());
        assert!(Check::NoSlash.check("").is_ok());
        assert!(Check::OneOf(AUTH_VERSIONS).check("aws3").is_err());
    }
}
