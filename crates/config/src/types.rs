//! The validated configuration: what every other crate reads.
//!
//! Parsing (`args.rs`, `raw.rs`, `resolve.rs`, driven by `flags.rs`) produces exactly one
//! [`Config`]; nothing downstream looks at raw flag strings again. Values here are resolved
//! (credentials read, defaults applied, sizes checked) except the geometry, which may still
//! have to come from the bucket (auto-detection happens in the store crate, because it needs
//! the network).

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// A secret string (access key, password). `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself; call sites are few and deliberate.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// How requests are signed (`--authVersion`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthVersion {
    /// AWS signature version 2 (`aws2`).
    V2,
    /// AWS signature version 4 (`aws4`, default).
    V4,
}

/// What SigV4 puts in `x-amz-content-sha256` for a request with a body (`--payloadHash`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadHash {
    /// `auto` (default): `UNSIGNED-PAYLOAD` over HTTPS (TLS protects the body on the way and
    /// the server checks its CRC-32); over plain HTTP the SHA-256 until a PUT's answer shows the
    /// server checks our CRC-32 (it returns it), `UNSIGNED-PAYLOAD` from then on.
    Auto,
    /// `sha256`: always the body's SHA-256, as s3backer does.
    Sha256,
    /// `unsigned`: always `UNSIGNED-PAYLOAD`.
    Unsigned,
}

/// Where credentials came from; logged (never the key itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialSource {
    /// `--accessId` with `--accessKey`.
    Flags,
    /// `--accessKeyEnv=VAR`.
    EnvVar(String),
    /// An `id:key` line of this access file.
    AccessFile(PathBuf),
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`).
    AwsEnvironment,
}

/// Resolved credentials. `None` in [`S3Settings::credentials`] means anonymous requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// Access key id.
    pub access_id: String,
    /// Secret access key.
    pub access_key: Secret,
    /// Session token (`x-amz-security-token`), from `AWS_SESSION_TOKEN`.
    pub session_token: Option<Secret>,
    /// Where these came from.
    pub source: CredentialSource,
}

/// Everything the S3 client needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Settings {
    /// Base URL, always ending in `/` (`--baseURL`, or derived from `--region`/`--ssl`).
    pub base_url: String,
    /// Whether `--baseURL` was given explicitly.
    pub base_url_explicit: bool,
    /// Signing region (`--region`, default `us-east-1`).
    pub region: String,
    /// Virtual-hosted style URLs (`--vhost`, or implied by `--region` unless `--no-vhost`).
    pub vhost: bool,
    /// Request signing version.
    pub auth_version: AuthVersion,
    /// `--payloadHash`.
    pub payload_hash: PayloadHash,
    /// Resolved credentials; `None` = anonymous.
    pub credentials: Option<Credentials>,
    /// `--cacert`: extra CA bundle (PEM) to trust.
    pub cacert: Option<PathBuf>,
    /// `--insecure`: do not verify the server certificate.
    pub insecure: bool,
    /// `--http11` (we only speak HTTP/1.1 anyway; kept for compatibility).
    pub http11: bool,
    /// `--noCurlCache`: never reuse connections.
    pub no_connection_reuse: bool,
    /// `--contentMD5`: send `Content-MD5` on block PUTs even when SigV4's signed payload hash
    /// already protects the body (always sent with aws2 or anonymous requests).
    pub content_md5: bool,
    /// `--timeout`: limit for one whole attempt, connect included.
    pub timeout: Duration,
    /// `--initialRetryPause`.
    pub initial_retry_pause: Duration,
    /// `--maxRetryPause`: cap on the sum of pauses.
    pub max_retry_pause: Duration,
    /// `--maxUploadSpeed` in bits per second.
    pub max_upload_speed: Option<u64>,
    /// `--maxDownloadSpeed` in bits per second.
    pub max_download_speed: Option<u64>,
    /// `--storageClass` (`x-amz-storage-class`).
    pub storage_class: Option<String>,
    /// `--sse` (`x-amz-server-side-encryption`).
    pub sse: Option<String>,
    /// `--sse-key-id`.
    pub sse_key_id: Option<String>,
    /// `--accessType` (`x-amz-acl`), default `private`.
    pub access_type: String,
    /// `--debug-http`.
    pub debug_http: bool,
}

/// Compression algorithm (`--compress`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompressionAlgorithm {
    /// zlib stream (`deflate` in Content-Encoding), s3backer's default.
    Deflate,
    /// One zstd frame (`zstd`).
    Zstd,
}

/// `--compress` and `--compress-level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompressionSettings {
    /// The algorithm.
    pub algorithm: CompressionAlgorithm,
    /// The level; `None` = the algorithm's default (deflate -1 ≙ 6, zstd 3).
    pub level: Option<i32>,
}

