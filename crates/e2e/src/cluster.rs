//! A 3-node Garage cluster on loopback (replication factor 3, consistent mode), for testing the
//! disk on a distributed object store: nodes can be killed with SIGKILL and restarted while the
//! disk is in use.
//!
//! Each node has its own config, metadata and data directories and its own RPC, S3 and admin
//! ports. The harness starts all three, connects them (`garage node connect`), puts each in a
//! zone of its own (`dc1`..`dc3`, so every partition has a copy on every node), applies the
//! layout, imports the test key and waits until every node sees a healthy cluster. A restarted
//! node keeps its identity and data (same directories) and finds its peers again by itself.
//!
//! Every node is spawned from a thread that then waits for it, with PDEATHSIG: the nodes die
//! with the test process however it ends, and the harness learns of each exit (so `kill`
//! returns only once the process is gone).

use crate::garage::{KEY_ID, REGION, SECRET};
use crate::tools::{TempDir, random_u64, run, wait_until};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Output};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

/// Nodes in the cluster.
pub const NODES: usize = 3;

/// A running node process.
struct Running {
    pid: libc::pid_t,
    exited: Receiver<ExitStatus>,
}

struct Node {
    config: PathBuf,
    log: PathBuf,
    s3_port: u16,
    /// `<node id>@127.0.0.1:<rpc port>`, once known.
    id: Mutex<String>,
    proc: Mutex<Option<Running>>,
}

/// A 3-node Garage cluster (see the module doc).
pub struct Cluster {
    nodes: Vec<Node>,
    dir: TempDir,
}

/// A free loopback port below the kernel's ephemeral range, not handed out before in this
/// process. Nodes are restarted on their own ports (and the fault proxy reopens its port after
/// "down"): a port from the ephemeral range could meanwhile become the local port of any
/// outgoing connection, and the restart would fail with "address in use" (seen once).
pub(crate) fn stable_port() -> u16 {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (lo, hi) = (10_000u16, ephemeral_low.max(10_001));
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..10_000 {
        let port = lo + (random_u64() % u64::from(hi - lo)) as u16;
        if !given.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return port;
        }
    }
    panic!("no free port in {lo}..{hi}")
}

impl Cluster {
    /// Starts the cluster and waits until it is healthy, with the test key imported.
    pub fn start() -> Cluster {
        let dir = TempDir::new("cluster");
        let secret: String = (0..4).map(|_| format!("{:016x}", random_u64())).collect();
        let nodes = (0..NODES)
            .map(|i| {
                let (rpc, s3, admin) = (stable_port(), stable_port(), stable_port());
                let home = dir.join(&format!("node{i}"));
                std::fs::create_dir_all(&home).expect("node dir");
                let config = home.join("garage.toml");
                std::fs::write(
                    &config,
                    format!(
                        r#"metadata_dir = "{home}/meta"
data_dir = "{home}/data"
db_engine = "sqlite"
# Every object on all three nodes; reads and writes need two of them (Garage's default
# "consistent" mode: read-after-write holds with one node down).
replication_factor = 3
consistency_mode = "consistent"
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{s3}"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:{admin}"
"#,
                        home = home.display(),
                    ),
                )
                .expect("write garage.toml");
                Node {
                    config,
                    log: home.join("garage.log"),
                    s3_port: s3,
                    id: Mutex::new(String::new()),
                    proc: Mutex::new(None),
                }
            })
            .collect();
        let cluster = Cluster { nodes, dir };
        for i in 0..NODES {
            cluster.spawn(i);
        }
        let ids: Vec<String> = (0..NODES)
            .map(|i| {
                let mut id = String::new();
                let up = wait_until(Duration::from_secs(60), || {
                    let out = cluster.cli(i, &["node", "id", "-q"]);
                    id = String::from_utf8_lossy(&out.stdout).trim().to_string();
                    out.status.success() && id.contains('@')
                });
                assert!(up, "node {i} did not come up: {}", cluster.log(i));
                id
            })
            .collect();
        for (node, id) in cluster.nodes.iter().zip(&ids) {
            *node.id.lock().unwrap_or_else(|e| e.into_inner()) = id.clone();
        }
        // `node id` reads the node's key file; its RPC port may not listen yet: retry.
        for (i, id) in ids.iter().enumerate().skip(1) {
            let connected = wait_until(Duration::from_secs(60), || {
                cluster.cli(0, &["node", "connect", id]).status.success()
            });
            assert!(
                connected,
                "node 0 cannot connect to node {i}: {}",
                cluster.log(i)
            );
        }
        // From now on each node names its peers in its config, so a restarted node dials them
        // itself (its peers still need a nudge to use it at once: see `restart`).
        for (i, node) in cluster.nodes.iter().enumerate() {
            let peers: Vec<String> = ids
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .map(|(_, id)| format!("\"{id}\""))
                .collect();
            let text = std::fs::read_to_string(&node.config).expect("read garage.toml");
            let text = text.replacen(
                "rpc_secret",
                &format!("bootstrap_peers = [{}]\nrpc_secret", peers.join(", ")),
                1,
            );
            std::fs::write(&node.config, text).expect("write garage.toml");
        }
        for (i, id) in ids.iter().enumerate() {
            let short = id.split('@').next().unwrap_or_default();
            let zone = format!("dc{}", i + 1);
            cluster.cli_ok(0, &["layout", "assign", "-z", &zone, "-c", "1G", short]);
        }
        cluster.cli_ok(0, &["layout", "apply", "--version", "1"]);
        cluster.cli_ok(
            0,
            &[
                "key",
                "import",
                "--yes",
                "-n",
                "s3backer-tests",
                KEY_ID,
                SECRET,
            ],
        );
        assert!(
            cluster.wait_healthy(Duration::from_secs(60)),
            "the cluster did not become healthy: {}",
            cluster.health(0)
        );
        cluster
    }

