//! Finding the access key: flags, `--accessKeyEnv`, access files and the AWS environment
//! variables, in s3backer's order of precedence (first match wins):
//!
//! 1. `--accessId` with `--accessKey` or `--accessKeyEnv=VAR`;
//! 2. `--accessId` alone: its line in the access file (`--accessFile`, else
//!    `$HOME/.s3backer_passwd`), else `AWS_SECRET_ACCESS_KEY` when `AWS_ACCESS_KEY_ID` is that
//!    id; `--accessId=` (empty) means anonymous;
//! 3. `--accessFile` alone: its first entry;
//! 4. `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`);
//! 5. the first entry of `$HOME/.s3backer_passwd`, if that file exists;
//! 6. anonymous.

use std::io;
use std::path::{Path, PathBuf};

use crate::env::Environment;
use crate::error::{ConfigError, ErrorKind};
use crate::types::{CredentialSource, Credentials, Secret};

/// Name of the default access file in `$HOME`.
pub const DEFAULT_ACCESS_FILE: &str = ".s3backer_passwd";

/// The credential flags as given.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CredentialArgs<'a> {
    pub access_id: Option<&'a str>,
    pub access_key: Option<&'a str>,
    pub access_key_env: Option<&'a str>,
    pub access_file: Option<&'a Path>,
}

/// Resolves credentials; `Ok(None)` means anonymous. `flag` names a flag in messages
/// (`--accessId`, or `accessId` for the plugin).
pub(crate) fn resolve(
    args: &CredentialArgs<'_>,
    env: &Environment,
    flag: &dyn Fn(&str) -> String,
) -> Result<Option<Credentials>, ConfigError> {
    let invalid = |msg: String| Err(ConfigError::invalid(msg));
    let which = match (args.access_key, args.access_key_env) {
        (Some(_), Some(_)) => {
            return invalid(format!(
                "{} and {} cannot be used together",
                flag("accessKey"),
                flag("accessKeyEnv")
            ));
        }
        (Some(_), None) => Some("accessKey"),
        (None, Some(_)) => Some("accessKeyEnv"),
        (None, None) => None,
    };
    if let Some(which) = which {
        let id = match args.access_id {
            Some(id) if !id.is_empty() => id,
            _ => return invalid(format!("{} requires {}", flag(which), flag("accessId"))),
        };
        let (key, source) = match (args.access_key, args.access_key_env) {
            (Some(key), _) => (key, CredentialSource::Flags),
            (None, var) => {
                let var = var.unwrap_or_default();
                let Some(key) = env.var(var) else {
                    return invalid(format!(
                        "environment variable {var:?} named by {} is not set",
                        flag("accessKeyEnv")
                    ));
                };
                (key, CredentialSource::EnvVar(var.to_owned()))
            }
        };
        return Ok(Some(Credentials {
            access_id: id.to_owned(),
            access_key: Secret::new(key),
            session_token: None,
            source,
        }));
    }

    let default_file = env.home.as_ref().map(|h| h.join(DEFAULT_ACCESS_FILE));

    if let Some(id) = args.access_id {
        if id.is_empty() {
            return Ok(None);
        }
        let file = match args.access_file {
            Some(f) => Some((read_access_file(f)?, f.to_path_buf())),
            None => match &default_file {
                Some(f) => read_optional_access_file(f)?.map(|e| (e, f.clone())),
                None => None,
            },
        };
        if let Some((entries, path)) = file
            && let Some((_, key)) = entries.into_iter().find(|(i, _)| i == id)
        {
            return Ok(Some(Credentials {
                access_id: id.to_owned(),
                access_key: Secret::new(key),
                session_token: None,
                source: CredentialSource::AccessFile(path),
            }));
        }
        if let Some(creds) = aws_environment(env)
            && creds.access_id == id
        {
            return Ok(Some(creds));
        }
        return invalid(format!("no access key found for access id {id:?}"));
    }

    if let Some(f) = args.access_file {
        return match read_access_file(f)?.into_iter().next() {
            Some((id, key)) => Ok(Some(from_file(id, key, f.to_path_buf()))),
            None => invalid(format!(
                "no \"id:key\" line found in access file {:?}",
                f.display().to_string()
            )),
        };
    }

    if let Some(creds) = aws_environment(env) {
        return Ok(Some(creds));
    }

    if let Some(f) = &default_file
        && let Some(entries) = read_optional_access_file(f)?
        && let Some((id, key)) = entries.into_iter().next()
    {
        return Ok(Some(from_file(id, key, f.clone())));
    }
    Ok(None)
}

