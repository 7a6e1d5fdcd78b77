// Package api is the daemon's JSON HTTP API and the client the CLI uses to
// talk to it. Both sides share the types in this package; Backend is the
// set of operations a node offers, satisfied by the node itself and by
// Client, so the CLI runs the same code against a daemon or an offline
// home.
//
// Every request except GET /health needs the token kept in the node's
// home, as "Authorization: Bearer <token>". Errors are JSON:
// {"error": "message"}. Endpoints are documented in docs/API.md.
package api
