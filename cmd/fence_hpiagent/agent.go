package main

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
	"os"
	"strconv"
	"strings"
	"time"
)

type agent struct {
	o     options
	out   io.Writer
	errw  io.Writer
	debug *os.File
	// leader is the API endpoint of the cluster leader once an agent that
	// is not the leader named it (a "not_leader" answer); later calls go
	// there, over mutual TLS with the same certificates, so the leader
	// authenticates the requester itself.
	leader string
}

func (a *agent) openDebug() {
	p := a.o.get("debug_file")
	if p == "" {
		return
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		fmt.Fprintf(a.errw, "Failed: opening debug file: %v\n", err)
		return
	}
	a.debug = f
}

func (a *agent) closeDebug() {
	if a.debug != nil {
		_ = a.debug.Close()
	}
}

func (a *agent) logf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if a.o.flag("verbose") {
		fmt.Fprintln(a.errw, msg)
	}
	if a.debug != nil {
		fmt.Fprintf(a.debug, "%s %s\n", time.Now().UTC().Format(time.RFC3339), msg)
	}
}

// validate checks the parameters and builds the HTTPS client. needPlug is
// false for validate-all, list and monitor.
func (a *agent) validate(needPlugForAction bool) (*http.Client, error) {
	o := a.o
	if o.flag("ssl_insecure") {
		return nil, errors.New("ssl_insecure: certificate verification cannot be turned off for fencing")
	}
	action := o.get("action")
	if needPlugForAction {
		switch action {
		case "on", "off", "reboot", "status", "enable", "disable":
			if o.get("plug") == "" {
				return nil, errors.New("plug (the node to fence) is required for action " + action)
			}
		}
	}
	port, err := strconv.Atoi(o.get("ipport"))
	if err != nil || port < 1 || port > 65535 {
		return nil, fmt.Errorf("ipport %q is not a TCP port", o.get("ipport"))
	}
	if o.get("ip") == "" {
		return nil, errors.New("ip (the hpiagent API address) is empty")
	}
	for _, n := range []string{"power_timeout", "power_wait", "delay", "login_timeout"} {
		if _, err := o.seconds(n); err != nil {
			return nil, err
		}
	}
	for _, n := range []string{"ssl_cert", "ssl_key", "ssl_ca"} {
		if o.get(n) == "" {
			return nil, fmt.Errorf("%s is required (mutual TLS)", n)
		}
	}
	if fi, err := os.Stat(o.get("ssl_key")); err != nil {
		return nil, fmt.Errorf("ssl_key: %w", err)
	} else if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("ssl_key %s is accessible by group or others (mode %04o); refusing", o.get("ssl_key"), fi.Mode().Perm())
	}
	cert, err := tls.LoadX509KeyPair(o.get("ssl_cert"), o.get("ssl_key"))
	if err != nil {
		return nil, fmt.Errorf("loading the client certificate %s: %w", o.get("ssl_cert"), err)
	}
	caPEM, err := os.ReadFile(o.get("ssl_ca"))
	if err != nil {
		return nil, fmt.Errorf("ssl_ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("ssl_ca %s holds no PEM certificate", o.get("ssl_ca"))
	}
	name := o.get("server_name")
	if name == "" {
		name = o.get("ip")
	}
	lt, _ := o.seconds("login_timeout")
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: name},
		TLSHandshakeTimeout: lt,
		DialContext:         (&net.Dialer{Timeout: lt}).DialContext,
		Proxy:               nil,
	}
	return &http.Client{Transport: tr, Timeout: lt + 5*time.Second}, nil
}

func (a *agent) base() string {
	if a.leader != "" {
		return a.leader
	}
	return "https://" + net.JoinHostPort(a.o.get("ip"), a.o.get("ipport"))
}

