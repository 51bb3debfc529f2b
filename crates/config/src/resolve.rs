//! From [`RawArgs`] to a validated [`Config`]: value syntax and support status of every flag
//! (in order of appearance, so the first problem on the command line is the one reported),
//! then the cross-flag rules: mode, bucket/subdir/prefix, geometry, endpoint, credentials.
//!
//! Every rule lives here once; the nbdkit front end builds an argument list and comes through
//! the same path.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::args::Origin;
use crate::credentials::{self, CredentialArgs};
use crate::env::Environment;
use crate::error::{ConfigError, ErrorKind};
use crate::flags::{self, Support};
use crate::raw::{Front, RawArgs, Setting};
use crate::size::{self, format_size};
use crate::types::{
    AuthVersion, CacheSettings, Config, CredentialSource, Credentials, DEFAULT_BLOCK_SIZE,
    FuseSettings, Mode, PayloadHash, S3Settings, StatsSettings, SurveySettings,
};

/// Default `--ioThreads`.
pub const DEFAULT_IO_THREADS: usize = 32;
/// Upper bound for `--ioThreads`: each one may hold a block buffer and a connection.
pub const MAX_IO_THREADS: u32 = 1024;
/// Default `--region`.
pub const DEFAULT_REGION: &str = "us-east-1";

const DEFAULT_TIMEOUT_SECS: u32 = 30;
const DEFAULT_INITIAL_RETRY_PAUSE_MS: u32 = 200;
const DEFAULT_MAX_RETRY_PAUSE_MS: u32 = 30_000;

/// Resolves sorted arguments. `plugin_bucket` is the nbdkit `bucket=` parameter.
pub(crate) fn resolve(
    raw: RawArgs,
    front: Front,
    plugin_bucket: Option<(String, Origin)>,
    env: &Environment,
) -> Result<Config, ConfigError> {
    let mut warnings = Vec::new();
    check_flags(&raw, front, &mut warnings)?;
    let mode = mode(&raw)?;
    let test_mode = raw.has("test");
    let (bucket_arg, mount_point) = positionals(&raw, front, plugin_bucket, &mode, &mut warnings)?;
    let nbd = match (&mount_point, raw.nbd) {
        (Some(device), true) => Some(crate::nbd::settings(
            &raw,
            &bucket_arg.0,
            device,
            &mut warnings,
        )?),
        _ => None,
    };
    let (bucket, prefix) = bucket_and_prefix(&raw, front, &bucket_arg, test_mode)?;
    let geometry = geometry(&raw, front, test_mode)?;
    let s3 = s3_settings(&raw, front, &geometry, test_mode, env, &mut warnings)?;
    let codec = crate::codec::codec_settings(&raw, front, test_mode, env, &mut warnings)?;
    let read_only = raw.has("readOnly");
    let fuse = FuseSettings {
        filename: raw.text("filename").unwrap_or("file").to_owned(),
        stats_filename: raw.text("statsFilename").unwrap_or("stats").to_owned(),
        file_mode: match get(&raw, "fileMode", flags::parse_octal)? {
            Some((mode, _)) => mode,
            None if read_only => 0o400,
            None => 0o600,
        },
        direct_io: raw.has("directIO"),
    };
    let stats = StatsSettings {
        mirror: raw.text("statsFileMirror").map(PathBuf::from),
        mirror_interval: Duration::from_millis(
            get(&raw, "statsFileMirrorInterval", flags::parse_uint)?
                .map_or(1000, |(ms, _)| u64::from(ms)),
        ),
    };
    let cache = cache_settings(&raw, front, &mut warnings)?;
    let survey = SurveySettings {
        list_blocks: raw.has("listBlocks"),
        threads: get(&raw, "listBlocksThreads", flags::parse_uint)?.map_or(16, |(n, _)| n as usize),
    };

    let io_threads = match get(&raw, "ioThreads", flags::parse_uint)? {
        None => DEFAULT_IO_THREADS,
        Some((n, s)) if n > MAX_IO_THREADS => {
            return Err(s.error(format!("{}: at most {MAX_IO_THREADS}", s.shown())));
        }
        Some((n, _)) => usize::try_from(n).unwrap_or(DEFAULT_IO_THREADS),
    };
    for name in ["test-delays", "test-discard"] {
        if let Some(s) = raw.get(name)
            && !test_mode
        {
            warnings.push(format!(
                "{} has no effect without {}",
                s.flag_ref(),
                front.flag("test")
            ));
        }
    }
    for ignored in &raw.ignored_fuse_args {
        warnings.push(format!(
            "ignoring FUSE option {ignored:?} (the nbdkit plugin has no FUSE mount)"
        ));
    }

    let mut explicit: BTreeSet<String> = raw.settings.keys().map(|k| k.to_string()).collect();
    if raw.used_config_file {
        explicit.insert("configFile".to_owned());
    }
    Ok(Config {
        bucket,
        prefix,
        test_mode,
        test_delays: raw.has("test-delays"),
        test_discard: raw.has("test-discard"),
        mount_point,
        nbd,
        block_size: geometry.block_size,
        size: geometry.size,
        no_auto_detect: raw.has("noAutoDetect"),
        force: raw.has("force"),
        read_only,
        block_hash_prefix: raw.has("blockHashPrefix"),
        s3,
        codec,
        fuse,
        stats,
        survey,
        cache,
        io_threads,
        debug: raw.has("debug") || raw.fuse_debug,
        quiet: raw.has("quiet"),
        foreground: raw.foreground,
        mode,
        fuse_args: raw.fuse_args,
        explicit,
        warnings,
    })
}

