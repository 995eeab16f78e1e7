#!/usr/bin/env bash
# Source checks that a compiler does not make: clang-format, and a short
# list of banned C functions (unbounded copies and unchecked conversions).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
status=0
scripts/format.sh check || status=1
# Comment lines are skipped ("... gets (x)" in prose is no call).
if git ls-files '*.c' '*.h' | xargs grep -nE '\b(sprintf|vsprintf|strcpy|strcat|strtok|atoi|atol|gets)\s*\(' |
    grep -vE '^[^:]+:[0-9]+:\s*(/\*|\*|//)'; then
    echo "lint: banned function used (see docs/style.md): use snprintf, memcpy with lengths, strtol" >&2
    status=1
fi
exit $status