// followLeader switches the agent to the leader's API endpoint named in a
// "not_leader" answer. It refuses anything but an https URL with a host,
// and only switches once: a leader that is not the leader either is an
// error, not a loop.
func (a *agent) followLeader(c *http.Client, e *apiError) bool {
	if e.code != "not_leader" || e.leaderAPI == "" || a.leader != "" {
		return false
	}
	u, err := url.Parse(e.leaderAPI)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") {
		a.logf("ignoring leader endpoint %q: not an https://host:port URL", e.leaderAPI)
		return false
	}
	tr, ok := c.Transport.(*http.Transport)
	if !ok || tr.TLSClientConfig == nil {
		return false
	}
	// The leader's certificate must name the host we dial.
	tr.TLSClientConfig = tr.TLSClientConfig.Clone()
	tr.TLSClientConfig.ServerName = u.Hostname()
	tr.CloseIdleConnections()
	a.leader = "https://" + u.Host
	a.logf("not the leader; following leader %s at %s", e.leader, a.leader)
	return true
}

// fenceState is GET /v1/fence/{node}.
type fenceState struct {
	Node  string `json:"node"`
	Phase string `json:"phase"`
	Power string `json:"power"`
	Fence *struct {
		ID     string `json:"id"`
		Action string `json:"action"`
		Done   bool   `json:"done"`
		Failed bool   `json:"failed"`
		Error  string `json:"error"`
	} `json:"fence"`
}

type apiError struct {
	status    int
	msg       string
	code      string // the API's stable error code, if it sent one
	leader    string // with "not_leader": the leader's node name
	leaderAPI string // with "not_leader": the leader's API endpoint
}

func (e *apiError) Error() string {
	return fmt.Sprintf("hpiagent API answered %d: %s", e.status, e.msg)
}

// call does one API request; when the agent asked is not the cluster
// leader and names the leader's endpoint, the request is repeated there.
func (a *agent) call(ctx context.Context, c *http.Client, method, path string, body, into any) error {
	err := a.call1(ctx, c, method, path, body, into)
	var e *apiError
	if errors.As(err, &e) && a.followLeader(c, e) {
		return a.call1(ctx, c, method, path, body, into)
	}
	return err
}