/// `--encrypt`, the password and `--keyLength`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncryptionSettings {
    /// Cipher name as given, upper-cased (`AES-128-CBC` for a bare `--encrypt`); the store checks
    /// it against the ciphers it supports.
    pub cipher: String,
    /// The password (from `--password`, `--passwordFile`, or the terminal).
    pub password: Secret,
    /// `--keyLength`; `None` (or 0 given) = the cipher's natural key length.
    pub key_length: Option<usize>,
}

/// How blocks are encoded in objects.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CodecSettings {
    /// Compression of written blocks (`None`: none, unless encryption implies deflate).
    pub compression: Option<CompressionSettings>,
    /// Encryption of written blocks, and required of read ones.
    pub encryption: Option<EncryptionSettings>,
    /// `--defaultContentEncoding`: assumed when an object has no Content-Encoding.
    pub default_content_encoding: Option<String>,
}

/// The FUSE mount's files (`--filename`, `--statsFilename`, `--fileMode`, `--directIO`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FuseSettings {
    /// Name of the disk file in the mount point (default `file`).
    pub filename: String,
    /// Name of the statistics file (default `stats`).
    pub stats_filename: String,
    /// Permission bits of the disk file (default 0600, 0400 with `--readOnly`).
    pub file_mode: u32,
    /// `--directIO`: FUSE direct_io on the disk file.
    pub direct_io: bool,
}

/// Statistics mirrored to a regular file (`--statsFileMirror`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatsSettings {
    /// The file rewritten with the statistics text, when set.
    pub mirror: Option<PathBuf>,
    /// How often it is rewritten (default 1 s).
    pub mirror_interval: Duration,
}

/// The block cache (`--blockCache*`, `--readAhead*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheSettings {
    /// Capacity in blocks; 0 = no cache (`--blockCacheSize`, default 1000).
    pub size: u32,
    /// Parallel uploads (`--blockCacheThreads`, default 20).
    pub threads: usize,
    /// Longest time a block stays dirty (`--blockCacheWriteDelay`, default 250 ms).
    pub write_delay: Duration,
    /// Longest time a clean block stays cached; `None` = no limit (`--blockCacheTimeout`).
    pub timeout: Option<Duration>,
    /// Most dirty blocks before writers wait; `None` = no limit (`--blockCacheMaxDirty`).
    pub max_dirty: Option<u32>,
    /// `--blockCacheSync`: a write returns only once uploaded.
    pub sync: bool,
    /// Blocks below this number are evicted last (`--blockCacheNumProtected`).
    pub num_protected: u32,
    /// `--blockCacheFile`.
    pub file: Option<PathBuf>,
    /// `--blockCacheRecoverDirtyBlocks`.
    pub recover_dirty: bool,
    /// `--blockCacheNoVerify`.
    pub no_verify: bool,
    /// `--blockCacheFileAdvise`.
    pub file_advise: bool,
    /// `--blockCacheLocalFlush`: FLUSH is durable once the cache file is fsync'd.
    pub local_flush: bool,
    /// `--readAhead` (blocks).
    pub read_ahead: u32,
    /// `--readAheadTrigger` (sequential reads).
    pub read_ahead_trigger: u32,
}

/// The background survey of existing blocks (`--listBlocks`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SurveySettings {
    /// `--listBlocks`: list the bucket at startup.
    pub list_blocks: bool,
    /// `--listBlocksThreads` (default 16).
    pub threads: usize,
}

/// One s3backer flag the `--nbd` wrapper hands to the plugin as `s3b_<name>=<value|true>`.
#[derive(Clone, PartialEq, Eq)]
pub struct PluginFlag {
    /// The flag's name (from the flag table).
    pub name: &'static str,
    /// Its value; `None` for an on/off flag that is on (or a bare `--compress`).
    pub value: Option<String>,
}

impl PluginFlag {
    /// Whether the value is a secret that must never appear on a command line (`ps`).
    pub fn is_secret(&self) -> bool {
        matches!(self.name, "password" | "accessKey")
    }
}

impl fmt::Debug for PluginFlag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.value, self.is_secret()) {
            (None, _) => write!(f, "{}", self.name),
            (Some(_), true) => write!(f, "{}=***", self.name),
            (Some(v), false) => write!(f, "{}={v:?}", self.name),
        }
    }
}

/// `--nbd-max-request`: the device's `max_sectors_kb`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaxRequest {
    /// The disk's block size (the default): a block-aligned request never spans two blocks'
    /// worth of partial writes, and no block is split across requests.
    BlockSize,
    /// Leave the kernel's value (`--nbd-max-request=0`).
    Kernel,
    /// This many bytes (a multiple of 1 KiB, at least 4 KiB).
    Bytes(u64),
}

