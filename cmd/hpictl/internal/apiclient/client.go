// Package apiclient is hpictl's client of the hpiagent HTTPS API: mutual
// TLS 1.3 with the cluster PKI, the API's JSON shapes, its error bodies,
// and a follower of the server-sent event stream that resumes with
// Last-Event-ID after a drop and never delivers an event twice.
package apiclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"hpiagent/internal/pki"
)

// Config says where the API is and how to authenticate to it.
type Config struct {
	// Endpoint is the API's base URL, https://host:port. A bare host:port
	// gets https:// in front; http:// is refused. Required.
	Endpoint string
	// CAFile is the cluster CA certificate (PEM) that signed the agent's
	// server certificate. Required unless TLS is set.
	CAFile string
	// CertFile and KeyFile are this client's certificate and key (PEM; the
	// key must be mode 0600). Required unless TLS is set.
	CertFile, KeyFile string
	// ServerName overrides the name checked in the server's certificate.
	// Default: the endpoint's host.
	ServerName string
	// TLS, when set, is used instead of the files (tests, embedding).
	TLS *tls.Config
	// Timeout bounds one request (not the event stream). Default 60 s,
	// above the server's 45 s bound on one hardware action.
	Timeout time.Duration
	// Retries429 is how many times a GET refused with 429 is retried after
	// the server's Retry-After (at most 10 s each). Default 3.
	Retries429 int
	// Sleep waits between retries. Default: a timer honouring ctx. Tests
	// inject one that does not wait.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Client calls the API. It is safe for concurrent use.
type Client struct {
	base    *url.URL
	hc      *http.Client // with a per-request timeout
	stream  *http.Client // without: event streams last
	retries int
	sleep   func(ctx context.Context, d time.Duration) error
}

// New checks cfg, loads the TLS material and returns a client.
func New(cfg Config) (*Client, error) {
	base, err := ParseEndpoint(cfg.Endpoint)
	if err != nil {
		return nil, err
	}
	tc := cfg.TLS
	if tc == nil {
		if cfg.CAFile == "" || cfg.CertFile == "" || cfg.KeyFile == "" {
			return nil, errors.New("the CA certificate, client certificate and key files are all required (--ca, --cert, --key)")
		}
		caCert, err := pki.LoadCACert(cfg.CAFile)
		if err != nil {
			return nil, err
		}
		cert, err := pki.LoadKeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, err
		}
		tc, err = pki.TLSConfigClient(&pki.CA{Cert: caCert}, cert)
		if err != nil {
			return nil, err
		}
	} else {
		tc = tc.Clone()
	}
	if tc.MinVersion < tls.VersionTLS13 {
		tc.MinVersion = tls.VersionTLS13
	}
	if cfg.ServerName != "" {
		tc.ServerName = cfg.ServerName
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 60 * time.Second
	}
	if cfg.Retries429 == 0 {
		cfg.Retries429 = 3
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleepCtx
	}
	tr := &http.Transport{
		TLSClientConfig:       tc,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: cfg.Timeout,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   4,
	}
	str := tr.Clone()
	str.ResponseHeaderTimeout = 30 * time.Second
	return &Client{
		base:    base,
		hc:      &http.Client{Transport: tr, Timeout: cfg.Timeout, CheckRedirect: noRedirect},
		stream:  &http.Client{Transport: str, CheckRedirect: noRedirect},
		retries: cfg.Retries429,
		sleep:   cfg.Sleep,
	}, nil
}

