// Command pcnode is the pcnode CLI and daemon. Most commands are thin
// clients of a running daemon's HTTP API; with no daemon running, commands
// that make sense offline open the node's home directly.
package main
