#!/usr/bin/env bash
# ThreadSanitizer run of the tests that exercise optsync's threads: build
# with TSan (scripts/build.sh tsan), run the tests of the labels given with
# every process (tests, workers, sandbox, embedded Kafka) writing its
# reports to a file of its own, and fail if any process reported anything.
# A worker started by a test reports in its own file even when the test
# passes, so the files are what decides, not the tests' results alone.
#
# usage: scripts/tsan.sh [LABEL_REGEX]   (default: rules|writers|ingest|integration)
# env:   BUILD_DIR (default: build-tsan)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build-tsan}
labels=${1:-rules|writers|ingest|integration}

"$top/scripts/build.sh" tsan "$build" >/dev/null
reports=$(mktemp -d "${TMPDIR:-/tmp}/optsync-tsan-XXXXXX")
trap 'rm -rf "$reports"' EXIT
export TSAN_OPTIONS="log_path=$reports/tsan suppressions=$top/tests/tsan/suppressions.txt"
status=0
(cd "$build" && ctest -L "$labels" -j"$(nproc)" --output-on-failure) || status=$?
found=$(find "$reports" -type f | sort)
if [ -n "$found" ]; then
    for f in $found; do
        echo "== tsan: $f"
        cat "$f"
    done
    echo "tsan: $(echo "$found" | wc -l) process(es) reported (above)" >&2
    status=1
fi
exit "$status"
