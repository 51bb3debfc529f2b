//! Benchmark tools for s3backer-rs (`bench/run.sh`):
//!
//! * `s3-memory-server`: an in-memory S3 server (path-style, HTTP/1.1 keep-alive, one thread per
//!   connection) whose raw capacity is far above what the disk needs, so the benchmark measures
//!   the disk and not the server. Signatures are accepted **without verification**.
//! * `s3-load`: a raw S3 load generator (N keep-alive connections, fixed pre-hashed body), the
//!   server's ceiling the disk is compared with.
//!
//! This module holds the small HTTP/1.1 reading helpers both share.
#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::io::{self, BufRead, IoSlice, Write};

/// One parsed request or response head.
#[derive(Debug, Default)]
pub struct Head {
    /// Request: method; response: HTTP version.
    pub first: String,
    /// Request: target (path + query); response: status code.
    pub second: String,
    /// Headers, names lower-cased, values trimmed.
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// First value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// `Content-Length`, if present and valid.
    pub fn content_length(&self) -> Option<usize> {
        self.header("content-length")?.parse().ok()
    }
}

/// Largest head accepted (request line plus headers).
const MAX_HEAD: usize = 64 * 1024;

/// Reads one head; `Ok(None)` at a clean end of stream before any byte.
pub fn read_head<R: BufRead>(r: &mut R) -> io::Result<Option<Head>> {
    let mut line = Vec::with_capacity(256);
    let mut total = 0;
    let mut head = Head::default();
    let mut first = true;
    loop {
        line.clear();
        let n = r.read_until(b'\n', &mut line)?;
        if n == 0 {
            if first {
                return Ok(None);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "truncated head",
            ));
        }
        total += n;
        if total > MAX_HEAD {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "head too large"));
        }
        while line.last().is_some_and(|&c| c == b'\n' || c == b'\r') {
            line.pop();
        }
        let text = String::from_utf8_lossy(&line);
        if first {
            if text.is_empty() {
                continue; // tolerate a stray CRLF between messages
            }
            let mut parts = text.splitn(3, ' ');
            head.first = parts.next().unwrap_or_default().to_owned();
            head.second = parts.next().unwrap_or_default().to_owned();
            first = false;
            continue;
        }
        if text.is_empty() {
            return Ok(Some(head));
        }
        if let Some((name, value)) = text.split_once(':') {
            head.headers
                .push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
}

/// Reads a body of `Content-Length` bytes, or a chunked one, into `buf` (cleared first).
pub fn read_body<R: BufRead>(r: &mut R, head: &Head, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.clear();
    if head
        .header("transfer-encoding")
        .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut line = String::new();
            r.read_line(&mut line)?;
            let size_text = line.trim().split(';').next().unwrap_or_default();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
            if size == 0 {
                // trailers until an empty line
                loop {
                    line.clear();
                    if r.read_line(&mut line)? == 0 || line.trim().is_empty() {
                        return Ok(());
                    }
                }
            }
            let start = buf.len();
            buf.resize(start + size, 0);
            r.read_exact(&mut buf[start..])?;
            line.clear();
            r.read_line(&mut line)?;
        }
    }
    let len = head.content_length().unwrap_or(0);
    buf.resize(len, 0);
    r.read_exact(buf)
}

/// Percent-decodes `s` (`+` is kept: S3 paths do not use form encoding).
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(hex, 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Writes a request or response head and its body, in as few system calls as possible.
pub fn write_all_vectored<W: Write>(w: &mut W, mut a: &[u8], mut b: &[u8]) -> io::Result<()> {
    while !a.is_empty() || !b.is_empty() {
        let n = w.write_vectored(&[IoSlice::new(a), IoSlice::new(b)])?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        if n >= a.len() {
            b = &b[n - a.len()..];
            a = &[];
        } else {
            a = &a[n..];
        }
    }
    Ok(())
}

/// XML-escapes text content.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Undoes [`xml_escape`] (and numeric character references).
pub fn xml_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('&') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos..];
        let Some(end) = rest.find(';') else {
            break;
        };
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e if e.starts_with("#x") => u32::from_str_radix(&e[2..], 16)
                .ok()
                .and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_and_bodies() {
        let raw = b"PUT /b/k%20x?a=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\n\r\n";
        let mut r = io::BufReader::new(&raw[..]);
        let h = read_head(&mut r).unwrap().unwrap();
        assert_eq!(h.first, "PUT");
        assert_eq!(h.second, "/b/k%20x?a=1");
        assert_eq!(h.header("host"), Some("h"));
        let mut body = Vec::new();
        read_body(&mut r, &h, &mut body).unwrap();
        assert_eq!(body, b"abc");
        let h2 = read_head(&mut r).unwrap().unwrap();
        assert_eq!(h2.first, "GET");
        assert!(read_head(&mut r).unwrap().is_none());
    }

    #[test]
    fn chunked_body() {
        let raw = b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        let h = Head {
            headers: vec![("transfer-encoding".into(), "chunked".into())],
            ..Head::default()
        };
        let mut body = Vec::new();
        read_body(&mut io::BufReader::new(&raw[..]), &h, &mut body).unwrap();
        assert_eq!(body, b"abcde");
    }

    #[test]
    fn escapes() {
        assert_eq!(percent_decode("a%2Fb%20c%zz%4"), "a/b c%zz%4");
        assert_eq!(xml_unescape(&xml_escape("a&<b>\"'")), "a&<b>\"'");
        assert_eq!(xml_unescape("&#65;&#x42;&bogus;"), "AB&bogus;");
        assert_eq!(hex(&[0, 0xab]), "00ab");
    }
}
