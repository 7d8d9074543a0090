package api

import (
	"context"
	"errors"
	"maps"
	"net/http"

	"hpiagent/hpi"
)

// Error codes: the stable "code" of every error body. Clients switch on
// these; the message is for people and may change.
const (
	CodeBadRequest       = "bad_request"            // 400: malformed body, parameter or path
	CodeNoRole           = "no_role"                // 403: the certificate's identity has no role
	CodeForbidden        = "forbidden"              // 403: the identity's roles do not grant this
	CodeNotFound         = "not_found"              // 404: no such resource, instrument, alarm or route
	CodeMethodNotAllowed = "method_not_allowed"     // 405
	CodeInvalidState     = "invalid_state"          // 409: not allowed in the current state (hot-swap state, ...)
	CodeCapability       = "capability"             // 409: the resource lacks the capability
	CodeReadOnly         = "read_only"              // 409: the instrument is read-only
	CodeTooLarge         = "too_large"              // 413: request body too large
	CodeUnsupportedMedia = "unsupported_media_type" // 415: body is not application/json
	CodeRateLimited      = "rate_limited"           // 429: per-client rate limit; see Retry-After
	CodeTooManyStreams   = "too_many_streams"       // 429: too many event streams
	CodeHardware         = "hardware_error"         // 502: the shelf refused or failed the action
	CodeAuditUnavailable = "audit_unavailable"      // 503: the audit log cannot be written; nothing was done
	CodeUnavailable      = "unavailable"            // 503: a needed component is not configured
	CodeTimeout          = "timeout"                // 504: the action did not complete in time
	CodeInternal         = "internal"               // 500
	CodeNotConfigured    = "not_configured"         // 501: the feature (cluster, fencing, workflows, erase certificates) is not set up on this node
	CodeNotLeader        = "not_leader"             // 503: only the cluster leader decides this; the body names the leader when known
)

// ErrorCodes returns every error code with its HTTP status; the OpenAPI
// document lists the same codes (a test checks).
func ErrorCodes() map[string]int { return maps.Clone(errorStatus) }

var errorStatus = map[string]int{
	CodeBadRequest:       http.StatusBadRequest,
	CodeNoRole:           http.StatusForbidden,
	CodeForbidden:        http.StatusForbidden,
	CodeNotFound:         http.StatusNotFound,
	CodeMethodNotAllowed: http.StatusMethodNotAllowed,
	CodeInvalidState:     http.StatusConflict,
	CodeCapability:       http.StatusConflict,
	CodeReadOnly:         http.StatusConflict,
	CodeTooLarge:         http.StatusRequestEntityTooLarge,
	CodeUnsupportedMedia: http.StatusUnsupportedMediaType,
	CodeRateLimited:      http.StatusTooManyRequests,
	CodeTooManyStreams:   http.StatusTooManyRequests,
	CodeHardware:         http.StatusBadGateway,
	CodeAuditUnavailable: http.StatusServiceUnavailable,
	CodeUnavailable:      http.StatusServiceUnavailable,
	CodeTimeout:          http.StatusGatewayTimeout,
	CodeInternal:         http.StatusInternalServerError,
	CodeNotConfigured:    http.StatusNotImplemented,
	CodeNotLeader:        http.StatusServiceUnavailable,
}

// apiError is an error with its code; the message is safe to show the
// client (it never carries secrets: hardware errors are summarised).
type apiError struct {
	code string
	msg  string
	// leader and leaderAPI name the cluster leader and its API endpoint
	// for CodeNotLeader.
	leader, leaderAPI string
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

func newErr(code, msg string) *apiError { return &apiError{code: code, msg: msg} }

// ErrorBody is the JSON body of every error answer.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the content of an ErrorBody.
type ErrorDetail struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
	// Leader names the cluster leader with a "not_leader" error (when one
	// is known): the client retries the call there.
	Leader string `json:"leader,omitempty"`
	// LeaderAPI is the leader's API endpoint with a "not_leader" error,
	// when this node knows it.
	LeaderAPI string `json:"leader_api,omitempty"`
}

// classify maps an error of the model or the hardware to an API error.
func classify(err error) *apiError {
	var (
		ae *apiError
		nl *NotLeaderError
	)
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &nl):
		return &apiError{code: CodeNotLeader, msg: nl.Error(), leader: nl.Leader, leaderAPI: nl.LeaderAPI}
	case errors.Is(err, ErrNotFound):
		return newErr(CodeNotFound, err.Error())
	case errors.Is(err, ErrInvalidState):
		return newErr(CodeInvalidState, err.Error())
	case errors.Is(err, hpi.ErrInvalidResource), errors.Is(err, hpi.ErrNotPresent):
		return newErr(CodeNotFound, err.Error())
	case errors.Is(err, hpi.ErrInvalidRequest):
		return newErr(CodeInvalidState, err.Error())
	case errors.Is(err, hpi.ErrCapability):
		return newErr(CodeCapability, err.Error())
	case errors.Is(err, hpi.ErrReadOnly):
		return newErr(CodeReadOnly, err.Error())
	case errors.Is(err, hpi.ErrInvalidParams):
		return newErr(CodeBadRequest, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return newErr(CodeTimeout, "the action did not complete in time")
	}
	return newErr(CodeHardware, err.Error())
}
