// Package api is the daemon's JSON HTTP API, its web dashboard, and the
// client the CLI uses to talk to it. Both sides share the types in this
// package; Backend is the set of operations a node offers, satisfied by
// the node itself and by Client, so the CLI runs the same code against a
// daemon or an offline home. Optional roles (Folders, Sharing, LogSource,
// ConflictResolver) are found by type assertion; a backend without one
// answers its endpoints with 404.
//
// Every request except GET /health and the dashboard's page needs the
// token kept in the node's home, as "Authorization: Bearer <token>", or a
// dashboard session: a cookie from POST /api/v1/session plus, on every
// state-changing request, the session's CSRF token and a same-origin
// browser header (session.go). At most HandlerConfig.MaxConcurrent
// authenticated requests run at once; more get 503 with Retry-After.
// Errors are JSON: {"error": "message"}. Endpoints are documented in
// docs/API.md, the dashboard in docs/DASHBOARD.md.
package api
