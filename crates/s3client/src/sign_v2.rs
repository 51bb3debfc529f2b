//! AWS Signature Version 2 (`--authVersion=aws2`, facts §4.3), hand-written on RustCrypto.
//!
//! StringToSign = `METHOD\n` + `Content-MD5` + `\n` + `Content-Type` + `\n` + `Date` + `\n`
//! (a missing header gives an empty line) + every `x-amz-*` header, sorted by name, as
//! `name:value\n` + the canonical resource (`/bucket/key`, with `?delete` for bulk deletes: a
//! deliberate fix, s3backer leaves the sub-resource out and AWS rejects that).
//! `Authorization: AWS <id>:<base64(HMAC-SHA1(secret, StringToSign))>`.
//!
//! Unlike s3backer, the session token (`x-amz-security-token`) is sent and signed with V2 too
//! (open question 8: without it temporary credentials cannot work).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

/// The StringToSign for a request with these headers (lower-case names) and resource.
pub(crate) fn string_to_sign(method: &str, headers: &[(String, String)], resource: &str) -> String {
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map_or("", |(_, v)| v.trim_start())
    };
    let mut out = format!(
        "{method}\n{}\n{}\n{}\n",
        get("content-md5"),
        get("content-type"),
        get("date")
    );
    let mut amz: Vec<(String, &str)> = headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.trim_start()))
        .filter(|(n, _)| n.starts_with("x-amz-"))
        .collect();
    amz.sort();
    for (n, v) in amz {
        out.push_str(&n);
        out.push(':');
        out.push_str(v);
        out.push('\n');
    }
    out.push_str(resource);
    out
}

/// SigV2 signer for one set of credentials.
pub(crate) struct SigV2 {
    access_id: String,
    secret: String,
}

impl SigV2 {
    pub(crate) fn new(access_id: &str, secret: &str) -> SigV2 {
        SigV2 {
            access_id: access_id.to_owned(),
            secret: secret.to_owned(),
        }
    }

    /// Base64 HMAC-SHA1 of `string_to_sign`.
    pub(crate) fn signature(&self, string_to_sign: &str) -> String {
        match Hmac::<Sha1>::new_from_slice(self.secret.as_bytes()) {
            Ok(mut mac) => {
                mac.update(string_to_sign.as_bytes());
                BASE64.encode(mac.finalize().into_bytes())
            }
            // HMAC takes keys of any length.
            Err(_) => unreachable!("HMAC-SHA1 rejected a key"),
        }
    }

    /// The `Authorization` header value.
    pub(crate) fn authorization(&self, string_to_sign: &str) -> String {
        format!("AWS {}:{}", self.access_id, self.signature(string_to_sign))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // AWS's published SigV2 examples ("Signing and Authenticating REST Requests").
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn signer() -> SigV2 {
        SigV2::new("AKIAIOSFODNN7EXAMPLE", SECRET)
    }

    #[test]
    fn aws_example_object_get() {
        let sts = string_to_sign(
            "GET",
            &h(&[("date", "Tue, 27 Mar 2007 19:36:42 +0000")]),
            "/johnsmith/photos/puppy.jpg",
        );
        assert_eq!(
            sts,
            "GET\n\n\nTue, 27 Mar 2007 19:36:42 +0000\n/johnsmith/photos/puppy.jpg"
        );
        assert_eq!(
            signer().authorization(&sts),
            "AWS AKIAIOSFODNN7EXAMPLE:bWq2s1WEIj+Ydj0vQ697zp+IXMU="
        );
    }

    #[test]
    fn aws_example_object_put() {
        let sts = string_to_sign(
            "PUT",
            &h(&[
                ("content-type", "image/jpeg"),
                ("date", "Tue, 27 Mar 2007 21:15:45 +0000"),
            ]),
            "/johnsmith/photos/puppy.jpg",
        );
        assert_eq!(signer().signature(&sts), "MyyxeRY7whkBe+bq8fHCL/2kKUg=");
    }

    #[test]
    fn aws_example_sub_resource() {
        let sts = string_to_sign(
            "GET",
            &h(&[("date", "Tue, 27 Mar 2007 19:44:46 +0000")]),
            "/johnsmith/?acl",
        );
        assert_eq!(signer().signature(&sts), "c2WLPFtWHVgbEmeEG93a4cG37dM=");
    }

    #[test]
    fn aws_example_upload_with_amz_headers() {
        let sts = string_to_sign(
            "PUT",
            &h(&[
                (
                    "x-amz-meta-reviewedby",
                    "joe@johnsmith.net,jane@johnsmith.net",
                ),
                ("content-md5", "4gJE4saaMU4BqNR0kLY+lw=="),
                ("x-amz-acl", "public-read"),
                ("content-type", "application/x-download"),
                ("x-amz-meta-filechecksum", "0x02661779"),
                ("X-Amz-Meta-ChecksumAlgorithm", "crc32"),
                ("content-encoding", "gzip"),
                ("date", "Tue, 27 Mar 2007 21:06:08 +0000"),
            ]),
            "/static.johnsmith.net/db-backup.dat.gz",
        );
        assert_eq!(
            sts,
            "PUT\n4gJE4saaMU4BqNR0kLY+lw==\napplication/x-download\n\
             Tue, 27 Mar 2007 21:06:08 +0000\nx-amz-acl:public-read\n\
             x-amz-meta-checksumalgorithm:crc32\nx-amz-meta-filechecksum:0x02661779\n\
             x-amz-meta-reviewedby:joe@johnsmith.net,jane@johnsmith.net\n\
             /static.johnsmith.net/db-backup.dat.gz"
        );
        assert_eq!(signer().signature(&sts), "ilyl83RwaSoYIEdixDQcA4OnAnc=");
    }

    #[test]
    fn aws_example_list_all_buckets() {
        let sts = string_to_sign(
            "GET",
            &h(&[("date", "Wed, 28 Mar 2007 01:29:59 +0000")]),
            "/",
        );
        assert_eq!(signer().signature(&sts), "qGdzdERIC03wnaRNKh6OqZehG9s=");
    }
}
