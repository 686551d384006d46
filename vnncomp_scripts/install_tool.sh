#!/usr/bin/env bash
# VNN-COMP tool script: install reluverify.
#
#     install_tool.sh v1
#
# Creates a virtual environment in .vnncomp/venv beside this clone and installs reluverify there
# with its runtime dependencies only (numpy, scipy, onnx, onnxruntime, z3-solver, ...): no torch,
# the train and test extras are not installed. Needs Python >= 3.11 as python3 (or $PYTHON) with
# its venv module (Debian/Ubuntu: apt-get install python3-venv). RELUVERIFY_VENV_OPTIONS go to
# 'python3 -m venv' (e.g. --system-site-packages to reuse packages installed already). Run it
# again to update the installation from the clone.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
check_version "$@"

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
    echo "install_tool.sh: reluverify needs Python >= 3.11; $PYTHON is $("$PYTHON" --version 2>&1)" >&2
    exit 1
fi
mkdir -p "$STATE"
if [ ! -x "$VENV/bin/python" ]; then
    # shellcheck disable=SC2086 # the options are words
    "$PYTHON" -m venv ${RELUVERIFY_VENV_OPTIONS:-} "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet "$REPO"
"$VENV/bin/python" -m reluverify --version
echo "install_tool.sh: reluverify installed in $VENV"
