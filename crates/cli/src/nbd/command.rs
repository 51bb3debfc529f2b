//! The command lines of nbdkit and nbd-client, as argv vectors: they are executed directly,
//! never through a shell, and every user value is one whole element (`s3b_prefix=a b`), so no
//! value can add, split or reorder arguments. Pure functions, unit-tested with hostile values.
//!
//! Secrets never go on a command line (`/proc/PID/cmdline` is world-readable): `--password`
//! (or a password typed at the terminal) becomes `s3b_passwordFile=/dev/fd/N`, and
//! `--accessKey` becomes `s3b_accessFile=/dev/fd/N` holding one `id:key` line; `N` is the read
//! end of a pipe that the wrapper has filled and closed before starting nbdkit
//! (`child::secret_pipe`). The plugin reads each file once, while it parses its parameters,
//! and nothing is left on disk.

use s3backer_config::{Config, CredentialSource, NbdSettings, PARAM_PREFIX};
use std::ffi::OsString;
use std::path::Path;

/// One element of nbdkit's command line.
#[derive(Clone, PartialEq, Eq)]
pub enum NbdkitArg {
    /// Exactly this argument.
    Plain(OsString),
    /// `KEY=<path of a file holding contents>`: a secret handed over through a pipe.
    Secret {
        /// The parameter name, `s3b_passwordFile` or `s3b_accessFile`.
        key: &'static str,
        /// What the file holds.
        contents: String,
    },
}

impl std::fmt::Debug for NbdkitArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NbdkitArg::Plain(a) => write!(f, "{a:?}"),
            NbdkitArg::Secret { key, .. } => write!(f, "{key}=<secret pipe>"),
        }
    }
}

/// The nbdkit filter that makes nbdkit exit (cleanly: final flush, token released) once the
/// last connection closes, so `nbd-client -d` alone stops everything even if the wrapper is
/// gone (facts §5.3 adds it too).
pub const EXITLAST: &str = "--filter=exitlast";

/// The export name nbd-client asks for (nbdkit serves any name; naming one avoids nbd-client's
/// "oldstyle protocol" warning).
const EXPORT_NAME: &str = "s3backer";

/// nbdkit's arguments (without the program name):
///
/// ```text
/// --foreground [--verbose] [--read-only] --filter=exitlast --unix=SOCKET --pidfile=FILE
///     <--nbd-flag values> PLUGIN s3b_<flag>=<value|true>... bucket=<bucket argument>
///     <--nbd-param values>
/// ```
///
/// nbdkit stays in the foreground as the wrapper's child: the wrapper supervises it, collects
/// its log lines and its exit status.
pub fn nbdkit_args(
    config: &Config,
    nbd: &NbdSettings,
    socket: &Path,
    pidfile: &Path,
) -> Result<Vec<NbdkitArg>, String> {
    let plain = |s: &str| NbdkitArg::Plain(OsString::from(s));
    let mut args = vec![plain("--foreground")];
    if config.debug {
        args.push(plain("--verbose"));
    }
    if config.read_only {
        args.push(plain("--read-only"));
    }
    if !nbd.nbdkit_flags.iter().any(|f| f == EXITLAST) {
        args.push(plain(EXITLAST));
    }
    let mut unix = OsString::from("--unix=");
    unix.push(socket);
    let mut pid = OsString::from("--pidfile=");
    pid.push(pidfile);
    args.extend([NbdkitArg::Plain(unix), NbdkitArg::Plain(pid)]);
    args.extend(nbd.nbdkit_flags.iter().map(|f| plain(f)));
    args.push(plain(&nbd.plugin));

    let key_from_flags = config
        .s3
        .credentials
        .as_ref()
        .filter(|c| c.source == CredentialSource::Flags);
    let has = |name: &str| nbd.plugin_flags.iter().any(|f| f.name == name);
    for flag in &nbd.plugin_flags {
        match flag.name {
            "password" => {
                let pw = flag.value.clone().unwrap_or_default();
                args.push(password_arg(&pw)?);
            }
            "accessKey" => {
                // Without resolved credentials (--test mode) the key means nothing: drop it.
                if let Some(c) = key_from_flags {
                    args.push(access_arg(&c.access_id, c.access_key.expose())?);
                }
            }
            // Replaced by the pipe above when the key came from --accessKey (which wins).
            "accessFile" if key_from_flags.is_some() && has("accessKey") => {}
            name => {
                let value = flag.value.as_deref().unwrap_or("true");
                args.push(plain(&format!("{PARAM_PREFIX}{name}={value}")));
            }
        }
    }
    // A password typed at the terminal: the plugin cannot ask (nbdkit has no terminal).
    if let Some(enc) = &config.codec.encryption
        && !has("password")
        && !has("passwordFile")
    {
        args.push(password_arg(enc.password.expose())?);
    }
    args.push(plain(&format!("bucket={}", nbd.bucket_arg)));
    args.extend(nbd.nbdkit_params.iter().map(|p| plain(p)));
    Ok(args)
}

