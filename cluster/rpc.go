package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Handler serves one peer RPC method. from is the caller's node name, proven
// by its certificate. The result is sent back as JSON; an error's message is
// sent to the caller, so it must not carry secrets.
type Handler func(ctx context.Context, from string, req json.RawMessage) (any, error)

// RemoteError is a handler's error as the caller sees it.
type RemoteError struct {
	Node, Method, Message string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("%s on %q: %s", e.Method, e.Node, e.Message)
}

const (
	maxRPCBody    = 1 << 20
	methodHello   = "cluster.hello"
	methodKeyring = "cluster.keyring"
	methodLeaving = "cluster.leaving"
)

type rpcEnvelope struct {
	Result json.RawMessage `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
}

type peerKey struct{}

// Handle registers h for method (replacing an earlier one). Methods starting
// with "cluster." are reserved.
func (c *Cluster) Handle(method string, h Handler) error {
	if method == "" || strings.HasPrefix(method, "cluster.") || strings.ContainsAny(method, "/?# ") {
		return fmt.Errorf("registering RPC method %q: reserved or invalid name", method)
	}
	if h == nil {
		return fmt.Errorf("registering RPC method %q: nil handler", method)
	}
	c.mu.Lock()
	c.handlers[method] = h
	c.mu.Unlock()
	return nil
}

func (c *Cluster) startRPC() {
	byAddr := map[string]string{}
	for _, n := range c.cfg.Nodes {
		byAddr[normAddr(n.RPCAddr)] = n.Name
	}
	tr := &http.Transport{
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			name, ok := byAddr[normAddr(addr)]
			if !ok {
				return nil, fmt.Errorf("RPC dial %s: not the RPC address of any listed node", addr)
			}
			if f := c.cfg.Faults; f != nil && !f.Reachable(c.cfg.NodeName, name) {
				return nil, fmt.Errorf("RPC dial %q: %w", name, errPartitioned)
			}
			tc, err := c.policy.dial(ctx, addr, name)
			if err != nil {
				return nil, err
			}
			if f := c.cfg.Faults; f != nil {
				return f.wrapConn(tc, c.cfg.NodeName, name), nil
			}
			return tc, nil
		},
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: 0, // the caller's context bounds each call
		DisableCompression:    true,
	}
	c.rpcClient = &http.Client{Transport: tr}
	c.rpcServer = &http.Server{
		Handler:           http.HandlerFunc(c.serveRPC),
		ReadHeaderTimeout: c.cfg.HandshakeTimeout,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          nil,
		ConnContext: func(ctx context.Context, conn net.Conn) context.Context {
			if pc, ok := conn.(*peerConn); ok {
				return context.WithValue(ctx, peerKey{}, pc.peer)
			}
			return ctx
		},
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		if err := c.rpcServer.Serve(c.rpcLn); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			c.log.Error("cluster: RPC server stopped", "err", err)
		}
	}()
}

func writeEnvelope(w http.ResponseWriter, status int, env rpcEnvelope) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(env)
}

func (c *Cluster) serveRPC(w http.ResponseWriter, r *http.Request) {
	from, _ := r.Context().Value(peerKey{}).(string)
	if from == "" {
		writeEnvelope(w, http.StatusForbidden, rpcEnvelope{Error: "unauthenticated"})
		return
	}
	if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, "/rpc/") {
		writeEnvelope(w, http.StatusNotFound, rpcEnvelope{Error: "not found"})
		return
	}
	method := strings.TrimPrefix(r.URL.Path, "/rpc/")
	c.mu.Lock()
	h := c.handlers[method]
	c.mu.Unlock()
	if h == nil {
		writeEnvelope(w, http.StatusNotFound, rpcEnvelope{Error: fmt.Sprintf("unknown method %q", method)})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRPCBody))
	if err != nil {
		writeEnvelope(w, http.StatusBadRequest, rpcEnvelope{Error: "reading request: " + err.Error()})
		return
	}
	if !json.Valid(body) {
		writeEnvelope(w, http.StatusBadRequest, rpcEnvelope{Error: "request is not JSON"})
		return
	}
	res, err := h(r.Context(), from, body)
	if err != nil {
		writeEnvelope(w, http.StatusOK, rpcEnvelope{Error: err.Error()})
		return
	}
	out, err := json.Marshal(res)
	if err != nil {
		writeEnvelope(w, http.StatusInternalServerError, rpcEnvelope{Error: "encoding result failed"})
		return
	}
	writeEnvelope(w, http.StatusOK, rpcEnvelope{Result: out})
}

// Call invokes method on node over mutual TLS (the node must present its
// own certificate) and decodes the result into resp (which may be nil).
// Without a deadline in ctx, Config.RPCTimeout applies.
func (c *Cluster) Call(ctx context.Context, node, method string, req, resp any) error {
	n, ok := c.cfg.node(node)
	if !ok {
		return fmt.Errorf("calling %s on %q: not a listed node", method, node)
	}
	if c.rpcClient == nil {
		return fmt.Errorf("calling %s on %q: %w", method, node, ErrClosed)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.RPCTimeout)
		defer cancel()
	}
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("calling %s on %q: encoding request: %w", method, node, err)
	}
	u := "https://" + n.RPCAddr + "/rpc/" + url.PathEscape(method)
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(string(body)))
	if err != nil {
		return fmt.Errorf("calling %s on %q: %w", method, node, err)
	}
	hr.Header.Set("Content-Type", "application/json")
	res, err := c.rpcClient.Do(hr)
	if err != nil {
		return fmt.Errorf("calling %s on %q: %w", method, node, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, maxRPCBody+1))
	if err != nil {
		return fmt.Errorf("calling %s on %q: reading answer: %w", method, node, err)
	}
	if len(raw) > maxRPCBody {
		return fmt.Errorf("calling %s on %q: answer larger than %d bytes", method, node, maxRPCBody)
	}
	var env rpcEnvelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return fmt.Errorf("calling %s on %q: decoding answer (HTTP %d): %w", method, node, res.StatusCode, err)
	}
	if env.Error != "" {
		return &RemoteError{Node: node, Method: method, Message: env.Error}
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("calling %s on %q: HTTP %d", method, node, res.StatusCode)
	}
	if resp != nil {
		if err := json.Unmarshal(env.Result, resp); err != nil {
			return fmt.Errorf("calling %s on %q: decoding result: %w", method, node, err)
		}
	}
	return nil
}

type helloReq struct {
	From string `json:"from"`
}

type helloResp struct {
	Node string `json:"node"`
	// Incarnation is random per start of the node: a node that announced
	// it was leaving and answers again with the same incarnation has not
	// restarted.
	Incarnation string `json:"incarnation,omitempty"`
}

func (c *Cluster) handleHello(ctx context.Context, from string, req json.RawMessage) (any, error) {
	return helloResp{Node: c.cfg.NodeName, Incarnation: c.incarnation}, nil
}

// leavingReq announces a graceful stop of the calling node (its identity
// comes from its certificate, so a node can only announce itself).
type leavingReq struct {
	Incarnation string `json:"incarnation"`
}

func (c *Cluster) handleLeaving(ctx context.Context, from string, req json.RawMessage) (any, error) {
	var r leavingReq
	if err := json.Unmarshal(req, &r); err != nil || r.Incarnation == "" {
		return nil, fmt.Errorf("leaving announcement of %q: malformed", from)
	}
	if _, ok := c.cfg.node(from); !ok || from == c.cfg.NodeName {
		return nil, fmt.Errorf("leaving announcement of %q: not another listed node", from)
	}
	c.post(memberWork{kind: workLeaving, node: from, incarnation: r.Incarnation})
	return struct{}{}, nil
}
