//! The command line as written: expanded arguments sorted into flags (by table entry, last one
//! wins), positionals and FUSE options. Nothing here knows what a flag means; values are not
//! checked yet (`resolve.rs` does that, for every flag, in order of appearance).

use std::collections::BTreeMap;

use crate::args::{Element, Expanded, Origin};
use crate::error::{ConfigError, Location};
use crate::flags::{self, FlagDef, Kind};

/// Which front end the arguments are for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Front {
    /// The `s3backer` command line.
    CommandLine,
    /// nbdkit plugin parameters (and the config files they name).
    Plugin,
}

impl Front {
    /// How to name a flag that was not given (so has no origin) in a message.
    pub(crate) fn flag(self, name: &str) -> String {
        match self {
            Front::CommandLine => format!("--{name}"),
            Front::Plugin => name.to_owned(),
        }
    }
}

/// One flag occurrence (the last one, since repeated flags overwrite).
#[derive(Clone, Debug)]
pub(crate) struct Setting {
    pub def: &'static FlagDef,
    /// `None` for a boolean (or a bare `--compress`).
    pub value: Option<String>,
    pub origin: Origin,
    /// Position among all flag occurrences, for "last one wins" between two flags.
    pub seq: usize,
}

impl Setting {
    /// The flag as the user wrote it: `--size`, or `size` / `s3b_size` for a plugin parameter.
    pub(crate) fn flag_ref(&self) -> String {
        match &self.origin {
            Origin::Param(key) => key.clone(),
            Origin::Arg | Origin::File(_) => format!("--{}", self.def.name),
        }
    }

    /// The flag and its value as written, for messages: `--size=1g`.
    pub(crate) fn shown(&self) -> String {
        match &self.value {
            Some(v) => format!("{}={v}", self.flag_ref()),
            None => self.flag_ref(),
        }
    }

    pub(crate) fn location(&self) -> Option<Location> {
        self.origin.location()
    }

    /// An error about this flag, located at its config-file line if it came from one.
    pub(crate) fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::invalid(message).at(self.location())
    }
}

/// Arguments sorted by role.
#[derive(Debug, Default)]
pub(crate) struct RawArgs {
    pub settings: BTreeMap<&'static str, Setting>,
    pub positionals: Vec<(String, Origin)>,
    /// Kept for the FUSE front end, in order (`-o item` as two elements).
    pub fuse_args: Vec<String>,
    /// FUSE options dropped because the plugin has no FUSE (reported as warnings).
    pub ignored_fuse_args: Vec<String>,
    /// `-f` or `-d`.
    pub foreground: bool,
    /// `-d`: FUSE debug, which also means `--debug`.
    pub fuse_debug: bool,
    pub used_config_file: bool,
    /// `--nbd` was given (first, on the command line: see `nbd.rs`).
    pub nbd: bool,
    /// `--nbd-flag` values in order (repeatable, unlike other flags).
    pub nbd_flags: Vec<String>,
    /// `--nbd-param` values in order.
    pub nbd_params: Vec<String>,
}

/// Result of sorting: `--help`/`--version` end parsing at once.
#[derive(Debug)]
pub(crate) enum Sorted {
    Help,
    Version,
    Args(RawArgs),
}

impl RawArgs {
    pub(crate) fn get(&self, name: &str) -> Option<&Setting> {
        self.settings.get(name)
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.settings.contains_key(name)
    }

