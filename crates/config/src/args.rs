//! Raw argv expansion, before any flag is interpreted: `--configFile=FILE`, `-F FILE` and
//! `-o configFile=FILE` (also inside a comma list) are replaced in place by the file's lines,
//! recursively, and `-o LIST` / `-oLIST` are split into their items.
//!
//! Expansion works on a queue, not by recursion, so a config file may end in the middle of a
//! construct (a trailing `-o` takes the next argument after the file, as in s3backer, whose
//! expansion is a plain argv substitution). Every element remembers where it came from so
//! later errors can name the file and line.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use crate::error::{ConfigError, ErrorKind, Location};

/// s3backer's limit on the number of file substitutions (facts §1.4); also stops a file that
/// includes itself.
pub(crate) const MAX_EXPANSIONS: usize = 100;

/// s3backer reads lines into a 1024-byte buffer (text, newline, NUL).
pub(crate) const MAX_LINE: usize = 1022;

/// Where an argument came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// The real command line.
    Arg,
    /// A config file line.
    File(Location),
    /// An nbdkit `key=value` parameter; holds the key as the user typed it.
    Param(String),
}

impl Origin {
    pub(crate) fn location(&self) -> Option<Location> {
        match self {
            Origin::File(loc) => Some(loc.clone()),
            Origin::Arg | Origin::Param(_) => None,
        }
    }
}

/// One argument after expansion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Element {
    /// A plain argv element (`--flag=value`, `-f`, a positional, ...).
    Arg(String),
    /// One item of a `-o` list (`name=value` or `name`).
    OptItem(String),
}

/// The expanded argument list.
#[derive(Debug, Default)]
pub(crate) struct Expanded {
    /// Elements in order, each with its origin.
    pub items: Vec<(Element, Origin)>,
    /// Whether any config file was read.
    pub used_config_file: bool,
}

enum Pending {
    Arg(String),
    /// The rest of a `-o` list after a `configFile=` item was cut out of it.
    OptList(String),
}

struct Expander {
    queue: VecDeque<(Pending, Origin)>,
    out: Expanded,
    expansions: usize,
}

/// Expands `args` (the real command line, or nbdkit's synthetic one).
pub(crate) fn expand(args: Vec<(String, Origin)>) -> Result<Expanded, ConfigError> {
    let mut ex = Expander {
        queue: args
            .into_iter()
            .map(|(a, o)| (Pending::Arg(a), o))
            .collect(),
        out: Expanded::default(),
        expansions: 0,
    };
    ex.run()?;
    Ok(ex.out)
}

impl Expander {
    fn run(&mut self) -> Result<(), ConfigError> {
        while let Some((pending, origin)) = self.queue.pop_front() {
            let arg = match pending {
                Pending::OptList(list) => {
                    self.opt_list(&list, &origin)?;
                    continue;
                }
                Pending::Arg(arg) => arg,
            };
            let err = |msg: &str| ConfigError::invalid(msg).at(origin.location());
            if arg == "--" {
                // Everything after `--` is positional; expand nothing there.
                self.out.items.push((Element::Arg(arg), origin));
                while let Some((p, o)) = self.queue.pop_front() {
                    let (Pending::Arg(a) | Pending::OptList(a)) = p;
                    self.out.items.push((Element::Arg(a), o));
                }
            } else if let Some(file) = arg.strip_prefix("--configFile=") {
                self.include(file, &origin)?;
            } else if arg == "--configFile" {
                return Err(err("--configFile requires a value: use --configFile=FILE"));
            } else if arg == "-F" {
                let file = self
                    .next_value()
                    .ok_or_else(|| err("-F requires a file name: use -F FILE"))?;
                self.include(&file, &origin)?;
            } else if let Some(file) = arg.strip_prefix("-F") {
                // `-F FILE` written on one config-file line.
                self.include(
                    file.trim_start_matches(|c: char| c.is_ascii_whitespace()),
                    &origin,
                )?;
            } else if arg == "-o" {
                let list = self
                    .next_value()
                    .ok_or_else(|| err("-o requires an argument: use -o name=value,..."))?;
                self.opt_list(&list, &origin)?;
            } else if let Some(list) = arg.strip_prefix("-o") {
                self.opt_list(list, &origin)?;
            } else {
                self.out.items.push((Element::Arg(arg), origin));
            }
        }
        Ok(())
    }

    fn next_value(&mut self) -> Option<String> {
        self.queue.pop_front().map(|(p, _)| match p {
            Pending::Arg(a) | Pending::OptList(a) => a,
        })
    }

