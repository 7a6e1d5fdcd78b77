// Command bench measures pcnode against the machine it runs on and writes
// docs/BENCHMARKS.md. It is what `make bench` runs:
//
//	go run ./integration/bench [-out docs/BENCHMARKS.md] [-runs 3] [-quick]
//
// It builds cmd/pcnode into a temporary directory, measures the machine's
// own limits in the same run (one core's SHA-256 rate, the synced disk
// write rate, loopback TCP throughput), then times real pcnode processes:
// adding a large file and a tree of small files to a daemon, fetching both
// by CID over loopback from a daemon of another cloud (its DAG stream, which
// serves what its block filter gives, as bitswap would) and from a
// daemon that joined the first one's cloud (the members' DAG stream), and
// the resident memory of an idle daemon. Every figure in the report is measured in that run; none is
// typed by hand.
//
// All daemons use fresh homes of the local profile under the temporary
// directory, with their API on 127.0.0.1:0, and are killed when the
// command ends, also on error or signal. The command exits non-zero only
// on errors; a missed target is reported as FAIL in the table.
package main