fn password_arg(password: &str) -> Result<NbdkitArg, String> {
    // --passwordFile reads the first line.
    if password.contains('\n') {
        return Err(
            "the password contains a newline, so it cannot be handed to nbdkit: use --passwordFile"
                .into(),
        );
    }
    Ok(NbdkitArg::Secret {
        key: "s3b_passwordFile",
        contents: format!("{password}\n"),
    })
}

fn access_arg(id: &str, key: &str) -> Result<NbdkitArg, String> {
    // What an access file line can carry (`id:key`, trailing blanks trimmed, lines starting with
    // `#` or a blank skipped).
    let id_ok = !id.is_empty()
        && !id.contains([':', '\n', '\r'])
        && !id.starts_with('#')
        && !id.starts_with(char::is_whitespace);
    let key_ok = !key.contains(['\n', '\r']) && key.trim_end() == key;
    if !id_ok || !key_ok {
        return Err(
            "the --accessId/--accessKey pair cannot be written as an access file line for nbdkit \
             (newline, ':' in the id, or blanks at an end): use --accessFile or --accessKeyEnv"
                .into(),
        );
    }
    Ok(NbdkitArg::Secret {
        key: "s3b_accessFile",
        contents: format!("{id}:{key}\n"),
    })
}

/// The final argv: each secret `i` becomes `KEY=<secret_path(i)>`.
pub fn render(args: &[NbdkitArg], mut secret_path: impl FnMut(usize) -> String) -> Vec<OsString> {
    let mut n = 0;
    args.iter()
        .map(|a| match a {
            NbdkitArg::Plain(s) => s.clone(),
            NbdkitArg::Secret { key, .. } => {
                let path = secret_path(n);
                n += 1;
                OsString::from(format!("{key}={path}"))
            }
        })
        .collect()
}

/// The secrets' contents, in the order [`render`] numbers them.
pub fn secrets(args: &[NbdkitArg]) -> Vec<&str> {
    args.iter()
        .filter_map(|a| match a {
            NbdkitArg::Secret { contents, .. } => Some(contents.as_str()),
            NbdkitArg::Plain(_) => None,
        })
        .collect()
}

