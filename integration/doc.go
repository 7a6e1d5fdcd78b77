// Package integration holds tests that run several pcnode nodes: in one
// process on loopback, and as real pcnode processes.
package integration
