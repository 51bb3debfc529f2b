#!/usr/bin/env bash
# Installs what s3backer-rs needs on Debian 12, builds it, and installs the nbdkit plugin and the
# s3backer command. Idempotent: only what is missing is installed.
#
#   scripts/setup.sh                  build + run dependencies (nbdkit, nbd-client, libnbd tools,
#                                     qemu-utils)
#   scripts/setup.sh --test-tools     also what the tests use: Garage (built with cargo, 15-25 min
#                                     the first time), Debian's s3backer 1.5.4, fio, FUSE
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

test_tools=0
[[ "${1:-}" == "--test-tools" ]] && test_tools=1

say() { printf '\n==> %s\n' "$*"; }

# nbd-client and kmod (modprobe): `s3backer --nbd` attaches /dev/nbdX with them.
packages=(gcc pkg-config libssl-dev nbdkit nbdkit-plugin-dev libnbd-bin python3-libnbd qemu-utils
          nbd-client kmod)
if ((test_tools)); then
    # qemu-system-x86: the kernel VM of crates/e2e/tests/kernel_nbd.rs (../shared/tools/kernel-nbd,
    # whose run-vm.sh installs the rest of what it needs itself).
    packages+=(s3backer fuse3 fio e2fsprogs util-linux stunnel4 openssl zstd qemu-system-x86)
fi
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    extra=()
    if [[ " ${missing[*]} " == *" qemu-system-x86 "* ]]; then
        # Some machines come with a newer qemu-utils than Debian's; qemu-system-x86 from Debian
        # would make apt remove it (measured: qemu-img and qemu-io vanished). Install both at
        # Debian's version together, so qemu-img/qemu-io stay.
        v=$(apt-cache policy qemu-system-x86 | awk '/Candidate:/ {print $2}')
        extra=(--allow-downgrades "qemu-utils=$v")
    fi
    apt-get install -y -qq --no-install-recommends "${extra[@]}" "${missing[@]}"
fi
command -v qemu-img >/dev/null && command -v qemu-io >/dev/null \
    || { echo "qemu-img/qemu-io missing after the install (qemu-utils)" >&2; exit 1; }

if ! command -v cargo >/dev/null; then
    echo "cargo not found: install the Rust toolchain (rustup) first" >&2
    exit 1
fi

if ((test_tools)) && ! command -v garage >/dev/null; then
    say "building Garage 2.5.0 (the S3 server the tests use; 15-25 minutes on 2 cores)"
    cargo install garage --locked --version 2.5.0
fi

say "building s3backer-rs (release)"
cargo build --release --workspace --locked

plugindir=$(nbdkit --dump-config | sed -n 's/^plugindir=//p')
say "installing nbdkit-s3backer-plugin.so into $plugindir and s3backer into /usr/local/bin"
install -m 0755 target/release/libnbdkit_s3backer_plugin.so "$plugindir/nbdkit-s3backer-plugin.so"
install -m 0755 target/release/s3backer /usr/local/bin/s3backer
nbdkit s3backer --version >/dev/null

# umount(8) runs /sbin/umount.fuse for FUSE mounts (and umount.fuse.s3backer via systemd or
# `umount -t`): as that helper, s3backer makes umount wait until the final flush is done and the
# mount token released (the kernel does not wait for a FUSE server). Other FUSE mounts are
# passed on to `umount -i` unchanged. Existing helpers that are not ours are left alone.
for helper in /sbin/umount.fuse.s3backer /sbin/umount.fuse; do
    if [[ ! -e $helper || ( -L $helper && $(readlink "$helper") == */s3backer ) ]]; then
        ln -sfn /usr/local/bin/s3backer "$helper"
    fi
done
