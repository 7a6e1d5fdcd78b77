// Command pcnode is the pcnode CLI and daemon. Most commands are thin
// clients of a running daemon's HTTP API; with no daemon running, commands
// that make sense offline open the node's home directly.
//
// main is thin: run parses the command line with cobra and returns the
// exit status (0 success, 1 failure, 2 wrong command line). Each command
// gets an api.Backend from app.backend: the daemon's api.Client when
// <home>/api answers, else a *node.Node opened offline in this process,
// so a command has one code path for both. Commands that need the network
// (peers, invite) refuse to run offline; dns publish says it needs the
// daemon when the node answers that it is offline. join creates a missing
// home (without a cloud) and removes it again when the join fails.
//
// Output contract for scripts: with --json a command prints exactly one
// JSON object on stdout; a failure prints "pcnode: message" on stderr and,
// with --json, {"error": "message"} on stdout. Progress bars go to stderr
// and only when it is a terminal. Only this package sets the default
// slog logger (in the daemon).
//
// The CLI is tested by the sessions in testdata/script, run by testscript
// with this test binary installed as "pcnode".
package main
