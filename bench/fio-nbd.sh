#!/usr/bin/env bash
# First benchmark: fio's nbd engine against our plugin and against `nbdkit memory` (the protocol
# ceiling), same machine, same run. Prints MiB/s or IOPS per job and the ratio to nbdkit memory.
#
#   bench/fio-nbd.sh [SIZE_MB]      (default 256; needs scripts/setup.sh --test-tools first)
#
# Targets: nbdkit memory; our plugin on a local directory in /dev/shm (--test: the stack's own
# cost); our plugin on a local Garage server (S3 round trips; Garage's own limits dominate).
# Jobs: sequential 1 MiB write and read at queue depth 16, 4 KiB random read at queue depth 16.
# No targets are asserted: this prints numbers for the closing notes and later comparisons.
source "$(dirname "$0")/lib.sh"
SIZE_MB=${1:-256}
RUNTIME=${RUNTIME:-15}
[[ -f $PLUGIN ]] || (cd "$ROOT" && cargo build --release --workspace)

# fio_job NAME RW BS -> prints "value unit"
fio_job() {
    local rw=$2 bs=$3 out=$WORK/fio-$1-$2.json
    fio --name="$1-$rw" --ioengine=nbd --uri="$URI" --rw="$rw" --bs="$bs" --iodepth=16 \
        --size="${SIZE_MB}m" --runtime="$RUNTIME" --time_based=$([[ $rw == randread ]] && echo 1 || echo 0) \
        --output-format=json --output="$out" >/dev/null
    python3 - "$out" "$rw" <<'PY'
import json, sys
job = json.load(open(sys.argv[1]))["jobs"][0]
side = job["write"] if sys.argv[2] == "write" else job["read"]
if sys.argv[2] == "randread":
    print("%.0f IOPS" % side["iops"])
else:
    print("%.1f MiB/s" % (side["bw_bytes"] / 1048576))
PY
}

run_target() {
    local name=$1
    RESULTS[$name,write]=$(fio_job "$name" write 1m)
    RESULTS[$name,read]=$(fio_job "$name" read 1m)
    RESULTS[$name,randread]=$(fio_job "$name" randread 4k)
}

declare -A RESULTS
echo "== nbdkit memory"
start_nbdkit memory memory 1G
run_target memory
stop_last

echo "== s3backer plugin, --test directory on /dev/shm (256k blocks)"
shm=$(mktemp -d /dev/shm/s3b-bench.XXXXXX)
start_nbdkit dir "$PLUGIN" bucket="$shm" test=true size=1g blockSize=256k
run_target dir
stop_last
rm -rf "$shm"

echo "== s3backer plugin, Garage on 127.0.0.1 (256k blocks)"
start_garage
new_bucket bench
start_nbdkit garage "$PLUGIN" bucket=bench baseURL="$GARAGE_URL" accessId="$GARAGE_KEY" \
    accessKey="$GARAGE_SECRET" size=1g blockSize=256k
run_target garage
stop_last

ratio() { python3 -c "print('%.2fx' % (float('$1'.split()[0]) / float('$2'.split()[0])))"; }
printf '\n%-22s %-16s %-16s %-8s %-16s %-8s\n' job "nbdkit memory" "ours: dir" ratio "ours: Garage" ratio
for job in write read randread; do
    m=${RESULTS[memory,$job]} d=${RESULTS[dir,$job]} g=${RESULTS[garage,$job]}
    label=$([[ $job == randread ]] && echo "4k randread qd16" || echo "1m seq $job qd16")
    printf '%-22s %-16s %-16s %-8s %-16s %-8s\n' "$label" "$m" "$d" "$(ratio "$d" "$m")" "$g" "$(ratio "$g" "$m")"
done
