// Command apiload is the load generator of the API benchmark: it opens a
// fixed number of keep-alive HTTP/1.1 connections (mutual TLS when given a
// client certificate) to one server, sends GET requests in a closed loop
// on each for a fixed time, and prints requests per second and the latency
// quantiles from a log-linear histogram.
//
//	apiload -url https://127.0.0.1:PORT -ca ca.crt -cert c.crt -key c.key \
//	        -paths-file paths.txt -c 8 -d 10s -warmup 2s -json
//
// Each connection cycles through the paths (one per line), starting at its
// own offset. Requests during the warm-up are sent but not counted. Any
// transport error or non-2xx answer is counted apart and its latency left
// out of the histogram; the exit status is 1 when there was any.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"hpiagent/internal/pki"
)

// Config is one load run.
type Config struct {
	// URL is the server's base URL (https:// or, for a baseline, http://).
	URL string
	// Paths are requested in turn; "/" when empty.
	Paths []string
	// Connections is the number of keep-alive connections, each driven by
	// one goroutine in a closed loop. Default 8.
	Connections int
	// Duration is the measured time after the warm-up. Default 10 s.
	Duration time.Duration
	// Warmup is the time before measuring: handshakes, the server's caches
	// and the Go runtimes of both sides settle. Default 2 s.
	Warmup time.Duration
	// TLS is the client's TLS configuration; nil for http://.
	TLS *tls.Config
}

// Result is what a run measured.
type Result struct {
	Connections int            `json:"connections"`
	Dials       int64          `json:"dials"`
	Seconds     float64        `json:"seconds"`
	Requests    uint64         `json:"requests"`
	Errors      uint64         `json:"errors"`
	Statuses    map[string]int `json:"statuses,omitempty"`
	FirstError  string         `json:"first_error,omitempty"`
	RPS         float64        `json:"rps"`
	BytesPerReq float64        `json:"bytes_per_request"`
	MeanMs      float64        `json:"mean_ms"`
	P50Ms       float64        `json:"p50_ms"`
	P90Ms       float64        `json:"p90_ms"`
	P99Ms       float64        `json:"p99_ms"`
	P999Ms      float64        `json:"p999_ms"`
	MaxMs       float64        `json:"max_ms"`
}

// worker is the state of one connection's loop.
type worker struct {
	hist     histogram
	errors   uint64
	bytes    uint64
	statuses map[int]int
	firstErr error
}

// Run runs the load and returns what it measured.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Connections <= 0 {
		cfg.Connections = 8
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 10 * time.Second
	}
	if cfg.Warmup < 0 {
		cfg.Warmup = 0
	}
	if len(cfg.Paths) == 0 {
		cfg.Paths = []string{"/"}
	}
	base := strings.TrimRight(cfg.URL, "/")
	var dials atomic.Int64
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(ctx, cfg.Warmup+cfg.Duration)
	defer cancel()
	measureFrom := time.Now().Add(cfg.Warmup)
	workers := make([]*worker, cfg.Connections)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{statuses: map[int]int{}}
		workers[i] = w
		// One transport per worker with one connection: exactly
		// Connections keep-alive connections, each reused for every
		// request (dials counts them).
		tr := &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				dials.Add(1)
				return dialer.DialContext(ctx, network, addr)
			},
			TLSClientConfig:     cfg.TLS,
			MaxConnsPerHost:     1,
			MaxIdleConnsPerHost: 1,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
		}
		client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer tr.CloseIdleConnections()
			for n := i; ctx.Err() == nil; n++ {
				url := base + cfg.Paths[n%len(cfg.Paths)]
				start := time.Now()
				status, size, err := get(ctx, client, url)
				end := time.Now()
				if ctx.Err() != nil {
					return // cut off by the end of the run
				}
				if start.Before(measureFrom) {
					continue
				}
				switch {
				case err != nil:
					w.errors++
					if w.firstErr == nil {
						w.firstErr = err
					}
				case status < 200 || status > 299:
					w.errors++
					w.statuses[status]++
					if w.firstErr == nil {
						w.firstErr = fmt.Errorf("GET %s: status %d", url, status)
					}
				default:
					w.statuses[status]++
					w.hist.record(end.Sub(start))
					w.bytes += uint64(size)
				}
			}
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(measureFrom).Seconds()

	var h histogram
	res := Result{Connections: cfg.Connections, Dials: dials.Load(), Seconds: elapsed, Statuses: map[string]int{}}
	var bytes uint64
	for _, w := range workers {
		h.merge(&w.hist)
		res.Errors += w.errors
		bytes += w.bytes
		for s, n := range w.statuses {
			res.Statuses[fmt.Sprint(s)] += n
		}
		if w.firstErr != nil && res.FirstError == "" {
			res.FirstError = w.firstErr.Error()
		}
	}
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	res.Requests = h.n
	if elapsed > 0 {
		res.RPS = float64(h.n) / elapsed
	}
	if h.n > 0 {
		res.BytesPerReq = float64(bytes) / float64(h.n)
	}
	res.MeanMs, res.P50Ms, res.P90Ms = ms(h.mean()), ms(h.quantile(0.5)), ms(h.quantile(0.9))
	res.P99Ms, res.P999Ms, res.MaxMs = ms(h.quantile(0.99)), ms(h.quantile(0.999)), ms(time.Duration(h.max))
	return res, nil
}

