#!/usr/bin/env bash
# Build (once) a Debian forky chroot holding Debian's current Ceph (Tentacle 20.2), in which
# dev/devcluster.py runs clusters with `--release tentacle`. Idempotent: a root that finished
# building is reused as it is.
# Usage: dev/tentacle-root.sh ROOT
# The Debian mirror is the one the host's apt sources name, so nothing here names a host.
set -euo pipefail

root=${1:?usage: dev/tentacle-root.sh ROOT}
suite=forky
stamp="$root/.bgtasks-root-ready"
packages=(ceph-mon ceph-mgr ceph-osd ceph-common ceph-mgr-dashboard
          python3-rados python3-rbd python3-cherrypy3 python3-jinja2 python3-prettytable)

if [ -f "$stamp" ]; then
    echo "tentacle-root: $root ready ($(cat "$stamp"))"
    exit 0
fi

mirror() {
    # deb822 sources first (bookworm's default), then the one-line format.
    local uri
    uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null \
          | grep -v -- '-security' || true)
    if [ -z "$uri" ]; then
        uri=$(awk '/^deb / && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list \
              /etc/apt/sources.list.d/*.list 2>/dev/null || true)
    fi
    echo "${uri:?no Debian mirror found in the host apt sources}"
}

mounts=(proc sys dev dev/pts)
unmount_all() {
    local m
    for ((i=${#mounts[@]}-1; i>=0; i--)); do
        m="$root/${mounts[$i]}"
        if mountpoint -q "$m"; then umount -l "$m" || true; fi
    done
}

url=$(mirror)
if ! command -v debootstrap >/dev/null; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y debootstrap
fi
trap unmount_all EXIT
if [ ! -x "$root/usr/bin/apt-get" ]; then
    rm -rf "$root"
    mkdir -p "$root"
    # bookworm's debootstrap has no forky script; sid's bootstraps testing as well.
    debootstrap --variant=minbase "$suite" "$root" "$url" /usr/share/debootstrap/scripts/sid
fi
echo "deb $url $suite main" > "$root/etc/apt/sources.list"
# The testing suite's Release file may read as expired against this machine's clock.
echo 'Acquire::Check-Valid-Until "false";' > "$root/etc/apt/apt.conf.d/99bgtasks-no-expiry"
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
chmod +x "$root/usr/sbin/policy-rc.d"
for m in "${mounts[@]}"; do
    mkdir -p "$root/$m"
    mountpoint -q "$root/$m" || mount --bind "/$m" "$root/$m"
done
chroot "$root" apt-get update
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    "${packages[@]}"
unmount_all
trap - EXIT
version=$(chroot "$root" dpkg-query -W -f='${Version}' ceph-mgr)
echo "ceph-mgr $version" > "$stamp"
echo "tentacle-root: $root built (ceph-mgr $version)"