/// Value syntax and support status, flag by flag in order of appearance.
fn check_flags(raw: &RawArgs, front: Front, warnings: &mut Vec<String>) -> Result<(), ConfigError> {
    let mut given: Vec<&Setting> = raw.settings.values().collect();
    given.sort_by_key(|s| s.seq);
    for s in given {
        if let Some(v) = &s.value {
            s.def
                .check
                .check(v)
                .map_err(|e| s.error(format!("{}: {e}", s.flag_ref())))?;
        }
        match s.def.support {
            Support::Yes | Support::FuseOnly => {}
            Support::NbdOnly => match front {
                Front::Plugin => {
                    return Err(s.error(format!(
                        "{} cannot be used with the nbdkit plugin (it is an option of `s3backer --nbd`)",
                        s.flag_ref()
                    )));
                }
                Front::CommandLine if !raw.nbd => {
                    return Err(s.error(format!("{} can only be used with --nbd", s.shown())));
                }
                Front::CommandLine => {}
            },
            Support::CommandLineOnly => {
                if front == Front::Plugin {
                    return Err(s.error(format!(
                        "{} cannot be used with the nbdkit plugin (it is a mode of the s3backer command)",
                        s.flag_ref()
                    )));
                }
            }
            Support::Warn(why) => warnings.push(format!("{} {why}", s.flag_ref())),
            Support::NotYet { feature, noop } => {
                let is_noop = match (noop, &s.value) {
                    (Some(noop), Some(v)) => {
                        flags::parse_uint(v).ok() == flags::parse_uint(noop).ok()
                    }
                    _ => false,
                };
                if !is_noop {
                    return Err(ConfigError::new(
                        ErrorKind::NotSupported,
                        format!(
                            "\"{}\" is not supported yet by this release (planned: {feature})",
                            s.flag_ref()
                        ),
                    )
                    .at(s.location()));
                }
            }
        }
    }
    Ok(())
}

fn mode(raw: &RawArgs) -> Result<Mode, ConfigError> {
    if raw.nbd
        && let Some(s) = raw.get("erase").or(raw.get("reset-mounted-flag"))
    {
        return Err(s.error(format!("{} cannot be used with --nbd", s.flag_ref())));
    }
    match (raw.get("erase"), raw.get("reset-mounted-flag")) {
        (Some(e), Some(r)) => Err(e.error(format!(
            "{} and {} cannot be used together",
            e.flag_ref(),
            r.flag_ref()
        ))),
        (Some(_), None) => Ok(Mode::Erase),
        (None, Some(_)) => Ok(Mode::ResetMountedFlag),
        (None, None) => Ok(Mode::Serve),
    }
}

