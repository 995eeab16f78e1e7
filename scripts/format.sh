#!/usr/bin/env bash
# Format the C sources with the root .clang-format, or check them.
# usage: scripts/format.sh [check|fix]   (check: exit 1 if any file differs)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
mode=${1:-check}
mapfile -t files < <(git ls-files '*.c' '*.h' 2>/dev/null || find . -name '*.[ch]' -not -path './build*')
[ ${#files[@]} -eq 0 ] && exit 0
case "$mode" in
fix) clang-format -i "${files[@]}" ;;
check)
    bad=0
    for f in "${files[@]}"; do
        if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
            echo "format: $f is not clang-formatted (run scripts/format.sh fix)" >&2
            bad=1
        fi
    done
    exit $bad ;;
*) echo "usage: scripts/format.sh [check|fix]" >&2; exit 2 ;;
esac