/// A warning when a file holding a secret (`what`) can be read or written by users other than
/// its owner: anyone on the machine could read the key or swap it. `None` when the file is
/// private or cannot be inspected (reading it has already succeeded or failed clearly).
pub(crate) fn exposed_secret_file_warning(path: &Path, what: &str) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then(|| {
        format!(
            "{what} {:?} is accessible by other users (mode {mode:04o}): chmod 600 it",
            path.display().to_string()
        )
    })
}

fn from_file(access_id: String, key: String, path: PathBuf) -> Credentials {
    Credentials {
        access_id,
        access_key: Secret::new(key),
        session_token: None,
        source: CredentialSource::AccessFile(path),
    }
}

fn aws_environment(env: &Environment) -> Option<Credentials> {
    let id = env.var("AWS_ACCESS_KEY_ID")?;
    let key = env.var("AWS_SECRET_ACCESS_KEY")?;
    Some(Credentials {
        access_id: id.to_owned(),
        access_key: Secret::new(key),
        session_token: env.var("AWS_SESSION_TOKEN").map(Secret::new),
        source: CredentialSource::AwsEnvironment,
    })
}

fn read_error(path: &Path, e: &io::Error) -> ConfigError {
    ConfigError::new(
        ErrorKind::Io,
        format!(
            "cannot read access file {:?}: {e}",
            path.display().to_string()
        ),
    )
}

fn read_access_file(path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    std::fs::read_to_string(path)
        .map(|text| parse_access_file(&text))
        .map_err(|e| read_error(path, &e))
}

/// The default file may be missing; any other failure is still reported.
fn read_optional_access_file(path: &Path) -> Result<Option<Vec<(String, String)>>, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(parse_access_file(&text))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(read_error(path, &e)),
    }
}