func (a *agent) call1(ctx context.Context, c *http.Client, method, path string, body, into any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base()+path, rd)
	if err != nil {
		return fmt.Errorf("building %s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	a.logf("%s %s", method, path)
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	a.logf("-> %d %s", resp.StatusCode, strings.TrimSpace(string(data)))
	if resp.StatusCode/100 != 2 {
		ae := &apiError{status: resp.StatusCode, msg: strings.TrimSpace(string(data))}
		// The API answers {"error":{"code","message","request_id",...}};
		// a plain {"error":"..."} is accepted too.
		var e struct {
			Error json.RawMessage `json:"error"`
		}
		if json.Unmarshal(data, &e) == nil && len(e.Error) > 0 {
			var detail struct {
				Code      string `json:"code"`
				Message   string `json:"message"`
				Leader    string `json:"leader"`
				LeaderAPI string `json:"leader_api"`
			}
			var text string
			switch {
			case json.Unmarshal(e.Error, &detail) == nil && detail.Code != "":
				ae.code, ae.leader, ae.leaderAPI = detail.Code, detail.Leader, detail.LeaderAPI
				ae.msg = detail.Code + ": " + detail.Message
			case json.Unmarshal(e.Error, &text) == nil && text != "":
				ae.msg = text
			}
		}
		if len(ae.msg) > 300 {
			ae.msg = ae.msg[:300]
		}
		return ae
	}
	if into != nil {
		if err := json.Unmarshal(data, into); err != nil {
			return fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
		}
	}
	return nil
}

func (a *agent) fail(format string, args ...any) int {
	fmt.Fprintf(a.errw, "Failed: "+format+"\n", args...)
	a.logf("Failed: "+format, args...)
	return exitError
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// do runs one power or query action.
func (a *agent) do(ctx context.Context, action string) int {
	switch action {
	case "enable":
		action = "on"
	case "disable":
		action = "off"
	}
	c, err := a.validate(true)
	if err != nil {
		return a.fail("%v", err)
	}
	node := a.o.get("plug")
	nodePath := "/v1/fence/" + url.PathEscape(node)
	switch action {
	case "monitor", "list", "list-status":
		var l struct {
			Nodes []struct {
				Node  string `json:"node"`
				Phase string `json:"phase"`
				Power string `json:"power"`
			} `json:"nodes"`
		}
		if err := a.call(ctx, c, http.MethodGet, "/v1/fence", nil, &l); err != nil {
			return a.fail("%v", err)
		}
		sep := a.o.get("separator")
		for _, n := range l.Nodes {
			switch action {
			case "list":
				fmt.Fprintln(a.out, n.Node+sep+n.Node)
			case "list-status":
				st := strings.ToUpper(n.Power)
				if st != "ON" && st != "OFF" {
					st = "UNKNOWN"
				}
				fmt.Fprintln(a.out, n.Node+sep+n.Node+sep+st)
			}
		}
		return exitOK
	case "status":
		var st fenceState
		if err := a.call(ctx, c, http.MethodGet, nodePath, nil, &st); err != nil {
			return a.fail("%v", err)
		}
		switch st.Power {
		case "on":
			fmt.Fprintln(a.out, "Status: ON")
			return exitOK
		case "off":
			fmt.Fprintln(a.out, "Status: OFF")
			return exitOff
		}
		return a.fail("Unable to obtain correct plug status or plug is not available (power %q, phase %q)", st.Power, st.Phase)
	}

	// on, off, reboot.
	delay, _ := a.o.seconds("delay")
	if err := sleepCtx(ctx, delay); err != nil {
		return a.fail("%v", err)
	}
	var st fenceState
	if err := a.call(ctx, c, http.MethodGet, nodePath, nil, &st); err != nil {
		return a.fail("%v", err)
	}
	if st.Power == action && st.Phase != "fencing" && st.Phase != "unfencing" {
		fmt.Fprintf(a.out, "Success: Already %s\n", strings.ToUpper(action))
		return exitOK
	}
	var started struct {
		Op    string `json:"op"`
		Phase string `json:"phase"`
	}
	if err := a.call(ctx, c, http.MethodPost, nodePath, map[string]string{"action": action}, &started); err != nil {
		return a.fail("%v", err)
	}
	wait, _ := a.o.seconds("power_wait")
	if err := sleepCtx(ctx, wait); err != nil {
		return a.fail("%v", err)
	}
	timeout, _ := a.o.seconds("power_timeout")
	deadline := time.Now().Add(timeout)
	for {
		if err := a.call(ctx, c, http.MethodGet, nodePath, nil, &st); err != nil {
			a.logf("status while waiting: %v", err)
		} else if done, failed, msg := finished(action, started.Op, st); failed {
			return a.fail("%s of %s: %s", action, node, msg)
		} else if done {
			switch action {
			case "on":
				fmt.Fprintln(a.out, "Success: Powered ON")
			case "off":
				fmt.Fprintln(a.out, "Success: Powered OFF")
			default:
				fmt.Fprintln(a.out, "Success: Rebooted")
			}
			return exitOK
		}
		if time.Now().After(deadline) {
			return a.fail("Timed out waiting to power %s %s (phase %s, power %s)", map[bool]string{true: "ON", false: "OFF"}[action == "on"], node, st.Phase, st.Power)
		}
		if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
			return a.fail("%v", err)
		}
	}
}

// finished says whether action (operation op) is complete in state st.
// A fence ("off", "reboot") counts once hpiagent confirmed it by
// read-back (fence.done for that operation), whatever happened after it.
func finished(action, op string, st fenceState) (done, failed bool, msg string) {
	switch action {
	case "on":
		if st.Phase == "idle" && st.Power == "on" {
			return true, false, ""
		}
		if st.Phase == "fenced" && st.Fence != nil && st.Fence.Error != "" {
			return false, true, "unfence failed: " + st.Fence.Error
		}
		return false, false, ""
	default:
		f := st.Fence
		if f == nil || (op != "" && f.ID != op) {
			// Deduplicated into a fence already in flight: follow it.
			if st.Phase == "fenced" {
				return true, false, ""
			}
			return false, false, ""
		}
		if f.Done {
			return true, false, ""
		}
		if f.Failed || st.Phase == "failed" {
			return false, true, "every fencing level failed: " + f.Error
		}
		return false, false, ""
	}
}