    /// Starts node `i` (its process must not be running).
    fn spawn(&self, i: usize) {
        let node = &self.nodes[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .expect("node log");
        let cfg = node.config.clone();
        let (pid_tx, pid_rx) = channel::<std::io::Result<libc::pid_t>>();
        let (exit_tx, exited) = channel::<ExitStatus>();
        // The spawning thread waits for the node: PDEATHSIG fires when this thread ends, which
        // is when the node has exited anyway, or when the test process dies.
        std::thread::spawn(
            move || match crate::garage::server_command(&cfg, log).spawn() {
                Ok(mut child) => {
                    let _ = pid_tx.send(Ok(child.id() as libc::pid_t));
                    if let Ok(status) = child.wait() {
                        let _ = exit_tx.send(status);
                    }
                }
                Err(e) => {
                    let _ = pid_tx.send(Err(e));
                }
            },
        );
        let pid = pid_rx.recv().expect("spawner").unwrap_or_else(|e| {
            panic!("cannot start garage: {e}; install it with `cargo install garage --locked --version 2.5.0` (scripts/setup.sh does)")
        });
        *self.nodes[i].proc.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(Running { pid, exited });
    }

    /// Kills node `i` with SIGKILL (a crash: nothing flushed, no goodbye to its peers) and
    /// waits until the process is gone.
    pub fn kill(&self, i: usize) {
        let running = self.nodes[i]
            .proc
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_else(|| panic!("node {i} is not running"));
        // SAFETY: kill(2) on the pid of a node this harness spawned and has not seen exit.
        unsafe { libc::kill(running.pid, libc::SIGKILL) };
        running
            .exited
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("node {i} did not die"));
    }

