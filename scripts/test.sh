#!/usr/bin/env bash
# Run every test from a fresh machine: install the Debian packages, lint,
# build with ASan+UBSan and run the unit tests there, build with TSan and
# run the tests of the threaded workers there (any data race reported by
# any process fails), then build Release and run the whole suite. The last
# lines printed are CTest's summary.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
jobs=$(nproc)

scripts/deps.sh
# The deploy tests' validators (docker-compose, kubectl, promtool, npm
# schemas); without them (no network) those tests skip instead of failing.
scripts/deploy-tools.sh || echo "== deploy tools unavailable: the deploy tests will be skipped"
echo "== lint (clang-format, banned functions)"
scripts/lint.sh
echo "== sanitizer build (ASan + UBSan): unit tests"
scripts/build.sh asan "$top/build-asan" >/dev/null
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest -L unit -j"$jobs" --output-on-failure)
echo "== thread sanitizer build (TSan): rules, writers, ingest, integration tests"
scripts/tsan.sh
echo "== release build: every test"
scripts/build.sh release "$top/build" >/dev/null
cd build
exec ctest -j"$jobs" --output-on-failure
