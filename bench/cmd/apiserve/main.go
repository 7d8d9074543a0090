// Command apiserve is the server side of the API benchmark: it serves the
// hpiagent API over mutual TLS on a free loopback port with a domain of N
// synthetic sensors (cached readings, no shelf behind them), or, as a
// baseline, a plain net/http handler that answers every GET with the same
// fixed JSON body the API gives for one sensor.
//
//	apiserve -dir DIR -sensors 1000 -mode api
//
// It writes a throwaway CA, the server's and a client's certificate and
// key (mode 0600) into DIR, and the request paths of the benchmark:
// sensor-paths.txt (every sensor), rdr-paths.txt (the RDR list of every
// resource) and resource-paths.txt. When it listens, it prints one JSON
// line (Ready) on stdout; it stops on SIGINT or SIGTERM.
//
// Modes:
//
//	api          the API server (api.New, api.Server.Serve), role viewer
//	static-mtls  fixed body, TLS 1.3 with the same client certificate check
//	static-tls   fixed body, TLS 1.3 without client certificates
//	static-plain fixed body, plain HTTP
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"hpiagent/api"
	"hpiagent/api/apitest"
	"hpiagent/hpi"
	"hpiagent/internal/pki"
)

// Ready is the line printed once the server listens.
type Ready struct {
	Mode string `json:"mode"`
	PID  int    `json:"pid"`
	// URL is the base URL (https:// or http://).
	URL     string `json:"url"`
	CA      string `json:"ca"`
	Cert    string `json:"cert"`
	Key     string `json:"key"`
	Sensors int    `json:"sensors"`
	// Resources is the number of resources of the domain.
	Resources int `json:"resources"`
	// SensorPaths, RDRPaths and ResourcePaths are files of request paths.
	SensorPaths   string `json:"sensor_paths"`
	RDRPaths      string `json:"rdr_paths"`
	ResourcePaths string `json:"resource_paths"`
	// StaticBytes is the size of the fixed body of the static modes.
	StaticBytes int `json:"static_bytes,omitempty"`
}

// Config configures one server.
type Config struct {
	// Dir receives the certificates and path files; it must not hold
	// them already. Required.
	Dir string
	// Mode is api, static-mtls, static-tls or static-plain. Default api.
	Mode string
	// Sensors is the number of synthetic sensors (64 per resource).
	// Default 1000, the size the benchmark asks for.
	Sensors int
	// Listen is the TCP address. Default 127.0.0.1:0: a free port, so
	// concurrent runs never collide.
	Listen string
	// RateLimit is the per-client rate limit of the API. Default 1e9 (off
	// in effect): the benchmark measures the server, not the limiter
	// (whose production default, 50/s, would be all it showed).
	RateLimit float64
	// Logger receives the API's log. Default: warnings and errors on
	// stderr.
	Logger *slog.Logger
}

const clientName = "bench-load"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "apiserve:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("apiserve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg Config
	fs.StringVar(&cfg.Dir, "dir", "", "`directory` for certificates and path files (required)")
	fs.StringVar(&cfg.Mode, "mode", "api", "api, static-mtls, static-tls or static-plain")
	fs.IntVar(&cfg.Sensors, "sensors", 1000, "number of synthetic sensors")
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:0", "TCP `address` (loopback)")
	fs.Float64Var(&cfg.RateLimit, "rate-limit", 1e9, "per-client requests per second of the API")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return Serve(ctx, cfg, func(r Ready) error {
		return json.NewEncoder(stdout).Encode(r)
	})
}

