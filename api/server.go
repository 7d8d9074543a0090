package api

import (
	"container/list"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"hpiagent/hpi"
)

// Server is the HTTPS API server.
type Server struct {
	cfg     Config
	tls     *tls.Config
	domain  *hpi.Domain
	hw      Hardware
	auditor Auditor
	health  HealthSource
	thr     ThresholdReader
	cluster ClusterStatus
	fencing Fencing
	wf      Workflows
	certs   EraseCertificates
	anchors AuditAnchors
	log     *slog.Logger
	mux     *http.ServeMux
	metrics *metrics

	// roles is the role map in force (Config.Roles at New, then what
	// SetRoles last installed); read once per request.
	roles atomic.Pointer[map[string][]Role]
	// cert is the server certificate new handshakes get (Config's at New,
	// then what SetCertificate last installed).
	cert atomic.Pointer[tls.Certificate]

	limMu    sync.Mutex
	limiters map[string]*list.Element // identity → element of lru (*clientLimiter)
	lru      *list.List

	streamMu    sync.Mutex
	streams     int
	streamsByID map[string]int
	streamSubs  map[*hpi.Subscription]struct{}
}

type clientLimiter struct {
	id  string
	lim *rate.Limiter
}

// New checks cfg and deps and returns a server. It loads the TLS material
// named in cfg.
func New(cfg Config, deps Deps) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("api: config: %w", err)
	}
	if deps.Domain == nil {
		return nil, errors.New("api: no domain")
	}
	if deps.Auditor == nil {
		return nil, errors.New("api: no auditor: the API does not run without an audit log")
	}
	tc, err := cfg.TLSConfig()
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg: cfg, tls: tc, domain: deps.Domain, hw: deps.Hardware, auditor: deps.Auditor,
		health: deps.Health, thr: deps.Thresholds, log: cfg.Logger,
		cluster: deps.Cluster, fencing: deps.Fencing, wf: deps.Workflows, certs: deps.EraseCertificates, anchors: deps.AuditAnchors,
		limiters: map[string]*list.Element{}, lru: list.New(),
		streamsByID: map[string]int{}, streamSubs: map[*hpi.Subscription]struct{}{},
	}
	// New handshakes take the certificate from s.cert, so that
	// SetCertificate can renew it while connections stay up.
	if len(tc.Certificates) == 0 {
		return nil, errors.New("api: TLS: no server certificate configured")
	}
	first := tc.Certificates[0]
	s.cert.Store(&first)
	tc.Certificates = nil
	tc.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.cert.Load(), nil }
	roles := cloneRoles(cfg.Roles)
	s.roles.Store(&roles)
	if s.thr == nil {
		if tr, ok := any(deps.Domain).(ThresholdReader); ok {
			s.thr = tr
		}
	}
	s.metrics = newMetrics(s)
	s.mux = http.NewServeMux()
	for i := range routeTable {
		rt := &routeTable[i]
		s.mux.HandleFunc(rt.Method+" "+rt.Path, func(w http.ResponseWriter, r *http.Request) { s.serve(rt, w, r) })
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { s.serve(nil, w, r) })
	return s, nil
}

// TLSConfig returns the server's TLS configuration (TLS 1.3 only, client
// certificates required and verified). Callers must not change it.
func (s *Server) TLSConfig() *tls.Config { return s.tls }

// Handler returns the HTTP handler of every route. It expects requests that
// arrived over mutual TLS (r.TLS with a verified chain); any other request
// is refused. Serve is the way to run it; Handler is for tests that bring
// their own TLS listener.
func (s *Server) Handler() http.Handler { return s.mux }

// Serve accepts TLS connections on l until ctx is done, then shuts the
// server down gracefully (event streams are closed) and returns nil. l is a
// plain TCP listener; Serve adds TLS.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	hs := &http.Server{
		Handler:           s.mux,
		TLSConfig:         s.tls,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          log.New(&httpErrorLog{s: s}, "", 0),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	errc := make(chan error, 1)
	ll := newConnLimiter(l, s.cfg.MaxConnections, s.cfg.MaxConnectionsPerIP, s.metrics.connsRefused.Inc)
	go func() { errc <- hs.Serve(tls.NewListener(ll, s.tls)) }()
	select {
	case err := <-errc:
		return fmt.Errorf("api: serve on %s: %w", l.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := hs.Shutdown(sctx)
	if err != nil {
		_ = hs.Close()
	}
	<-errc
	return nil
}

// httpErrorLog receives net/http's own log lines (TLS handshake failures,
// among others), counts handshake failures and logs at debug level, so a
// stranger knocking cannot flood the log.
type httpErrorLog struct{ s *Server }

func (h *httpErrorLog) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	if strings.Contains(line, "TLS handshake error") {
		h.s.metrics.handshakeFailures.Inc()
	}
	h.s.log.Debug("api http server", "msg", line)
	return len(p), nil
}

