#!/usr/bin/env bash
# The performance matrix of issue 8, in one command: builds, starts the in-memory S3 server
# (crates/benchkit), measures its raw ceiling (s3-load), nbdkit memory (the NBD protocol
# ceiling), our nbdkit plugin without and with a cache (default payload and the body signed as s3backer does), raw S3 and
# ours over HTTPS (stunnel in front of the server), with compression + encryption, our FUSE
# file, and Debian's s3backer 1.5.4 (FUSE) as the reference peer; REPS repetitions, medians;
# prints a table of ratios and writes it (with the raw numbers and a plot) to OUT.
#
#   bench/run.sh                 (root; after scripts/setup.sh --test-tools)
#   REPS=3 SIZE_MB=512 RUNTIME=10 OUT=bench/results/DATE bench/run.sh
#   ONLY=raw,memory,nocache,cache,signed,scache,rawtls,tls,codec,codecfast,fuse,orig bench/run.sh      (a subset, for profiling)
#
# Takes about 12 minutes on two cores with the defaults (3 repetitions), plus the first build.
set -euo pipefail
export PATH="$HOME/.cargo/bin:/usr/bin:/usr/sbin:/bin:/sbin:$PATH"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[[ $(id -u) == 0 ]] || { echo "run as root (FUSE mounts)" >&2; exit 1; }
for tool in fio nbdkit fusermount stunnel openssl /usr/bin/s3backer; do
    command -v "$tool" >/dev/null || { echo "missing $tool: run scripts/setup.sh --test-tools" >&2; exit 1; }
done
(cd "$ROOT" && cargo build --release --locked --workspace 2>&1 | tail -1)
exec /usr/bin/python3 "$ROOT/bench/matrix.py" "$ROOT" "$@"
