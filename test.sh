#!/usr/bin/env bash
# The project's whole test suite: what README.md's test command and CI run.
set -euo pipefail
cd "$(dirname "$0")"
go vet ./...
# The crash lab, cached under ${KCRASH_LAB_DIR:-$HOME/.cache/kcrash/lab}: installs its
# Debian packages, fetches the current cloud kernel with its debug info, builds LKDTM
# and runs the crash matrix; a warm run reuses all of it. The e2e tests read its manifest.
# --- kcrash serve (issue 6): its tests drive Debian's headless chromium and start a
# throwaway PostgreSQL server on loopback; install both when missing.
serve_pkgs=()
command -v chromium >/dev/null 2>&1 || serve_pkgs+=(chromium)
compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null || serve_pkgs+=(postgresql)
# dist/kcrash-serve.service is checked with systemd-analyze verify; the disk-full
# tests mount small tmpfs file systems (root, as CI runs).
command -v systemd-analyze >/dev/null 2>&1 || serve_pkgs+=(systemd)
if ((${#serve_pkgs[@]})); then
	echo "test.sh: installing ${serve_pkgs[*]} for the kcrash serve tests ($(date -u +%T))" >&2
	SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${serve_pkgs[@]}"
fi
# --- end kcrash serve
echo "test.sh: preparing the crash lab ($(date -u +%T))" >&2
bin=$(mktemp -d)/kcrash
go build -o "$bin" ./cmd/kcrash
# The crash matrix on the default cloud kernel and on the newest 6.12 one; the
# scenarios (receive-path race under load, a regression across three packaged 6.1
# ABIs, machine checks and bit flips on the generic amd64 kernel, pstore across a
# warm reset). Each is cached by its recipe: a warm run boots nothing.
"$bin" lab run
"$bin" lab run --kernel 6.12
# The arm64 guest (issue 14): qemu-system-aarch64 with Debian's arm64 cloud kernel, two
# crashes, ELF and kdump-zlib dumps; it adds arm64 to dpkg's architectures and installs
# qemu-system-arm, gcc-aarch64-linux-gnu and binutils-aarch64-linux-gnu (the e2e and
# decode tests compare with aarch64-linux-gnu-objdump). Cached by its recipe.
echo "test.sh: arm64 lab guest ($(date -u +%T))" >&2
"$bin" lab run --kernel arm64
for s in race regression hardware pstore repro fleet bisect; do
	echo "test.sh: lab scenario $s ($(date -u +%T))" >&2
	"$bin" lab scenario "$s"
done
# --- kcrash vmcore: the e2e tests compare it with Debian's crash and drgn.
vmcore_pkgs=()
for p in crash python3-drgn binutils; do # binutils: objcopy for the stripped-vmlinux (BTF) test
	[ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)" = installed ] || vmcore_pkgs+=("$p")
done
if [ ${#vmcore_pkgs[@]} -gt 0 ]; then
	echo "test.sh: installing ${vmcore_pkgs[*]} for the vmcore e2e tests" >&2
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${vmcore_pkgs[@]}" >/dev/null
fi
# --- end kcrash vmcore
# --- symbols (issue 15): the e2e tests start Debian's debuginfod on loopback; the
# Debian package source downloads linux-image-RELEASE-dbg into ~/.cache/kcrash/debian
# on the first run (about 300 MB for the cloud ABI, kept between runs).
if ! command -v debuginfod >/dev/null 2>&1; then
	echo "test.sh: installing debuginfod for the symbols e2e tests" >&2
	SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends debuginfod >/dev/null
fi
# --- end symbols
echo "test.sh: crash lab ready, running the tests ($(date -u +%T))" >&2
# The e2e package holds every lab-backed comparison (crash, drgn, objdump, Chromium,
# PostgreSQL, debuginfod) in one test binary: it gets a 30-minute budget instead of go
# test's default 10 (a warm run spends a few minutes in it).
go test -count=1 -timeout 30m ./...
