//! Log output in s3backer's style, for every front end: `YYYY-MM-DD HH:MM:SS LEVEL: message` on
//! stderr (local time), or syslog(3) once daemonized, where lines are prefixed `s3backer: `.
//! One line per event; DEBUG only with `--debug`.

use std::ffi::CString;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

static TO_SYSLOG: AtomicBool = AtomicBool::new(false);
static MAX_LEVEL: AtomicU8 = AtomicU8::new(3); // Info

struct Logger;

static LOGGER: Logger = Logger;

fn level_index(l: log::Level) -> u8 {
    match l {
        log::Level::Error => 1,
        log::Level::Warn => 2,
        log::Level::Info => 3,
        log::Level::Debug => 4,
        log::Level::Trace => 5,
    }
}

/// Installs the logger (idempotent). `debug` enables DEBUG lines.
pub fn init(debug: bool) {
    let _ = log::set_logger(&LOGGER);
    set_debug(debug);
}

/// Turns DEBUG lines on or off.
pub fn set_debug(debug: bool) {
    let max = if debug {
        log::LevelFilter::Debug
    } else {
        log::LevelFilter::Info
    };
    MAX_LEVEL.store(if debug { 4 } else { 3 }, Ordering::Relaxed);
    log::set_max_level(max);
}

/// Sends every later line to syslog (after daemonizing).
pub fn use_syslog() {
    if !TO_SYSLOG.swap(true, Ordering::SeqCst) {
        // SAFETY: a NULL ident makes syslog use the program name; the flags are constants.
        unsafe {
            libc::openlog(
                std::ptr::null(),
                libc::LOG_PID | libc::LOG_NDELAY,
                libc::LOG_USER,
            )
        };
    }
}

fn local_timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as libc::time_t)
        .unwrap_or(0);
    // SAFETY: tm is plain data; localtime_r writes it and we read it only on success.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&now, &mut tm) }.is_null() {
        return "????-??-?? ??:??:??".into();
    }
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        level_index(metadata.level()) <= MAX_LEVEL.load(Ordering::Relaxed)
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        // Other crates' chatter (HTTP internals) only when it is a warning or worse: their debug
        // lines duplicate ours (one per request) and would break "one line per event".
        let ours = record.target().starts_with("s3backer")
            || record.target().starts_with("nbdkit_s3backer");
        if !ours && record.level() > log::Level::Warn {
            return;
        }
        let msg = record.args().to_string().replace('\n', " ");
        if TO_SYSLOG.load(Ordering::Relaxed) {
            let prio = match record.level() {
                log::Level::Error => libc::LOG_ERR,
                log::Level::Warn => libc::LOG_WARNING,
                log::Level::Info => libc::LOG_INFO,
                _ => libc::LOG_DEBUG,
            };
            if let Ok(line) = CString::new(format!("s3backer: {msg}")) {
                // SAFETY: "%s" with one valid C string argument.
                unsafe { libc::syslog(prio, c"%s".as_ptr(), line.as_ptr()) };
            }
            return;
        }
        let level = match record.level() {
            log::Level::Error => "ERROR",
            log::Level::Warn => "WARNING",
            log::Level::Info => "INFO",
            _ => "DEBUG",
        };
        let line = format!("{} {level}: {msg}\n", local_timestamp());
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}
