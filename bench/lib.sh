# Shared helpers for the benchmark scripts (sourced). Starts servers on loopback ports of their
# own and cleans them up on exit.

set -euo pipefail
export PATH="$HOME/.cargo/bin:/usr/bin:/usr/sbin:$PATH"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PLUGIN=$ROOT/target/release/libnbdkit_s3backer_plugin.so
WORK=$(mktemp -d /tmp/s3b-bench.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 0.5
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

GARAGE_KEY=GK5a3b00c1d2e3f4a5b6c7d8e9
GARAGE_SECRET=8c7e2f1a9b0d3c4e5f6a7b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f7081920

# start_garage: single-node Garage with data on tmpfs-backed $WORK; sets GARAGE_URL.
start_garage() {
    local dir=$WORK/garage s3 rpc
    mkdir -p "$dir"
    s3=$(free_port); rpc=$(free_port)
    cat > "$dir/garage.toml" <<TOML
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc"
rpc_public_addr = "127.0.0.1:$rpc"
rpc_secret = "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
[s3_api]
s3_region = "us-east-1"
api_bind_addr = "127.0.0.1:$s3"
root_domain = ".s3.garage.localhost"
TOML
    garage -c "$dir/garage.toml" server > "$dir/log" 2>&1 &
    PIDS+=($!)
    local g="garage -c $dir/garage.toml"
    for _ in $(seq 1 200); do $g status >/dev/null 2>&1 && break; sleep 0.1; done
    local id; id=$($g node id -q 2>/dev/null | cut -d@ -f1)
    $g layout assign -z dc1 -c 10G "$id" >/dev/null
    $g layout apply --version 1 >/dev/null
    $g key import --yes -n bench "$GARAGE_KEY" "$GARAGE_SECRET" >/dev/null
    GARAGE_URL=http://127.0.0.1:$s3/
    GARAGE_CLI=$g
}

# new_bucket NAME
new_bucket() {
    $GARAGE_CLI bucket create "$1" >/dev/null
    $GARAGE_CLI bucket allow --read --write --owner "$1" --key "$GARAGE_KEY" >/dev/null
}

# start_nbdkit NAME ARGS... : foreground nbdkit on $WORK/NAME.sock; sets URI
start_nbdkit() {
    local name=$1; shift
    local sock=$WORK/$name.sock
    nbdkit -f -U "$sock" "$@" > "$WORK/$name.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 300); do [[ -S $sock ]] && break; sleep 0.1; done
    [[ -S $sock ]] || { cat "$WORK/$name.log"; return 1; }
    URI="nbd+unix:///?socket=$sock"
}

stop_last() {
    local last=$((${#PIDS[@]} - 1))
    kill "${PIDS[$last]}" 2>/dev/null || true
    wait "${PIDS[$last]}" 2>/dev/null || true
    unset "PIDS[$last]"
    PIDS=("${PIDS[@]}")
}