// noRedirect: the API never redirects; following one could send the
// request (and the client certificate) somewhere unexpected.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// ParseEndpoint turns an endpoint setting into the API's base URL.
func ParseEndpoint(s string) (*url.URL, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("no API endpoint (--endpoint, HPICTL_ENDPOINT or endpoint: in the config file)")
	}
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("endpoint %q: %w", s, err)
	}
	if u.Scheme != "https" {
		return nil, fmt.Errorf("endpoint %q: only https is allowed", s)
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("endpoint %q: want https://host:port", s)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return u, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// APIError is an error answer of the API.
type APIError struct {
	// Status is the HTTP status code.
	Status int
	// Code is the API's stable error code ("forbidden", "not_found", ...);
	// empty when the body was not an API error body.
	Code string
	// Message is the API's explanation.
	Message string
	// RequestID identifies the request in the agent's logs and audit log.
	RequestID string
	// RetryAfter is the server's Retry-After, when given.
	RetryAfter time.Duration
	// Leader names the cluster leader with a "not_leader" error, when
	// known: the call should be made there, at LeaderAPI when given.
	Leader, LeaderAPI string
}

func (e *APIError) Error() string {
	var b strings.Builder
	if e.Code != "" {
		b.WriteString(e.Code)
	} else {
		fmt.Fprintf(&b, "HTTP %d", e.Status)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.Leader != "" {
		b.WriteString(" [retry on the leader " + e.Leader)
		if e.LeaderAPI != "" {
			b.WriteString(" at " + e.LeaderAPI)
		}
		b.WriteString("]")
	}
	if e.RequestID != "" {
		b.WriteString(" (request " + e.RequestID + ")")
	}
	return b.String()
}

// errorFromResponse reads a non-2xx answer into an *APIError.
func errorFromResponse(resp *http.Response) *APIError {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &APIError{Status: resp.StatusCode, RequestID: resp.Header.Get("X-Request-Id")}
	if s := resp.Header.Get("Retry-After"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n >= 0 {
			e.RetryAfter = time.Duration(n) * time.Second
		}
	}
	var eb ErrorBody
	if err := json.Unmarshal(body, &eb); err == nil && eb.Error.Code != "" {
		e.Code, e.Message, e.Leader, e.LeaderAPI = eb.Error.Code, eb.Error.Message, eb.Error.Leader, eb.Error.LeaderAPI
		if eb.Error.RequestID != "" {
			e.RequestID = eb.Error.RequestID
		}
		return e
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	e.Message = http.StatusText(resp.StatusCode)
	if msg != "" {
		e.Message += ": " + msg
	}
	return e
}

// Call sends one request (body, when not nil, as JSON) and returns the raw
// answer; when out is not nil the answer is decoded into it (numbers in
// `any` members as json.Number). An error answer is an *APIError. A GET
// refused with 429 is retried after Retry-After.
func (c *Client) Call(ctx context.Context, method, path string, body, out any) ([]byte, error) {
	var payload []byte
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encoding the %s %s request: %w", method, path, err)
		}
		payload = b
	}
	for attempt := 0; ; attempt++ {
		raw, err := c.once(ctx, method, path, payload, out)
		var ae *APIError
		if method == http.MethodGet && errors.As(err, &ae) && ae.Status == http.StatusTooManyRequests && attempt < c.retries {
			d := min(max(ae.RetryAfter, time.Second), 10*time.Second)
			if serr := c.sleep(ctx, d); serr != nil {
				return nil, err
			}
			continue
		}
		return raw, err
	}
}

func (c *Client) once(ctx context.Context, method, path string, payload []byte, out any) ([]byte, error) {
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url(path), rd)
	if err != nil {
		return nil, fmt.Errorf("building the %s %s request: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, errorFromResponse(resp)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if out != nil {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(out); err != nil {
			return raw, fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
		}
	}
	return raw, nil
}

func (c *Client) url(path string) string {
	u := *c.base
	p, q, _ := strings.Cut(path, "?")
	u.RawPath = u.Path + p
	if up, err := url.PathUnescape(u.RawPath); err == nil {
		u.Path = up
	} else {
		u.Path = u.RawPath
	}
	u.RawQuery = q
	return u.String()
}

// Paths of the API. Resource arguments are a resource ID or an entity path
// ("{SYSTEM_CHASSIS,1}{PHYSICAL_SLOT,3}"), escaped here.

