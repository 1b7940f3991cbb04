#!/usr/bin/env bash
# Side-by-side benchmark of `kcrash vmcore` against Debian's crash and drgn on
# the same dump and vmlinux, in one run:
#   log:   kcrash vmcore VMLINUX DUMP log   vs  crash -s VMLINUX DUMP <<< log
#   ps,bt: kcrash vmcore VMLINUX DUMP ps|bt vs  drgn -c DUMP -s VMLINUX (for_each_task / stack_trace)
# Each command runs RUNS times (default 5) after one warm-up; the median wall
# time and the largest peak RSS (GNU time's %M) are reported, with the ratios.
# kcrash-ps-cold and kcrash-bt-cold delete kcrash's type index (kept per build
# ID under ~/.cache/kcrash/vmlinux) before every run: the first run on a new
# vmlinux. drgn keeps no such cache, so its figure is its cold one.
#
# A command that fails (non-zero exit, or crash's/drgn's error output) is
# marked FAILED: its time is the time to fail (crash 8.0.2 cannot open 6.12
# dumps, drgn 0.0.22 cannot unwind 6.12 stacks).
#
# usage: bench/vmcore/run.sh [VMLINUX] [ELF-PAGING-DUMP]
#   defaults: the crash lab's vmlinux and EXCEPTION.vmcore.elf-paging
set -euo pipefail
cd "$(dirname "$0")/../.."
lab=${KCRASH_LAB_DIR:-$HOME/.cache/kcrash/lab}/current
vmlinux=${1:-$lab/vmlinux}
dump=${2:-$lab/matrix/EXCEPTION.vmcore.elf-paging}
runs=${RUNS:-5}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/kcrash" ./cmd/kcrash
cat > "$work/ps.py" <<'PY'
from drgn.helpers.linux.pid import for_each_task
for t in for_each_task(prog):
    print(t.pid.value_(), hex(t.value_()), t.comm.string_().decode())
PY
cat > "$work/bt.py" <<'PY'
from drgn.helpers.linux.percpu import per_cpu
cpu = prog["panic_cpu"].counter.value_()
try:
    t = per_cpu(prog["current_task"], cpu)
except KeyError:  # 6.2+: pcpu_hot.current_task
    t = per_cpu(prog["pcpu_hot"], cpu).current_task
print(prog.stack_trace(t))
PY

typecache=${XDG_CACHE_HOME:-$HOME/.cache}/kcrash/vmlinux

# measure NAME CMD...: runs the command RUNS times; prints "NAME median_s max_rss_kb".
# With COLD=1 the type index is deleted before each run.
measure() {
	local name=$1; shift
	"$@" >/dev/null 2>&1 || true # warm-up: page cache
	local times=() rss=0 rc=0
	for _ in $(seq "$runs"); do
		[[ ${COLD:-} == 1 ]] && rm -f "$typecache"/types-*.json
		rc=0
		/usr/bin/time -f "%e %M" -o "$work/t" "$@" >"$work/out" 2>&1 || rc=$?
		# crash exits 0 after errors in batch mode: its own failure lines count.
		grep -qE '^(crash: |Traceback|_drgn\.)' "$work/out" && rc=1
		read -r s m < <(tail -n 1 "$work/t")
		times+=("$s")
		(( m > rss )) && rss=$m
	done
	local med
	med=$(printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
	echo "$name $med $rss $rc"
}

{
	measure kcrash-log "$work/kcrash" vmcore "$vmlinux" "$dump" log
	measure crash-log sh -c "printf 'log\nq\n' | crash -s '$vmlinux' '$dump'"
	COLD=1 measure kcrash-ps-cold "$work/kcrash" vmcore "$vmlinux" "$dump" ps
	measure kcrash-ps "$work/kcrash" vmcore "$vmlinux" "$dump" ps
	measure drgn-ps drgn -q -c "$dump" -s "$vmlinux" "$work/ps.py"
	COLD=1 measure kcrash-bt-cold "$work/kcrash" vmcore "$vmlinux" "$dump" bt
	measure kcrash-bt "$work/kcrash" vmcore "$vmlinux" "$dump" bt
	measure drgn-bt drgn -q -c "$dump" -s "$vmlinux" "$work/bt.py"
} > "$work/results"

echo "dump: $dump ($runs runs each, median wall time, max peak RSS)"
awk '
	{ t[$1] = $2; m[$1] = $3; printf "%-15s %8.3f s %9d KB%s\n", $1, $2, $3, ($4 != 0 ? "  FAILED (exit or error output)" : "") }
	END {
		printf "\nlog: crash/kcrash time %.1fx, peak RSS %.1fx\n", t["crash-log"]/t["kcrash-log"], m["crash-log"]/m["kcrash-log"]
		printf "ps:  drgn/kcrash time %.1fx warm, %.1fx cold\n", t["drgn-ps"]/t["kcrash-ps"], t["drgn-ps"]/t["kcrash-ps-cold"]
		printf "bt:  drgn/kcrash time %.1fx warm, %.1fx cold\n", t["drgn-bt"]/t["kcrash-bt"], t["drgn-bt"]/t["kcrash-bt-cold"]
	}' "$work/results"
