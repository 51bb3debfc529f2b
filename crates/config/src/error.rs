//! [`ConfigError`]: one line saying what is wrong and, for config-file lines, where.

use std::fmt;
use std::path::PathBuf;

/// What kind of problem a [`ConfigError`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A bad flag, value or combination.
    Invalid,
    /// A valid request for a feature this release does not have yet.
    NotSupported,
    /// A file (config file, access file, test directory) could not be read.
    Io,
}

/// A line of a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The config file, as named on the command line.
    pub file: PathBuf,
    /// Line number, from 1.
    pub line: usize,
}

/// A configuration error. `Display` gives one line without a trailing newline:
/// `FILE:LINE: message` when the offending argument came from a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    kind: ErrorKind,
    message: String,
    location: Option<Location>,
}

impl ConfigError {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        // Values are quoted with `{:?}`, which escapes newlines; this guards the rest.
        let message = message.into().replace(['\n', '\r'], " ");
        ConfigError {
            kind,
            message,
            location: None,
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, message)
    }

    pub(crate) fn at(mut self, location: Option<Location>) -> Self {
        if self.location.is_none() {
            self.location = location;
        }
        self
    }

    /// The kind of problem.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message without the location.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The config-file line the problem comes from, if any.
    pub fn location(&self) -> Option<&Location> {
        self.location.as_ref()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(loc) = &self.location {
            write!(f, "{}:{}: ", loc.file.display(), loc.line)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_line_with_location() {
        let e = ConfigError::invalid("bad\nthing").at(Some(Location {
            file: PathBuf::from("/etc/s3b.conf"),
            line: 7,
        }));
        assert_eq!(e.to_string(), "/etc/s3b.conf:7: bad thing");
        assert_eq!(e.message(), "bad thing");
        assert_eq!(e.kind(), ErrorKind::Invalid);
        assert_eq!(ConfigError::invalid("x").to_string(), "x");
    }
}
