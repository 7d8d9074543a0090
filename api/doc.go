// Package api is hpiagent's HTTPS interface: JSON resources of the HPI
// model (resources, RDRs, sensor readings and thresholds, inventory,
// hot-swap state, the event log, alarms), actions on the hardware (hot-swap,
// power, reset, controls such as LEDs), a resumable server-sent event
// stream, an OpenAPI 3.1 description at /v1/openapi.json and Prometheus
// metrics at /metrics.
//
// It also serves the cluster's coordination: the cluster status
// (/v1/cluster), fencing of cluster nodes (/v1/fence, the contract of
// cmd/fence_hpiagent), the hot-swap workflows (/v1/workflows, forced
// extraction, override, abort, retry) and the signed secure-erase
// certificates (/v1/erase-certificates). Each is behind a small interface
// in Deps (ClusterStatus, Fencing, Workflows, EraseCertificates); a nil one
// makes its routes answer 501 "not_configured". Package api/adapt adapts
// the daemon's components to them.
//
// # Leadership
//
// Fence requests and workflow actions are decisions of the cluster leader
// holding quorum. On any other node they answer 503 "not_leader" with the
// leader's name in error.leader (when one is known); the client retries
// there. The API does not forward them itself: forwarding would make the
// node act on the leader with its own identity, and the operator's
// certificate would no longer be what the leader authorizes and audits.
// Reads (GET /v1/fence, /v1/workflows) answer on every member from the
// replicated state.
//
// # Transport and identity
//
// The server speaks TLS 1.3 only and requires a client certificate signed by
// the cluster CA (tls.RequireAndVerifyClientCert); there is no plain HTTP
// listener. A client without a certificate, with a certificate of another CA
// or limited to TLS 1.2 fails the handshake and never reaches a handler, so
// the API never answers 401.
//
// The identity of a client is taken from its verified certificate by the
// one rule all of hpiagent uses, pki.Identity: the certificate's
// hpiagent://<kind>/<name> URI SAN (for example
// "hpiagent://client/ops-console"), else its subject common name. The URI
// comes first because the cluster CA issues it deliberately to name a
// principal, with its kind bound to the certificate's key usage, while a CN
// is free text. An identity maps to roles through
// Config.Roles; an identity with no role gets 403 "no_role" on every route
// but /v1/whoami.
//
// # Roles
//
// Roles grant permissions; the one table is rolePermissions in rbac.go (see [Permissions]), and every
// route names the permission it needs ([Routes]). Fencing (POST
// /v1/fence/{node}) needs "fence" (fencer, admin); reading fence state is
// "read", so a fence agent with the fencer role can run status, list and
// monitor. Forced extraction, abort and retry of a workflow need "hotswap"
// (operator, admin); overriding a workflow's wipe guard needs "override"
// (admin only) and a reason. Erase certificates need "erase_certificates"
// (operator, diagnostics, admin): they name media and serial numbers a
// viewer has no need for. Writing a control needs
// the permission of the control's kind: an LED needs "led", a control that
// powers, resets or activates a FRU needs "power", "reset" or "hotswap",
// any other control "control" (admin only).
//
// # Errors and audit
//
// Errors are JSON bodies {"error":{"code":...,"message":...,"request_id":...}}
// with a code from a fixed list ([ErrorCodes]). Every state-changing call,
// successful or not, and every refused call (403, 429, a malformed request
// to a state-changing route) is appended to the audit log through the
// Auditor before the answer is sent. A state-changing call is recorded
// twice: an "attempt" record written ahead of the action, and a record of
// its result ("ok" or the error code). If the attempt record cannot be
// written the action is not carried out (503 "audit_unavailable"); a refused
// call gets one record whose result is the error code. Handshakes refused
// by TLS never reach the API and are counted in
// hpiagent_api_tls_handshake_failures_total instead.
//
// # Limits
//
// Each identity has a token bucket (Config.RateLimit, RateBurst); beyond it
// calls get 429 "rate_limited" with Retry-After. Event streams are limited
// in total and per identity. Request bodies, header read time and idle
// connections are bounded (see Config).
package api