// ResourcesPath is GET /v1/resources.
func ResourcesPath() string { return "/v1/resources" }

// ResourcePath is /v1/resources/{id} with sub appended ("", "/rdrs", ...).
func ResourcePath(id, sub string) string {
	return "/v1/resources/" + url.PathEscape(id) + sub
}

// SensorPath is /v1/resources/{id}/sensors/{num}.
func SensorPath(id string, num uint32) string {
	return ResourcePath(id, "/sensors/"+strconv.FormatUint(uint64(num), 10))
}

// ControlPath is /v1/resources/{id}/controls/{num}.
func ControlPath(id string, num uint32) string {
	return ResourcePath(id, "/controls/"+strconv.FormatUint(uint64(num), 10))
}

// SensorsPath is /v1/resources/{id}/sensors.
func SensorsPath(id string) string { return ResourcePath(id, "/sensors") }

// WorkflowPath is /v1/workflows/{id} with sub appended ("", "/abort", ...).
func WorkflowPath(id, sub string) string { return "/v1/workflows/" + url.PathEscape(id) + sub }

// FencePath is /v1/fence/{node}.
func FencePath(node string) string { return "/v1/fence/" + url.PathEscape(node) }

// EraseCertificatePath is /v1/erase-certificates/{id}.
func EraseCertificatePath(id string) string { return "/v1/erase-certificates/" + url.PathEscape(id) }

// AlarmAckPath is /v1/alarms/{id}/ack.
func AlarmAckPath(id uint32) string {
	return "/v1/alarms/" + strconv.FormatUint(uint64(id), 10) + "/ack"
}

// EventLogPath is /v1/eventlog with its after and limit parameters (limit
// < 0 means none).
func EventLogPath(after uint64, limit int) string {
	q := url.Values{}
	if after > 0 {
		q.Set("after", strconv.FormatUint(after, 10))
	}
	if limit >= 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if len(q) == 0 {
		return "/v1/eventlog"
	}
	return "/v1/eventlog?" + q.Encode()
}

// Typed calls.

// Resources lists every resource.
func (c *Client) Resources(ctx context.Context) ([]Resource, error) {
	var out []Resource
	_, err := c.Call(ctx, http.MethodGet, ResourcesPath(), nil, &out)
	return out, err
}

// Sensors reads every sensor of a resource in one request.
func (c *Client) Sensors(ctx context.Context, id string) ([]Sensor, error) {
	var out []Sensor
	_, err := c.Call(ctx, http.MethodGet, SensorsPath(id), nil, &out)
	return out, err
}

// EventLog reads the domain event log after an event ID.
func (c *Client) EventLog(ctx context.Context, after uint64, limit int) (EventLog, error) {
	var out EventLog
	_, err := c.Call(ctx, http.MethodGet, EventLogPath(after, limit), nil, &out)
	return out, err
}

// IsTLSError reports whether err is a TLS failure: the server's
// certificate was not trusted, or the server refused ours.
func IsTLSError(err error) bool {
	var cve *tls.CertificateVerificationError
	var ae tls.AlertError
	var uae x509.UnknownAuthorityError
	var hne x509.HostnameError
	var cie x509.CertificateInvalidError
	var rhe tls.RecordHeaderError
	if errors.As(err, &cve) || errors.As(err, &ae) || errors.As(err, &uae) || errors.As(err, &hne) ||
		errors.As(err, &cie) || errors.As(err, &rhe) {
		return true
	}
	// The alert a server sends after rejecting our certificate surfaces as
	// "remote error: tls: ..." (an unexported type).
	return strings.Contains(err.Error(), "remote error: tls:")
}

// IsUnreachable reports whether err means the API could not be reached
// (name resolution, connection refused or reset, timeouts).
func IsUnreachable(err error) bool {
	var ne net.Error
	var oe *net.OpError
	var de *net.DNSError
	if errors.As(err, &oe) || errors.As(err, &de) {
		return true
	}
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}
