#!/usr/bin/env bash
# Configure and build optsync. usage: scripts/build.sh [release|asan|tsan] [BUILD_DIR]
set -euo pipefail

kind=${1:-release}
top=$(cd "$(dirname "$0")/.." && pwd)
case "$kind" in
release) dir=${2:-$top/build}; flags=(-DCMAKE_BUILD_TYPE=Release) ;;
asan) dir=${2:-$top/build-asan}; flags=(-DCMAKE_BUILD_TYPE=Debug -DOSY_SANITIZE=ON) ;;
# Optimised (TSan slows code 5-15x) with line numbers for the reports.
tsan) dir=${2:-$top/build-tsan}; flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DOSY_SANITIZE_THREAD=ON) ;;
*) echo "usage: scripts/build.sh [release|asan|tsan] [BUILD_DIR]" >&2; exit 2 ;;
esac
cmake -S "$top" -B "$dir" "${flags[@]}" >/dev/null
cmake --build "$dir" -j"$(nproc)"
