#!/usr/bin/env bash
# Fuzzing campaign: every cargo-fuzz target (fuzz/README.md) for MINUTES each, two at a time on
# two cores, growing the corpora in fuzz/corpus/; prints executions, coverage and crashes per
# target and fails if any target crashed. No servers needed.
#
#   bench/fuzz.sh [MINUTES] [TARGET...]      default: 10 minutes, every target
#   FUZZ_SANITIZER=address bench/fuzz.sh     with AddressSanitizer (3-5x fewer executions)
source "$(dirname "$0")/../fuzz/lib.sh"
MINUTES=${1:-10}
shift || true
targets=("$@")
((${#targets[@]})) || targets=("${FUZZ_TARGETS[@]}")
fuzz_build
echo "==> fuzzing ${targets[*]}: $MINUTES min each, $FUZZ_JOBS at a time"
fuzz_run_all $((MINUTES * 60)) keep "${targets[@]}"