    pub(crate) fn text(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|s| s.value.as_deref())
    }

    /// Sorts expanded arguments.
    pub(crate) fn sort(expanded: Expanded, front: Front) -> Result<Sorted, ConfigError> {
        let mut raw = RawArgs {
            used_config_file: expanded.used_config_file,
            ..RawArgs::default()
        };
        let mut seq = 0;
        let mut only_positionals = false;
        let mut items = expanded.items.into_iter().peekable();
        while let Some((element, origin)) = items.next() {
            let next_text = match items.peek() {
                Some((Element::Arg(a), _)) => Some(a.as_str()),
                _ => None,
            };
            match element {
                Element::Arg(arg) if only_positionals => raw.positionals.push((arg, origin)),
                Element::Arg(arg) => match arg.as_str() {
                    "--" => only_positionals = true,
                    "--help" | "-h" | "-?" => return Ok(Sorted::Help),
                    "--version" | "-v" => return Ok(Sorted::Version),
                    "-f" => raw.fuse_option(front, false, &arg),
                    "-d" => raw.fuse_option(front, true, &arg),
                    _ if arg.starts_with("--") => {
                        let (name, value) = split(&arg[2..]);
                        let def = flags::lookup(name).ok_or_else(|| {
                            // `--size 1g` written on one config-file line.
                            if let Some((flag, v)) = name.split_once(' ')
                                && flags::lookup(flag).is_some()
                            {
                                let v = v.trim_start();
                                return ConfigError::invalid(format!(
                                    "{arg:?}: use --{flag}={v} (the '=' is required)"
                                ))
                                .at(origin.location());
                            }
                            let hint = flags::suggest(name)
                                .map(|s| format!(" (did you mean \"--{s}\"?)"))
                                .unwrap_or_default();
                            ConfigError::invalid(format!("unknown flag \"--{name}\"{hint}"))
                                .at(origin.location())
                        })?;
                        seq += 1;
                        raw.set(def, value, origin, seq, Form::Long { next_text })?;
                        raw.collect_repeatable(def, value);
                    }
                    _ if arg.starts_with('-') && arg.len() > 1 => {
                        raw.fuse_option(front, false, &arg);
                    }
                    _ => raw.positionals.push((arg, origin)),
                },
                Element::OptItem(item) => {
                    let (name, value) = split(&item);
                    match flags::lookup(name) {
                        Some(def) => {
                            seq += 1;
                            raw.set(def, value, origin, seq, Form::OptItem)?;
                            raw.collect_repeatable(def, value);
                        }
                        None if front == Front::Plugin => {
                            raw.ignored_fuse_args.push(format!("-o {item}"));
                        }
                        None => raw.fuse_args.extend(["-o".to_owned(), item]),
                    }
                }
            }
        }
        Ok(Sorted::Args(raw))
    }

    fn fuse_option(&mut self, front: Front, is_debug: bool, arg: &str) {
        let is_foreground = is_debug || arg == "-f";
        match front {
            // `-d` keeps its `--debug` meaning for the plugin (facts §5.1).
            Front::Plugin if is_debug => self.fuse_debug = true,
            Front::Plugin => self.ignored_fuse_args.push(arg.to_owned()),
            Front::CommandLine => {
                self.foreground |= is_foreground;
                self.fuse_debug |= is_debug;
                if arg != "-f" {
                    self.fuse_args.push(arg.to_owned());
                }
            }
        }
    }

    /// `--nbd-flag` and `--nbd-param` add up instead of overwriting: keep every value.
    fn collect_repeatable(&mut self, def: &FlagDef, value: Option<&str>) {
        let list = match def.name {
            "nbd-flag" => &mut self.nbd_flags,
            "nbd-param" => &mut self.nbd_params,
            _ => return,
        };
        list.extend(value.map(str::to_owned));
    }

    fn set(
        &mut self,
        def: &'static FlagDef,
        value: Option<&str>,
        origin: Origin,
        seq: usize,
        form: Form<'_>,
    ) -> Result<(), ConfigError> {
        let shown = match form {
            Form::OptItem => format!("-o {}", def.name),
            Form::Long { .. } => format!("--{}", def.name),
        };
        let fail = |msg: String| Err(ConfigError::invalid(msg).at(origin.location()));
        if def.name == "nbd" {
            // A leading `--nbd` never gets here (parse_command_line takes it out first), so
            // this one is misplaced: facts §1.8.
            return fail(match &origin {
                Origin::File(_) => {
                    "--nbd is not supported in config files: give it first on the command line"
                        .to_owned()
                }
                Origin::Param(key) => format!(
                    "{key} cannot be used with the nbdkit plugin (run `s3backer --nbd ...` to attach a device)"
                ),
                Origin::Arg => format!(
                    "{shown} must come first, before the bucket and device arguments: s3backer --nbd [flags] bucket[/subdir] /dev/nbdX"
                ),
            });
        }
        let value = match (def.kind, value) {
            (Kind::Value, None) => {
                let placeholder = match (form, def.arg) {
                    (Form::Long { next_text: Some(n) }, _) if !n.starts_with('-') => n,
                    (_, arg) => arg,
                };
                return fail(format!(
                    "{shown} requires a value: use {shown}={placeholder} (the '=' is required)"
                ));
            }
            (Kind::Bool, Some(v)) => match flags::parse_bool(v) {
                Some(true) => None,
                Some(false) => {
                    self.settings.remove(def.name);
                    return Ok(());
                }
                None => {
                    return fail(format!(
                        "{shown} takes no value (or one of true, false, yes, no, 1, 0), not {v:?}"
                    ));
                }
            },
            (Kind::BoolOrValue, Some(v)) => match flags::parse_bool_word(v) {
                Some(true) => None,
                Some(false) => {
                    self.settings.remove(def.name);
                    return Ok(());
                }
                None => Some(v.to_owned()),
            },
            (_, v) => v.map(str::to_owned),
        };
        self.settings.insert(
            def.name,
            Setting {
                def,
                value,
                origin,
                seq,
            },
        );
        Ok(())
    }
}

#[derive(Clone, Copy)]
enum Form<'a> {
    /// `--name[=value]`; `next_text` is the following argument, to suggest `--size=1g` for
    /// `--size 1g`.
    Long { next_text: Option<&'a str> },
    /// `-o name[=value]`.
    OptItem,
}