// call is one request being served.
type call struct {
	w        http.ResponseWriter
	r        *http.Request
	route    *route
	reqID    string
	identity string
	roles    []Role
	target   string
	detail   string
}

func (c *call) roleNames() []string {
	out := make([]string, len(c.roles))
	for i, r := range c.roles {
		out[i] = string(r)
	}
	return out
}

// handled is returned by handlers that wrote the answer themselves.
type handled struct{}

// accepted is returned by handlers whose action was recorded and goes on
// after the answer (202 Accepted with v as the body).
type accepted struct{ v any }

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// serve runs the common steps of every request: identity, rate limit,
// permission, handler, audit, answer.
func (s *Server) serve(rt *route, w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	c := &call{w: w, r: r, route: rt, reqID: newRequestID(), target: r.URL.Path}
	w.Header().Set("X-Request-Id", c.reqID)
	name := "unmatched"
	if rt != nil {
		name = rt.Method + " " + rt.Path
	}
	code := s.serveCall(c)
	s.metrics.requests.WithLabelValues(name, strconv.Itoa(code)).Inc()
	s.metrics.duration.WithLabelValues(name).Observe(time.Since(start).Seconds())
}

func (s *Server) serveCall(c *call) int {
	r := c.r
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		// Unreachable behind Serve (the handshake requires a verified
		// certificate); a handler mounted elsewhere refuses.
		c.identity = "(unauthenticated)"
		return s.refuse(c, newErr(CodeForbidden, "a verified client certificate is required"))
	}
	id, err := s.cfg.Identity(r.TLS.VerifiedChains[0][0])
	if err != nil {
		c.identity = "(no identity)"
		return s.refuse(c, newErr(CodeNoRole, "client certificate carries no identity: "+err.Error()))
	}
	c.identity = id
	c.roles = (*s.roles.Load())[id]
	if d, ok := s.limit(id); !ok {
		secs := int(math.Ceil(d.Seconds()))
		if secs < 1 {
			secs = 1
		}
		c.w.Header().Set("Retry-After", strconv.Itoa(secs))
		s.metrics.rateLimited.Inc()
		return s.refuse(c, newErr(CodeRateLimited, fmt.Sprintf("rate limit of %g requests/s exceeded; retry in %d s", s.cfg.RateLimit, secs)))
	}
	if c.route == nil {
		return s.writeError(c, s.unmatched(c))
	}
	if c.route.Perm != PermNone {
		if len(c.roles) == 0 {
			return s.refuse(c, newErr(CodeNoRole, fmt.Sprintf("identity %q has no role", id)))
		}
		if !allowed(c.roles, c.route.Perm) {
			return s.refuse(c, newErr(CodeForbidden, fmt.Sprintf("roles %v do not grant %q", c.roles, c.route.Perm)))
		}
	}
	if c.route.Mutating && r.Body != nil {
		r.Body = http.MaxBytesReader(c.w, r.Body, s.cfg.MaxBodyBytes)
	}
	res, err := c.route.handler(s, c)
	if err != nil {
		ae := classify(err)
		if c.route.Mutating || refusal[ae.code] {
			s.auditResult(c, ae.code, ae.msg)
		}
		return s.writeError(c, ae)
	}
	if c.route.Mutating {
		s.auditResult(c, "ok", c.detail)
	}
	if _, ok := res.(handled); ok {
		return http.StatusOK
	}
	if a, ok := res.(accepted); ok {
		return s.writeJSON(c, http.StatusAccepted, a.v)
	}
	return s.writeJSON(c, http.StatusOK, res)
}

// refusal lists the codes of refused calls, audited on every route.
var refusal = map[string]bool{CodeForbidden: true, CodeNoRole: true, CodeRateLimited: true, CodeTooManyStreams: true}