/// `nbd-client -unix SOCKET DEVICE -N s3backer -b SECTOR -C N [-t T] [-readonly] -nofork`.
///
/// nbd-client 3.24 configures the device through netlink and exits at once (`-nofork` then
/// changes nothing); with the old ioctl interface (`-L`) it would stay and serve the device,
/// and `-nofork` keeps it as the wrapper's child, which supervises both cases.
pub fn nbd_client_args(
    nbd: &NbdSettings,
    socket: &Path,
    device: &Path,
    read_only: bool,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["-unix".into(), socket.into(), device.into()];
    for (flag, value) in [
        ("-N", EXPORT_NAME.to_owned()),
        ("-b", nbd.sector_size.to_string()),
        ("-C", nbd.connections.to_string()),
    ] {
        args.extend([flag.into(), value.into()]);
    }
    if let Some(t) = nbd.timeout {
        args.extend(["-t".into(), t.to_string().into()]);
    }
    if read_only {
        args.push("-readonly".into());
    }
    args.push("-nofork".into());
    args
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3backer_config::{Environment, Invocation, parse_command_line};

    fn config(list: &[&str], env: &Environment) -> Config {
        let args: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        match parse_command_line(&args, env) {
            Ok(Invocation::Run(c)) => c,
            other => panic!("{list:?}: {other:?}"),
        }
    }

    fn argv(list: &[&str]) -> (Vec<String>, Vec<String>) {
        argv_env(list, &Environment::default())
    }

    /// The rendered argv (secrets as /dev/fd/10, 11, ...) and the secrets' contents.
    fn argv_env(list: &[&str], env: &Environment) -> (Vec<String>, Vec<String>) {
        let c = config(list, env);
        let nbd = c.nbd.clone().expect("nbd");
        let args = nbdkit_args(&c, &nbd, Path::new("/run/s3backer-nbd/s"), Path::new("/p"))
            .unwrap_or_else(|e| panic!("{e}"));
        let rendered = render(&args, |i| format!("/dev/fd/{}", 10 + i))
            .into_iter()
            .map(|a| a.into_string().expect("utf-8"))
            .collect();
        (
            rendered,
            secrets(&args).into_iter().map(str::to_owned).collect(),
        )
    }

    const HEAD: [&str; 4] = [
        "--foreground",
        "--filter=exitlast",
        "--unix=/run/s3backer-nbd/s",
        "--pidfile=/p",
    ];

    #[test]
    fn layout_flags_before_the_plugin_params_after() {
        let (a, secrets) = argv(&[
            "--nbd",
            "--size=1g",
            "--nbd-flag=--threads=32",
            "--listBlocks",
            "--nbd-param=--run=x",
            "--nbd-flag=-D",
            "mybucket/sub",
            "/dev/nbd0",
        ]);
        let mut want: Vec<&str> = HEAD.to_vec();
        want.extend([
            "--threads=32",
            "-D",
            "s3backer",
            "s3b_size=1g",
            "s3b_listBlocks=true",
            "bucket=mybucket/sub",
            "--run=x",
        ]);
        assert_eq!(a, want);
        assert!(secrets.is_empty());
    }

    #[test]
    fn read_only_debug_and_a_plugin_path() {
        let (a, _) = argv(&[
            "--nbd",
            "-d",
            "--readOnly",
            "--nbd-plugin=/opt/my plugin.so",
            "mybucket",
            "/dev/nbd3",
        ]);
        assert_eq!(
            a,
            [
                "--foreground",
                "--verbose",
                "--read-only",
                "--filter=exitlast",
                "--unix=/run/s3backer-nbd/s",
                "--pidfile=/p",
                "/opt/my plugin.so",
                "s3b_readOnly=true",
                "s3b_debug=true",
                "bucket=mybucket",
            ]
        );
    }

    #[test]
    fn exitlast_is_not_added_twice() {
        let (a, _) = argv(&[
            "--nbd",
            "--nbd-flag=--filter=exitlast",
            "mybucket",
            "/dev/nbd0",
        ]);
        assert_eq!(a.iter().filter(|x| *x == EXITLAST).count(), 1);
    }

    #[test]
    fn hostile_values_are_single_elements() {
        let hostile = [
            "a b",
            "x=y=z",
            "; rm -rf / #",
            "--verbose",
            "-f",
            "$(reboot)",
            "`id`",
            "line1\nline2",
            "'\"\\",
            "",
        ];
        for v in hostile {
            let prefix = format!("--prefix={v}");
            let enc = format!("--defaultContentEncoding={v}x");
            let param = format!("--nbd-param={v}x");
            let (a, _) = argv(&["--nbd", &prefix, &enc, &param, "mybucket", "/dev/nbd0"]);
            // Exactly the head, the plugin, three parameters, the bucket and the raw param:
            // nothing split, nothing added.
            assert_eq!(a.len(), HEAD.len() + 5, "{v:?}: {a:?}");
            assert_eq!(a[HEAD.len()], "s3backer");
            assert_eq!(a[HEAD.len() + 1], format!("s3b_prefix={v}"));
            assert_eq!(
                a[HEAD.len() + 2],
                format!("s3b_defaultContentEncoding={v}x")
            );
            assert_eq!(a[HEAD.len() + 3], "bucket=mybucket");
            assert_eq!(a[HEAD.len() + 4], format!("{v}x"));
            // Every plugin parameter starts with a key, never with '-': nbdkit cannot take
            // one for an option of its own.
            for p in &a[HEAD.len() + 1..HEAD.len() + 4] {
                assert!(p.starts_with("s3b_") || p.starts_with("bucket="), "{p:?}");
            }
        }
        // A hostile test directory: the bucket parameter stays one element too.
        let dir = std::env::temp_dir().join(format!("s3b cmd; -x={}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let d = dir.display().to_string();
        let (a, _) = argv(&["--nbd", "--test", "--size=1m", &d, "/dev/nbd0"]);
        assert_eq!(
            a.last().map(String::as_str),
            Some(format!("bucket={d}").as_str())
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn password_goes_through_a_pipe_never_the_command_line() {
        let (a, secrets) = argv(&[
            "--nbd",
            "--encrypt",
            "--password=s3cret pass",
            "mybucket",
            "/dev/nbd0",
        ]);
        assert!(!a.iter().any(|x| x.contains("s3cret")), "{a:?}");
        assert!(
            a.contains(&"s3b_passwordFile=/dev/fd/10".to_owned()),
            "{a:?}"
        );
        assert!(a.contains(&"s3b_encrypt=true".to_owned()), "{a:?}");
        assert_eq!(secrets, ["s3cret pass\n"]);
        // A password file is only a path: passed as it is.
        let dir = std::env::temp_dir().join(format!("s3b-pwfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let f = dir.join("pw");
        std::fs::write(&f, "frompath\n").expect("write");
        let pf = format!("--passwordFile={}", f.display());
        let (a, secrets) = argv(&["--nbd", "--encrypt", &pf, "mybucket", "/dev/nbd0"]);
        assert!(
            a.contains(&format!("s3b_passwordFile={}", f.display())),
            "{a:?}"
        );
        assert!(secrets.is_empty());
        let _ = std::fs::remove_dir_all(&dir);
        // A newline cannot be carried by a password file.
        let c = config(
            &[
                "--nbd",
                "--encrypt",
                "--password=a\nb",
                "mybucket",
                "/dev/nbd0",
            ],
            &Environment::default(),
        );
        let e = nbdkit_args(
            &c,
            c.nbd.as_ref().expect("nbd"),
            Path::new("/s"),
            Path::new("/p"),
        );
        assert!(e.expect_err("refused").contains("newline"));
    }

    #[test]
    fn access_key_goes_through_a_pipe_as_an_access_file() {
        let (a, secrets) = argv(&[
            "--nbd",
            "--accessId=AKID",
            "--accessKey=sec/ret+key:x",
            "--accessFile=/etc/other",
            "mybucket",
            "/dev/nbd0",
        ]);
        assert!(!a.iter().any(|x| x.contains("sec/ret")), "{a:?}");
        assert!(!a.iter().any(|x| x.contains("/etc/other")), "{a:?}");
        assert!(a.contains(&"s3b_accessId=AKID".to_owned()), "{a:?}");
        assert!(a.contains(&"s3b_accessFile=/dev/fd/10".to_owned()), "{a:?}");
        assert_eq!(secrets, ["AKID:sec/ret+key:x\n"]);
        // Both secrets: numbered in order.
        let (a, secrets) = argv(&[
            "--nbd",
            "--password=pw",
            "--encrypt",
            "--accessId=AKID",
            "--accessKey=k",
            "mybucket",
            "/dev/nbd0",
        ]);
        assert!(a.contains(&"s3b_passwordFile=/dev/fd/10".to_owned()));
        assert!(a.contains(&"s3b_accessFile=/dev/fd/11".to_owned()));
        assert_eq!(secrets, ["pw\n", "AKID:k\n"]);
        // What an access file line cannot hold is refused, not mangled.
        for (id, key) in [("a:b", "k"), ("id", "k "), ("#id", "k"), ("id", "k\nx")] {
            let c = config(
                &[
                    "--nbd",
                    &format!("--accessId={id}"),
                    &format!("--accessKey={key}"),
                    "mybucket",
                    "/dev/nbd0",
                ],
                &Environment::default(),
            );
            let e = nbdkit_args(
                &c,
                c.nbd.as_ref().expect("nbd"),
                Path::new("/s"),
                Path::new("/p"),
            );
            assert!(
                e.expect_err("refused")
                    .contains("--accessFile or --accessKeyEnv"),
                "{id:?} {key:?}"
            );
        }
    }

    #[test]
    fn key_from_the_environment_or_a_file_is_not_touched() {
        let mut env = Environment::default();
        env.vars.insert("MYKEY".into(), "fromenv".into());
        let (a, secrets) = argv_env(
            &[
                "--nbd",
                "--accessId=AKID",
                "--accessKeyEnv=MYKEY",
                "mybucket",
                "/dev/nbd0",
            ],
            &env,
        );
        assert!(a.contains(&"s3b_accessKeyEnv=MYKEY".to_owned()), "{a:?}");
        assert!(!a.iter().any(|x| x.contains("fromenv")));
        assert!(secrets.is_empty());
    }

    #[test]
    fn debug_output_hides_secrets() {
        let arg = NbdkitArg::Secret {
            key: "s3b_passwordFile",
            contents: "hidden".into(),
        };
        assert_eq!(format!("{arg:?}"), "s3b_passwordFile=<secret pipe>");
    }

    #[test]
    fn nbd_client_command_line() {
        let c = config(
            &[
                "--nbd",
                "--nbd-connections=2",
                "--nbd-timeout=0",
                "mybucket",
                "/dev/nbd1",
            ],
            &Environment::default(),
        );
        let n = c.nbd.expect("nbd");
        let a = nbd_client_args(&n, Path::new("/run/s"), Path::new("/dev/nbd1"), true);
        let a: Vec<&str> = a.iter().map(|s| s.to_str().expect("utf-8")).collect();
        assert_eq!(
            a,
            [
                "-unix",
                "/run/s",
                "/dev/nbd1",
                "-N",
                "s3backer",
                "-b",
                "4096",
                "-C",
                "2",
                "-readonly",
                "-nofork"
            ]
        );
        let c = config(&["--nbd", "mybucket", "/dev/nbd1"], &Environment::default());
        let a = nbd_client_args(
            &c.nbd.expect("nbd"),
            Path::new("/s"),
            Path::new("/d"),
            false,
        );
        let a: Vec<&str> = a.iter().map(|s| s.to_str().expect("utf-8")).collect();
        assert_eq!(
            a,
            [
                "-unix", "/s", "/d", "-N", "s3backer", "-b", "4096", "-C", "4", "-t", "600",
                "-nofork"
            ]
        );
    }
}
