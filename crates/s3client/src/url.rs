//! Where requests go: the parsed base URL, bucket and object URLs, query strings, the SigV2
//! canonical resource and the human-readable description (facts §4.1).
//!
//! * Path style: `baseURL + bucket + "/" + key`; the bucket URL is `baseURL + bucket`.
//! * Virtual-hosted style: `scheme://bucket.host[:port]/path/ + key`; the bucket URL is
//!   `scheme://bucket.host[:port]/path/`.
//!
//! Keys are percent-encoded exactly as SigV4 wants its canonical URI (unreserved characters
//! `A-Z a-z 0-9 - _ . ~` and `/` kept, every other byte `%XX` upper-case), and the very same
//! string is put in the URL, so the signed path is the sent path and nothing is encoded twice.
//! (s3backer puts the prefix unencoded in the URL; encoding it is a deliberate fix.)
//!
//! Default ports (80 for http, 443 for https) are dropped, so the `Host` header we sign is
//! exactly what the URL says.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::error::S3Error;

/// Everything but the SigV4 unreserved characters.
const ENCODE_ALL: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
/// As [`ENCODE_ALL`] but keeping `/` (object paths).
const ENCODE_PATH: &AsciiSet = &ENCODE_ALL.remove(b'/');

/// Percent-encodes `s` for a URL path (keeps `/`) or a query component (encodes `/`).
pub(crate) fn uri_encode(s: &str, keep_slash: bool) -> String {
    let set = if keep_slash { ENCODE_PATH } else { ENCODE_ALL };
    utf8_percent_encode(s, set).to_string()
}

/// Query parameters encoded and sorted by name (then value): the SigV4 canonical query
/// string. With `for_url`, a parameter with an empty value is written as a bare name
/// (`?delete`), as s3backer sends it; the canonical form always has the `=` (`delete=`).
pub(crate) fn query_string(pairs: &[(String, String)], for_url: bool) -> String {
    let mut encoded: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
        .collect();
    encoded.sort();
    let mut out = String::new();
    for (i, (k, v)) in encoded.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        if !(for_url && v.is_empty()) {
            out.push('=');
            out.push_str(v);
        }
    }
    out
}

/// The parsed base URL plus the bucket: builds every URL the client sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// `http` or `https`.
    scheme: &'static str,
    /// `host[:port]` of the base URL (port only when not the scheme's default).
    base_authority: String,
    /// `Host` header value: the base authority, with `bucket.` in front for vhost.
    host: String,
    /// Path of the base URL, starting and ending with `/`.
    base_path: String,
    bucket: String,
    vhost: bool,
}

impl Endpoint {
    /// Whether requests go over TLS (`https`), which authenticates every byte in transit.
    pub(crate) fn is_tls(&self) -> bool {
        self.scheme == "https"
    }

