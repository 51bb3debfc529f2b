//! A real Garage S3 server (single node, sqlite metadata) on loopback ports of its own, one per
//! test binary, started on first use and killed when the test process exits.
//!
//! Garage checks SigV4 signatures and Content-MD5 strictly, which is why the tests use it.

use crate::tools::{TempDir, run, run_ok, wait_until};
use s3backer_config::{
    AuthVersion, CredentialSource, Credentials, PayloadHash, S3Settings, Secret,
};
use s3backer_s3client::{ClientOptions, S3Client};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// The key every test uses (Garage key ids are `GK` + 24 hex digits; secrets 64 hex digits).
pub const KEY_ID: &str = "GK5a3b00c1d2e3f4a5b6c7d8e9";
/// Its secret.
pub const SECRET: &str = "8c7e2f1a9b0d3c4e5f6a7b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f7081920";
/// The region Garage is configured with (s3backer's default, so the original needs no flag).
pub const REGION: &str = "us-east-1";

/// A running Garage server.
pub struct Garage {
    /// `http://127.0.0.1:PORT/`.
    pub endpoint: String,
    config: PathBuf,
    _dir: TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Garage {
    /// The server shared by the tests of this process.
    pub fn shared() -> &'static Garage {
        static GARAGE: OnceLock<Garage> = OnceLock::new();
        GARAGE.get_or_init(Garage::start)
    }

