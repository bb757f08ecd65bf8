#!/usr/bin/env bash
# The first-GPU check (under 10 minutes on one H100/H200-class GPU): the GPU-marked tests, then
# AE and InjFlow timings at width 1 (fp32, bf16-mixed, 16-mixed; with and without in_memory and
# CompileModules; extrapolated to 100k steps) and a 2-GPU DDP smoke test, as one summary table.
#
#   bash bench/gpu_check.sh             # on the GPU machine, from the repository root
#   bash bench/gpu_check.sh --dry-run   # the same code path on the CPU, a few steps
#
# Extra arguments go to bench/gpu_check.py (e.g. --steps 500). Exits non-zero when a check fails.
set -u
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
DRY=0
for arg in "$@"; do [ "$arg" = "--dry-run" ] && DRY=1; done

if [ "$DRY" = 1 ]; then
  TESTS="skipped in the dry run (no GPU)"
  TESTS_RC=0
else
  LOG="$(mktemp)"
  "$PYTHON" -m pytest -m gpu -q -p no:cacheprovider 2>&1 | tee "$LOG"
  TESTS_RC=${PIPESTATUS[0]}
  TESTS="$(tail -n 1 "$LOG" | tr -d '=' | sed 's/^ *//')"
fi
"$PYTHON" bench/gpu_check.py --gpu-tests "pytest -m gpu: $TESTS" "$@"
CHECK_RC=$?
if [ "$TESTS_RC" != 0 ] && [ "$TESTS_RC" != 5 ]; then exit "$TESTS_RC"; fi  # 5: none collected
exit "$CHECK_RC"