/// `s3backer --nbd`: how the wrapper runs nbdkit and attaches the device (`crates/cli`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NbdSettings {
    /// The device, as given (`/dev/nbd0`).
    pub device: String,
    /// The bucket argument as given (`bucket[/subdir]`, or the `--test` directory): nbdkit's
    /// `bucket=` parameter.
    pub bucket_arg: String,
    /// Every s3backer flag for the plugin, config files expanded, in order of last appearance;
    /// wrapper-only and FUSE-only flags left out (`-d` shows up here as `debug`).
    pub plugin_flags: Vec<PluginFlag>,
    /// `--nbd-flag` values, in order: nbdkit arguments before the plugin name.
    pub nbdkit_flags: Vec<String>,
    /// `--nbd-param` values, in order: nbdkit arguments after the plugin parameters.
    pub nbdkit_params: Vec<String>,
    /// `--nbd-plugin`: a plugin name or the path of a `.so` (default `s3backer`).
    pub plugin: String,
    /// `--nbd-connections` (nbd-client `-C`, default 4).
    pub connections: u32,
    /// `--nbd-timeout` in seconds (nbd-client `-t`, default 600); `None` = not set.
    pub timeout: Option<u32>,
    /// `--nbd-sector-size` (nbd-client `-b`, default 4096).
    pub sector_size: u32,
    /// `--nbd-max-request`.
    pub max_request: MaxRequest,
}

/// Default `--nbd-connections`.
pub const DEFAULT_NBD_CONNECTIONS: u32 = 4;
/// Upper bound for `--nbd-connections`.
pub const MAX_NBD_CONNECTIONS: u32 = 64;
/// Default `--nbd-timeout` (seconds).
pub const DEFAULT_NBD_TIMEOUT: u32 = 600;
/// Default `--nbd-sector-size`.
pub const DEFAULT_NBD_SECTOR_SIZE: u32 = 4096;
/// Default `--nbd-plugin`.
pub const DEFAULT_NBD_PLUGIN: &str = "s3backer";

/// What the invocation asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Serve the disk: nbdkit plugin, FUSE mount, or the `--nbd` device ([`Config::nbd`]).
    Serve,
    /// `--erase`: delete every block and the mount token.
    Erase,
    /// `--reset-mounted-flag`: delete the mount token.
    ResetMountedFlag,
}

/// The validated configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Bucket name; in `--test` mode the directory path (never split at `/`).
    pub bucket: String,
    /// Effective object-name prefix (`bucket/sub/dir` gives `sub/dir/`; or `--prefix` verbatim).
    pub prefix: String,
    /// `--test`: the bucket is a local directory.
    pub test_mode: bool,
    /// `--test-delays`.
    pub test_delays: bool,
    /// `--test-discard`.
    pub test_discard: bool,
    /// Mount point / device positional, when given.
    pub mount_point: Option<String>,
    /// `--nbd`: attach the disk as a kernel NBD device (then `mount_point` is the device).
    pub nbd: Option<NbdSettings>,
    /// `--blockSize` when given.
    pub block_size: Option<u32>,
    /// `--size` when given.
    pub size: Option<u64>,
    /// `--noAutoDetect`.
    pub no_auto_detect: bool,
    /// `--force`.
    pub force: bool,
    /// `--readOnly`.
    pub read_only: bool,
    /// `--blockHashPrefix`.
    pub block_hash_prefix: bool,
    /// Connection settings (unused in test mode).
    pub s3: S3Settings,
    /// Compression and encryption (empty in test mode, which stores raw blocks).
    pub codec: CodecSettings,
    /// The FUSE mount's files.
    pub fuse: FuseSettings,
    /// Statistics mirroring.
    pub stats: StatsSettings,
    /// The survey of existing blocks.
    pub survey: SurveySettings,
    /// The block cache.
    pub cache: CacheSettings,
    /// `--ioThreads`: bound on block operations in flight (fan-out pool size).
    pub io_threads: usize,
    /// `--debug`.
    pub debug: bool,
    /// `--quiet`.
    pub quiet: bool,
    /// `-f` (foreground).
    pub foreground: bool,
    /// Requested mode.
    pub mode: Mode,
    /// Options meant for FUSE (`-s`, `-o allow_other`, ...), in order; kept for the FUSE front end.
    pub fuse_args: Vec<String>,
    /// Names of every flag that appeared (after config-file expansion), for rules such as
    /// "flag X given explicitly".
    pub explicit: BTreeSet<String>,
    /// Warnings found while parsing (flags accepted without effect, anonymous access, ...),
    /// one line each; this crate never prints, the caller logs them.
    pub warnings: Vec<String>,
}

/// s3backer's default block size when neither the flag nor the bucket says.
pub const DEFAULT_BLOCK_SIZE: u32 = 4096;
