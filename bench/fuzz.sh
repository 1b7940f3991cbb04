#!/usr/bin/env bash
# Fuzzing as a habit: runs every fuzz target of the module in turn (found with
# `go test -list 'Fuzz.*'` in each package that has a fuzz function), one worker each
# (-parallel 1: the machine is shared), and prints each target's execs and execs/s and
# what it found. A crasher is written by go test to the package's
# testdata/fuzz/FuzzName/, where every later `go test` runs it as a seed corpus entry:
# commit it with the fix as the regression case.
#   usage: bench/fuzz.sh [MINUTES] [REGEXP]
#   MINUTES (default 5) is the whole run's budget, shared evenly by the targets (at
#   least 10 s each); REGEXP (default: all) keeps the targets whose "pkg.FuzzName"
#   matches it, e.g. bench/fuzz.sh 1 'dump\.FuzzKdump$'.
# FUZZ_MINIMIZE (default 1x) is go test's -fuzzminimizetime. Go minimizes every new
# interesting input for up to 60 s by default and counts none of those execs until the
# minimization ends: an input that barely shrinks (a 16-24 KB kdump file, whose absolute
# offsets break when bytes are cut, leaving the quadratic pass to run to the limit)
# stalls the target for a minute each time, which is what made FuzzKdump report ~50
# execs/s while its worker ran ~24,000 opens/s. With 1x, new inputs and crashers are
# kept as found.
# Exits 1 when a target failed.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-5}
minimize=${FUZZ_MINIMIZE:-1x}
logs=${FUZZ_LOGS:-${TMPDIR:-/tmp}/kcrash-fuzz}  # a failed target's whole output is kept here
mkdir -p "$logs"
filter=${2:-.}
[[ $minutes =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "usage: $0 [MINUTES] [REGEXP]" >&2; exit 2; }

targets=()
while read -r dir; do
	pkg=$(go list "./$dir")
	while read -r name; do
		[[ $name == Fuzz* ]] || continue
		if [[ "${pkg##*/}.$name" =~ $filter ]]; then
			targets+=("$dir $name")
		fi
	done < <(go test -list 'Fuzz.*' "./$dir")
done < <(grep -rlE --include='*_test.go' '^func Fuzz[A-Z0-9_]' . | grep -v /testdata/ | xargs -n1 dirname | sed 's|^\./||' | sort -u)
((${#targets[@]})) || { echo "fuzz.sh: no fuzz target matches $filter" >&2; exit 2; }
per=$(awk -v m="$minutes" -v n="${#targets[@]}" 'BEGIN { s = int(m * 60 / n); print (s < 10 ? 10 : s) }')
echo "fuzz.sh: ${#targets[@]} targets, ${per}s each, -parallel 1, -fuzzminimizetime $minimize ($(go version | cut -d' ' -f3), $(nproc) cores, $(date -u +%FT%TZ))"

failed=0
results=()
for t in "${targets[@]}"; do
	read -r dir name <<<"$t"
	corpus="$dir/testdata/fuzz/$name"
	before=$(ls "$corpus" 2>/dev/null | sort || true)
	log=$(mktemp)
	rc=0
	go test -run '^$' -fuzz "^$name\$" -fuzztime "${per}s" -fuzzminimizetime "$minimize" -parallel 1 "./$dir" >"$log" 2>&1 || rc=$?
	# The last progress line: "fuzz: elapsed: 60s, execs: 1800 (30/sec), new interesting: 3 (total: 8)".
	stats=$(grep -E '^fuzz: elapsed: [0-9]+s, execs: [0-9]+' "$log" | tail -1 |
		sed -E 's/^fuzz: elapsed: ([0-9]+)s, execs: ([0-9]+).*new interesting: ([0-9]+).*/\1 \2 \3/')
	read -r secs execs fresh <<<"${stats:-0 0 0}"
	rate=$(awk -v e="$execs" -v s="$secs" 'BEGIN { printf "%.0f", (s > 0 ? e / s : 0) }')
	finding="none"
	if ((rc != 0)); then
		failed=1
		added=$(comm -13 <(echo "$before") <(ls "$corpus" 2>/dev/null | sort) | sed "s|^|$corpus/|" | tr '\n' ' ')
		kept="$logs/${dir//\//_}.$name.log"
		cp "$log" "$kept"
		finding="FAILED (output: $kept)${added:+; new seed corpus case: $added}"
		echo "--- $dir $name failed; its output:" >&2
		grep -vE '^fuzz: elapsed' "$log" | head -40 >&2
	fi
	rm -f "$log"
	results+=("$(printf '%-22s %-16s %6ss %10s execs %8s/s %5s new  %s' "$dir" "$name" "$secs" "$execs" "$rate" "$fresh" "$finding")")
	echo "${results[-1]}"
done
echo
echo "fuzz.sh summary:"
printf '%s\n' "${results[@]}"
exit $failed
