#!/usr/bin/env bash
# VNN-COMP tool script: decide one instance and write its result file.
#
#     run_instance.sh v1 CATEGORY ONNX VNNLIB RESULTS_FILE TIMEOUT
#
# Runs 'reluverify vnnlib ONNX VNNLIB --out RESULTS_FILE', whose result file is the competition's:
# 'sat' followed by the counterexample ((X_0 v) ... (Y_0 v) ...), or 'unsat', 'unknown', 'timeout'.
# The solver gets TIMEOUT less a start-up margin; the whole run is ended at TIMEOUT seconds of wall
# time (the file then says 'timeout'). A run that fails (bad input) writes 'unknown' and says why
# on stderr. Exits 0 whenever the result file was written; .onnx.gz / .vnnlib.gz are accepted.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
check_version "$@"
if [ "$#" -ne 6 ]; then
    echo "usage: run_instance.sh v1 CATEGORY ONNX VNNLIB RESULTS_FILE TIMEOUT" >&2
    exit 1
fi
CATEGORY="$2"
RESULTS="$5"
TIMEOUT="$6"
if ! [[ "$TIMEOUT" =~ ^[0-9]+([.][0-9]*)?$ ]] || ! awk -v t="$TIMEOUT" 'BEGIN { exit !(t > 0) }'; then
    echo "run_instance.sh: TIMEOUT must be a positive number of seconds, got '$TIMEOUT'" >&2
    exit 1
fi
rm -f "$RESULTS"
ONNX="$(unpacked "$3")" || { echo unknown > "$RESULTS"; exit 0; }
VNNLIB="$(unpacked "$4")" || { echo unknown > "$RESULTS"; exit 0; }
SOLVER_TIMEOUT="$(awk -v t="$TIMEOUT" 'BEGIN { s = t * 0.95 - 2; if (s < 1) s = 1; printf "%.3f", s }')"

mkdir -p "$STATE"
echo "run_instance.sh: $CATEGORY: $ONNX $VNNLIB (timeout $TIMEOUT s)" >&2
# GNU timeout puts the run in its own process group; prepare_instance.sh ends that group if it is left over
timeout --kill-after=2 "$TIMEOUT" "$PY" -m reluverify vnnlib "$ONNX" "$VNNLIB" \
    --timeout "$SOLVER_TIMEOUT" --out "$RESULTS" >&2 &
echo $! > "$PGID_FILE"
wait $!
status=$?
rm -f "$PGID_FILE"
if [ ! -s "$RESULTS" ]; then
    if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
        echo timeout > "$RESULTS"
    else
        echo "run_instance.sh: reluverify ended with status $status and no result: unknown" >&2
        echo unknown > "$RESULTS"
    fi
fi
exit 0