    fn start() -> Garage {
        let dir = TempDir::new("garage");
        let (s3_port, rpc_port, admin_port) = (free_port(), free_port(), free_port());
        let config = dir.join("garage.toml");
        let secret: String = (0..4)
            .map(|_| format!("{:016x}", crate::tools::random_u64()))
            .collect();
        std::fs::write(
            &config,
            format!(
                r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc_port}"
rpc_public_addr = "127.0.0.1:{rpc_port}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{s3_port}"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:{admin_port}"
"#,
                meta = dir.join("meta").display(),
                data = dir.join("data").display(),
            ),
        )
        .expect("write garage.toml");
        let log = std::fs::File::create(dir.join("garage.log")).expect("garage.log");
        let cfg = config.clone();
        // Spawned from a thread that never exits, with PDEATHSIG: the server dies with the test
        // process however it ends, and not when one test's thread finishes.
        let (tx, rx) = std::sync::mpsc::channel::<std::io::Result<Child>>();
        std::thread::spawn(move || {
            let _ = tx.send(server_command(&cfg, log).spawn());
            loop {
                std::thread::park();
            }
        });
        let child = rx.recv().expect("spawner").unwrap_or_else(|e| {
            panic!("cannot start garage: {e}; install it with `cargo install garage --locked --version 2.5.0` (scripts/setup.sh does)")
        });
        std::mem::forget(child);
        let garage = Garage {
            endpoint: format!("http://127.0.0.1:{s3_port}/"),
            config,
            _dir: dir,
        };
        let up = wait_until(Duration::from_secs(60), || {
            garage.cli(&["status"]).status.success()
        });
        assert!(up, "garage did not come up; log:\n{}", garage.log());
        let node = run_ok(&mut garage.cmd(&["node", "id", "-q"]));
        let node_id = node
            .trim()
            .split('@')
            .next()
            .unwrap_or_default()
            .to_string();
        run_ok(&mut garage.cmd(&["layout", "assign", "-z", "dc1", "-c", "10G", &node_id]));
        run_ok(&mut garage.cmd(&["layout", "apply", "--version", "1"]));
        run_ok(&mut garage.cmd(&[
            "key",
            "import",
            "--yes",
            "-n",
            "s3backer-tests",
            KEY_ID,
            SECRET,
        ]));
        garage
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("garage");
        cmd.arg("-c").arg(&self.config).args(args);
        cmd
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        run(&mut self.cmd(args))
    }

    /// The server's log (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.join("garage.log")).unwrap_or_default()
    }

    /// Creates a bucket the test key may read and write.
    pub fn create_bucket(&self, name: &str) {
        let out = self.cli(&["bucket", "create", name]);
        assert!(
            out.status.success(),
            "bucket create {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = self.cli(&[
            "bucket", "allow", "--read", "--write", "--owner", name, "--key", KEY_ID,
        ]);
        assert!(
            out.status.success(),
            "bucket allow {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A fresh bucket with a unique name.
    pub fn new_bucket(&self, tag: &str) -> String {
        let name = crate::tools::unique_name(tag);
        self.create_bucket(&name);
        name
    }

    /// Connection settings for our S3 client.
    pub fn settings(&self) -> S3Settings {
        S3Settings {
            base_url: self.endpoint.clone(),
            base_url_explicit: true,
            region: REGION.into(),
            vhost: false,
            auth_version: AuthVersion::V4,
            payload_hash: PayloadHash::Auto,
            credentials: Some(Credentials {
                access_id: KEY_ID.into(),
                access_key: Secret::new(SECRET),
                session_token: None,
                source: CredentialSource::Flags,
            }),
            cacert: None,
            insecure: false,
            http11: false,
            no_connection_reuse: false,
            content_md5: false,
            timeout: Duration::from_secs(30),
            initial_retry_pause: Duration::from_millis(200),
            max_retry_pause: Duration::from_millis(2000),
            max_upload_speed: None,
            max_download_speed: None,
            storage_class: None,
            sse: None,
            sse_key_id: None,
            access_type: "private".into(),
            debug_http: false,
        }
    }

    /// A client for inspecting a bucket directly.
    pub fn client(&self, bucket: &str) -> S3Client {
        S3Client::new(
            &self.settings(),
            bucket,
            ClientOptions {
                max_connections: 4,
                user_agent: "s3backer-e2e".into(),
            },
        )
        .expect("client")
    }

    /// Every key in a bucket (or under a prefix), sorted.
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let client = self.client(bucket);
        let mut keys = Vec::new();
        let mut marker = String::new();
        loop {
            let page = client.list_objects(prefix, &marker, 1000).expect("list");
            keys.extend(page.keys.iter().cloned());
            match (page.is_truncated, page.keys.last()) {
                (true, Some(last)) => marker = last.clone(),
                _ => break,
            }
        }
        keys
    }

    /// The keys of a bucket without the bookkeeping objects (mount token, saved zero map).
    pub fn data_keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        self.keys(bucket, prefix)
            .into_iter()
            .filter(|k| !k.ends_with("s3backer-mounted") && !k.ends_with("s3backer-zeromap"))
            .collect()
    }

    /// Whether the bucket holds a mount token under `prefix`.
    pub fn has_token(&self, bucket: &str, prefix: &str) -> bool {
        self.keys(bucket, prefix)
            .iter()
            .any(|k| k.ends_with("s3backer-mounted"))
    }

    /// The flags that point s3backer (ours or the original) at this server.
    pub fn flags(&self) -> Vec<String> {
        vec![
            format!("--baseURL={}", self.endpoint),
            format!("--accessId={KEY_ID}"),
            format!("--accessKey={SECRET}"),
        ]
    }

    /// The same as nbdkit parameters.
    pub fn params(&self) -> Vec<String> {
        vec![
            format!("baseURL={}", self.endpoint),
            format!("accessId={KEY_ID}"),
            format!("accessKey={SECRET}"),
        ]
    }
}

/// `garage -c CONFIG server` with its output appended to `log`, killed (PDEATHSIG) when the
/// thread that spawns it ends: spawn it from a thread that lives as long as the server should.
pub(crate) fn server_command(config: &std::path::Path, log: std::fs::File) -> Command {
    use std::os::unix::process::CommandExt;
    let log2 = log.try_clone().expect("log fd");
    let mut cmd = Command::new("garage");
    cmd.arg("-c")
        .arg(config)
        .arg("server")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    // SAFETY: prctl is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd
}
