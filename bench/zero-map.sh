#!/usr/bin/env bash
# Zero map and survey: start-up time to first I/O and survey time for a disk with N existing
# blocks (--listBlocksThreads 1 vs 16), start-up with the saved zero map instead of a survey,
# and the time and request count of a full-device discard of a 64 GiB disk (with and without the
# zero map knowing the disk is empty). Garage on loopback; requests counted from --debug logs.
#
#   bench/zero-map.sh [BLOCKS]     (default 100000; needs scripts/setup.sh --test-tools)
source "$(dirname "$0")/lib.sh"
BLOCKS=${1:-100000}
[[ -f $PLUGIN ]] || (cd "$ROOT" && cargo build --release --workspace)
now() { date +%s.%N; }
elapsed() { python3 -c "print('%.2f' % ($2 - $1))"; }
count() { grep -c "DEBUG: $1 http" "$2" || true; }

start_garage
S3=(baseURL="$GARAGE_URL" accessId="$GARAGE_KEY" accessKey="$GARAGE_SECRET")

echo "== filling a disk with $BLOCKS blocks of 4 KiB (through the plugin)"
new_bucket filled
head -c $((BLOCKS * 4096)) /dev/urandom > "$WORK/fill.img"
start_nbdkit fill "$PLUGIN" bucket=filled "${S3[@]}" size=$((BLOCKS * 4))k blockSize=4k
t0=$(now)
nbdcopy --connections=4 --requests=32 "$WORK/fill.img" "$URI"
t1=$(now)
echo "   wrote $BLOCKS blocks in $(elapsed "$t0" "$t1") s"
kill -9 "${PIDS[-1]}"; unset 'PIDS[-1]'; rm -f "$WORK/fill.img"   # no saved map: survey from scratch

declare -A ROWS
for threads in 1 16; do
    log=$WORK/survey-$threads.log
    t0=$(now)
    nbdkit -f -U "$WORK/s$threads.sock" "$PLUGIN" bucket=filled "${S3[@]}" force=true \
        listBlocks=true listBlocksThreads=$threads > "$log" 2>&1 &
    PIDS+=($!)
    until [[ -S $WORK/s$threads.sock ]]; do sleep 0.02; done
    qemu-io -f raw -c 'read 0 4k' "nbd+unix:///?socket=$WORK/s$threads.sock" > /dev/null
    t1=$(now)
    until grep -q "survey completed" "$log"; do sleep 0.05; done
    t2=$(now)
    ROWS[$threads]="first I/O after $(elapsed "$t0" "$t1") s, survey done after $(elapsed "$t0" "$t2") s ($(grep -o '([0-9]* non-zero blocks reported)' "$log"))"
    stop_last
done

echo "== clean stop saves the zero map; start-up with it"
start_nbdkit save "$PLUGIN" bucket=filled "${S3[@]}" force=true
stop_last
t0=$(now)
start_nbdkit saved "$PLUGIN" bucket=filled "${S3[@]}"
qemu-io -f raw -c 'read 0 4k' "$URI" > /dev/null
t1=$(now)
saved="first I/O after $(elapsed "$t0" "$t1") s; $(grep -o 'loaded zero map.*' "$WORK/saved.log")"
stop_last

echo "== full-device discard of a fresh 64 GiB disk (256 KiB blocks)"
new_bucket big
declare -A DISCARD
for mode in unknown surveyed; do
    extra=(); [[ $mode == surveyed ]] && extra=(listBlocks=true)
    start_nbdkit "discard-$mode" "$PLUGIN" bucket=big "${S3[@]}" size=64g blockSize=256k debug=true force=true "${extra[@]}"
    log=$WORK/discard-$mode.log
    [[ $mode == surveyed ]] && until grep -q "survey completed" "$log"; do sleep 0.05; done
    before=$(( $(count POST "$log") + $(count DELETE "$log") ))
    t0=$(now)
    # NBD requests carry at most 4 GiB - 1: discard in 1 GiB requests, as blkdiscard would.
    /usr/bin/python3 -c 'import nbd,sys; h=nbd.NBD(); h.connect_uri(sys.argv[1]); [h.trim(1<<30, o) for o in range(0, h.get_size(), 1<<30)]' "$URI"
    t1=$(now)
    after=$(( $(count POST "$log") + $(count DELETE "$log") ))
    DISCARD[$mode]="$(elapsed "$t0" "$t1") s, $((after - before)) delete requests"
    stop_last
done

printf '\n%-48s %s\n' "measurement" "result"
printf '%-48s %s\n' "survey of $BLOCKS blocks, --listBlocksThreads=1" "${ROWS[1]}"
printf '%-48s %s\n' "survey of $BLOCKS blocks, --listBlocksThreads=16" "${ROWS[16]}"
printf '%-48s %s\n' "start with the saved zero map (no survey)" "$saved"
printf '%-48s %s\n' "discard 64 GiB, zero map knows nothing" "${DISCARD[unknown]}"
printf '%-48s %s\n' "discard 64 GiB after the survey" "${DISCARD[surveyed]}"
