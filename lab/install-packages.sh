#!/usr/bin/env bash
# Installs the Debian packages the crash lab needs on the host, and nothing else.
# Called by `kcrash lab setup`; safe to run by hand. Packages already present are
# not touched and apt is not run at all then, so a warm run costs a few dpkg queries.
#
# usage: lab/install-packages.sh [EXTRA-PACKAGE ...]
#   EXTRA-PACKAGE: e.g. linux-headers-6.1.0-56-cloud-amd64 (the driver resolves the ABI)
set -euo pipefail

pkgs=(
	qemu-system-x86   # the guests (TCG; no KVM on the lab machines)
	busybox-static    # the guest's whole userland
	makedumpfile      # lzo/snappy/zstd and page-filtered dumps from QEMU's ELF dumps
	kmod              # depmod, to order the guest's modules
	cpio gzip xz-utils
	gcc make libc6-dev # LKDTM is built out of tree
	"$@"
)

missing=()
for p in "${pkgs[@]}"; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$status" = installed ] || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "lab/install-packages.sh: need root to install: ${missing[*]}" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
echo "lab: installing ${missing[*]}" >&2
# Refresh the package lists first: a stale list can name a kernel ABI that the
# mirror no longer carries.
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