/// Bucket (with its origin) and mount point.
fn positionals(
    raw: &RawArgs,
    front: Front,
    plugin_bucket: Option<(String, Origin)>,
    mode: &Mode,
    warnings: &mut Vec<String>,
) -> Result<((String, Origin), Option<String>), ConfigError> {
    if raw.nbd && raw.positionals.len() != 2 {
        return Err(ConfigError::invalid(format!(
            "--nbd needs two arguments, bucket[/subdir] and the device (/dev/nbdX); got {}",
            raw.positionals.len()
        )));
    }
    let mut list: Vec<(String, Origin)> = plugin_bucket.into_iter().collect();
    list.extend(raw.positionals.iter().cloned());
    let mut list = list.into_iter();
    let bucket = list.next().ok_or_else(|| {
        ConfigError::invalid(match front {
            Front::CommandLine => "no bucket specified",
            Front::Plugin => "missing bucket parameter",
        })
    })?;
    let mount_point = list.next();
    if let Some((extra, origin)) = list.next() {
        return Err(ConfigError::invalid(format!(
            "unexpected argument {extra:?}: only a bucket and a mount point are expected"
        ))
        .at(origin.location()));
    }
    let mount_point = match (front, mount_point) {
        (Front::Plugin, Some((mp, _))) => {
            warnings.push(format!(
                "ignoring mount point {mp:?} from the config file (not used by the nbdkit plugin)"
            ));
            None
        }
        (_, mp) => mp,
    };
    if let Some((_, origin)) = &mount_point {
        let flag = match mode {
            Mode::Erase => Some("erase"),
            Mode::ResetMountedFlag => Some("reset-mounted-flag"),
            Mode::Serve => None,
        };
        if let Some(flag) = flag {
            return Err(ConfigError::invalid(format!(
                "no mount point should be specified with --{flag}"
            ))
            .at(origin.location()));
        }
    }
    Ok((bucket, mount_point.map(|(mp, _)| mp)))
}

fn bucket_and_prefix(
    raw: &RawArgs,
    front: Front,
    (arg, origin): &(String, Origin),
    test_mode: bool,
) -> Result<(String, String), ConfigError> {
    let err = |msg: String| ConfigError::invalid(msg).at(origin.location());
    let prefix = raw.text("prefix").unwrap_or("");
    if arg.is_empty() {
        return Err(err("empty bucket name".to_owned()));
    }
    if test_mode {
        check_test_dir(Path::new(arg)).map_err(|e| e.at(origin.location()))?;
        return Ok((arg.clone(), prefix.to_owned()));
    }
    if arg.starts_with('/') {
        return Err(err(format!(
            "invalid bucket {arg:?}: must not start with '/' (a local directory needs {})",
            front.flag("test")
        )));
    }
    let (bucket, subdir) = match arg.split_once('/') {
        Some((b, s)) => (b, Some(s)),
        None => (arg.as_str(), None),
    };
    check_bucket_name(bucket).map_err(err)?;
    let Some(subdir) = subdir else {
        return Ok((bucket.to_owned(), prefix.to_owned()));
    };
    if subdir.is_empty()
        || subdir.starts_with('/')
        || subdir.ends_with('/')
        || subdir.contains("//")
    {
        return Err(err(format!(
            "invalid subdirectory {subdir:?} in {arg:?}: it must be non-empty, must not start or end with '/' and must not contain \"//\""
        )));
    }
    if !prefix.is_empty() {
        return Err(err(format!(
            "a subdirectory in the bucket argument ({arg:?}) cannot be combined with {}",
            front.flag("prefix")
        )));
    }
    Ok((bucket.to_owned(), format!("{subdir}/")))
}

/// S3 bucket naming rules (the common subset that every region accepts).
pub(crate) fn check_bucket_name(name: &str) -> Result<(), String> {
    // No bucket name has a ':'; an `accessId:accessKey` line has one. That is what a password
    // file given as `--configFile`/`-F` turns into (its line becomes the bucket argument), and
    // the secret must not be echoed in the error.
    if let Some((id, _secret)) = name.split_once(':') {
        let id: String = id.chars().take(24).collect();
        return Err(format!(
            "the bucket argument looks like an \"accessId:accessKey\" line (access id {id:?}, key not shown): a password file is given with --accessFile=FILE, not --configFile/-F"
        ));
    }
    let why = if !(3..=63).contains(&name.len()) {
        "must be 3 to 63 characters long"
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        "may only contain lowercase letters, digits, '.' and '-'"
    } else if !name.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !name.ends_with(|c: char| c.is_ascii_alphanumeric())
    {
        "must start and end with a letter or digit"
    } else {
        return Ok(());
    };
    Err(format!("invalid bucket name {name:?}: {why}"))
}

fn check_test_dir(dir: &Path) -> Result<(), ConfigError> {
    let shown = dir.display().to_string();
    match std::fs::metadata(dir) {
        Err(e) => Err(ConfigError::new(
            ErrorKind::Io,
            format!("test directory {shown:?}: {e}"),
        )),
        Ok(m) if !m.is_dir() => Err(ConfigError::invalid(format!(
            "test directory {shown:?} is not a directory"
        ))),
        Ok(_) => Ok(()),
    }
}