// get sends one GET and reads the whole body, so that the connection is
// reused.
func get(ctx context.Context, c *http.Client, url string) (int, int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("building GET %s: %w", url, err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, 0, fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return resp.StatusCode, n, fmt.Errorf("GET %s: reading the body: %w", url, err)
	}
	return resp.StatusCode, n, nil
}

// clientTLS builds the TLS 1.3 client configuration from PEM files; cert
// and key may be empty (no client certificate).
func clientTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS13}
	if caFile != "" {
		ca, err := pki.LoadCACert(caFile)
		if err != nil {
			return nil, fmt.Errorf("loading the CA certificate %s: %w", caFile, err)
		}
		pool := x509.NewCertPool()
		pool.AddCert(ca)
		cfg.RootCAs = pool
	}
	if certFile != "" || keyFile != "" {
		c, err := pki.LoadKeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("loading the client certificate %s: %w", certFile, err)
		}
		cfg.Certificates = []tls.Certificate{c.TLSCertificate()}
	}
	return cfg, nil
}

// readPaths reads one path per line; blank lines and lines starting with #
// are skipped.
func readPaths(r io.Reader) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !strings.HasPrefix(line, "/") {
			return nil, fmt.Errorf("path %q does not start with /", line)
		}
		out = append(out, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading paths: %w", err)
	}
	return out, nil
}

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "apiload:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("apiload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "", "base `URL` of the server (https://host:port)")
	caFile := fs.String("ca", "", "PEM `file` of the CA that signed the server's certificate")
	certFile := fs.String("cert", "", "client certificate PEM `file`")
	keyFile := fs.String("key", "", "client key PEM `file` (mode 0600)")
	serverName := fs.String("server-name", "", "TLS server `name` to verify (default: the URL's host)")
	path := fs.String("path", "", "one `path` to request (instead of -paths-file)")
	pathsFile := fs.String("paths-file", "", "`file` of paths to request in turn, one per line")
	conns := fs.Int("c", 8, "number of keep-alive connections")
	dur := fs.Duration("d", 10*time.Second, "measured duration")
	warmup := fs.Duration("warmup", 2*time.Second, "unmeasured warm-up before the measured duration")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *url == "" {
		return errors.New("-url is required")
	}
	cfg := Config{URL: *url, Connections: *conns, Duration: *dur, Warmup: *warmup}
	switch {
	case *pathsFile != "":
		f, err := os.Open(*pathsFile)
		if err != nil {
			return err
		}
		cfg.Paths, err = readPaths(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", *pathsFile, err)
		}
	case *path != "":
		cfg.Paths = []string{*path}
	}
	if strings.HasPrefix(*url, "https://") {
		tc, err := clientTLS(*caFile, *certFile, *keyFile)
		if err != nil {
			return err
		}
		tc.ServerName = *serverName
		cfg.TLS = tc
	}
	res, err := Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "%d connections (%d dialled), %.1f s: %d requests, %.0f req/s, %d errors\n", res.Connections, res.Dials, res.Seconds, res.Requests, res.RPS, res.Errors)
		fmt.Fprintf(stdout, "latency ms: mean %.3f  p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f\n", res.MeanMs, res.P50Ms, res.P90Ms, res.P99Ms, res.P999Ms, res.MaxMs)
		if res.FirstError != "" {
			fmt.Fprintf(stdout, "first error: %s\n", res.FirstError)
		}
	}
	if res.Errors > 0 {
		return fmt.Errorf("%d of %d requests failed (first: %s)", res.Errors, res.Errors+res.Requests, res.FirstError)
	}
	if res.Requests == 0 {
		return errors.New("no request completed in the measured time")
	}
	return nil
}
