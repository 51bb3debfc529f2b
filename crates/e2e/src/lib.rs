//! The end-to-end test harness (nbdkit's `tests/functions.sh`, in Rust): start a real Garage
//! server on loopback ports of its own, real nbdkit with our plugin, real NBD clients, and
//! Debian's s3backer for interoperability; clean every process up, also when a test panics.
//!
//! Nothing is mocked here. A missing tool is a test failure that names the tool (the setup
//! script installs all of them); no test skips silently.

pub mod cluster;
pub mod faults;
pub mod fuse;
pub mod garage;
pub mod nbdkit;
pub mod original;
pub mod tls;
pub mod tools;
pub mod vm;

pub use cluster::Cluster;
pub use faults::{FaultPlan, FaultProxy, VerifyingLoad};
pub use garage::Garage;
pub use nbdkit::Nbdkit;
pub use original::Original;
pub use tls::TlsProxy;
pub use tools::*;
