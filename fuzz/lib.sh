# Shared by bench/fuzz.sh and scripts/fuzz-smoke.sh (sourced): builds the cargo-fuzz targets
# on the stable toolchain and runs them with libFuzzer, two at a time, with a report.
#
# Environment:
#   FUZZ_SANITIZER  none (default) or address. The parsers are safe Rust, and C code (zstd) is
#                   not instrumented by cargo-fuzz's ASan either, so ASan costs 3-5x executions
#                   for little; `address` works on this host too.
#   FUZZ_JOBS       targets run at the same time (default 2).

set -euo pipefail
export PATH="$HOME/.cargo/bin:/usr/bin:/usr/sbin:$PATH"
FUZZ_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FUZZ_DIR=$FUZZ_ROOT/fuzz
FUZZ_SANITIZER=${FUZZ_SANITIZER:-none}
FUZZ_JOBS=${FUZZ_JOBS:-2}
FUZZ_TARGET_DIR=$FUZZ_ROOT/target/fuzz-$FUZZ_SANITIZER
CARGO_FUZZ_VERSION=0.13.2

FUZZ_TARGETS=(config_args nbdkit_params size decode_block list_xml delete_result_xml cache_file http_answer)

# Per target: dictionary (fuzz/dict/) and the largest input libFuzzer makes.
fuzz_dict() {
    case $1 in
        config_args | nbdkit_params) echo config.dict ;;
        decode_block) echo decode.dict ;;
        list_xml | delete_result_xml) echo xml.dict ;;
        http_answer) echo http.dict ;;
        *) echo "" ;;
    esac
}
fuzz_max_len() {
    case $1 in
        config_args | nbdkit_params) echo 2048 ;; # config lines are at most 1022 bytes
        size) echo 64 ;;
        decode_block) echo 16384 ;;
        list_xml | delete_result_xml) echo 8192 ;;
        cache_file) echo 65536 ;;
        http_answer) echo 4096 ;;
    esac
}

# fuzz_build: installs cargo-fuzz if missing, builds every target (release, debug assertions
# and overflow checks on). cargo-fuzz passes nightly-only flags (-Zsanitizer=...), which the
# stable compiler accepts with RUSTC_BOOTSTRAP=1; -O -a = release with debug assertions.
fuzz_build() {
    if ! cargo fuzz --version >/dev/null 2>&1; then
        echo "==> installing cargo-fuzz $CARGO_FUZZ_VERSION"
        cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
    fi
    echo "==> building fuzz targets (sanitizer: $FUZZ_SANITIZER, target dir: ${FUZZ_TARGET_DIR#"$FUZZ_ROOT"/})"
    (cd "$FUZZ_ROOT" && RUSTC_BOOTSTRAP=1 cargo fuzz build -O -a -s "$FUZZ_SANITIZER" \
        --target-dir "$FUZZ_TARGET_DIR")
    local triple
    triple=$(rustc -vV | sed -n 's/^host: //p')
    FUZZ_BIN=$FUZZ_TARGET_DIR/$triple/release
}

# fuzz_run_all SECONDS CORPUS_MODE TARGET...: runs each target for SECONDS, FUZZ_JOBS at a
# time, then prints a table and returns 1 if any target found a crash, timeout or OOM.
# CORPUS_MODE: `keep` grows fuzz/corpus/<target> (kept between runs); `scratch` starts from the
# seeds only and throws the new inputs away. Seeds (fuzz/seeds/<target>) and minimized past
# crashes (fuzz/regressions/<target>, if any) are always run first.
fuzz_run_all() {
    local seconds=$1 mode=$2
    shift 2
    local targets=("$@")
    FUZZ_WORK=$(mktemp -d "$( [[ -d /dev/shm && -w /dev/shm ]] && echo /dev/shm || echo /tmp)/s3b-fuzz.XXXXXX")
    trap 'rm -rf "$FUZZ_WORK"' EXIT
    # The targets write their scratch files (config files, cache files) under TMPDIR.
    export TMPDIR=$FUZZ_WORK
    local running=0 t
    for t in "${targets[@]}"; do
        if ((running >= FUZZ_JOBS)); then
            wait -n || true
            running=$((running - 1))
        fi
        fuzz_run_one "$t" "$seconds" "$mode" &
        running=$((running + 1))
    done
    wait || true
    fuzz_report "${targets[@]}"
}

fuzz_run_one() {
    local LC_ALL=C
    local t=$1 seconds=$2 mode=$3
    local corpus artifacts=$FUZZ_DIR/artifacts/$t
    if [[ $mode == keep ]]; then
        corpus=$FUZZ_DIR/corpus/$t
    else
        corpus=$FUZZ_WORK/corpus-$t
    fi
    mkdir -p "$corpus" "$artifacts"
    local dirs=("$corpus" "$FUZZ_DIR/seeds/$t")
    [[ -d $FUZZ_DIR/regressions/$t ]] && dirs+=("$FUZZ_DIR/regressions/$t")
    local args=(-max_total_time="$seconds" -max_len="$(fuzz_max_len "$t")" -timeout=30
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts/")
    local dict
    dict=$(fuzz_dict "$t")
    [[ -n $dict ]] && args+=(-dict="$FUZZ_DIR/dict/$dict")
    ls "$artifacts" > "$FUZZ_WORK/$t.before" 2>/dev/null || true
    local start=$SECONDS rc=0
    "$FUZZ_BIN/$t" "${args[@]}" "${dirs[@]}" > "$FUZZ_WORK/$t.log" 2>&1 || rc=$?
    echo "$rc $((SECONDS - start))" > "$FUZZ_WORK/$t.rc"
    # Scratch files of this target's process, if it died before cleaning up.
    rm -rf "$FUZZ_WORK"/s3b-fuzz-"$t"-* 2>/dev/null || true
    local new
    new=$(comm -13 "$FUZZ_WORK/$t.before" <(ls "$artifacts") | grep -v '^slow-unit-' || true)
    echo "$new" > "$FUZZ_WORK/$t.new"
    if ((rc != 0)) || [[ -n $new ]]; then
        echo "!! $t: exit status $rc; new artifacts in fuzz/artifacts/$t/: ${new:-none}" >&2
        grep -E "panicked at|^==[0-9]+==ERROR|SUMMARY|Test unit written" "$FUZZ_WORK/$t.log" | head -5 >&2 || true
        cp "$FUZZ_WORK/$t.log" "$artifacts/last-failure.log"
    fi
}

fuzz_report() {
    local failed=0 t
    printf '\n| target | seconds | executions | exec/s | coverage (edges) | corpus | crashes |\n'
    printf '| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n'
    for t in "$@"; do
        local log=$FUZZ_WORK/$t.log rc secs execs cov corp crashes
        read -r rc secs < "$FUZZ_WORK/$t.rc"
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
        cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
        corp=$(grep -oE 'corp: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
        crashes=$(grep -c . "$FUZZ_WORK/$t.new" || true)
        if ((rc != 0)) && ((crashes == 0)); then crashes=1; fi
        ((crashes == 0)) || failed=1
        printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$t" "$secs" "${execs:-?}" \
            "$(( ${execs:-0} / (secs > 0 ? secs : 1) ))" "${cov:-?}" "${corp:-?}" "$crashes"
    done
    if ((failed)); then
        echo
        echo "FAILED: see fuzz/artifacts/<target>/ (inputs) and last-failure.log; reproduce with" \
            "$FUZZ_BIN/<target> <input>"
        return 1
    fi
}
