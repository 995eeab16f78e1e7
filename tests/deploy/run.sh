#!/usr/bin/env bash
# Run one check of deploy/validate/validate.mjs for CTest. The tools come
# from scripts/deploy-tools.sh (quick when installed); when they cannot be
# installed (no network, no root) the check is skipped with exit code 77,
# never failed.
#
# usage: tests/deploy/run.sh COMMAND [ARG...]
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
if ! out=$("$top/scripts/deploy-tools.sh" 2>&1); then
    echo "SKIP: the deployment validation tools cannot be installed here:"
    echo "$out" | tail -n 3
    exit 77
fi
exec node "$top/deploy/validate/validate.mjs" "$@"