    fn opt_list(&mut self, list: &str, origin: &Origin) -> Result<(), ConfigError> {
        // Items are trimmed: a config-file line `-o readOnly` is one argument with a space in
        // it, and s3backer would hand " readOnly" to FUSE, which rejects it.
        let mut items = list
            .split(',')
            .map(|i| i.trim_matches(|c: char| c.is_ascii_whitespace()));
        while let Some(item) = items.next() {
            if item.is_empty() {
                continue;
            }
            if let Some(file) = item.strip_prefix("configFile=") {
                // The rest of the list goes after the file's contents: expansion is in place.
                let rest: Vec<&str> = items.collect();
                if !rest.is_empty() {
                    self.queue
                        .push_front((Pending::OptList(rest.join(",")), origin.clone()));
                }
                return self.include(file, origin);
            }
            if item == "configFile" {
                return Err(ConfigError::invalid(
                    "-o configFile requires a value: use -o configFile=FILE",
                )
                .at(origin.location()));
            }
            self.out
                .items
                .push((Element::OptItem(item.to_owned()), origin.clone()));
        }
        Ok(())
    }

    fn include(&mut self, file: &str, origin: &Origin) -> Result<(), ConfigError> {
        if file.is_empty() {
            return Err(
                ConfigError::invalid("--configFile requires a non-empty file name")
                    .at(origin.location()),
            );
        }
        self.expansions += 1;
        if self.expansions > MAX_EXPANSIONS {
            return Err(
                ConfigError::invalid("too many levels of \"--configFile\" nesting")
                    .at(origin.location()),
            );
        }
        self.out.used_config_file = true;
        // A nested file that cannot be read is reported at the line that names it.
        let lines = read_config_file(Path::new(file)).map_err(|e| e.at(origin.location()))?;
        for (line, text) in lines.into_iter().rev() {
            let loc = Location {
                file: PathBuf::from(file),
                line,
            };
            self.queue
                .push_front((Pending::Arg(text), Origin::File(loc)));
        }
        Ok(())
    }
}

