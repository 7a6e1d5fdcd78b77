#!/bin/sh
# make demo: a home server, a laptop and a friend, three pcnode daemons on
# loopback (local profile, temporary homes). The laptop pairs with the
# server, syncs a folder (the server keeps a receive-only replica), shares
# a file; the laptop goes to sleep and the friend, who is no member of the
# cloud, still gets the file by its link, from the server.
#
# Usage: scripts/demo.sh [PATH-TO-PCNODE]   (make demo builds bin/pcnode first)
# Set DEMO_KEEP=1 to leave the daemons running until Enter is pressed (to
# look at the dashboard). Everything lives in a temporary directory that is
# removed at the end; every daemon is stopped on exit, however it exits.
set -eu

PCNODE=${1:-bin/pcnode}
case $PCNODE in /*) ;; *) PCNODE=$(pwd)/$PCNODE ;; esac
work=$(mktemp -d "${TMPDIR:-/tmp}/pcnode-demo.XXXXXX")
pids=""
cleanup() {
	status=$?
	trap - EXIT INT TERM
	for p in $pids; do kill -INT "$p" 2>/dev/null || true; done
	# Bounded: a daemon that has not stopped 20 s after SIGINT is killed.
	i=0
	for p in $pids; do
		while kill -0 "$p" 2>/dev/null && [ $i -lt 200 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$work"
	exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step=0
say() {
	step=$((step + 1))
	printf '\n== %d. %s\n' "$step" "$*"
}
run() {
	printf '$ %s\n' "$*" | sed "s#$work/##g; s#$PCNODE#pcnode#g"
	"$@"
}
pc() {
	n=$1
	shift
	"$PCNODE" --home "$work/$n" "$@"
}
# field NAME: the first "NAME": "value" of the JSON on stdin.
field() { sed -n "s/.*\"$1\": *\"\([^\"]*\)\".*/\1/p" | head -n 1; }
fail() {
	echo "demo: $*" >&2
	for n in server laptop friend; do
		[ -f "$work/$n.log" ] && { echo "--- $n's log (tail):" >&2; tail -n 20 "$work/$n.log" >&2; }
	done
	exit 1
}
# wait_for WHAT CMD...: run CMD until it succeeds, at most 60 s.
wait_for() {
	what=$1
	shift
	i=0
	until "$@" >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -gt 600 ] && fail "timed out waiting for $what"
		sleep 0.1
	done
}
api_up() { [ -f "$work/$1/api" ] && pc "$1" status --json | grep -q '"online": true'; }
start() {
	"$PCNODE" --home "$work/$1" daemon >"$work/$1.log" 2>&1 &
	eval "pid_$1=$!"
	pids="$pids $!"
	wait_for "$1's daemon" api_up "$1"
}

say "three homes: a home server (role server), a laptop and a friend; local profile, API on free ports"
run "$PCNODE" --home "$work/server" init --profile local --role server --name home-server
run "$PCNODE" --home "$work/laptop" init --profile local --no-cloud --name laptop
run "$PCNODE" --home "$work/friend" init --profile local --name friend
for n in server laptop friend; do
	pc "$n" config set api.listen 127.0.0.1:0 >/dev/null
done

say "start the three daemons (logs in the temporary directory)"
for n in server laptop friend; do
	start "$n"
	echo "$n: $(pc "$n" status --json | field api)"
done

say "pair the laptop with the home server: invite on the server, join on the laptop"
code=$(pc server invite --json --ttl 10m | field code)
[ -n "$code" ] || fail "no invite code"
echo "\$ pcnode --home server invite"
echo "$code" | cut -c1-40 | sed 's/$/…/'
run "$PCNODE" --home "$work/laptop" join "$code"
connected() { pc server devices ls --json | tr -d '\n ' | grep -q '"name":"laptop"[^}]*"connected":true'; }
wait_for "the laptop to connect to the server" connected
run "$PCNODE" --home "$work/server" devices ls

say "the laptop syncs a folder; the server keeps a receive-only replica by itself"
mkdir -p "$work/Documents/trip"
echo "packing list: tent, stove, map" >"$work/Documents/trip/list.txt"
head -c 200000 /dev/urandom >"$work/Documents/trip/photo.raw"
id=$(pc laptop folder add --json "$work/Documents" | field id)
[ -n "$id" ] || fail "folder add gave no id"
echo "\$ pcnode --home laptop folder add Documents"
echo "folder $id"
replica="$work/server/replicas/$id"
wait_for "the folder on the server" cmp -s "$work/Documents/trip/photo.raw" "$replica/trip/photo.raw"
echo "server has $replica/trip/photo.raw" | sed "s#$work/##g"
in_sync() { pc server folder ls | grep -q "in sync"; }
wait_for "the server's replica to be in sync" in_sync
run "$PCNODE" --home "$work/server" folder ls
echo "a new note" >"$work/Documents/note.txt"
wait_for "the new note on the server" cmp -s "$work/Documents/note.txt" "$replica/note.txt"
echo "an edit on the laptop reached the server: note.txt"

say "the laptop shares a file with the friend"
head -c 3000000 /dev/urandom >"$work/video.bin"
share=$(pc laptop share --json "$work/video.bin")
link=$(echo "$share" | field link)
cid=$(echo "$share" | field cid)
[ -n "$link" ] || fail "share gave no link"
echo "\$ pcnode --home laptop share video.bin"
echo "$link"
mirrored() { pc server share ls --json | tr -d '\n ' | grep -q "\"cid\":\"$cid\"[^}]*\"state\":\"active\""; }
wait_for "the server to mirror the share" mirrored
echo "the home server holds the share too (it mirrors the laptop's shares)"

say "the laptop goes to sleep (its daemon stops)"
kill -INT "$pid_laptop"
i=0
while kill -0 "$pid_laptop" 2>/dev/null; do
	i=$((i + 1))
	[ $i -gt 300 ] && fail "the laptop's daemon did not stop"
	sleep 0.1
done
echo "laptop stopped"

say "the friend (not a member of the cloud) gets the file by the link, from the server"
run "$PCNODE" --home "$work/friend" get "$link" -o "$work/from-friend.bin"
cmp -s "$work/video.bin" "$work/from-friend.bin" || fail "the friend's copy differs"
echo "the friend's copy is byte-identical"
run "$PCNODE" --home "$work/server" share ls

say "the home server's dashboard and metrics"
srvapi=$(pc server status --json | field api)
echo "dashboard: $srvapi/   (sign in with the token in $work/server/api.token)"
echo "metrics:   $srvapi/metrics"
if [ "${DEMO_KEEP:-}" = 1 ]; then
	printf 'press Enter to stop the demo '
	read -r _
fi

say "stop everything"
echo "demo: done"