    /// Starts node `i` again (same identity, same data) and waits until the running nodes are
    /// all connected again (see [`Cluster::wait_healthy`]).
    pub fn restart(&self, i: usize) {
        assert!(!self.is_running(i), "node {i} is running");
        self.spawn(i);
        // The restarted node dials its peers itself (bootstrap_peers), but the peers keep it
        // marked as down until their own connection retry, ~25 s later (measured). Telling
        // each running peer to connect to it now makes that immediate, as an operator would.
        let id = self.nodes[i]
            .id
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        // Until its RPC port listens, connecting is refused: retry.
        for peer in (0..NODES).filter(|&p| p != i && self.is_running(p)) {
            let connected = wait_until(Duration::from_secs(60), || {
                self.cli(peer, &["node", "connect", &id]).status.success()
            });
            assert!(
                connected,
                "node {peer} cannot connect to restarted node {i}: {}",
                self.log(i)
            );
        }
        assert!(
            self.wait_healthy(Duration::from_secs(60)),
            "the cluster did not become healthy after restarting node {i}: {}",
            self.health(0)
        );
    }

    /// Whether node `i`'s process is running (as far as the harness knows).
    pub fn is_running(&self, i: usize) -> bool {
        let mut p = self.nodes[i].proc.lock().unwrap_or_else(|e| e.into_inner());
        if p.as_ref().is_some_and(|r| r.exited.try_recv().is_ok()) {
            *p = None;
        }
        p.is_some()
    }

    /// `garage json-api GetClusterHealth` as node `i` sees it (JSON text, or the error).
    pub fn health(&self, i: usize) -> String {
        let out = self.cli(i, &["json-api", "GetClusterHealth"]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// Waits until every running node answers S3 connections and is connected to all the
    /// other running nodes, and the cluster is healthy (all nodes up) or at least has a
    /// quorum everywhere (`degraded`: one node down). With no quorum it never is.
    pub fn wait_healthy(&self, timeout: Duration) -> bool {
        wait_until(timeout, || {
            let up: Vec<usize> = (0..NODES).filter(|&i| self.is_running(i)).collect();
            let status = if up.len() == NODES {
                "healthy"
            } else {
                "degraded"
            };
            up.iter().all(|&i| {
                if TcpStream::connect(("127.0.0.1", self.nodes[i].s3_port)).is_err() {
                    return false;
                }
                let h: String = self.health(i).split_whitespace().collect();
                h.contains(&format!(r#""status":"{status}""#))
                    && h.contains(&format!(r#""connectedNodes":{}"#, up.len()))
            })
        })
    }

    fn cmd(&self, i: usize, args: &[&str]) -> Command {
        let mut cmd = Command::new("garage");
        cmd.arg("-c").arg(&self.nodes[i].config).args(args);
        cmd
    }

    /// Runs `garage -c <node i's config> ARGS` (through node `i`'s RPC).
    pub fn cli(&self, i: usize, args: &[&str]) -> Output {
        run(&mut self.cmd(i, args))
    }

    fn cli_ok(&self, i: usize, args: &[&str]) -> String {
        let out = self.cli(i, args);
        assert!(
            out.status.success(),
            "garage {args:?} on node {i}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Node `i`'s log so far (all its runs).
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.nodes[i].log).unwrap_or_default()
    }

    /// Node `i`'s S3 endpoint, `http://127.0.0.1:PORT/`.
    pub fn endpoint(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}/", self.nodes[i].s3_port)
    }

    /// Every node's S3 endpoint.
    pub fn endpoints(&self) -> Vec<String> {
        (0..NODES).map(|i| self.endpoint(i)).collect()
    }

    /// A fresh bucket (created through node 0) the test key may read and write.
    pub fn new_bucket(&self, tag: &str) -> String {
        let name = crate::tools::unique_name(tag);
        self.cli_ok(0, &["bucket", "create", &name]);
        self.cli_ok(
            0,
            &[
                "bucket", "allow", "--read", "--write", "--owner", &name, "--key", KEY_ID,
            ],
        );
        name
    }

    /// Plugin parameters for the S3 endpoint `endpoint` (a node's, or a proxy's in front of
    /// the cluster) with the test key.
    pub fn params_for(endpoint: &str) -> Vec<String> {
        vec![
            format!("baseURL={endpoint}"),
            format!("accessId={KEY_ID}"),
            format!("accessKey={SECRET}"),
        ]
    }

    /// The cluster's working directory (configs, data, logs).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..NODES {
            if self.is_running(i) {
                self.kill(i);
            }
        }
    }
}