// unmatched tells 404 from 405 for a request no route matched.
func (s *Server) unmatched(c *call) *apiError {
	for _, rt := range routeTable {
		if rt.matchesPath(c.r.URL.Path) {
			c.w.Header().Add("Allow", rt.Method)
		}
	}
	if c.w.Header().Get("Allow") != "" {
		return newErr(CodeMethodNotAllowed, c.r.Method+" is not allowed on "+c.r.URL.Path)
	}
	return newErr(CodeNotFound, "no route "+c.r.URL.Path)
}

// refuse audits a refused call and answers with the error.
func (s *Server) refuse(c *call, e *apiError) int {
	s.metrics.refused.WithLabelValues(e.code).Inc()
	s.auditResult(c, e.code, e.msg)
	return s.writeError(c, e)
}

func (s *Server) action(c *call) string {
	if c.route == nil {
		return c.r.Method + " " + c.r.URL.Path
	}
	return c.route.Action
}

// auditAttempt appends the write-ahead record of a state change; the
// caller carries the change out only when it returns nil.
func (s *Server) auditAttempt(c *call) error {
	rec := AuditRecord{Time: s.cfg.Now(), Actor: c.identity, Roles: c.roleNames(), Action: s.action(c),
		Target: c.target, Result: "attempt", Detail: auditDetail(c.detail, c.reqID)}
	if err := s.auditor.Append(c.r.Context(), rec); err != nil {
		s.metrics.auditFailures.Inc()
		s.log.Error("api: audit log append failed; action refused", "action", rec.Action, "target", rec.Target, "actor", rec.Actor, "err", err)
		return newErr(CodeAuditUnavailable, "the audit log cannot be written; nothing was done")
	}
	return nil
}

// auditDetail is the Detail of an audit record: what the call asked for or
// why it failed, and the request ID the client was given.
func auditDetail(detail, reqID string) string {
	if detail == "" {
		return "request_id=" + reqID
	}
	return detail + " request_id=" + reqID
}

// auditResult appends the outcome of a state-changing call or a refusal.
// Its failure cannot undo what was done; it is logged and counted.
func (s *Server) auditResult(c *call, result, detail string) {
	rec := AuditRecord{Time: s.cfg.Now(), Actor: c.identity, Roles: c.roleNames(), Action: s.action(c),
		Target: c.target, Result: result, Detail: auditDetail(detail, c.reqID)}
	// The record is written even when the client has gone away.
	ctx := context.WithoutCancel(c.r.Context())
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.auditor.Append(ctx, rec); err != nil {
		s.metrics.auditFailures.Inc()
		s.log.Error("api: audit log append failed", "action", rec.Action, "target", rec.Target, "actor", rec.Actor, "result", result, "err", err)
	}
}

func (s *Server) writeError(c *call, e *apiError) int {
	status, ok := errorStatus[e.code]
	if !ok {
		status = http.StatusInternalServerError
	}
	s.writeJSON(c, status, ErrorBody{Error: ErrorDetail{Code: e.code, Message: e.msg, RequestID: c.reqID, Leader: e.leader, LeaderAPI: e.leaderAPI}})
	return status
}

func (s *Server) writeJSON(c *call, status int, v any) int {
	b, err := json.Marshal(v)
	if err != nil {
		s.log.Error("api: encode answer", "route", s.action(c), "err", err)
		status = http.StatusInternalServerError
		b, _ = json.Marshal(ErrorBody{Error: ErrorDetail{Code: CodeInternal, Message: "cannot encode the answer", RequestID: c.reqID}})
	}
	h := c.w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	c.w.WriteHeader(status)
	_, _ = c.w.Write(append(b, '\n'))
	return status
}

// limit takes one token of the identity's bucket; when empty it returns
// how long until one is available.
func (s *Server) limit(id string) (time.Duration, bool) {
	now := s.cfg.Now()
	s.limMu.Lock()
	defer s.limMu.Unlock()
	var cl *clientLimiter
	if e, ok := s.limiters[id]; ok {
		s.lru.MoveToFront(e)
		cl = e.Value.(*clientLimiter)
	} else {
		cl = &clientLimiter{id: id, lim: rate.NewLimiter(rate.Limit(s.cfg.RateLimit), s.cfg.RateBurst)}
		s.limiters[id] = s.lru.PushFront(cl)
		for s.lru.Len() > s.cfg.MaxClients {
			old := s.lru.Back()
			s.lru.Remove(old)
			delete(s.limiters, old.Value.(*clientLimiter).id)
		}
	}
	res := cl.lim.ReserveN(now, 1)
	if !res.OK() {
		return time.Second, false
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d, false
	}
	return 0, true
}
