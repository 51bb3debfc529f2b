//! Shared by the fuzz targets (each includes it with `mod common;`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A directory of this process's own for the files a target writes (config files, cache
/// files): `$TMPDIR/s3b-fuzz-<target>-<pid>`. The scripts point TMPDIR at a tmpfs directory they
/// remove afterwards.
pub fn private_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "target".to_owned());
        let dir = std::env::temp_dir().join(format!("s3b-fuzz-{exe}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the fuzz target's private directory");
        dir
    })
}

/// True if `s` is a single line: no `\n`, no `\r`.
pub fn one_line(s: &str) -> bool {
    !s.contains(['\n', '\r'])
}

/// Asserts that a message is one non-empty line.
#[track_caller]
pub fn assert_one_line(what: &str, s: &str) {
    assert!(!s.is_empty(), "{what}: empty message");
    assert!(one_line(s), "{what} is not one line: {s:?}");
}

/// Every character an XML parser may produce from `input`'s text: the input's own characters
/// (lossy UTF-8), what the predefined entities stand for, `\n` when the input has a `\r`
/// or another XML 1.1 line end (end-of-line normalization), and the characters of anything that looks like a numeric
/// character reference (`&#NNN;`, `&#xHHH;`, read both ways).
pub fn xml_alphabet(input: &[u8]) -> std::collections::HashSet<char> {
    let text = String::from_utf8_lossy(input);
    let mut set: std::collections::HashSet<char> = text.chars().collect();
    set.extend(['&', '<', '>', '\'', '"']);
    // quick-xml normalizes line ends the XML 1.1 way: \r\n, \r, \r\u{85}, \u{85}, \u{2028}.
    if set.contains(&'\r') || set.contains(&'\u{85}') || set.contains(&'\u{2028}') {
        set.insert('\n');
    }
    for (at, _) in text.match_indices("&#") {
        let rest = &text[at + 2..];
        let rest = rest.strip_prefix(['x', 'X']).unwrap_or(rest);
        let run: String = rest
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect();
        for radix in [10, 16] {
            if let Some(c) = u32::from_str_radix(run.trim_start_matches('0'), radix)
                .ok()
                .and_then(char::from_u32)
            {
                set.insert(c);
            }
        }
        if !run.is_empty() && run.trim_start_matches('0').is_empty() {
            set.insert('\0');
        }
    }
    set
}

/// Asserts that every character of `s` is in `alphabet`.
#[track_caller]
pub fn assert_from_input(what: &str, s: &str, alphabet: &std::collections::HashSet<char>) {
    if let Some(c) = s.chars().find(|c| !alphabet.contains(c)) {
        panic!("{what} {s:?} has {c:?}, which is not in the input");
    }
}

/// XML-escapes text for an element body, so that a parser gives back exactly `s` (line-end
/// characters `\r`, `\u{85}`, `\u{2028}` as character references: raw, quick-xml normalizes
/// them to `\n`).
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            '\u{85}' => out.push_str("&#133;"),
            '\u{2028}' => out.push_str("&#8232;"),
            c => out.push(c),
        }
    }
    out
}
