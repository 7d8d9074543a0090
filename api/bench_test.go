package api_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"hpiagent/api"
	"hpiagent/api/apitest"
	"hpiagent/hpi"
)

// BenchmarkSensorRead reads cached sensor values over mutual TLS with
// keep-alive connections from parallel clients, and reports requests per
// second and the 99th percentile latency.
func BenchmarkSensorRead(b *testing.B) {
	const sensors = 1024
	d, err := apitest.SyntheticDomain(sensors)
	if err != nil {
		b.Fatal(err)
	}
	ca, err := apitest.NewCA("bench CA")
	if err != nil {
		b.Fatal(err)
	}
	sc, err := ca.Server()
	if err != nil {
		b.Fatal(err)
	}
	cc, err := ca.Client("bench", identity("bench"))
	if err != nil {
		b.Fatal(err)
	}
	srv, err := api.New(api.Config{Certificate: &sc, ClientCAs: ca.Pool, Roles: map[string][]api.Role{identity("bench"): {api.RoleViewer}},
		RateLimit: 1e9, RateBurst: 1e9, Logger: nil}, api.Deps{Domain: d, Auditor: &apitest.Auditor{}})
	if err != nil {
		b.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	defer func() { cancel(); <-done }()
	tr := &http.Transport{TLSClientConfig: ca.ClientTLS(cc), MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	base := "https://" + l.Addr().String()
	res := d.Resources()
	var (
		mu   sync.Mutex
		lats []time.Duration
	)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var local []time.Duration
		i := 0
		for pb.Next() {
			r := res[i%len(res)]
			u := fmt.Sprintf("%s/v1/resources/%d/sensors/%d", base, r.ResourceID, hpi.SensorNum(1+i%64))
			i++
			t0 := time.Now()
			resp, err := c.Get(u)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
			local = append(local, time.Since(t0))
		}
		mu.Lock()
		lats = append(lats, local...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if len(lats) == 0 {
		return
	}
	slices.Sort(lats)
	b.ReportMetric(float64(len(lats))/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(lats[len(lats)*99/100].Microseconds()), "p99-µs")
}