    /// Parses `base_url` (`http[s]://host[:port][/path/]`) for `bucket`.
    pub(crate) fn new(base_url: &str, bucket: &str, vhost: bool) -> Result<Endpoint, S3Error> {
        let bad = |why: &str| S3Error::Config {
            detail: format!("invalid base URL \"{base_url}\": {why}"),
        };
        let lower = base_url.to_ascii_lowercase();
        let (scheme, rest) = if lower.starts_with("https://") {
            ("https", &base_url["https://".len()..])
        } else if lower.starts_with("http://") {
            ("http", &base_url["http://".len()..])
        } else {
            return Err(bad("must start with http:// or https://"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if path.contains(['?', '#']) {
            return Err(bad("must not contain a query or fragment"));
        }
        if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("the path contains blanks or control characters"));
        }
        if authority.contains('@') {
            return Err(bad("must not contain user information"));
        }
        let (host, port) = split_host_port(authority).ok_or_else(|| bad("bad host or port"))?;
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let default_port = if scheme == "https" { 443 } else { 80 };
        let base_authority = match port {
            Some(p) if p != default_port => format!("{host}:{p}"),
            _ => host.to_owned(),
        };
        let mut base_path = path.to_owned();
        if !base_path.ends_with('/') {
            base_path.push('/');
        }
        if bucket.is_empty() {
            return Err(S3Error::Config {
                detail: "empty bucket name".into(),
            });
        }
        if bucket.contains('/') {
            return Err(S3Error::Config {
                detail: format!("bucket name \"{bucket}\" contains '/'"),
            });
        }
        let host_header = if vhost {
            if !bucket
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
            {
                return Err(S3Error::Config {
                    detail: format!(
                        "bucket name \"{bucket}\" cannot be used in a virtual-hosted URL"
                    ),
                });
            }
            format!("{bucket}.{base_authority}")
        } else {
            base_authority.clone()
        };
        Ok(Endpoint {
            scheme,
            base_authority,
            host: host_header,
            base_path,
            bucket: bucket.to_owned(),
            vhost,
        })
    }

    /// The `Host` header value (`host[:port]`, exactly as in every URL we build).
    pub(crate) fn host(&self) -> &str {
        &self.host
    }

    /// The bucket name.
    pub(crate) fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The encoded URL path of an object (also the SigV4 canonical URI).
    pub(crate) fn object_path(&self, key: &str) -> String {
        format!("{}{}", self.bucket_prefix_path(), uri_encode(key, true))
    }

    /// The URL path of the bucket itself (listing, bulk delete): `/bucket` (path style) or
    /// `/` (vhost), below the base path.
    pub(crate) fn bucket_path(&self) -> String {
        if self.vhost {
            self.base_path.clone()
        } else {
            format!("{}{}", self.base_path, uri_encode(&self.bucket, false))
        }
    }

    /// Path up to where a key starts: `base/bucket/` or `base/`.
    fn bucket_prefix_path(&self) -> String {
        if self.vhost {
            self.base_path.clone()
        } else {
            format!("{}{}/", self.base_path, uri_encode(&self.bucket, false))
        }
    }

    /// Full URL for `path` (as returned by [`Endpoint::object_path`] or
    /// [`Endpoint::bucket_path`]) and query parameters.
    pub(crate) fn url(&self, path: &str, query: &[(String, String)]) -> String {
        let mut url = format!("{}://{}{}", self.scheme, self.host, path);
        if !query.is_empty() {
            url.push('?');
            url.push_str(&query_string(query, true));
        }
        url
    }

    /// SigV2 canonical resource for `path` (facts §4.3): `/` + bucket + the part of the path
    /// after the bucket part, plus `?subresource` when given (a deliberate fix: s3backer omits
    /// `?delete`, which AWS requires to be signed).
    pub(crate) fn v2_resource(&self, path: &str, subresource: Option<&str>) -> String {
        let skip = if self.vhost {
            // Keep the '/' that ends the base path.
            self.base_path.len() - 1
        } else {
            self.base_path.len() + uri_encode(&self.bucket, false).len()
        };
        let rest = path.get(skip..).unwrap_or("");
        let mut out = format!("/{}{}", self.bucket, rest);
        if let Some(sub) = subresource {
            out.push('?');
            out.push_str(sub);
        }
        out
    }

    /// Human-readable location (logs, FUSE `fsname`, facts §4.1): path style
    /// `baseURL + bucket + "/" + prefix`; vhost `scheme://bucket.host/path/ + prefix` (the
    /// virtual-hosted base URL, which names the bucket).
    pub(crate) fn description(&self, prefix: &str) -> String {
        if self.vhost {
            format!(
                "{}://{}{}{}",
                self.scheme, self.host, self.base_path, prefix
            )
        } else {
            format!(
                "{}://{}{}{}/{}",
                self.scheme, self.base_authority, self.base_path, self.bucket, prefix
            )
        }
    }

    /// Whether requests use TLS.
    pub(crate) fn is_https(&self) -> bool {
        self.scheme == "https"
    }
}

/// Splits `host[:port]` or `[v6]:port`; `None` when the port is not a number 1..=65535.
fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')?;
        let host = &authority[..=end];
        match &authority[end + 1..] {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':')?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '/')
    {
        return None;
    }
    match port {
        None => Some((host, None)),
        Some(p) => {
            let n: u16 = p.parse().ok()?;
            (n != 0).then_some((host, Some(n)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn encoding_keeps_only_unreserved() {
        assert_eq!(uri_encode("a-b_c.d~e09AZ", true), "a-b_c.d~e09AZ");
        assert_eq!(uri_encode("a b/c+d=é$", true), "a%20b/c%2Bd%3D%C3%A9%24");
        assert_eq!(uri_encode("a/b", false), "a%2Fb");
        assert_eq!(uri_encode("test$file.text", true), "test%24file.text");
    }

    #[test]
    fn query_strings_are_sorted_and_encoded() {
        let pairs = q(&[("prefix", "vol/1"), ("max-keys", "1000"), ("marker", "a b")]);
        assert_eq!(
            query_string(&pairs, false),
            "marker=a%20b&max-keys=1000&prefix=vol%2F1"
        );
        assert_eq!(query_string(&q(&[("delete", "")]), false), "delete=");
        assert_eq!(query_string(&q(&[("delete", "")]), true), "delete");
    }

    #[test]
    fn path_style_urls() {
        let e = Endpoint::new("http://127.0.0.1:3900/", "bucket", false).unwrap();
        assert_eq!(e.host(), "127.0.0.1:3900");
        assert_eq!(e.object_path("00000000"), "/bucket/00000000");
        assert_eq!(
            e.url(&e.object_path("vol 1/0000001a"), &[]),
            "http://127.0.0.1:3900/bucket/vol%201/0000001a"
        );
        assert_eq!(e.bucket_path(), "/bucket");
        assert_eq!(
            e.url(&e.bucket_path(), &q(&[("delete", "")])),
            "http://127.0.0.1:3900/bucket?delete"
        );
        assert_eq!(e.description("vol1/"), "http://127.0.0.1:3900/bucket/vol1/");
        assert!(!e.is_https());
    }

    #[test]
    fn vhost_urls() {
        let e = Endpoint::new("https://s3.amazonaws.com/", "mybucket", true).unwrap();
        assert_eq!(e.host(), "mybucket.s3.amazonaws.com");
        assert_eq!(
            e.url(&e.object_path("vol1/00000001"), &[]),
            "https://mybucket.s3.amazonaws.com/vol1/00000001"
        );
        assert_eq!(e.bucket_path(), "/");
        assert_eq!(
            e.url(&e.bucket_path(), &q(&[("delete", "")])),
            "https://mybucket.s3.amazonaws.com/?delete"
        );
        assert_eq!(
            e.description("vol1/"),
            "https://mybucket.s3.amazonaws.com/vol1/"
        );
        assert!(e.is_https());
    }

    #[test]
    fn base_url_with_path_and_ports() {
        let e = Endpoint::new("http://gw.example:8080/s3/", "b", false).unwrap();
        assert_eq!(e.object_path("k"), "/s3/b/k");
        assert_eq!(
            e.url(&e.object_path("k"), &[]),
            "http://gw.example:8080/s3/b/k"
        );
        assert_eq!(e.description("p/"), "http://gw.example:8080/s3/b/p/");
        let v = Endpoint::new("http://gw.example:8080/s3/", "b", true).unwrap();
        assert_eq!(v.host(), "b.gw.example:8080");
        assert_eq!(
            v.url(&v.object_path("k"), &[]),
            "http://b.gw.example:8080/s3/k"
        );
        assert_eq!(v.bucket_path(), "/s3/");
        // Default ports are dropped; a missing trailing slash is added.
        let d = Endpoint::new("https://s3.example:443", "b", false).unwrap();
        assert_eq!(d.host(), "s3.example");
        assert_eq!(d.url(&d.object_path("k"), &[]), "https://s3.example/b/k");
        let h = Endpoint::new("HTTP://s3.example:80/x", "b", false).unwrap();
        assert_eq!(h.url(&h.object_path("k"), &[]), "http://s3.example/x/b/k");
        let v6 = Endpoint::new("http://[::1]:9000/", "b", false).unwrap();
        assert_eq!(v6.host(), "[::1]:9000");
    }

    #[test]
    fn bad_base_urls() {
        for bad in [
            "ftp://x/",
            "s3.amazonaws.com/",
            "http:///",
            "http://h:port/",
            "http://h:0/",
            "http://h:70000/",
            "http://u:p@h/",
            "http://h/?x=1",
            "http://[::1/",
        ] {
            assert!(
                matches!(Endpoint::new(bad, "b", false), Err(S3Error::Config { .. })),
                "{bad}"
            );
        }
        assert!(Endpoint::new("http://h/", "", false).is_err());
        assert!(Endpoint::new("http://h/", "a/b", false).is_err());
        assert!(Endpoint::new("http://h/", "a b", true).is_err());
    }

    #[test]
    fn v2_resources() {
        let p = Endpoint::new("http://h/", "johnsmith", false).unwrap();
        assert_eq!(
            p.v2_resource(&p.object_path("photos/puppy.jpg"), None),
            "/johnsmith/photos/puppy.jpg"
        );
        assert_eq!(p.v2_resource(&p.bucket_path(), None), "/johnsmith");
        assert_eq!(
            p.v2_resource(&p.bucket_path(), Some("delete")),
            "/johnsmith?delete"
        );
        let v = Endpoint::new("http://s3.amazonaws.com/", "johnsmith", true).unwrap();
        assert_eq!(
            v.v2_resource(&v.object_path("photos/puppy.jpg"), None),
            "/johnsmith/photos/puppy.jpg"
        );
        assert_eq!(v.v2_resource(&v.bucket_path(), None), "/johnsmith/");
        assert_eq!(
            v.v2_resource(&v.bucket_path(), Some("delete")),
            "/johnsmith/?delete"
        );
        // A base path is not part of the resource.
        let b = Endpoint::new("http://h/s3/", "bk", false).unwrap();
        assert_eq!(b.v2_resource(&b.object_path("k"), None), "/bk/k");
        let bv = Endpoint::new("http://h/s3/", "bk", true).unwrap();
        assert_eq!(bv.v2_resource(&bv.object_path("k"), None), "/bk/k");
    }
}