fn split(s: &str) -> (&str, Option<&str>) {
    match s.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (s, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::expand;

    fn sort(list: &[&str], front: Front) -> Result<Sorted, ConfigError> {
        let args = list.iter().map(|a| (a.to_string(), Origin::Arg)).collect();
        RawArgs::sort(expand(args)?, front)
    }

    fn raw(list: &[&str]) -> RawArgs {
        match sort(list, Front::CommandLine).unwrap() {
            Sorted::Args(r) => r,
            other => panic!("{other:?}"),
        }
    }

    fn err(list: &[&str]) -> String {
        sort(list, Front::CommandLine).unwrap_err().to_string()
    }

    #[test]
    fn long_and_option_list_spellings() {
        let r = raw(&[
            "--size=1g",
            "-o",
            "blockSize=4k,readOnly,allow_other",
            "-oprefix=p/",
            "b",
            "m",
        ]);
        assert_eq!(r.text("size"), Some("1g"));
        assert_eq!(r.text("blockSize"), Some("4k"));
        assert!(r.has("readOnly"));
        assert_eq!(r.text("prefix"), Some("p/"));
        assert_eq!(r.fuse_args, ["-o", "allow_other"]);
        let pos: Vec<&str> = r.positionals.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(pos, ["b", "m"]);
    }

    #[test]
    fn value_flags_need_equals() {
        assert_eq!(
            err(&["--size", "1g", "b"]),
            "--size requires a value: use --size=1g (the '=' is required)"
        );
        assert_eq!(
            err(&["--size"]),
            "--size requires a value: use --size=SIZE (the '=' is required)"
        );
        assert_eq!(
            err(&["-o", "size"]),
            "-o size requires a value: use -o size=SIZE (the '=' is required)"
        );
    }

    #[test]
    fn booleans_accept_words_and_false_means_not_given() {
        let r = raw(&[
            "--readOnly=YES",
            "--force=1",
            "--debug",
            "--debug=false",
            "-o",
            "quiet=no",
        ]);
        assert!(r.has("readOnly") && r.has("force"));
        assert!(!r.has("debug") && !r.has("quiet"));
        assert_eq!(
            err(&["--readOnly=maybe"]),
            "--readOnly takes no value (or one of true, false, yes, no, 1, 0), not \"maybe\""
        );
    }

    #[test]
    fn bool_or_value_flags() {
        let r = raw(&["--compress"]);
        assert_eq!(r.get("compress").map(|s| s.value.clone()), Some(None));
        let r = raw(&["--compress=zstd", "--encrypt=false"]);
        assert_eq!(r.text("compress"), Some("zstd"));
        assert!(!r.has("encrypt"));
        // A number is a deflate level, not a boolean.
        assert_eq!(raw(&["--compress=0"]).text("compress"), Some("0"));
    }

    #[test]
    fn last_one_wins() {
        let r = raw(&["--size=1g", "--size=2g"]);
        assert_eq!(r.text("size"), Some("2g"));
        let r = raw(&["--vhost", "--no-vhost"]);
        assert!(r.get("no-vhost").map(|s| s.seq) > r.get("vhost").map(|s| s.seq));
    }

    #[test]
    fn unknown_long_flags_are_errors_with_suggestions() {
        assert_eq!(
            err(&["--blocksize=4k"]),
            "unknown flag \"--blocksize\" (did you mean \"--blockSize\"?)"
        );
        assert_eq!(err(&["--frobnicate"]), "unknown flag \"--frobnicate\"");
    }

    #[test]
    fn single_dash_options() {
        let r = raw(&["-f", "-s", "b"]);
        assert!(r.foreground && !r.fuse_debug);
        assert_eq!(r.fuse_args, ["-s"]);
        let r = raw(&["-d"]);
        assert!(r.foreground && r.fuse_debug);
        assert_eq!(r.fuse_args, ["-d"]);
    }

    #[test]
    fn help_and_version_stop_parsing() {
        for h in ["--help", "-h", "-?"] {
            assert!(matches!(
                sort(&[h, "--bogus"], Front::CommandLine),
                Ok(Sorted::Help)
            ));
        }
        for v in ["--version", "-v"] {
            assert!(matches!(
                sort(&[v], Front::CommandLine),
                Ok(Sorted::Version)
            ));
        }
    }

    #[test]
    fn double_dash_makes_the_rest_positional() {
        let r = raw(&["--", "--size=1g", "-f"]);
        assert!(!r.has("size") && !r.foreground);
        assert_eq!(r.positionals.len(), 2);
    }

    #[test]
    fn plugin_ignores_fuse_options_except_debug() {
        let Ok(Sorted::Args(r)) = sort(&["-o", "allow_other", "-f", "-s", "-d"], Front::Plugin)
        else {
            panic!()
        };
        assert!(r.fuse_args.is_empty() && !r.foreground && r.fuse_debug);
        assert_eq!(r.ignored_fuse_args, ["-o allow_other", "-f", "-s"]);
    }

    #[test]
    fn flag_refs() {
        let r = raw(&["--size=1g"]);
        let s = r.get("size").unwrap();
        assert_eq!(s.shown(), "--size=1g");
        let param = Setting {
            origin: Origin::Param("s3b_size".into()),
            ..s.clone()
        };
        assert_eq!(param.flag_ref(), "s3b_size");
        assert_eq!(Front::Plugin.flag("size"), "size");
    }
}
