//! `--compress`, `--compress-level`, `--encrypt`, `--password`, `--passwordFile`, `--keyLength`,
//! `--defaultContentEncoding` → [`CodecSettings`].
//!
//! The cipher name is only normalized here (upper-cased); which ciphers exist, and refusing
//! aliases that would write unreadable blocks, is the store's codec's job (it owns the format).
//! The password comes from `--password`, the first line of `--passwordFile` (one trailing newline
//! stripped, as s3backer does), or the terminal; it is never put in a message.

use crate::env::Environment;
use crate::error::ConfigError;
use crate::flags;
use crate::raw::{Front, RawArgs};
use crate::types::{
    CodecSettings, CompressionAlgorithm, CompressionSettings, EncryptionSettings, Secret,
};
use std::io::{BufRead, Write};

/// zstd's level range (ZSTD_minCLevel is -131072 in libzstd 1.5; ZSTD_maxCLevel 22).
const ZSTD_LEVELS: std::ops::RangeInclusive<i32> = -131_072..=22;
/// The original's cipher when `--encrypt` has no value.
pub const DEFAULT_CIPHER: &str = "AES-128-CBC";
/// Longest key `--keyLength` allows (facts §3.3).
pub const MAX_KEY_LENGTH: usize = 64;

/// Resolves the codec flags. In `--test` mode they are accepted and ignored with a warning,
/// like the original (its directory backend stores raw blocks).
pub(crate) fn codec_settings(
    raw: &RawArgs,
    front: Front,
    test_mode: bool,
    env: &Environment,
    warnings: &mut Vec<String>,
) -> Result<CodecSettings, ConfigError> {
    let compression = compression(raw)?;
    let encrypt = raw.get("encrypt");
    if encrypt.is_none() {
        for name in ["password", "passwordFile", "keyLength"] {
            if let Some(s) = raw.get(name) {
                warnings.push(format!(
                    "{} has no effect without {}",
                    s.flag_ref(),
                    front.flag("encrypt")
                ));
            }
        }
    }
    let default_content_encoding = raw.text("defaultContentEncoding").map(str::to_owned);
    if test_mode {
        if let Some(s) = raw.get("compress").or(encrypt) {
            warnings.push(format!(
                "{} is ignored with {}: the directory stores raw blocks, as s3backer's test mode does",
                s.flag_ref(),
                front.flag("test")
            ));
        }
        return Ok(CodecSettings::default());
    }
    let encryption = match encrypt {
        None => None,
        Some(s) => {
            let cipher = s
                .value
                .as_deref()
                .unwrap_or(DEFAULT_CIPHER)
                .to_ascii_uppercase();
            let key_length = match raw.get("keyLength") {
                None => None,
                Some(k) => {
                    let n = flags::parse_uint(k.value.as_deref().unwrap_or_default())
                        .map_err(|e| k.error(format!("{}: {e}", k.flag_ref())))?
                        as usize;
                    if n > MAX_KEY_LENGTH {
                        return Err(
                            k.error(format!("{}: at most {MAX_KEY_LENGTH} bytes", k.flag_ref()))
                        );
                    }
                    (n != 0).then_some(n)
                }
            };
            Some(EncryptionSettings {
                cipher,
                password: password(raw, front, env, warnings)?,
                key_length,
            })
        }
    };
    Ok(CodecSettings {
        compression,
        encryption,
        default_content_encoding,
    })
}

