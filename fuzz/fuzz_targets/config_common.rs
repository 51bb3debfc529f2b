//! Fixtures of the two config targets: a hermetic environment, files the input may name through
//! markers, and a filter that keeps the parser away from files outside the fixture.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use s3backer_config::{Config, ConfigError, Environment};

use crate::common::{assert_one_line, private_dir};

/// Secrets of the fixture files and environment: they must never show up in an error message,
/// a warning or a `Config`'s `Debug` (unless the input itself contains them).
pub const SECRETS: [&str; 3] = ["fuzzSECRETkey7", "fuzzPASSWORD9", "fuzzENVsecret5"];

/// Markers the input may use instead of paths: replaced after the input passed
/// [`touches_outside_files`], so that file flags reach our own files only.
pub struct Fixture {
    pub env: Environment,
    markers: Vec<(&'static str, String)>,
    pub config_path: PathBuf,
}

pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = private_dir();
        let home = dir.join("home");
        std::fs::create_dir_all(&home).expect("home");
        let write = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).expect("fixture file");
            p.display().to_string()
        };
        std::fs::write(
            home.join(s3backer_config::DEFAULT_ACCESS_FILE),
            format!("homeid:{}\n", SECRETS[0]),
        )
        .expect("default access file");
        let access = write(
            "access",
            &format!("# comment\nAKIDFILE:{}\nother:x:y\n", SECRETS[0]),
        );
        let pass = write("password", &format!("{}\nsecond line\n", SECRETS[1]));
        let empty = write("empty", "");
        let testdir = dir.join("testdir");
        std::fs::create_dir_all(&testdir).expect("testdir");
        let config_path = dir.join("config.conf");
        let markers = vec![
            ("@CONF", config_path.display().to_string()),
            ("@ACCESS", access),
            ("@PASS", pass),
            ("@EMPTY", empty),
            ("@DIR", testdir.display().to_string()),
        ];
        let mut vars = BTreeMap::new();
        vars.insert("AWS_ACCESS_KEY_ID".to_owned(), "AKIDENV".to_owned());
        vars.insert("AWS_SECRET_ACCESS_KEY".to_owned(), SECRETS[2].to_owned());
        vars.insert("S3B_KEY".to_owned(), SECRETS[2].to_owned());
        Fixture {
            env: Environment {
                home: Some(home),
                vars,
                interactive: false,
            },
            markers,
            config_path,
        }
    })
}

impl Fixture {
    /// `s` with every marker replaced by its path.
    pub fn substitute(&self, s: &str) -> String {
        let mut out = s.to_owned();
        for (m, p) in &self.markers {
            if out.contains(m) {
                out = out.replace(m, p);
            }
        }
        out
    }

    /// Writes the config file the `@CONF` marker names.
    pub fn write_config(&self, text: &str) {
        std::fs::write(&self.config_path, self.substitute(text)).expect("config file");
    }
}

/// True if the input could make the parser read a file other than the fixture's: a value of a
/// file flag (`configFile`, `-F`, `passwordFile`, `accessFile`) with a `/` in it, in the same
/// token or the next one. Relative names without `/` stay in the working directory. Such
/// inputs are skipped (`/dev/zero` or `/dev/stdin` would hang or exhaust memory, which is
/// not a parser bug).
pub fn touches_outside_files(text: &str) -> bool {
    const FILE_FLAGS: [&str; 4] = ["configFile", "passwordFile", "accessFile", "-F"];
    let tokens: Vec<&str> = text.split(['\0', '\n', '\r', ',', '\u{1e}']).collect();
    for (i, t) in tokens.iter().enumerate() {
        for flag in FILE_FLAGS {
            for (at, _) in t.match_indices(flag) {
                let rest = &t[at + flag.len()..];
                if rest.contains('/') {
                    return true;
                }
                let next_has_slash = tokens.get(i + 1).is_some_and(|n| n.contains('/'));
                if rest
                    .trim_start_matches(['=', ' ', '\t', '\u{0c}'])
                    .is_empty()
                    && next_has_slash
                {
                    return true;
                }
            }
        }
    }
    false
}

/// Whether `haystack` shows a fixture secret that the input did not contain. A secret file
/// the input names as a config file counts as input: its lines are then config lines, and
/// an error about one quotes it, as it quotes any other bad config line (found by this
/// target: `-F@PASS` reported the password as an invalid bucket name).
pub fn leaks_secret(haystack: &str, input: &str) -> Option<&'static str> {
    let read_as_config = |marker: &str| {
        input.contains(marker) && (input.contains("-F") || input.contains("configFile"))
    };
    SECRETS.into_iter().enumerate().find_map(|(i, s)| {
        let given = input.contains(s)
            || (i == 0 && read_as_config("@ACCESS"))
            || (i == 1 && read_as_config("@PASS"));
        (haystack.contains(s) && !given).then_some(s)
    })
}

/// The properties every parse result has: errors and warnings are one line and show no
/// secret; a Config's Debug shows no secret; basic values are in range.
pub fn check_result(r: &Result<Config, ConfigError>, input: &str) {
    match r {
        Err(e) => {
            let msg = e.to_string();
            assert_one_line("error", &msg);
            assert!(
                leaks_secret(&msg, input).is_none(),
                "secret in error message: {msg:?}"
            );
        }
        Ok(c) => {
            for w in &c.warnings {
                assert_one_line("warning", w);
                assert!(leaks_secret(w, input).is_none(), "secret in warning: {w:?}");
            }
            let dbg = format!("{c:?}");
            assert!(
                leaks_secret(&dbg, input).is_none(),
                "secret in Debug of Config: {dbg}"
            );
            if let Some(bs) = c.block_size {
                assert!(
                    bs.is_power_of_two(),
                    "block size {bs} is not a power of two"
                );
            }
            if let Some(size) = c.size {
                assert!(size > 0, "size 0 accepted");
            }
            assert!(c.io_threads > 0, "ioThreads 0 accepted");
        }
    }
}

/// The common start of both config targets: the input as text, or `None` when it could reach
/// files outside the fixture; the fixture with its config file written from the part after
/// `\x1e`; and the part before it (arguments or parameters, `\0`-separated).
pub fn prepare(data: &[u8]) -> Option<(String, &'static Fixture, String)> {
    let text = String::from_utf8_lossy(data).into_owned();
    if touches_outside_files(&text) {
        return None;
    }
    let fx = fixture();
    let (head, file_part) = match text.split_once('\u{1e}') {
        Some((a, f)) => (a.to_owned(), f),
        None => (text.clone(), ""),
    };
    fx.write_config(file_part);
    Some((text, fx, head))
}
