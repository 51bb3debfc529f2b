#!/usr/bin/env bash
# FUSE mode against the nbdkit path: the same fio jobs on our FUSE disk file (libaio, O_DIRECT)
# and through nbdkit with our plugin (fio's nbd engine), same Garage bucket, same run. Prints
# MiB/s or IOPS per job and the FUSE/nbdkit ratio.
#
#   bench/fio-fuse.sh [SIZE_MB]      (default 256; root, /dev/fuse; scripts/setup.sh --test-tools)
#   S3B_PARAMS="blockCacheSize=0" bench/fio-fuse.sh    (extra s3backer flags, name=value, for both
#                                                       targets: --name=value / plugin name=value)
#
# Disk: 1 GiB, 256 KiB blocks, on a local Garage server (bench/lib.sh). Jobs, each at queue
# depth 16: sequential 1 MiB write over SIZE_MB, then sequential 1 MiB read of it, then 4 KiB
# random read and 4 KiB random write inside it for RUNTIME seconds (default 15). O_DIRECT on
# the FUSE file, so the kernel's page cache does not answer for the disk; nbdkit has none.
# Between the two targets the FUSE mount is unmounted through our umount helper, which returns
# once the final flush is done and the mount token released, so nbdkit can open the bucket.
source "$(dirname "$0")/lib.sh"
SIZE_MB=${1:-256}
RUNTIME=${RUNTIME:-15}
S3BACKER=$ROOT/target/release/s3backer
[[ -f $PLUGIN && -f $S3BACKER ]] || (cd "$ROOT" && cargo build --release --workspace)
[[ $(id -u) == 0 ]] || { echo "run as root (FUSE mount, umount)" >&2; exit 1; }

# fio_job NAME RW BS TARGET_ARGS... -> prints "value unit"
fio_job() {
    local name=$1 rw=$2 bs=$3 out
    shift 3
    out=$WORK/fio-$name-$rw-$bs.json
    local timed=0
    [[ $rw == rand* ]] && timed=1
    fio --name="$name-$rw" "$@" --rw="$rw" --bs="$bs" --iodepth=16 \
        --size="${SIZE_MB}m" --runtime="$RUNTIME" --time_based=$timed \
        --output-format=json --output="$out" >/dev/null
    python3 - "$out" "$rw" <<'PY'
import json, sys
job = json.load(open(sys.argv[1]))["jobs"][0]
side = job["write"] if "write" in sys.argv[2] else job["read"]
if sys.argv[2].startswith("rand"):
    print("%.0f IOPS" % side["iops"])
else:
    print("%.1f MiB/s" % (side["bw_bytes"] / 1048576))
PY
}

run_target() {
    local name=$1
    shift
    RESULTS[$name,write]=$(fio_job "$name" write 1m "$@")
    RESULTS[$name,read]=$(fio_job "$name" read 1m "$@")
    RESULTS[$name,randread]=$(fio_job "$name" randread 4k "$@")
    RESULTS[$name,randwrite]=$(fio_job "$name" randwrite 4k "$@")
}

declare -A RESULTS
start_garage
new_bucket bench
CREDS=(--baseURL="$GARAGE_URL" --accessId="$GARAGE_KEY" --accessKey="$GARAGE_SECRET")
read -r -a PARAMS <<< "${S3B_PARAMS:-}"
FLAGS=()
for p in "${PARAMS[@]}"; do FLAGS+=("--$p"); done

echo "== FUSE: s3backer ${FLAGS[*]} bench $WORK/mnt (1 GiB, 256k blocks)"
mkdir -p "$WORK/mnt"
"$S3BACKER" "${CREDS[@]}" "${FLAGS[@]}" --size=1g --blockSize=256k bench "$WORK/mnt"
umount_fuse() {
    # Our binary as umount(8)'s helper: waits for the final flush and the token release.
    (exec -a umount.fuse.s3backer "$S3BACKER" "$WORK/mnt")
}
trap 'umount_fuse 2>/dev/null || umount -l "$WORK/mnt" 2>/dev/null; cleanup' EXIT
run_target fuse --filename="$WORK/mnt/file" --ioengine=libaio --direct=1
umount_fuse
trap cleanup EXIT

echo "== nbdkit: our plugin on the same bucket"
start_nbdkit nbd "$PLUGIN" bucket=bench baseURL="$GARAGE_URL" accessId="$GARAGE_KEY" \
    accessKey="$GARAGE_SECRET" "${PARAMS[@]}"
run_target nbd --ioengine=nbd --uri="$URI"
stop_last

ratio() { python3 -c "print('%.2fx' % (float('$1'.split()[0]) / float('$2'.split()[0])))"; }
printf '\n%-22s %-16s %-16s %-8s\n' job "FUSE file" "nbdkit (nbd)" "FUSE/nbd"
for job in write read randread randwrite; do
    f=${RESULTS[fuse,$job]} n=${RESULTS[nbd,$job]}
    case $job in
        write | read) label="1m seq $job qd16" ;;
        *) label="4k $job qd16" ;;
    esac
    printf '%-22s %-16s %-16s %-8s\n' "$label" "$f" "$n" "$(ratio "$f" "$n")"
done
