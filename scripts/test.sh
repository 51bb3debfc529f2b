#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it: installs what is missing (scripts/setup.sh
# --test-tools), then runs every unit and end-to-end test. The end-to-end tests start their own
# Garage server, nbdkit processes, NBD clients and FUSE mounts (run as root).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
scripts/setup.sh --test-tools
echo
echo "==> cargo test --release --workspace"
cargo test --release --workspace --locked
echo
echo "==> fuzz smoke: every cargo-fuzz target, seeds and past crashes, then 20 s each"
scripts/fuzz-smoke.sh 20
echo
echo "==> style: cargo fmt --check, cargo clippy -D warnings"
cargo fmt --all -- --check
cargo clippy --release --workspace --all-targets --locked -- -D warnings
