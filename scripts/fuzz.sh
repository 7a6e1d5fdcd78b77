#!/usr/bin/env bash
# fuzz.sh — run every fuzz target of the module, one after another.
#
#   scripts/fuzz.sh              fuzz each target for $FUZZTIME (default 10s)
#   scripts/fuzz.sh --list       list the targets as "package FuzzName"
#   scripts/fuzz.sh PATTERN      only targets whose "package FuzzName" matches
#                                the extended regexp PATTERN
#
# Environment:
#   FUZZTIME     -fuzztime for each target (default 10s; "1000x" also works;
#                make fuzz FUZZTIME=5m for a deeper run)
#   FUZZTIMEOUT  hard limit on one target, including its build (default 10m)
#   FUZZPARALLEL -parallel, the number of fuzzing workers (default 1: the
#                machines are shared; raise it on your own)
#
# A target is any `func FuzzXxx(f *testing.F)` in a _test.go file. A failing
# input is written by Go to <package>/testdata/fuzz/FuzzXxx/ and from then on
# runs as a regression test in `go test`: commit it with the fix.
# Exits 0 only if every target passed.
set -euo pipefail

cd "$(dirname "$0")/.."

FUZZTIME=${FUZZTIME:-10s}
FUZZTIMEOUT=${FUZZTIMEOUT:-10m}
FUZZPARALLEL=${FUZZPARALLEL:-1}

list_targets() {
	# Skip testdata, vendor and hidden or _ directories as the go command does.
	find . \( -name testdata -o -name vendor -o -name '.?*' -o -name '_*' \) -prune \
		-o -type f -name '*_test.go' -print |
		LC_ALL=C sort |
		while read -r file; do
			dir=$(dirname "$file")
			sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*\*testing\.F).*/\1/p' "$file" |
				while read -r name; do
					printf '%s %s\n' "$dir" "$name"
				done
		done
}

pattern=""
case "${1:-}" in
--list)
	list_targets
	exit 0
	;;
-h | --help)
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
	exit 0
	;;
"") ;;
*) pattern=$1 ;;
esac

mapfile -t targets < <(list_targets | { if [ -n "$pattern" ]; then grep -E -- "$pattern" || true; else cat; fi; })
if [ ${#targets[@]} -eq 0 ]; then
	echo "fuzz.sh: no fuzz targets${pattern:+ match $pattern}" >&2
	[ -n "$pattern" ] && exit 1
	exit 0
fi

echo "fuzz.sh: ${#targets[@]} targets, -fuzztime=$FUZZTIME each, -parallel=$FUZZPARALLEL"
passed=()
failed=()
for t in "${targets[@]}"; do
	dir=${t% *}
	name=${t#* }
	echo "=== $dir $name"
	start=$(date +%s)
	if timeout --kill-after=30s "$FUZZTIMEOUT" \
		go test -run='^$' -fuzz="^${name}\$" -fuzztime="$FUZZTIME" -parallel="$FUZZPARALLEL" "$dir"; then
		passed+=("$t ($(($(date +%s) - start))s)")
	else
		rc=$?
		why="exit $rc"
		[ "$rc" -eq 124 ] && why="timed out after $FUZZTIMEOUT"
		failed+=("$t ($why; failing input, if any, in $dir/testdata/fuzz/$name/)")
	fi
done

echo
echo "fuzz.sh summary: ${#passed[@]} passed, ${#failed[@]} failed"
for t in "${passed[@]}"; do echo "  ok   $t"; done
for t in "${failed[@]+"${failed[@]}"}"; do echo "  FAIL $t"; done
[ ${#failed[@]} -eq 0 ]
