#!/usr/bin/env bash
# CI smoke run of the fuzz targets (fuzz/README.md): builds them, replays the seeds and past
# crashes, then fuzzes each target for SECONDS (default 20) from its seeds, two at a time;
# fails on any crash. The full campaign is bench/fuzz.sh.
#
#   scripts/fuzz-smoke.sh [SECONDS]
source "$(dirname "$0")/../fuzz/lib.sh"
SECONDS_EACH=${1:-20}
fuzz_build
echo "==> fuzz smoke: ${FUZZ_TARGETS[*]}: ${SECONDS_EACH}s each, $FUZZ_JOBS at a time"
fuzz_run_all "$SECONDS_EACH" scratch "${FUZZ_TARGETS[@]}"
