# Shared by the VNN-COMP tool scripts (sourced, not run): where things are, and small helpers.
#
# Everything the scripts keep lives in $REPO/.vnncomp, beside this clone (never in the caller's
# folder): the virtual environment install_tool.sh creates (venv/), the process group of the
# instance running now (run.pgid, so prepare_instance.sh can end exactly that one), and
# decompressed copies of .onnx.gz / .vnnlib.gz files (unpacked/).

VERSION_STRING="v1"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="$REPO/.vnncomp"
VENV="$STATE/venv"
PGID_FILE="$STATE/run.pgid"

# The interpreter that runs reluverify: the environment install_tool.sh made, else python3 with
# this clone on PYTHONPATH (a development checkout whose dependencies are installed).
if [ -x "$VENV/bin/python" ]; then
    PY="$VENV/bin/python"
else
    PY="${PYTHON:-python3}"
    export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
fi

check_version() {
    if [ "${1:-}" != "$VERSION_STRING" ]; then
        echo "$(basename "$0"): expected the version string '$VERSION_STRING' as the first argument, got '${1:-}'" >&2
        exit 1
    fi
}

# The path of a readable file for $1: itself, or a decompressed copy of $1 (if it ends in .gz)
# or of $1.gz (if only that exists). Prints the path; fails with a message if there is none.
unpacked() {
    local path="$1" packed="" target
    if [[ "$path" == *.gz ]]; then
        packed="$path"
    elif [ ! -f "$path" ] && [ -f "$path.gz" ]; then
        packed="$path.gz"
    fi
    if [ -z "$packed" ]; then
        if [ ! -f "$path" ]; then
            echo "$(basename "$0"): no such file: $path" >&2
            return 1
        fi
        echo "$path"
        return 0
    fi
    mkdir -p "$STATE/unpacked"
    target="$STATE/unpacked/$(printf '%s' "$(cd "$(dirname "$packed")" && pwd)/$(basename "$packed")" | cksum | cut -d' ' -f1)-$(basename "${packed%.gz}")"
    if [ ! -s "$target" ] || [ "$packed" -nt "$target" ]; then
        gzip -dc "$packed" > "$target.part.$$" && mv "$target.part.$$" "$target" || {
            echo "$(basename "$0"): cannot decompress $packed" >&2
            rm -f "$target.part.$$"
            return 1
        }
    fi
    echo "$target"
}

# End the process group of the instance that ran last, if it is still running (a leftover) and is
# still ours: one of its processes runs 'reluverify vnnlib' (a group id can be reused after a reboot).
end_leftover() {
    local pgid
    [ -f "$PGID_FILE" ] || return 0
    pgid="$(cat "$PGID_FILE" 2>/dev/null)"
    rm -f "$PGID_FILE"
    case "$pgid" in ''|*[!0-9]*) return 0 ;; esac
    if ps -e -o pgid=,args= 2>/dev/null | awk -v g="$pgid" '$1 == g && /reluverify vnnlib/ { found = 1 } END { exit !found }'; then
        kill -TERM -- "-$pgid" 2>/dev/null
        sleep 0.5
        kill -KILL -- "-$pgid" 2>/dev/null
    fi
    return 0
}
