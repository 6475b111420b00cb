#!/usr/bin/env bash
# Install the Debian packages for a single-node SLURM with accounting (see README.md).
# Idempotent: packages already present are left alone. Needs root and apt-get (Debian/Ubuntu).
set -euo pipefail

PACKAGES=(slurm-wlm slurm-client munge slurmdbd mariadb-server mariadb-client)

if [[ $(id -u) -ne 0 ]]; then
    echo "install.sh: must run as root (it installs Debian packages)" >&2
    exit 1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
if [[ ${#missing[@]} -eq 0 ]]; then
    echo "install.sh: all packages already installed"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
# Without systemd, package scripts would try to start the daemons; policy-rc.d exit 101 stops
# them (start.sh runs everything from its own state dir instead). Only ours is removed after.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    own_policy=1
fi
trap '[[ $own_policy -eq 1 ]] && rm -f "$policy"' EXIT

echo "install.sh: installing ${missing[*]}"
# The package lists may be absent on a fresh image; update once, quietly.
if ! apt-get install -y -q -o Dpkg::Use-Pty=0 --no-install-recommends "${missing[@]}" \
        >/tmp/reftlab-slurm-apt.log 2>&1; then
    apt-get update -q >>/tmp/reftlab-slurm-apt.log 2>&1
    apt-get install -y -q -o Dpkg::Use-Pty=0 --no-install-recommends "${missing[@]}" \
        >>/tmp/reftlab-slurm-apt.log 2>&1 || {
        echo "install.sh: apt-get install failed; see /tmp/reftlab-slurm-apt.log" >&2
        tail -n 20 /tmp/reftlab-slurm-apt.log >&2
        exit 1
    }
fi
echo "install.sh: done"
