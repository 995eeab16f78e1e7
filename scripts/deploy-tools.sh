#!/usr/bin/env bash
# Install the tools tests/deploy validates the deployment kit with, all
# offline once installed:
#   - docker-compose (Debian package)             -> `docker-compose config`
#   - kubectl 1.20 from Debian's kubernetes-client,
#     unpacked into the tools folder (kustomize 2.0; a newer kubectl on
#     PATH is used as well, and both must render the same objects)
#   - promtool from Debian's prometheus package, unpacked likewise
#   - npm packages pinned by deploy/validate/package-lock.json
#     (kubernetes-models & co, the API schemas), installed with `npm ci`
#     into the tools folder, never globally
# Idempotent and quick when everything is there: no network then. Uses sudo
# for apt-get when not root. Exit 0 when every tool is ready, 1 otherwise
# (no network, no root): the deploy tests then skip.
#
# usage: scripts/deploy-tools.sh [--check]   (--check: install nothing)
# The tools folder is $OSY_DEPLOY_TOOLS, default build/deploy-tools.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
dir=${OSY_DEPLOY_TOOLS:-$top/build/deploy-tools}
check_only=0
[ "${1:-}" = "--check" ] && check_only=1
mkdir -p "$dir"

# One installer at a time: CTest may start several deploy tests at once.
exec 9>"$dir/.lock"
flock 9

say() { echo "deploy-tools: $*" >&2; }
missing=()

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
apt_updated=0
apt_run() {
    if [ -n "$sudo" ] && ! command -v sudo >/dev/null; then
        say "not root and no sudo: cannot run apt-get $*"
        return 1
    fi
    if [ $apt_updated = 0 ]; then
        DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq >/dev/null 2>&1 || { say "apt-get update failed (no network?)"; return 1; }
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get "$@"
}

# Unpack a Debian package into $dir/debian without installing it, so it
# cannot clash with another package's files (e.g. Google's kubectl).
unpack_deb() {
    local pkg=$1 stamp="$dir/debian/.$1"
    [ -f "$stamp" ] && return 0
    [ $check_only = 1 ] && return 1
    local tmp
    tmp=$(mktemp -d)
    chmod 0755 "$tmp" # apt's download sandbox user must be able to write
    if ! (cd "$tmp" && apt_run download "$pkg" >/dev/null 2>&1); then
        rm -rf "$tmp"
        say "cannot download the Debian package $pkg"
        return 1
    fi
    mkdir -p "$dir/debian"
    dpkg-deb -x "$tmp"/"$pkg"_*.deb "$dir/debian"
    rm -rf "$tmp"
    touch "$stamp"
}

# ---- docker-compose ----------------------------------------------------------
if ! command -v docker-compose >/dev/null; then
    if [ $check_only = 1 ] || ! { say "installing docker-compose"; apt_run install -y -qq --no-install-recommends docker-compose >/dev/null; }; then
        missing+=(docker-compose)
    fi
fi

# ---- kubectl (kustomize) and promtool from Debian --------------------------------
unpack_deb kubernetes-client || missing+=(kubernetes-client)
unpack_deb prometheus || missing+=(promtool)

# ---- node and the npm packages ----------------------------------------------------
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    if [ $check_only = 1 ] || ! { say "installing nodejs and npm"; apt_run install -y -qq --no-install-recommends nodejs npm >/dev/null; }; then
        missing+=(nodejs)
    fi
fi
lock="$top/deploy/validate/package-lock.json"
if command -v npm >/dev/null; then
    want=$(sha256sum "$top/deploy/validate/package.json" "$lock" | sha256sum | cut -c1-16)
    have=$(cat "$dir/node/.stamp" 2>/dev/null || true)
    if [ "$want" != "$have" ] || [ ! -d "$dir/node/node_modules" ]; then
        if [ $check_only = 1 ]; then
            missing+=(npm-packages)
        else
            say "installing the npm packages of deploy/validate into $dir/node"
            rm -rf "$dir/node"
            mkdir -p "$dir/node"
            cp "$top/deploy/validate/package.json" "$lock" "$dir/node/"
            if npm ci --prefix "$dir/node" --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null; then
                echo "$want" >"$dir/node/.stamp"
            else
                say "npm ci failed (no network?)"
                missing+=(npm-packages)
            fi
        fi
    fi
fi

if [ ${#missing[@]} -ne 0 ]; then
    say "missing: ${missing[*]}"
    exit 1
fi
exit 0
