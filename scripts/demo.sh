#!/bin/sh
# Two pcnode daemons on loopback: add a file on one, fetch it on the other.
# Usage: scripts/demo.sh [PATH-TO-PCNODE]   (make demo builds bin/pcnode first)
# Everything lives in a temporary directory that is removed at the end.
set -eu

PCNODE=${1:-bin/pcnode}
case $PCNODE in /*) ;; *) PCNODE=$(pwd)/$PCNODE ;; esac
work=$(mktemp -d "${TMPDIR:-/tmp}/pcnode-demo.XXXXXX")
pids=""
cleanup() {
	for p in $pids; do kill -INT "$p" 2>/dev/null || true; done
	for p in $pids; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

say() { printf '\n== %s\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

# wait_api HOME: wait (at most 60 s) until the daemon on HOME answers.
wait_api() {
	i=0
	until [ -f "$1/api" ] && "$PCNODE" --home "$1" status --json 2>/dev/null | grep -q '"online": true'; do
		i=$((i + 1))
		if [ $i -gt 600 ]; then
			echo "demo: daemon on $1 did not start; its log:" >&2
			cat "$1.log" >&2
			exit 1
		fi
		sleep 0.1
	done
}

for n in alice bob; do
	say "init $n: a local-profile home (loopback only), API on a free port"
	run "$PCNODE" --home "$work/$n" init --profile local
	run "$PCNODE" --home "$work/$n" config set api.listen 127.0.0.1:0
	say "start $n's daemon in the background (log: $work/$n.log)"
	"$PCNODE" --home "$work/$n" daemon >"$work/$n.log" 2>&1 &
	pids="$pids $!"
done
wait_api "$work/alice"
wait_api "$work/bob"

say "alice adds a 16 MiB file"
head -c $((16 << 20)) /dev/urandom >"$work/file.bin"
cid=$("$PCNODE" --home "$work/alice" add -q "$work/file.bin")
echo "\$ pcnode --home alice add -q file.bin"
echo "$cid"

addr=$("$PCNODE" --home "$work/alice" status --json | grep -o '/ip4/127.0.0.1/tcp/[^"]*' | head -n 1)
say "bob connects to alice at $addr"
run "$PCNODE" --home "$work/bob" peers connect "$addr"

say "bob fetches $cid from alice"
run "$PCNODE" --home "$work/bob" get "$cid" -o "$work/fetched.bin"

if cmp -s "$work/file.bin" "$work/fetched.bin"; then
	say "bob's copy is byte-identical to alice's file"
else
	echo "demo: the copies differ" >&2
	exit 1
fi
run "$PCNODE" --home "$work/bob" repo stat
say "stopping both daemons"