fn compression(raw: &RawArgs) -> Result<Option<CompressionSettings>, ConfigError> {
    let level_setting = raw.get("compress-level");
    let Some(s) = raw.get("compress") else {
        if let Some(l) = level_setting {
            return Err(l.error(format!(
                "{} needs --compress=deflate or --compress=zstd",
                l.flag_ref()
            )));
        }
        return Ok(None);
    };
    let (algorithm, named) = match s.value.as_deref() {
        None => (CompressionAlgorithm::Deflate, false),
        Some(v) if v.eq_ignore_ascii_case("deflate") => (CompressionAlgorithm::Deflate, true),
        Some(v) if v.eq_ignore_ascii_case("zstd") => (CompressionAlgorithm::Zstd, true),
        Some(v) => match v.parse::<i32>() {
            // The original's `--compress=LEVEL`: deflate at that level.
            Ok(level) if (-1..=9).contains(&level) => {
                if let Some(l) = level_setting {
                    return Err(l.error(format!(
                        "{} needs --compress=deflate or --compress=zstd, not {}",
                        l.flag_ref(),
                        s.shown()
                    )));
                }
                return Ok(Some(CompressionSettings {
                    algorithm: CompressionAlgorithm::Deflate,
                    level: Some(level),
                }));
            }
            Ok(_) => {
                return Err(s.error(format!("{}: a deflate level is -1 or 0..9", s.shown())));
            }
            Err(_) => {
                return Err(s.error(format!(
                    "{}: unknown compression algorithm (deflate or zstd)",
                    s.shown()
                )));
            }
        },
    };
    let level = match level_setting {
        None => None,
        Some(_) if !named => {
            let l = level_setting.map(|l| l.flag_ref()).unwrap_or_default();
            return Err(s.error(format!(
                "{l} needs --compress=deflate or --compress=zstd, not a bare {}",
                s.flag_ref()
            )));
        }
        Some(l) => {
            let v = l.value.as_deref().unwrap_or_default();
            let level: i32 = v
                .parse()
                .map_err(|_| l.error(format!("{}: not an integer", l.shown())))?;
            let ok = match algorithm {
                CompressionAlgorithm::Deflate => (-1..=9).contains(&level),
                CompressionAlgorithm::Zstd => ZSTD_LEVELS.contains(&level),
            };
            if !ok {
                return Err(l.error(format!(
                    "{}: out of range ({})",
                    l.shown(),
                    match algorithm {
                        CompressionAlgorithm::Deflate => "deflate: -1 or 0..9".to_string(),
                        CompressionAlgorithm::Zstd =>
                            format!("zstd: {}..{}", ZSTD_LEVELS.start(), ZSTD_LEVELS.end()),
                    }
                )));
            }
            Some(level)
        }
    };
    Ok(Some(CompressionSettings { algorithm, level }))
}

fn password(
    raw: &RawArgs,
    front: Front,
    env: &Environment,
    warnings: &mut Vec<String>,
) -> Result<Secret, ConfigError> {
    match (raw.get("password"), raw.get("passwordFile")) {
        (Some(p), Some(f)) => Err(f.error(format!(
            "{} and {} cannot be used together",
            p.flag_ref(),
            f.flag_ref()
        ))),
        (Some(p), None) => {
            let pw = p.value.clone().unwrap_or_default();
            if pw.is_empty() {
                return Err(p.error(format!("{}: the password is empty", p.flag_ref())));
            }
            Ok(Secret::new(pw))
        }
        (None, Some(f)) => {
            let path = f.value.clone().unwrap_or_default();
            let text = std::fs::read(&path)
                .map_err(|e| f.error(format!("{}: cannot read {path}: {e}", f.flag_ref())))?;
            // The first line, without its newline (s3backer strips one trailing '\n').
            let first = text.split(|&b| b == b'\n').next().unwrap_or_default();
            let pw = String::from_utf8(first.to_vec()).map_err(|_| {
                f.error(format!(
                    "{}: the password in {path} is not UTF-8",
                    f.flag_ref()
                ))
            })?;
            if pw.is_empty() {
                return Err(f.error(format!(
                    "{}: the first line of {path} is empty",
                    f.flag_ref()
                )));
            }
            warnings.extend(crate::credentials::exposed_secret_file_warning(
                std::path::Path::new(&path),
                "password file",
            ));
            Ok(Secret::new(pw))
        }
        (None, None) => {
            let how = format!(
                "give {} or {}",
                front.flag("passwordFile=FILE"),
                front.flag("password=PASSWORD")
            );
            if !env.interactive {
                return Err(ConfigError::invalid(format!(
                    "encryption needs a password: {how}"
                )));
            }
            prompt("Password: ")
                .map_err(|e| {
                    ConfigError::invalid(format!(
                        "encryption needs a password and none could be read from the terminal ({e}): {how}"
                    ))
                })
                .map(Secret::new)
        }
    }
}

/// Reads a line from `/dev/tty` with echo off (like getpass(3)).
fn prompt(text: &str) -> std::io::Result<String> {
    use std::os::fd::AsRawFd;
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")?;
    let fd = tty.as_raw_fd();
    // SAFETY: termios is plain data, filled by tcgetattr on a valid descriptor.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut quiet = saved;
    quiet.c_lflag &= !libc::ECHO;
    // SAFETY: valid descriptor and termios.
    unsafe { libc::tcsetattr(fd, libc::TCSAFLUSH, &quiet) };
    let mut out = &tty;
    let result = out
        .write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .and_then(|()| {
            let mut line = String::new();
            std::io::BufReader::new(&tty).read_line(&mut line)?;
            Ok(line)
        });
    // SAFETY: restores what tcgetattr returned.
    unsafe { libc::tcsetattr(fd, libc::TCSAFLUSH, &saved) };
    let _ = out.write_all(b"\n");
    let line = result?;
    let pw = line.strip_suffix('\n').unwrap_or(&line).to_owned();
    if pw.is_empty() {
        return Err(std::io::Error::other("empty password"));
    }
    Ok(pw)
}
