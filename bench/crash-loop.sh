#!/usr/bin/env bash
# 50 SIGKILL cycles of ext4 on our FUSE file with the cache file on (issue 9's crash loop):
# every fsync'd file verified and e2fsck -fn clean after every restart. The default test run
# does 8 cycles; this runs S3B_CRASH_CYCLES (default 50). Also repeats the block-level crash
# tests (crash.rs) REPEAT times (default 3).
#   bench/crash-loop.sh [CYCLES] [REPEAT]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --workspace
S3B_CRASH_CYCLES=${1:-50} cargo test --release -p s3backer-e2e --test crash_ext4 -- --nocapture 2>&1 | grep -E "SIGKILL cycles|test result"
for i in $(seq 1 "${2:-3}"); do
    cargo test --release -p s3backer-e2e --test crash 2>&1 | grep -E "test result"
done