struct Geometry {
    block_size: Option<u32>,
    size: Option<u64>,
    /// The block size we know now: given, or the default when nothing will be auto-detected.
    known_block_size: Option<u32>,
}

fn geometry(raw: &RawArgs, front: Front, test_mode: bool) -> Result<Geometry, ConfigError> {
    let block_size = get(raw, "blockSize", size::parse_block_size)?;
    let size = get(raw, "size", size::parse_size)?;
    let no_detect = if test_mode {
        Some("test")
    } else if raw.has("noAutoDetect") {
        Some("noAutoDetect")
    } else {
        None
    };
    let known_block_size = block_size
        .as_ref()
        .map(|(b, _)| *b)
        .or(no_detect.map(|_| DEFAULT_BLOCK_SIZE));
    if let (Some(flag), None) = (no_detect, &size) {
        return Err(ConfigError::invalid(format!(
            "{} is required with {} (nothing is auto-detected)",
            front.flag("size"),
            front.flag(flag)
        )));
    }
    if let (Some((bytes, s)), Some(bs)) = (&size, known_block_size) {
        if bytes % u64::from(bs) != 0 {
            return Err(s.error(format!(
                "{} is not a multiple of the block size ({})",
                s.shown(),
                format_size(bs.into())
            )));
        }
        if bytes / u64::from(bs) > u64::from(u32::MAX) {
            return Err(s.error(format!(
                "{} with block size {} gives 2^32 blocks or more; use a larger block size",
                s.shown(),
                format_size(bs.into())
            )));
        }
    }
    Ok(Geometry {
        block_size: block_size.map(|(b, _)| b),
        size: size.map(|(v, _)| v),
        known_block_size,
    })
}

