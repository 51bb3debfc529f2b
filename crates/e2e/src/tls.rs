//! A TLS front for the test Garage server: stunnel with a throw-away self-signed certificate for
//! 127.0.0.1, so `https://` base URLs, `--cacert` and `--insecure` are tested against a real TLS
//! server.

use crate::tools::{TempDir, run_ok, wait_until};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running stunnel.
pub struct TlsProxy {
    child: Child,
    /// `https://127.0.0.1:PORT/`.
    pub endpoint: String,
    /// The server certificate (PEM), to pass as `--cacert`.
    pub cert: PathBuf,
    _dir: TempDir,
}

impl TlsProxy {
    /// Terminates TLS on a free port and forwards to `http_endpoint` (`http://127.0.0.1:P/`).
    pub fn start(http_endpoint: &str) -> TlsProxy {
        let dir = TempDir::new("tls");
        let target = http_endpoint
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        run_ok(
            Command::new("openssl")
                .args([
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=127.0.0.1",
                ])
                .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
                .arg(&key)
                .arg("-out")
                .arg(&cert),
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let conf = dir.join("stunnel.conf");
        std::fs::write(
            &conf,
            format!(
                "foreground = yes\npid =\n[s3]\naccept = 127.0.0.1:{port}\nconnect = {target}\ncert = {}\nkey = {}\n",
                cert.display(),
                key.display()
            ),
        )
        .expect("stunnel.conf");
        let log = std::fs::File::create(dir.join("stunnel.log")).expect("log");
        let child = Command::new("stunnel")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run stunnel: {e} (scripts/setup.sh --test-tools installs stunnel4)")
            });
        let up = wait_until(Duration::from_secs(20), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(
            up,
            "stunnel did not listen: {}",
            std::fs::read_to_string(dir.join("stunnel.log")).unwrap_or_default()
        );
        TlsProxy {
            child,
            endpoint: format!("https://127.0.0.1:{port}/"),
            cert,
            _dir: dir,
        }
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
