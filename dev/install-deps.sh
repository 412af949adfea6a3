#!/usr/bin/env bash
# Install the Debian packages the bgtasks dev tooling needs. Idempotent: when every package is
# already installed it only runs dpkg-query and exits (no apt work).
# Usage: dev/install-deps.sh [extra-package ...]
set -euo pipefail

packages=(
    ceph-mon ceph-mgr ceph-osd ceph-common
    # the peers bgtasks must run beside (test_faults) and is measured against (bench_rest)
    ceph-mgr-dashboard
    python3-rados python3-rbd python3-cherrypy3 python3-jinja2 python3-prettytable
    cmake tox python3-pytest python3-pytest-timeout python3-hypothesis flake8 mypy python3-requests
    # builds the Tentacle chroot (dev/tentacle-root.sh)
    debootstrap
    chromium
    "$@"
)

missing=()
for pkg in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    if [ "$status" != "installed" ]; then
        missing+=("$pkg")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    :
    exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
$SUDO apt-get update
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