fn s3_settings(
    raw: &RawArgs,
    front: Front,
    geometry: &Geometry,
    test_mode: bool,
    env: &Environment,
    warnings: &mut Vec<String>,
) -> Result<S3Settings, ConfigError> {
    let region_given = raw.get("region");
    let region = raw.text("region").unwrap_or(DEFAULT_REGION).to_owned();
    let ssl = raw.has("ssl");
    let scheme = if ssl { "https" } else { "http" };
    let (base_url, base_url_explicit) = match raw.get("baseURL") {
        Some(s) => {
            let url = s.value.clone().unwrap_or_default();
            if ssl && url.starts_with("http://") {
                return Err(s.error(format!(
                    "{} cannot be used with an http:// {}",
                    front.flag("ssl"),
                    s.flag_ref()
                )));
            }
            (url, true)
        }
        None if region != DEFAULT_REGION => {
            (format!("{scheme}://s3.{region}.amazonaws.com/"), false)
        }
        None => (format!("{scheme}://s3.amazonaws.com/"), false),
    };
    let vhost = match (raw.get("vhost"), raw.get("no-vhost")) {
        (Some(on), Some(off)) => on.seq > off.seq,
        (Some(_), None) => true,
        (None, Some(_)) => false,
        (None, None) => region_given.is_some(),
    };
    let payload_hash = match raw.text("payloadHash") {
        Some("sha256") => PayloadHash::Sha256,
        Some("unsigned") => PayloadHash::Unsigned,
        _ => PayloadHash::Auto,
    };
    let auth_version = match raw.text("authVersion") {
        Some("aws2") => AuthVersion::V2,
        _ => AuthVersion::V4,
    };

    let timeout = get(raw, "timeout", flags::parse_uint)?.map_or(DEFAULT_TIMEOUT_SECS, |(v, _)| v);
    let initial = get(raw, "initialRetryPause", flags::parse_uint)?;
    let max = get(raw, "maxRetryPause", flags::parse_uint)?;
    let initial_ms = initial
        .as_ref()
        .map_or(DEFAULT_INITIAL_RETRY_PAUSE_MS, |(v, _)| *v);
    let max_ms = max.as_ref().map_or(DEFAULT_MAX_RETRY_PAUSE_MS, |(v, _)| *v);
    let located = initial.as_ref().or(max.as_ref()).map(|(_, s)| *s);
    let retry_error = |msg: String| match located {
        Some(s) => s.error(msg),
        None => ConfigError::invalid(msg),
    };
    if initial_ms > max_ms {
        return Err(retry_error(format!(
            "{} ({initial_ms} ms) must not be more than {} ({max_ms} ms)",
            front.flag("initialRetryPause"),
            front.flag("maxRetryPause")
        )));
    }
    if initial_ms == 0 && max_ms > 0 {
        // Pauses double from zero and never add up to the maximum: endless retries.
        return Err(retry_error(format!(
            "{}=0 would retry forever; use at least 1, or {}=0 for no retries",
            front.flag("initialRetryPause"),
            front.flag("maxRetryPause")
        )));
    }

    let speed = |name: &str| -> Result<Option<u64>, ConfigError> {
        let Some((bits, s)) = get(raw, name, size::parse_size)? else {
            return Ok(None);
        };
        let bytes_per_sec = bits / 8;
        if bytes_per_sec == 0 {
            return Err(s.error(format!(
                "{} is too slow: less than one byte per second",
                s.shown()
            )));
        }
        if let Some(bs) = geometry.known_block_size {
            let secs = u64::from(bs) / bytes_per_sec;
            if secs >= u64::from(timeout) {
                return Err(s.error(format!(
                    "{} is too slow: one {} block takes {secs} s or more, which reaches the {timeout} s {}",
                    s.shown(),
                    format_size(bs.into()),
                    front.flag("timeout")
                )));
            }
        }
        Ok(Some(bits))
    };
    let max_upload_speed = speed("maxUploadSpeed")?;
    let max_download_speed = speed("maxDownloadSpeed")?;

    let sse = raw.text("sse").map(str::to_owned);
    let sse_key_id = raw.text("sse-key-id").map(str::to_owned);
    match (sse.as_deref(), raw.get("sse-key-id")) {
        (Some("aws:kms"), None) => {
            return Err(ConfigError::invalid(format!(
                "{}=aws:kms requires {}",
                front.flag("sse"),
                front.flag("sse-key-id")
            ))
            .at(raw.get("sse").and_then(Setting::location)));
        }
        (Some("aws:kms"), Some(_)) => {}
        (_, Some(k)) => {
            return Err(k.error(format!(
                "{} is only used with {}=aws:kms",
                k.flag_ref(),
                front.flag("sse")
            )));
        }
        (_, None) => {}
    }

    let credentials = if test_mode {
        // The directory backend signs nothing; do not read (or insist on) any key.
        None
    } else {
        let args = CredentialArgs {
            access_id: raw.text("accessId"),
            access_key: raw.text("accessKey"),
            access_key_env: raw.text("accessKeyEnv"),
            access_file: raw.text("accessFile").map(Path::new),
        };
        let creds = credentials::resolve(&args, env, &|n| front.flag(n)).map_err(|e| {
            let located = ["accessKeyEnv", "accessKey", "accessFile", "accessId"]
                .iter()
                .find_map(|n| raw.get(n));
            e.at(located.and_then(Setting::location))
        })?;
        if let Some(Credentials {
            source: CredentialSource::AccessFile(path),
            ..
        }) = &creds
        {
            warnings.extend(credentials::exposed_secret_file_warning(
                path,
                "access file",
            ));
        }
        let chose_anonymous = raw.text("accessId") == Some("");
        if creds.is_none() && !chose_anonymous && !raw.has("readOnly") && !base_url_explicit {
            warnings.push(format!(
                "no credentials found ({}, access file or AWS_ACCESS_KEY_ID): requests will not be signed",
                front.flag("accessId")
            ));
        }
        creds
    };

    if let Some(s) = raw.get("insecure") {
        warnings.push(format!(
            "{}: the server's TLS certificate is NOT verified; anyone between this machine and \
             the server can read and change the disk's data and steal the access key",
            s.flag_ref()
        ));
    }

    Ok(S3Settings {
        base_url,
        base_url_explicit,
        region,
        vhost,
        auth_version,
        payload_hash,
        credentials,
        cacert: raw.text("cacert").map(PathBuf::from),
        insecure: raw.has("insecure"),
        http11: raw.has("http11"),
        no_connection_reuse: raw.has("noCurlCache"),
        content_md5: raw.has("contentMD5"),
        timeout: Duration::from_secs(timeout.into()),
        initial_retry_pause: Duration::from_millis(initial_ms.into()),
        max_retry_pause: Duration::from_millis(max_ms.into()),
        max_upload_speed,
        max_download_speed,
        storage_class: raw
            .text("storageClass")
            .or(raw.has("rrs").then_some("REDUCED_REDUNDANCY"))
            .map(str::to_owned),
        sse,
        sse_key_id,
        access_type: raw.text("accessType").unwrap_or("private").to_owned(),
        debug_http: raw.has("debug-http"),
    })
}