// Serve sets up the server of cfg, calls ready once it listens and serves
// until ctx is done.
func Serve(ctx context.Context, cfg Config, ready func(Ready) error) error {
	if cfg.Dir == "" {
		return errors.New("a directory (-dir) is required")
	}
	if cfg.Mode == "" {
		cfg.Mode = "api"
	}
	switch cfg.Mode {
	case "api", "static-mtls", "static-tls", "static-plain":
	default:
		return fmt.Errorf("mode %q: want api, static-mtls, static-tls or static-plain", cfg.Mode)
	}
	if cfg.Sensors <= 0 {
		cfg.Sensors = 1000
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.RateLimit <= 0 {
		cfg.RateLimit = 1e9
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}

	ca, err := pki.NewCA("apiserve-bench-ca", 48*time.Hour)
	if err != nil {
		return fmt.Errorf("making the benchmark CA: %w", err)
	}
	host, _, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", cfg.Listen, err)
	}
	ips := []net.IP{net.IPv4(127, 0, 0, 1)}
	if ip := net.ParseIP(host); ip != nil {
		ips = append(ips, ip)
	}
	server, err := ca.Issue(pki.IssueRequest{Name: "apiserve", Kind: pki.KindServer, IPs: ips, DNSNames: []string{"localhost"}, Validity: 24 * time.Hour})
	if err != nil {
		return fmt.Errorf("issuing the server certificate: %w", err)
	}
	client, err := ca.Issue(pki.IssueRequest{Name: clientName, Kind: pki.KindClient, Validity: 24 * time.Hour})
	if err != nil {
		return fmt.Errorf("issuing the client certificate: %w", err)
	}
	for _, save := range []func(string) error{ca.Save, server.Save, client.Save} {
		if err := save(cfg.Dir); err != nil {
			return fmt.Errorf("writing certificates to %s: %w", cfg.Dir, err)
		}
	}

	d, err := apitest.SyntheticDomain(cfg.Sensors)
	if err != nil {
		return fmt.Errorf("building a domain of %d sensors: %w", cfg.Sensors, err)
	}
	r := Ready{Mode: cfg.Mode, PID: os.Getpid(), CA: pki.CertFile(cfg.Dir, "ca"), Cert: pki.CertFile(cfg.Dir, clientName), Key: pki.KeyFile(cfg.Dir, clientName),
		Sensors: cfg.Sensors, Resources: len(d.Resources()),
		SensorPaths: filepath.Join(cfg.Dir, "sensor-paths.txt"), RDRPaths: filepath.Join(cfg.Dir, "rdr-paths.txt"), ResourcePaths: filepath.Join(cfg.Dir, "resource-paths.txt")}
	if err := writePaths(d, r); err != nil {
		return err
	}

	srv, err := api.New(api.Config{
		Certificate: ptr(server.TLSCertificate()), ClientCAs: ca.Pool(),
		Roles:     map[string][]api.Role{pki.IdentityURI(pki.KindClient, clientName).String(): {api.RoleViewer}},
		RateLimit: cfg.RateLimit, RateBurst: int(min(cfg.RateLimit, 1e9)),
		Logger: cfg.Logger,
	}, api.Deps{Domain: d, Auditor: &apitest.Auditor{}})
	if err != nil {
		return fmt.Errorf("building the API server: %w", err)
	}
	l, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	defer l.Close()
	if cfg.Mode == "api" {
		r.URL = "https://" + l.Addr().String()
		errc := make(chan error, 1)
		go func() { errc <- srv.Serve(ctx, l) }()
		if err := ready(r); err != nil {
			return err
		}
		return <-errc
	}

	// A baseline: the body the API gives for the first sensor, fixed.
	body, err := sensorBody(ctx, srv, ca, client, firstPath(d))
	if err != nil {
		return err
	}
	r.StaticBytes = len(body)
	h := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 15 * time.Second, WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second}
	var sl net.Listener = l
	switch cfg.Mode {
	case "static-mtls":
		tc, err := pki.TLSConfigServer(ca, server)
		if err != nil {
			return fmt.Errorf("server TLS configuration: %w", err)
		}
		sl = tls.NewListener(l, tc)
		r.URL = "https://" + l.Addr().String()
	case "static-tls":
		sl = tls.NewListener(l, &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{server.TLSCertificate()}})
		r.URL = "https://" + l.Addr().String()
	case "static-plain":
		r.URL = "http://" + l.Addr().String()
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hs.Shutdown(sctx)
	}()
	if err := ready(r); err != nil {
		return err
	}
	if err := hs.Serve(sl); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving on %s: %w", l.Addr(), err)
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

// writePaths writes the request paths of the benchmark.
func writePaths(d *hpi.Domain, r Ready) error {
	var sensors, rdrs, resources strings.Builder
	for _, e := range d.Resources() {
		fmt.Fprintf(&resources, "/v1/resources/%d\n", e.ResourceID)
		fmt.Fprintf(&rdrs, "/v1/resources/%d/rdrs\n", e.ResourceID)
		list, err := d.RDRs(e.ResourceID)
		if err != nil {
			return fmt.Errorf("listing the RDRs of resource %d: %w", e.ResourceID, err)
		}
		for _, rdr := range list {
			if rdr.Type == hpi.SensorRDR && rdr.Sensor != nil {
				fmt.Fprintf(&sensors, "/v1/resources/%d/sensors/%d\n", e.ResourceID, rdr.Sensor.Num)
			}
		}
	}
	for f, s := range map[string]string{r.SensorPaths: sensors.String(), r.RDRPaths: rdrs.String(), r.ResourcePaths: resources.String()} {
		if err := os.WriteFile(f, []byte(s), 0o644); err != nil {
			return fmt.Errorf("writing request paths: %w", err)
		}
	}
	return nil
}

// firstPath is the path of the domain's first sensor.
func firstPath(d *hpi.Domain) string {
	for _, e := range d.Resources() {
		list, _ := d.RDRs(e.ResourceID)
		for _, rdr := range list {
			if rdr.Type == hpi.SensorRDR && rdr.Sensor != nil {
				return fmt.Sprintf("/v1/resources/%d/sensors/%d", e.ResourceID, rdr.Sensor.Num)
			}
		}
	}
	return "/v1/resources"
}

// sensorBody serves srv on a private loopback port for one request and
// returns the body of GET path.
func sensorBody(ctx context.Context, srv *api.Server, ca *pki.CA, client *pki.Cert, path string) ([]byte, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening for the reference request: %w", err)
	}
	sctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(sctx, l) }()
	defer func() { cancel(); <-errc }()
	tc, err := pki.TLSConfigClient(ca, client)
	if err != nil {
		return nil, fmt.Errorf("client TLS configuration: %w", err)
	}
	tr := &http.Transport{TLSClientConfig: tc}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+l.Addr().String()+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("reference GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("reference GET %s: status %d: %v %s", path, resp.StatusCode, err, body)
	}
	return body, nil
}
