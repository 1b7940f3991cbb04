#!/usr/bin/env bash
# Side-by-side benchmark: the kernel's scripts/decode_stacktrace.sh against
# `kcrash decode` on the same lab oops, vmlinux and modules, in one run.
# Prints wall time and peak RSS (GNU time's %M: the largest process of the tree) of
# each, cold (fresh process), and their ratios.
#   usage: bench/decode/run.sh [TRIGGER]     (default ACCESS_NULL; needs the crash lab)
set -euo pipefail
cd "$(dirname "$0")/../.."
trigger=${1:-ACCESS_NULL}
lab=${KCRASH_LAB_DIR:-$HOME/.cache/kcrash/lab}
m="$lab/current/matrix/manifest.json"
[ -f "$m" ] || { echo "no lab: run go run ./cmd/kcrash lab run" >&2; exit 1; }
kdir=$(cd "$lab/current" && pwd -P)
vmlinux="$kdir/vmlinux"
raw="$kdir/matrix/$trigger.serial"
ver=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["kernel"]["version"])' "$m")
cache="$lab/bench"
mkdir -p "$cache"
# The serial console ends lines with CR LF; decode_stacktrace.sh then fails to parse
# "[module]" (it keeps the "]"), so both tools get the log with CRs removed.
log="$cache/$trigger.log"
tr -d '\r' < "$raw" > "$log"
# decode_stacktrace.sh ships in the kernel source, not in any binary package: take it
# from Debian's linux-source of the same version (cached).
if [ ! -x "$cache/decode_stacktrace.sh" ] || [ ! -x "$cache/decodecode" ]; then
	tmp=$(mktemp -d)
	(cd "$tmp" && apt-get download -qq "linux-source-6.1=$ver" 2>/dev/null)
	dpkg-deb --fsys-tarfile "$tmp"/linux-source-6.1_*.deb | tar -xO ./usr/src/linux-source-6.1.tar.xz |
		tar -xJ -C "$tmp" linux-source-6.1/scripts/decode_stacktrace.sh linux-source-6.1/scripts/decodecode
	cp "$tmp"/linux-source-6.1/scripts/{decode_stacktrace.sh,decodecode} "$cache/"
	chmod +x "$cache/decode_stacktrace.sh" "$cache/decodecode"
	rm -rf "$tmp"
fi
# Module debug files: Debian's -dbg modules and the lab's lkdtm.ko under one directory.
mods="$cache/modules"
rm -rf "$mods" && mkdir -p "$mods"
ln -s "$kdir/debug" "$mods/debug"
ln -s "$kdir/lkdtm/lkdtm.ko" "$mods/lkdtm.ko"
go build -o "$cache/kcrash" ./cmd/kcrash
frames=$(grep -cE '^\[[ 0-9.]+\] +(\? )?[A-Za-z0-9_.]+\+0x' "$log" || true)
echo "input: $log ($frames frame lines), vmlinux $(du -h "$vmlinux" | cut -f1)"
sync
run() { # name, command...
	local name=$1; shift
	/usr/bin/time -f "%e %M" -o "$cache/time.$name" "$@" > "$cache/out.$name" 2> "$cache/err.$name" < "$log" || true
	read -r secs kb < "$cache/time.$name"
	echo "$name: ${secs} s, peak RSS $((kb / 1024)) MB"
	eval "${name}_s=$secs ${name}_kb=$kb"
}
run decode_stacktrace "$cache/decode_stacktrace.sh" "$vmlinux" "$kdir" "$mods"
run kcrash "$cache/kcrash" decode --vmlinux "$vmlinux" --modules "$mods" -
python3 - "$decode_stacktrace_s" "$decode_stacktrace_kb" "$kcrash_s" "$kcrash_kb" <<'PY'
import sys
ds, dkb, ks, kkb = map(float, sys.argv[1:])
print(f"ratio: kcrash is {ds/ks:.1f}x faster in wall time and uses {dkb/kkb:.1f}x less peak memory")
PY
echo "symbolized frames: decode_stacktrace $(grep -cE '\) *$|\(.*:[0-9]+\)' "$cache/out.decode_stacktrace" || true), kcrash $(grep -cE '^    [A-Za-z0-9_.]+ \(.*:[0-9]+\)' "$cache/out.kcrash" || true)"