/// A value flag parsed with `parse`, together with its setting (for error locations).
fn get<'r, T>(
    raw: &'r RawArgs,
    name: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<(T, &'r Setting)>, ConfigError> {
    let Some(s) = raw.get(name) else {
        return Ok(None);
    };
    let v = s.value.as_deref().unwrap_or_default();
    parse(v)
        .map(|t| Some((t, s)))
        .map_err(|e| s.error(format!("{}: {e}", s.flag_ref())))
}

/// The block cache flags, with s3backer's defaults and cross-flag rules.
fn cache_settings(
    raw: &RawArgs,
    front: Front,
    warnings: &mut Vec<String>,
) -> Result<CacheSettings, ConfigError> {
    let uint = |name: &str| -> Result<Option<u32>, ConfigError> {
        Ok(get(raw, name, flags::parse_uint)?.map(|(v, _)| v))
    };
    let millis = |v: u32| Duration::from_millis(u64::from(v));
    let size = uint("blockCacheSize")?.unwrap_or(1000);
    let write_delay = uint("blockCacheWriteDelay")?;
    let sync = raw.has("blockCacheSync");
    if sync && write_delay != Some(0) {
        let s = raw.get("blockCacheSync");
        let msg = format!(
            "{} requires {}=0",
            s.map(|s| s.flag_ref()).unwrap_or_default(),
            front.flag("blockCacheWriteDelay")
        );
        return Err(match s {
            Some(s) => s.error(msg),
            None => ConfigError::invalid(msg),
        });
    }
    let file = raw.text("blockCacheFile").map(PathBuf::from);
    for name in ["blockCacheRecoverDirtyBlocks", "blockCacheLocalFlush"] {
        if let Some(s) = raw.get(name)
            && file.is_none()
        {
            return Err(s.error(format!(
                "{} requires {}",
                s.flag_ref(),
                front.flag("blockCacheFile=FILE")
            )));
        }
    }
    if size == 0 {
        for name in ["blockCacheFile", "blockCacheLocalFlush", "blockCacheSync"] {
            if let Some(s) = raw.get(name) {
                return Err(s.error(format!(
                    "{} needs a block cache ({} is 0)",
                    s.flag_ref(),
                    front.flag("blockCacheSize")
                )));
            }
        }
    }
    let num_protected = uint("blockCacheNumProtected")?.unwrap_or(0);
    if num_protected > size && size > 0 {
        warnings.push(format!(
            "{}={num_protected} is more than the cache holds ({size} blocks)",
            front.flag("blockCacheNumProtected")
        ));
    }
    let (ra, rat) = match front {
        Front::CommandLine => (4, 2),
        Front::Plugin => (0, 0),
    };
    Ok(CacheSettings {
        size,
        threads: uint("blockCacheThreads")?.map_or(20, |n| n as usize),
        write_delay: millis(write_delay.unwrap_or(250)),
        timeout: uint("blockCacheTimeout")?.filter(|&t| t > 0).map(millis),
        max_dirty: uint("blockCacheMaxDirty")?.filter(|&m| m > 0),
        sync,
        num_protected,
        file,
        recover_dirty: raw.has("blockCacheRecoverDirtyBlocks"),
        no_verify: raw.has("blockCacheNoVerify"),
        file_advise: raw.has("blockCacheFileAdvise"),
        local_flush: raw.has("blockCacheLocalFlush"),
        read_ahead: uint("readAhead")?.unwrap_or(ra),
        read_ahead_trigger: uint("readAheadTrigger")?.unwrap_or(rat),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names() {
        for ok in ["abc", "my-bucket.1", "0ab", &"a".repeat(63)] {
            assert_eq!(check_bucket_name(ok), Ok(()), "{ok}");
        }
        let why = |n: &str| check_bucket_name(n).unwrap_err();
        assert!(why("ab").contains("3 to 63"));
        assert!(why(&"a".repeat(64)).contains("3 to 63"));
        assert!(why("My-Bucket").contains("lowercase"));
        assert!(why("a_b").contains("lowercase"));
        assert!(why("-ab").contains("start and end"));
        assert!(why("ab.").contains("start and end"));
        assert_eq!(
            why("A"),
            "invalid bucket name \"A\": must be 3 to 63 characters long"
        );
        let key_line = why("AKIDEXAMPLE:wJalrXUtnFEMI/K7MDENG");
        assert!(key_line.contains("--accessFile"), "{key_line}");
        assert!(key_line.contains("AKIDEXAMPLE"), "{key_line}");
        assert!(
            !key_line.contains("wJalr"),
            "the secret was echoed: {key_line}"
        );
    }
}
