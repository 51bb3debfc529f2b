//! [`Environment`]: the only door to environment variables and `$HOME`, so tests can hand the
//! parser a fake one.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Environment variables and home directory as seen by the parser.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Environment {
    /// Home directory (for the default `$HOME/.s3backer_passwd`); `None` if unknown.
    pub home: Option<PathBuf>,
    /// Environment variables (`AWS_ACCESS_KEY_ID`, `--accessKeyEnv` targets, ...).
    pub vars: BTreeMap<String, String>,
    /// Whether a missing encryption password may be asked for on the terminal (`/dev/tty`).
    pub interactive: bool,
}

impl Environment {
    /// The real process environment; variables that are not valid UTF-8 are left out.
    pub fn from_process() -> Self {
        let vars: BTreeMap<String, String> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        let home = vars
            .get("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from);
        Environment {
            home,
            vars,
            interactive: true,
        }
    }

    /// A variable's value; an empty value counts as unset.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_counts_as_unset() {
        let mut env = Environment::default();
        env.vars.insert("A".into(), String::new());
        env.vars.insert("B".into(), "x".into());
        assert_eq!(env.var("A"), None);
        assert_eq!(env.var("B"), Some("x"));
        assert_eq!(env.var("C"), None);
    }

    #[test]
    fn from_process_reads_home() {
        let env = Environment::from_process();
        assert_eq!(
            env.home,
            std::env::var("HOME")
                .ok()
                .filter(|h| !h.is_empty())
                .map(PathBuf::from)
        );
    }
}
