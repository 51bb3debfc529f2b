#!/usr/bin/env bash
# Block cache benchmarks, against nbdkit memory and against our own plugin without a cache, in
# one run on one machine (Garage on loopback):
#  * random 4 KiB read and write at queue depth 16 with a warm cache (working set fits);
#  * sequential 1 MiB write at queue depth 16, with the cache vs without;
#  * FLUSH latency at queue depth 1 (fio: write 4 KiB + fsync), default durability (FLUSH waits
#    for the upload) vs --blockCacheLocalFlush (FLUSH = fsync of the cache file).
#
#   bench/fio-cache.sh [SIZE_MB]     (default 256; needs scripts/setup.sh --test-tools)
source "$(dirname "$0")/lib.sh"
SIZE_MB=${1:-256}
RUNTIME=${RUNTIME:-15}
[[ -f $PLUGIN ]] || (cd "$ROOT" && cargo build --release --workspace)

# fio_json NAME ARGS... -> writes $WORK/NAME.json
fio_json() {
    local name=$1; shift
    fio --name="$name" --ioengine=nbd --uri="$URI" --output-format=json --output="$WORK/$name.json" "$@" >/dev/null
}
metric() { # FILE SIDE(read|write|sync) KIND(iops|bw|lat_us)
    python3 - "$@" <<'PY'
import json, sys
job = json.load(open(sys.argv[1]))["jobs"][0]
side, kind = sys.argv[2], sys.argv[3]
s = job[side]
if kind == "iops": print("%.0f" % s["iops"])
elif kind == "bw": print("%.1f" % (s["bw_bytes"] / 1048576))
else:
    lat = s.get("lat_ns") or s.get("clat_ns")
    print("%.0f" % (lat["mean"] / 1000))
PY
}

start_garage
S3=(baseURL="$GARAGE_URL" accessId="$GARAGE_KEY" accessKey="$GARAGE_SECRET")
COMMON=(--size="${SIZE_MB}m" --iodepth=16)
declare -A R

echo "== nbdkit memory"
start_nbdkit memory memory 1G
fio_json mem-rr --rw=randread --bs=4k "${COMMON[@]}" --runtime="$RUNTIME" --time_based=1
fio_json mem-rw --rw=randwrite --bs=4k "${COMMON[@]}" --runtime="$RUNTIME" --time_based=1
R[mem-rr]=$(metric "$WORK/mem-rr.json" read iops); R[mem-rw]=$(metric "$WORK/mem-rw.json" write iops)
stop_last

echo "== ours, cache of 2048 x 256 KiB (512 MiB), warm"
new_bucket cached
start_nbdkit cached "$PLUGIN" bucket=cached "${S3[@]}" size=1g blockSize=256k blockCacheSize=2048
fio_json warmup --rw=write --bs=1m "${COMMON[@]}"
fio_json c-rr --rw=randread --bs=4k "${COMMON[@]}" --runtime="$RUNTIME" --time_based=1
fio_json c-rw --rw=randwrite --bs=4k "${COMMON[@]}" --runtime="$RUNTIME" --time_based=1
fio_json c-sw --rw=write --bs=1m "${COMMON[@]}" --end_fsync=1
R[c-rr]=$(metric "$WORK/c-rr.json" read iops); R[c-rw]=$(metric "$WORK/c-rw.json" write iops)
R[c-sw]=$(metric "$WORK/c-sw.json" write bw)
stop_last

echo "== ours, no cache"
new_bucket plain
start_nbdkit plain "$PLUGIN" bucket=plain "${S3[@]}" size=1g blockSize=256k blockCacheSize=0
fio_json p-sw --rw=write --bs=1m "${COMMON[@]}" --end_fsync=1
R[p-sw]=$(metric "$WORK/p-sw.json" write bw)
stop_last

echo "== FLUSH latency at queue depth 1"
for mode in default local; do
    new_bucket "fl-$mode"
    extra=(); [[ $mode == local ]] && extra=(blockCacheFile="$WORK/cache-$mode" blockCacheLocalFlush=true)
    start_nbdkit "fl-$mode" "$PLUGIN" bucket="fl-$mode" "${S3[@]}" size=1g blockSize=256k "${extra[@]}"
    fio_json "fl-$mode" --rw=randwrite --bs=4k --size=64m --iodepth=1 --fsync=1 --runtime=10 --time_based=1
    R[fl-$mode]=$(metric "$WORK/fl-$mode.json" sync lat_us)
    R[fl-$mode-w]=$(metric "$WORK/fl-$mode.json" write iops)
    stop_last
done

ratio() { python3 -c "print('%.2fx' % (float('$1') / float('$2')))"; }
printf '\n%-44s %-14s %-14s %s\n' measurement ours reference ratio
printf '%-44s %-14s %-14s %s\n' "4k randread qd16, warm cache (IOPS)" "${R[c-rr]}" "${R[mem-rr]} mem" "$(ratio "${R[c-rr]}" "${R[mem-rr]}")"
printf '%-44s %-14s %-14s %s\n' "4k randwrite qd16, cache (IOPS)" "${R[c-rw]}" "${R[mem-rw]} mem" "$(ratio "${R[c-rw]}" "${R[mem-rw]}")"
printf '%-44s %-14s %-14s %s\n' "1m seq write qd16 + fsync (MiB/s)" "${R[c-sw]} cache" "${R[p-sw]} no cache" "$(ratio "${R[c-sw]}" "${R[p-sw]}")"
printf '%-44s %-14s %-14s %s\n' "FLUSH latency qd1, default durability (us)" "${R[fl-default]}" "-" "${R[fl-default-w]} write+flush/s"
printf '%-44s %-14s %-14s %s\n' "FLUSH latency qd1, --blockCacheLocalFlush (us)" "${R[fl-local]}" "-" "${R[fl-local-w]} write+flush/s"
