#!/usr/bin/env bash
# Side-by-side benchmark of `kcrash vmcore` against Debian's crash and drgn on
# the same vmlinux and one or more dumps of its kernel, in one run:
#   sys, log, ps, bt: kcrash vmcore VMLINUX DUMP CMD  vs  crash -s VMLINUX DUMP <<< CMD
#   ps, bt:           drgn -c DUMP -s VMLINUX (for_each_task / stack_trace of the panic task)
# Each kcrash and drgn command runs RUNS times (default 5) after one warm-up;
# crash, which spends tens of seconds loading the vmlinux's DWARF before every
# command, runs CRASH_RUNS times (default RUNS) with one warm-up per dump
# (CRASH_RUNS=0 leaves crash out: 8.0.2 cannot open 6.12 dumps). The
# median and the smallest wall time, the median CPU time (user + system: less
# at the mercy of a loaded machine than wall time) and the largest peak RSS
# (GNU time's %M) are reported per dump, with the ratios.
# kcrash-ps-cold and kcrash-bt-cold delete kcrash's type index (kept per build
# ID under ~/.cache/kcrash/vmlinux) before every run: the first run on a new
# vmlinux. drgn keeps no such cache, so its figure is its cold one.
#
# A command that fails (non-zero exit, or crash's/drgn's error output) is
# marked FAILED: its time is the time to fail (crash 8.0.2 cannot open 6.12
# dumps, drgn 0.0.22 cannot unwind 6.12 stacks).
#
# Dumps of different sizes side by side (item 3 of issue 14): the 128 MiB
# matrix and the 4 GiB big-dump recipe (`kcrash lab run --memory 4G`, in
# LAB/matrix-4G; see bench/vmcore/README.md):
#   bench/vmcore/run.sh LAB/vmlinux LAB/matrix/EXCEPTION.vmcore.elf-paging \
#       LAB/matrix-4G/EXCEPTION.vmcore.elf-paging LAB/matrix-4G/EXCEPTION.vmcore.kdump-lzo
#
# usage: bench/vmcore/run.sh [VMLINUX] [DUMP...]
#   defaults: the crash lab's vmlinux and EXCEPTION.vmcore.elf-paging
set -euo pipefail
cd "$(dirname "$0")/../.."
lab=${KCRASH_LAB_DIR:-$HOME/.cache/kcrash/lab}/current
vmlinux=${1:-$lab/vmlinux}
shift || true
dumps=("$@")
((${#dumps[@]})) || dumps=("$lab/matrix/EXCEPTION.vmcore.elf-paging")
runs=${RUNS:-5}
crashruns=${CRASH_RUNS:-$runs}
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

# measure NAME N WARMUP CMD...: runs the command N times (after one warm-up
# run when WARMUP=1); prints "NAME median_s min_s max_rss_kb rc median_cpu_s".
# With COLD=1 the type index is deleted before each run.
measure() {
	local name=$1 n=$2 warm=$3; shift 3
	[[ $warm == 1 ]] && { "$@" >/dev/null 2>&1 || true; } # warm-up: page cache
	local times=() cpus=() rss=0 rc=0 fail=0
	for _ in $(seq "$n"); do
		[[ ${COLD:-} == 1 ]] && rm -f "$typecache"/types-*.json
		rc=0
		/usr/bin/time -f "%e %M %U %S" -o "$work/t" "$@" >"$work/out" 2>&1 || rc=$?
		# crash exits 0 after errors in batch mode: its own failure lines count.
		grep -qE '^(crash: |Traceback|_drgn\.)' "$work/out" && rc=1
		((rc)) && fail=1
		local s m u sy
		read -r s m u sy < <(tail -n 1 "$work/t")
		times+=("$s")
		cpus+=("$(awk -v u="$u" -v sy="$sy" 'BEGIN {print u + sy}')")
		((m > rss)) && rss=$m
	done
	local cpu
	cpu=$(printf '%s\n' "${cpus[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
	printf '%s\n' "${times[@]}" | sort -g | awk -v name="$name" -v rss="$rss" -v rc="$fail" -v cpu="$cpu" \
		'{a[NR]=$1} END {print name, a[int((NR+1)/2)], a[1], rss, rc, cpu}'
}

for d in "${dumps[@]}"; do
	size=$(du -k --apparent-size "$d" | cut -f1)
	echo "dump $d $size"
	k=("$work/kcrash" vmcore "$vmlinux" "$d")
	for c in sys log ps bt; do
		measure "kcrash-$c" "$runs" 1 "${k[@]}" "$c"
	done
	COLD=1 measure kcrash-ps-cold "$runs" 0 "${k[@]}" ps
	COLD=1 measure kcrash-bt-cold "$runs" 0 "${k[@]}" bt
	warm=1
	((crashruns > 0)) && for c in sys log ps bt; do
		measure "crash-$c" "$crashruns" "$warm" sh -c "printf '$c\nq\n' | crash -s '$vmlinux' '$d'"
		warm=0
	done
	measure drgn-ps "$runs" 1 drgn -q -c "$d" -s "$vmlinux" "$work/ps.py"
	measure drgn-bt "$runs" 1 drgn -q -c "$d" -s "$vmlinux" "$work/bt.py"
done > "$work/results"

echo "vmlinux: $vmlinux (kcrash/drgn $runs runs, crash $crashruns; median and min wall time, median CPU time, max peak RSS)"
uptime
awk '
	function ratio(a, b) { return (a > 0 && b > 0 ? sprintf("%.1fx", a / b) : "-") }
	$1 == "dump" { n++; path[n] = $2; printf "\n[%d] %s (%.0f MiB)\n", n, $2, $3 / 1024; next }
	{
		t[n, $1] = $2; m[n, $1] = $4; c[n, $1] = $6
		printf "  %-15s %8.3f s (min %7.3f) cpu %7.3f s %9d KB%s\n", $1, $2, $3, $6, $4, ($5 != 0 ? "  FAILED (exit or error output)" : "")
	}
	END {
		print "\nratios per dump (median times; RSS for log):"
		for (i = 1; i <= n; i++) {
			printf "[%d] sys crash/kcrash %s; log crash/kcrash %s, peak RSS %s; ps drgn/kcrash %s warm, %s cold; bt drgn/kcrash %s warm, %s cold\n", i,
				ratio(t[i, "crash-sys"], t[i, "kcrash-sys"]), ratio(t[i, "crash-log"], t[i, "kcrash-log"]), ratio(m[i, "crash-log"], m[i, "kcrash-log"]),
				ratio(t[i, "drgn-ps"], t[i, "kcrash-ps"]), ratio(t[i, "drgn-ps"], t[i, "kcrash-ps-cold"]),
				ratio(t[i, "drgn-bt"], t[i, "kcrash-bt"]), ratio(t[i, "drgn-bt"], t[i, "kcrash-bt-cold"])
			printf "    CPU time: ps drgn/kcrash %s warm, %s cold; bt drgn/kcrash %s warm, %s cold\n",
				ratio(c[i, "drgn-ps"], c[i, "kcrash-ps"]), ratio(c[i, "drgn-ps"], c[i, "kcrash-ps-cold"]),
				ratio(c[i, "drgn-bt"], c[i, "kcrash-bt"]), ratio(c[i, "drgn-bt"], c[i, "kcrash-bt-cold"])
		}
		if (n > 1) {
			print "\ngrowth with the dump (median kcrash time and peak RSS, dump [i] / dump [1]):"
			for (i = 2; i <= n; i++) {
				printf "[%d]/[1]:", i
				split("sys log ps bt", cs, " ")
				for (j = 1; j <= 4; j++) printf " %s %s time %s RSS;", cs[j], ratio(t[i, "kcrash-" cs[j]], t[1, "kcrash-" cs[j]]), ratio(m[i, "kcrash-" cs[j]], m[1, "kcrash-" cs[j]])
				print ""
			}
		}
	}' "$work/results"