/// The arguments in a config file, with their line numbers: lines trimmed, blank lines and
/// `#` comments skipped, internal whitespace kept.
pub(crate) fn read_config_file(path: &Path) -> Result<Vec<(usize, String)>, ConfigError> {
    let bytes = std::fs::read(path).map_err(|e| {
        ConfigError::new(
            ErrorKind::Io,
            format!(
                "cannot read config file {:?}: {}",
                path.display().to_string(),
                e
            ),
        )
    })?;
    let mut out = Vec::new();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let loc = || {
            Some(Location {
                file: path.to_path_buf(),
                line: i + 1,
            })
        };
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.len() > MAX_LINE {
            return Err(ConfigError::invalid(format!(
                "line too long (more than {MAX_LINE} characters)"
            ))
            .at(loc()));
        }
        let Ok(text) = std::str::from_utf8(raw) else {
            return Err(ConfigError::invalid("line is not valid UTF-8").at(loc()));
        };
        let text = text.trim_matches(|c: char| c.is_ascii_whitespace());
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        out.push((i + 1, text.to_owned()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    fn args(list: &[&str]) -> Vec<(String, Origin)> {
        list.iter().map(|a| (a.to_string(), Origin::Arg)).collect()
    }

    fn texts(ex: &Expanded) -> Vec<String> {
        ex.items
            .iter()
            .map(|(e, _)| match e {
                Element::Arg(a) => a.clone(),
                Element::OptItem(i) => format!("o:{i}"),
            })
            .collect()
    }

    #[test]
    fn option_lists_are_split() {
        let ex = expand(args(&["-o", "a=1,b,,c=2", "-od", "x"])).unwrap();
        assert_eq!(texts(&ex), ["o:a=1", "o:b", "o:c=2", "o:d", "x"]);
        assert!(!ex.used_config_file);
    }

    #[test]
    fn dash_o_needs_an_argument() {
        let err = expand(args(&["-o"])).unwrap_err();
        assert!(err.to_string().contains("-o requires an argument"));
        assert!(
            expand(args(&["-F"]))
                .unwrap_err()
                .to_string()
                .contains("-F requires")
        );
        assert!(
            expand(args(&["--configFile"]))
                .unwrap_err()
                .to_string()
                .contains("--configFile=FILE")
        );
    }

    #[test]
    fn config_file_lines_comments_and_whitespace() {
        let dir = TempDir::new();
        let f = dir.write("a.conf", "# comment\n\n  --size=1g  \n\t# indented comment\n--prefix=a b\r\n-o\nreadOnly\nbucket\n");
        let ex = expand(args(&["x", &format!("--configFile={f}"), "y"])).unwrap();
        assert_eq!(
            texts(&ex),
            [
                "x",
                "--size=1g",
                "--prefix=a b",
                "o:readOnly",
                "bucket",
                "y"
            ]
        );
        assert!(ex.used_config_file);
        let (_, origin) = &ex.items[1];
        assert_eq!(origin.location().map(|l| l.line), Some(3));
    }

    #[test]
    fn all_three_spellings_and_nesting() {
        let dir = TempDir::new();
        let inner = dir.write("inner.conf", "--inner\n");
        let outer = dir.write("outer.conf", &format!("--before\n-F\n{inner}\n--after\n"));
        for spelling in [
            vec![format!("--configFile={outer}")],
            vec!["-F".to_owned(), outer.clone()],
            vec![format!("-F{outer}")],
            vec!["-o".to_owned(), format!("configFile={outer}")],
        ] {
            let list: Vec<&str> = spelling.iter().map(String::as_str).collect();
            let ex = expand(args(&list)).unwrap();
            assert_eq!(
                texts(&ex),
                ["--before", "--inner", "--after"],
                "{spelling:?}"
            );
        }
    }

    #[test]
    fn config_file_inside_an_option_list_is_cut_out_in_place() {
        let dir = TempDir::new();
        let f = dir.write("c.conf", "--middle\n");
        let ex = expand(args(&["-o", &format!("a,configFile={f},b=2"), "pos"])).unwrap();
        assert_eq!(texts(&ex), ["o:a", "--middle", "o:b=2", "pos"]);
    }

    #[test]
    fn recursion_limit() {
        let dir = TempDir::new();
        let path = dir.path().join("self.conf");
        let me = path.display().to_string();
        std::fs::write(&path, format!("--configFile={me}\n")).unwrap();
        let err = expand(args(&[&format!("--configFile={me}")])).unwrap_err();
        assert_eq!(err.message(), "too many levels of \"--configFile\" nesting");
        assert_eq!(err.location().map(|l| l.line), Some(1));
    }

    #[test]
    fn exactly_one_hundred_expansions_are_fine() {
        let dir = TempDir::new();
        let mut next = dir.write("f100.conf", "--end\n");
        for i in (1..100).rev() {
            next = dir.write(&format!("f{i}.conf"), &format!("-F\n{next}\n"));
        }
        let ex = expand(args(&["-F", &next])).unwrap();
        assert_eq!(texts(&ex), ["--end"]);
        let over = dir.write("f0.conf", &format!("-F\n{next}\n"));
        assert!(expand(args(&["-F", &over])).is_err());
    }

    #[test]
    fn unreadable_file_names_file_and_reason() {
        let err = expand(args(&["--configFile=/nonexistent/s3b.conf"])).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Io);
        let msg = err.to_string();
        assert!(msg.contains("\"/nonexistent/s3b.conf\""), "{msg}");
        assert!(msg.contains("No such file"), "{msg}");
    }

    #[test]
    fn missing_nested_file_is_reported_where_it_is_named() {
        let dir = TempDir::new();
        let f = dir.write("outer.conf", "\n-F /nonexistent/inner.conf\n");
        let err = expand(args(&["-F", &f])).unwrap_err();
        assert_eq!(err.location().map(|l| l.line), Some(2));
        assert!(
            err.to_string()
                .starts_with(&format!("{f}:2: cannot read config file"))
        );
    }

    #[test]
    fn long_line_is_an_error_with_location() {
        let dir = TempDir::new();
        let ok = "x".repeat(MAX_LINE);
        let f = dir.write("long.conf", &format!("{ok}\n--a\n{ok}y\n"));
        let err = expand(args(&[&format!("-F{f}")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{f}:3: line too long (more than 1022 characters)")
        );
    }

    #[test]
    fn one_line_forms_in_files() {
        let dir = TempDir::new();
        let inner = dir.write("inner.conf", "--inner\n");
        let f = dir.write("one.conf", &format!("-o readOnly, size=1m\n-F {inner}\n"));
        let ex = expand(args(&["-F", &f])).unwrap();
        assert_eq!(texts(&ex), ["o:readOnly", "o:size=1m", "--inner"]);
    }

    #[test]
    fn nothing_after_double_dash_is_expanded() {
        let ex = expand(args(&["--", "-o", "x", "--configFile=/nonexistent"])).unwrap();
        assert_eq!(texts(&ex), ["--", "-o", "x", "--configFile=/nonexistent"]);
    }

    #[test]
    fn trailing_dash_o_in_a_file_takes_the_next_argument() {
        let dir = TempDir::new();
        let f = dir.write("t.conf", "-o\n");
        let ex = expand(args(&["-F", &f, "readOnly"])).unwrap();
        assert_eq!(texts(&ex), ["o:readOnly"]);
    }
}
