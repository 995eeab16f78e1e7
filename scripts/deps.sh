#!/usr/bin/env bash
# Install every Debian package optsync needs to build, test and run the
# demo. Idempotent: installs only what is missing; uses sudo when not root.
set -euo pipefail

packages=(
    build-essential cmake pkg-config git
    librdkafka-dev libcurl4-openssl-dev libcjson-dev libhiredis-dev
    libmicrohttpd-dev libssl-dev libcmocka-dev
    redis-server redis-tools
    clang-format kcat curl ca-certificates
)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "deps: not root and no sudo; install: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The redis-server package starts a system instance on 6379; optsync's
# scripts start private ones on free ports, so it is left as it is.