/// `id:key` entries of an access file. Lines that are empty, start with `#` or whitespace, or
/// have no `:` are skipped; trailing whitespace is trimmed; the key may contain `:`.
pub(crate) fn parse_access_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(char::is_whitespace))
        .filter_map(|l| l.trim_end().split_once(':'))
        .map(|(id, key)| (id.to_owned(), key.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    fn dashed(name: &str) -> String {
        format!("--{name}")
    }

    fn run(
        args: CredentialArgs<'_>,
        env: &Environment,
    ) -> Result<Option<Credentials>, ConfigError> {
        resolve(&args, env, &dashed)
    }

    fn id_key(c: &Option<Credentials>) -> Option<(String, String)> {
        c.as_ref()
            .map(|c| (c.access_id.clone(), c.access_key.expose().to_owned()))
    }

    const AWS: [(&str, &str); 3] = [
        ("AWS_ACCESS_KEY_ID", "envid"),
        ("AWS_SECRET_ACCESS_KEY", "envkey"),
        ("AWS_SESSION_TOKEN", "tok"),
    ];

    #[test]
    fn access_file_format() {
        let text = "# comment\n\n  indented:no\nnocolon\nid1:key1  \nid2:k:with:colons\n\tid3:tab\nid1:second\n";
        assert_eq!(
            parse_access_file(text),
            [
                ("id1".to_owned(), "key1".to_owned()),
                ("id2".to_owned(), "k:with:colons".to_owned()),
                ("id1".to_owned(), "second".to_owned()),
            ]
        );
    }

    #[test]
    fn id_and_key_flags_win() {
        let dir = TempDir::new();
        dir.write(DEFAULT_ACCESS_FILE, "fileid:filekey\n");
        let env = dir.env(&AWS);
        let args = CredentialArgs {
            access_id: Some("me"),
            access_key: Some("secret"),
            ..Default::default()
        };
        let c = run(args, &env).unwrap();
        assert_eq!(id_key(&c), Some(("me".into(), "secret".into())));
        assert_eq!(c.map(|c| c.source), Some(CredentialSource::Flags));
    }

    #[test]
    fn access_key_env() {
        let dir = TempDir::new();
        let env = dir.env(&[("MYKEY", "k")]);
        let args = CredentialArgs {
            access_id: Some("me"),
            access_key_env: Some("MYKEY"),
            ..Default::default()
        };
        let c = run(args, &env).unwrap();
        assert_eq!(id_key(&c), Some(("me".into(), "k".into())));
        assert_eq!(
            c.map(|c| c.source),
            Some(CredentialSource::EnvVar("MYKEY".into()))
        );
        let missing = CredentialArgs {
            access_key_env: Some("NOPE"),
            ..args
        };
        assert_eq!(
            run(missing, &env).unwrap_err().to_string(),
            "environment variable \"NOPE\" named by --accessKeyEnv is not set"
        );
        let both = CredentialArgs {
            access_key: Some("x"),
            ..args
        };
        assert_eq!(
            run(both, &env).unwrap_err().to_string(),
            "--accessKey and --accessKeyEnv cannot be used together"
        );
    }

    #[test]
    fn key_without_id_is_an_error() {
        let env = Environment::default();
        let args = CredentialArgs {
            access_key: Some("k"),
            ..Default::default()
        };
        assert_eq!(
            run(args, &env).unwrap_err().to_string(),
            "--accessKey requires --accessId"
        );
        let args = CredentialArgs {
            access_id: Some(""),
            access_key_env: Some("K"),
            ..Default::default()
        };
        assert_eq!(
            run(args, &env).unwrap_err().to_string(),
            "--accessKeyEnv requires --accessId"
        );
    }

    #[test]
    fn id_alone_looks_in_the_default_file_then_the_environment() {
        let dir = TempDir::new();
        let path = dir.write(DEFAULT_ACCESS_FILE, "a:ka\nb:kb\n");
        let env = dir.env(&AWS);
        let args = |id| CredentialArgs {
            access_id: Some(id),
            ..Default::default()
        };
        let c = run(args("b"), &env).unwrap();
        assert_eq!(id_key(&c), Some(("b".into(), "kb".into())));
        assert_eq!(
            c.map(|c| c.source),
            Some(CredentialSource::AccessFile(path.into()))
        );
        let c = run(args("envid"), &env).unwrap();
        assert_eq!(id_key(&c), Some(("envid".into(), "envkey".into())));
        assert_eq!(
            c.and_then(|c| c.session_token)
                .map(|t| t.expose().to_owned()),
            Some("tok".into())
        );
        assert_eq!(
            run(args("zzz"), &env).unwrap_err().to_string(),
            "no access key found for access id \"zzz\""
        );
    }

    #[test]
    fn id_alone_with_explicit_file() {
        let dir = TempDir::new();
        dir.write(DEFAULT_ACCESS_FILE, "a:default\n");
        let f = dir.write("creds", "a:explicit\n");
        let env = dir.env(&[]);
        let args = CredentialArgs {
            access_id: Some("a"),
            access_file: Some(Path::new(&f)),
            ..Default::default()
        };
        assert_eq!(
            id_key(&run(args, &env).unwrap()),
            Some(("a".into(), "explicit".into()))
        );
        let missing = CredentialArgs {
            access_file: Some(Path::new("/nonexistent/creds")),
            ..args
        };
        let e = run(missing, &env).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Io);
        assert!(
            e.to_string()
                .starts_with("cannot read access file \"/nonexistent/creds\": ")
        );
    }

    #[test]
    fn empty_id_forces_anonymous() {
        let dir = TempDir::new();
        dir.write(DEFAULT_ACCESS_FILE, "a:ka\n");
        let args = CredentialArgs {
            access_id: Some(""),
            ..Default::default()
        };
        assert_eq!(run(args, &dir.env(&AWS)).unwrap(), None);
    }

    #[test]
    fn explicit_file_gives_its_first_entry_before_the_environment() {
        let dir = TempDir::new();
        let f = dir.write("creds", "# x\nfirst:k1\nsecond:k2\n");
        let args = CredentialArgs {
            access_file: Some(Path::new(&f)),
            ..Default::default()
        };
        assert_eq!(
            id_key(&run(args, &dir.env(&AWS)).unwrap()),
            Some(("first".into(), "k1".into()))
        );
        let empty = dir.write("empty", "# nothing\n");
        let args = CredentialArgs {
            access_file: Some(Path::new(&empty)),
            ..Default::default()
        };
        assert!(
            run(args, &dir.env(&[]))
                .unwrap_err()
                .to_string()
                .starts_with("no \"id:key\" line found")
        );
    }

    #[test]
    fn environment_before_default_file() {
        let dir = TempDir::new();
        dir.write(DEFAULT_ACCESS_FILE, "a:ka\n");
        let c = run(CredentialArgs::default(), &dir.env(&AWS)).unwrap();
        assert_eq!(
            c.as_ref().map(|c| &c.source),
            Some(&CredentialSource::AwsEnvironment)
        );
        // Only half of the pair is not enough.
        let c = run(CredentialArgs::default(), &dir.env(&AWS[..1])).unwrap();
        assert_eq!(id_key(&c), Some(("a".into(), "ka".into())));
    }

    #[test]
    fn anonymous_when_nothing_is_found() {
        let dir = TempDir::new();
        assert_eq!(run(CredentialArgs::default(), &dir.env(&[])).unwrap(), None);
        assert_eq!(
            run(CredentialArgs::default(), &Environment::default()).unwrap(),
            None
        );
        dir.write(DEFAULT_ACCESS_FILE, "# empty\n");
        assert_eq!(run(CredentialArgs::default(), &dir.env(&[])).unwrap(), None);
    }
}
