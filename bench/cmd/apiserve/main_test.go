package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hpiagent/internal/pki"
)

// serveMode starts Serve in mode on loopback and returns its Ready.
func serveMode(t *testing.T, mode string, sensors int) Ready {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	readyc := make(chan Ready, 1)
	errc := make(chan error, 1)
	cfg := Config{Dir: filepath.Join(t.TempDir(), "d"), Mode: mode, Sensors: sensors, Logger: slog.New(slog.DiscardHandler)}
	go func() { errc <- Serve(ctx, cfg, func(r Ready) error { readyc <- r; return nil }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Serve %s: %v", mode, err)
		}
	})
	select {
	case r := <-readyc:
		return r
	case err := <-errc:
		t.Fatalf("Serve %s: %v", mode, err)
	case <-time.After(30 * time.Second):
		t.Fatalf("Serve %s did not become ready", mode)
	}
	return Ready{}
}

// get fetches path from r's server, with the client certificate when
// withCert is set.
func get(t *testing.T, r Ready, path string, withCert bool) (int, []byte, error) {
	t.Helper()
	tc := &tls.Config{MinVersion: tls.VersionTLS13}
	if strings.HasPrefix(r.URL, "https://") {
		ca, err := pki.LoadCA(filepath.Dir(r.CA))
		if err != nil {
			t.Fatal(err)
		}
		tc.RootCAs = ca.Pool()
		if withCert {
			c, err := pki.LoadKeyPair(r.Cert, r.Key)
			if err != nil {
				t.Fatal(err)
			}
			tc.Certificates = []tls.Certificate{c.TLSCertificate()}
		}
	}
	tr := &http.Transport{TLSClientConfig: tc}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(r.URL + path)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func firstLine(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return line
}

// TestBaselineServesTheAPIBody: every baseline answers with exactly the
// body the API gives for the first sensor, so that the benchmark compares
// like with like; the mutual-TLS servers refuse a client without a
// certificate.
func TestBaselineServesTheAPIBody(t *testing.T) {
	t.Parallel()
	const sensors = 130
	apiSrv := serveMode(t, "api", sensors)
	if apiSrv.Resources != 3 || apiSrv.Sensors != sensors {
		t.Errorf("ready = %+v, want 3 resources and %d sensors", apiSrv, sensors)
	}
	if n := strings.Count(string(must(os.ReadFile(apiSrv.SensorPaths))), "\n"); n != sensors {
		t.Errorf("%d sensor paths, want %d", n, sensors)
	}
	status, apiBody, err := get(t, apiSrv, firstLine(t, apiSrv.SensorPaths), true)
	if err != nil || status != http.StatusOK {
		t.Fatalf("API GET of the first sensor: %d %v %s", status, err, apiBody)
	}
	if _, _, err := get(t, apiSrv, "/v1/resources", false); err == nil {
		t.Error("the API answered a client without a certificate")
	}
	if status, b, err := get(t, apiSrv, firstLine(t, apiSrv.RDRPaths), true); err != nil || status != http.StatusOK || !bytes.Contains(b, []byte("SENSOR_RDR")) {
		t.Errorf("API GET of the RDRs: %d %v %.200s", status, err, b)
	}

	tests := []struct {
		mode      string
		needsCert bool
	}{
		{"static-mtls", true},
		{"static-tls", false},
		{"static-plain", false},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			t.Parallel()
			r := serveMode(t, tt.mode, sensors)
			status, body, err := get(t, r, "/anything", true)
			if err != nil || status != http.StatusOK {
				t.Fatalf("GET: %d %v", status, err)
			}
			// Timestamps aside, the body is the API's sensor body: same
			// size, same fields.
			if len(body) != r.StaticBytes || !sameShape(body, apiBody) {
				t.Errorf("baseline body %s\nAPI body      %s", body, apiBody)
			}
			_, _, err = get(t, r, "/anything", false)
			if tt.needsCert != (err != nil) {
				t.Errorf("GET without a client certificate: error %v, want an error: %v", err, tt.needsCert)
			}
		})
	}
}

// sameShape compares two JSON bodies ignoring digits (timestamps).
func sameShape(a, b []byte) bool {
	strip := func(s []byte) string {
		return strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return -1
			}
			return r
		}, string(s))
	}
	return strip(a) == strip(b)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestServeRefusesBadConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no directory", Config{Mode: "api"}, "directory"},
		{"unknown mode", Config{Dir: t.TempDir(), Mode: "h2c"}, "mode"},
	}
	for _, tt := range tests {
		err := Serve(context.Background(), tt.cfg, func(Ready) error { return nil })
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want one naming %q", tt.name, err, tt.want)
		}
	}
}
