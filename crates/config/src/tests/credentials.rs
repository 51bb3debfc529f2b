//! Credential precedence through the full parser, with a temporary `$HOME` and a fake
//! environment (the unit tests in `credentials.rs` cover each rule in isolation).

use super::parse_with;
use crate::testutil::TempDir;
use crate::{CredentialSource, DEFAULT_ACCESS_FILE};

const AWS: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", "envid"),
    ("AWS_SECRET_ACCESS_KEY", "envkey"),
    ("AWS_SESSION_TOKEN", "token"),
];

fn creds(
    dir: &TempDir,
    vars: &[(&str, &str)],
    flags: &[&str],
) -> Option<(String, String, CredentialSource)> {
    let mut args = vec!["mybucket", "/mnt"];
    args.extend_from_slice(flags);
    let c = parse_with(&args, &dir.env(vars)).unwrap_or_else(|e| panic!("{flags:?}: {e}"));
    c.s3.credentials
        .map(|c| (c.access_id, c.access_key.expose().to_owned(), c.source))
}

#[test]
fn precedence_from_flags_down_to_anonymous() {
    let dir = TempDir::new();
    let default_file = dir.write(DEFAULT_ACCESS_FILE, "fileid:filekey\nother:otherkey\n");
    let explicit = dir.write("explicit", "xid:xkey\n");

    // 1. id + key.
    assert_eq!(
        creds(
            &dir,
            &AWS,
            &[
                "--accessId=a",
                "--accessKey=k",
                &format!("--accessFile={explicit}")
            ]
        ),
        Some(("a".into(), "k".into(), CredentialSource::Flags))
    );
    // 1. id + key from a variable.
    assert_eq!(
        creds(&dir, &[("K", "kv")], &["--accessId=a", "--accessKeyEnv=K"]),
        Some((
            "a".into(),
            "kv".into(),
            CredentialSource::EnvVar("K".into())
        ))
    );
    // 2. id alone: its line in the default file, before the environment.
    assert_eq!(
        creds(&dir, &AWS, &["--accessId=other"]),
        Some((
            "other".into(),
            "otherkey".into(),
            CredentialSource::AccessFile(default_file.clone().into())
        ))
    );
    // 2. id alone, not in the file: the environment's key when the ids agree.
    assert_eq!(
        creds(&dir, &AWS, &["--accessId=envid"]).map(|c| c.2),
        Some(CredentialSource::AwsEnvironment)
    );
    // 3. explicit access file: its first entry, before the environment.
    assert_eq!(
        creds(&dir, &AWS, &[&format!("--accessFile={explicit}")]),
        Some((
            "xid".into(),
            "xkey".into(),
            CredentialSource::AccessFile(explicit.clone().into())
        ))
    );
    // 4. the environment, before the default file.
    assert_eq!(
        creds(&dir, &AWS, &[]),
        Some((
            "envid".into(),
            "envkey".into(),
            CredentialSource::AwsEnvironment
        ))
    );
    // 5. the default file.
    assert_eq!(
        creds(&dir, &[], &[]),
        Some((
            "fileid".into(),
            "filekey".into(),
            CredentialSource::AccessFile(default_file.into())
        ))
    );
    // `--accessId=` forces anonymous even with everything else available.
    assert_eq!(creds(&dir, &AWS, &["--accessId="]), None);
}

#[test]
fn anonymous_without_anything() {
    let dir = TempDir::new();
    assert_eq!(creds(&dir, &[], &[]), None);
}

#[test]
fn session_token_comes_with_environment_credentials() {
    let dir = TempDir::new();
    let c = parse_with(&["mybucket", "/mnt"], &dir.env(&AWS)).unwrap();
    let token = c.s3.credentials.and_then(|c| c.session_token);
    assert_eq!(token.as_ref().map(|t| t.expose()), Some("token"));
}

#[test]
fn unknown_id_is_an_error() {
    let dir = TempDir::new();
    dir.write(DEFAULT_ACCESS_FILE, "fileid:filekey\n");
    let e = parse_with(&["mybucket", "/mnt", "--accessId=nobody"], &dir.env(&AWS)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "no access key found for access id \"nobody\""
    );
}

#[test]
fn credentials_are_not_needed_in_test_mode() {
    let dir = TempDir::new();
    let path = dir.path().display().to_string();
    let c = parse_with(
        &["--test", &path, "--size=1m", "--accessId=nobody"],
        &dir.env(&[]),
    )
    .unwrap();
    assert_eq!(c.s3.credentials, None);
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let dir = TempDir::new();
    let c = parse_with(
        &["mybucket", "/mnt", "--accessId=a", "--accessKey=TOPSECRET"],
        &dir.env(&[]),
    )
    .unwrap();
    assert!(!format!("{c:?}").contains("TOPSECRET"));
}
