#!/usr/bin/env bash
# The transient-fault tests of crates/e2e/tests/faults.rs at length: ROUNDS rounds (default 60,
# about 10 000 requests per test, 10 % of them failed by the proxy, 3 % slowed) of the verifying
# load through the fault-injecting proxy in front of Garage, with and without the block cache.
# Prints the faults injected, the client's retries and the bytes verified; fails on any client
# error or wrong byte. The test suite runs the same tests with 6 rounds.
#   bench/faults.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --workspace
S3B_FAULT_ROUNDS=${1:-60} cargo test --release -p s3backer-e2e --test faults transient_faults \
    -- --nocapture --test-threads=1 2>&1 | grep -oE "transient faults, cache .*|test result.*|panicked.*"
