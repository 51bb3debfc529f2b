#!/usr/bin/env bash
# Block codec speed against its raw stages (zlib-rs, zstd, AES-128-CBC, HMAC-SHA1), single-threaded
# and encode on 2 threads. No servers needed. Usage: bench/codec-speed.sh
set -euo pipefail
export PATH="$HOME/.cargo/bin:/usr/bin:/usr/sbin:$PATH"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec cargo run --release -p s3backer-store --example codec_speed
