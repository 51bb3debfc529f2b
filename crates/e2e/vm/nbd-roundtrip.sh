#!/bin/bash
# `s3backer --nbd` on a real Linux kernel: runs inside the run-vm.sh guest
# (../shared/tools/kernel-nbd), started by crates/e2e/tests/kernel_nbd.rs with a share
# directory holding our `s3backer` binary and the plugin as nbdkit-s3backer-plugin.so.
#
# The disk lives in a local directory store (--test) in the guest's /tmp. Every step checks
# what a user (or systemd) relies on; the first failure prints dmesg and exits 1.
set -u
. /knbd/lib.sh

S3B=/share/s3backer
PLUGIN=/share/nbdkit-s3backer-plugin.so
DEV=/dev/nbd0
NAME=nbd0
BUCKET=/tmp/bucket
MNT=/mnt/s3b
# --password is only there to check that no secret reaches nbdkit's command line (--test mode
# stores raw blocks and ignores it, with a warning).
FLAGS=(--test --size=256m --blockSize=64k "--nbd-plugin=$PLUGIN" --password=NotOnTheCmdLine42)
mkdir -p "$BUCKET" "$MNT"

fail() { knbd_fail "$*"; }
pid_of() {  # pid_of ARGV0 [ARGV1]: the first process with this argv[0] (and argv[1])
  # Builtins only: a fork per process is seconds under emulation.
  local d args
  for d in /proc/[0-9]*; do
    mapfile -d '' -t args < "$d/cmdline" 2>/dev/null || continue
    if [ "${args[0]:-}" = "$1" ] && { [ $# = 1 ] || [ "${args[1]:-}" = "$2" ]; }; then
      echo "${d#/proc/}"; return 0
    fi
  done
  return 1
}
wrapper_pid() { pid_of "$S3B" --nbd; }
nbdkit_pid() { pid_of /usr/bin/nbdkit; }
wait_gone() {  # wait_gone PID [TENTHS]
  local i=0
  while [ -d "/proc/$1" ]; do
    i=$((i + 1)); [ $i -le "${2:-300}" ] || return 1; sleep 0.1
  done
}
wait_exit() {  # wait_exit PID: the exit status of our child PID, or FAIL if it hangs (2 min)
  local i=0 state
  while :; do
    state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
    [ -z "$state" ] || [ "$state" = Z ] && break
    i=$((i + 1))
    [ $i -le 1200 ] || { ps; fail "process $1 did not exit within 2 minutes"; }
    sleep 0.1
  done
  wait "$1"
}
attached() { [ -n "$(cat /sys/block/$NAME/pid 2>/dev/null)" ] && [ "$(cat /sys/block/$NAME/size)" != 0 ]; }
blocks() { ls "$BUCKET" | grep -c '^[0-9a-f]\{8\}$'; }
no_leftovers() {  # nothing left of a stopped wrapper
  ! attached || fail "$DEV still attached"
  ! nbdkit_pid >/dev/null || fail "nbdkit still running"
  ! wrapper_pid >/dev/null || fail "the wrapper is still running"
  [ -z "$(ls /run/s3backer-nbd 2>/dev/null)" ] || fail "left in /run/s3backer-nbd: $(ls /run/s3backer-nbd)"
}

knbd_step "module not loaded: the wrapper loads it"
modprobe -r nbd || fail "cannot unload nbd"
[ ! -e $DEV ] || fail "$DEV still there"

knbd_step "attach #1, daemonized: returns only once the device works"
"$S3B" --nbd "${FLAGS[@]}" "$BUCKET" $DEV || fail "s3backer --nbd exited with $?"
attached || fail "the command returned before $DEV was attached"
knbd_info $DEV
[ "$(blockdev --getsize64 $DEV)" = 268435456 ] || fail "wrong size"
[ "$(blockdev --getss $DEV)" = 4096 ] || fail "logical sector size is not 4096"
[ "$(cat /sys/block/$NAME/queue/max_sectors_kb)" = 64 ] || fail "max_sectors_kb is not the block size (64)"
W=$(wrapper_pid) || fail "no supervising s3backer process"
K=$(nbdkit_pid) || fail "no nbdkit process"
# The listening socket and the kernel's 4 connections (--nbd-connections default).
socks=$(ls -l /proc/$K/fd | grep -c 'socket:')
[ "$socks" -ge 5 ] || fail "nbdkit has $socks sockets: not 4 connections"
[ "$(cut -d' ' -f4 /proc/$K/stat)" = "$W" ] || fail "nbdkit is not the wrapper's child"
tr '\0' '\n' < /proc/$K/cmdline | sed 's/^/  nbdkit arg: /'
! tr '\0' ' ' < /proc/$K/cmdline | grep -q NotOnTheCmdLine42 || fail "the password is on nbdkit's command line"
tr '\0' '\n' < /proc/$K/cmdline | grep -q '^s3b_passwordFile=/dev/fd/' || fail "no password pipe"
[ "$(stat -c %a /run/s3backer-nbd)" = 700 ] || fail "/run/s3backer-nbd is not 0700"

knbd_step "a second wrapper on the same device, and on the same disk: one-line errors"
out=$("$S3B" --nbd "${FLAGS[@]}" "$BUCKET" $DEV 2>&1) && fail "second wrapper on $DEV started"
echo "$out"; echo "$out" | grep -q "is busy" || fail "no 'busy' message"
out=$("$S3B" --nbd -f "${FLAGS[@]}" "$BUCKET" /dev/nbd1 2>&1) && fail "second wrapper on the same disk started"
echo "$out" | tail -n 3
echo "$out" | tail -n 1 | grep -q "^s3backer: nbdkit failed while opening the disk: .*in use by another s3backer process" \
  || fail "the disk-in-use reason is not the last line"
[ -z "$(cat /sys/block/nbd1/pid 2>/dev/null)" ] || fail "/dev/nbd1 left attached"

knbd_step "mkfs.ext4, mount, write data"
mkfs.ext4 -q -F $DEV || fail mkfs
mount -t ext4 $DEV $MNT || fail mount
head -c 8388608 /dev/urandom > /tmp/rand.8M
k=1; while tail -c +$k /tmp/rand.8M 2>/dev/null; do k=$((k + 1)); done | head -c 16777216 > $MNT/data.bin || fail write
rm -f /tmp/rand.8M
mkdir $MNT/dir && for i in 1 2 3 4 5; do echo "file $i" > $MNT/dir/f$i; done
sync || fail sync
SUM1=$(sha256sum $MNT/data.bin | cut -d' ' -f1)
SUMS1=$(cat $MNT/dir/* | sha256sum | cut -d' ' -f1)
echo "sha256 $SUM1"

knbd_step "fstrim: the block files of trimmed blocks disappear"
dd if=/dev/urandom of=$MNT/junk.bin bs=1M count=20 2>/dev/null && sync || fail "junk"
n1=$(blocks)
rm $MNT/junk.bin && sync
fstrim -v $MNT || fail fstrim
sync
i=0; while [ "$(blocks)" -gt $((n1 - 300)) ]; do
  i=$((i + 1)); [ $i -le 100 ] || fail "only $(( n1 - $(blocks) )) of ~320 block files deleted by fstrim"; sleep 0.1
done
echo "block files: $n1 before fstrim, $(blocks) after"

knbd_step "umount, SIGTERM: flushed, detached, processes gone, lock released"
umount $MNT || fail umount
kill -TERM "$W"
wait_gone "$W" || fail "the wrapper did not exit after SIGTERM"
knbd_wait_detached $DEV || fail "not detached"
no_leftovers

knbd_step "attach #2 in the foreground (-f): e2fsck clean, data intact"
"$S3B" --nbd -f "${FLAGS[@]}" "$BUCKET" $DEV & W=$!
knbd_wait_attached $DEV 600 || fail "attach #2"
e2fsck -fn $DEV || fail "e2fsck found problems"
mount -t ext4 $DEV $MNT || fail remount
echo 3 > /proc/sys/vm/drop_caches
[ "$(sha256sum $MNT/data.bin | cut -d' ' -f1)" = "$SUM1" ] || fail "data.bin checksum mismatch"
[ "$(cat $MNT/dir/* | sha256sum | cut -d' ' -f1)" = "$SUMS1" ] || fail "small files mismatch"
echo "checksums match"
umount $MNT || fail umount
kill -INT $W
wait_exit $W; rc=$?
[ $rc = 0 ] || fail "the wrapper exited with $rc after SIGINT"
no_leftovers

knbd_step "--readOnly: a read-only device"
"$S3B" --nbd -f --readOnly "${FLAGS[@]}" "$BUCKET" $DEV & W=$!
knbd_wait_attached $DEV 600 || fail "read-only attach"
[ "$(cat /sys/block/$NAME/ro)" = 1 ] || fail "$DEV is not read-only"
tr '\0' '\n' < /proc/$(nbdkit_pid)/cmdline | grep -qx -- --read-only || fail "nbdkit runs without --read-only"
dd if=$DEV of=/dev/null bs=64k count=16 iflag=direct 2>/dev/null || fail "read from the read-only device"
! dd if=/dev/zero of=$DEV bs=4k count=1 oflag=direct 2>/dev/null || fail "a write to the read-only device succeeded"
kill -TERM $W
wait_exit $W; rc=$?
[ $rc = 0 ] || fail "the read-only wrapper exited with $rc"
no_leftovers

knbd_step "nbd-client -d by hand: nbdkit finishes, the wrapper exits 0"
"$S3B" --nbd -f "${FLAGS[@]}" "$BUCKET" $DEV & W=$!
knbd_wait_attached $DEV 600 || fail "attach for nbd-client -d"
nbd-client -d $DEV || fail "nbd-client -d"
wait_exit $W; rc=$?
[ $rc = 0 ] || fail "the wrapper exited with $rc after nbd-client -d"
no_leftovers

knbd_step "nbdkit killed: the wrapper detaches the device and exits non-zero"
"$S3B" --nbd -f "${FLAGS[@]}" "$BUCKET" $DEV & W=$!
knbd_wait_attached $DEV 600 || fail "attach #3"
kill -KILL "$(nbdkit_pid)"
wait_exit $W; rc=$?
[ $rc != 0 ] || fail "the wrapper exited 0 after nbdkit was killed"
echo "wrapper exit status $rc"
no_leftovers

knbd_step "the wrapper killed: the device keeps working; nbd-client -d stops nbdkit cleanly"
"$S3B" --nbd "${FLAGS[@]}" "$BUCKET" $DEV || fail "attach #4"
K=$(nbdkit_pid)
kill -KILL "$(wrapper_pid)"
sleep 0.5
dd if=$DEV of=/dev/null bs=1M count=4 iflag=direct 2>/dev/null || fail "the device stopped working with its wrapper"
nbd-client -d $DEV || fail "nbd-client -d"
wait_gone "$K" || fail "nbdkit did not exit after the disconnect (exitlast)"
knbd_wait_detached $DEV || fail "not detached"

knbd_step "attach #5: the disk was released"
"$S3B" --nbd "${FLAGS[@]}" "$BUCKET" $DEV || fail "attach #5 (disk not released?)"
W=$(wrapper_pid)
kill -TERM "$W"
wait_gone "$W" || fail "the wrapper did not exit"
no_leftovers

knbd_step "PASS"
