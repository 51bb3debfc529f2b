#!/usr/bin/env bash
# Builds and installs s3backer-rs, then serves a 1 GiB disk kept in a local directory
# (s3backer's --test mode) with nbdkit, and uses it from NBD clients.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

dir=${S3B_DEMO_DIR:-/tmp/s3backer-demo}
sock=$dir.sock
mkdir -p "$dir"
rm -f "$sock"
echo
echo "==> nbdkit s3backer bucket=$dir test=true size=1g blockSize=256k"
nbdkit -U "$sock" -P "$dir.pid" s3backer bucket="$dir" test=true size=1g blockSize=256k
trap 'kill "$(cat "$dir.pid")" 2>/dev/null || true' EXIT
uri="nbd+unix:///?socket=$sock"
echo
echo "==> nbdinfo $uri"
nbdinfo "$uri"
echo "==> write 1 MiB of 0xa5 at offset 1000 and 4 KiB at 700 MiB, read them back"
qemu-io -f raw -c 'write -P 0xa5 1000 1M' -c 'write -P 0x5a 700M 4k' -c flush \
        -c 'read -P 0xa5 1000 1M' -c 'read -P 0x5a 700M 4k' -c 'read -P 0 2M 1M' "$uri"
echo
echo "==> the disk is these block files (one per non-zero 256 KiB block) in $dir:"
ls -l "$dir"
kill "$(cat "$dir.pid")"
trap - EXIT
echo
echo "Serve it again any time: nbdkit -U $sock s3backer bucket=$dir test=true size=1g blockSize=256k"
