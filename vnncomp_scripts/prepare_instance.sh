#!/usr/bin/env bash
# VNN-COMP tool script: prepare one instance.
#
#     prepare_instance.sh v1 CATEGORY ONNX VNNLIB
#
# Ends a leftover reluverify run of these scripts (the process group run_instance.sh recorded,
# nothing else), checks that both files exist (decompressing .onnx.gz / .vnnlib.gz) and exits 0.
# Any category is accepted: the VNN-LIB file says everything the instance needs.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
check_version "$@"
if [ "$#" -ne 4 ]; then
    echo "usage: prepare_instance.sh v1 CATEGORY ONNX VNNLIB" >&2
    exit 1
fi
end_leftover
unpacked "$3" > /dev/null || exit 1
unpacked "$4" > /dev/null || exit 1
exit 0
