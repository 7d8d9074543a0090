// Package loopback finds addresses for tests that run several cluster
// nodes in one machine: each node on its own random 127.x.y.z address,
// with ports free at the time of the call.
package loopback

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"testing"
)

// Host returns a random 127.x.y.z address (x 1..250, z 2..251).
func Host() string {
	return fmt.Sprintf("127.%d.%d.%d", 1+rand.IntN(250), rand.IntN(256), 2+rand.IntN(250))
}

// Ports returns n distinct ports free for TCP on host; the first is free
// for UDP too (memberlist uses both on one port).
func Ports(t testing.TB, host string, n int) []int {
	t.Helper()
	var ports []int
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	for tries := 0; len(ports) < n; tries++ {
		if tries > 100*n {
			t.Fatalf("no %d free ports on %s", n, host)
		}
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			t.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		if len(ports) == 0 {
			u, err := net.ListenPacket("udp", net.JoinHostPort(host, strconv.Itoa(p)))
			if err != nil {
				l.Close()
				continue
			}
			closers = append(closers, u)
		}
		closers = append(closers, l)
		ports = append(ports, p)
	}
	return ports
}

// ClusterAddrs returns the gossip, raft and RPC host:port of one node on
// a random loopback host.
func ClusterAddrs(t testing.TB) (gossip, raft, rpc string) {
	t.Helper()
	h := Host()
	p := Ports(t, h, 3)
	j := func(p int) string { return net.JoinHostPort(h, strconv.Itoa(p)) }
	return j(p[0]), j(p[1]), j(p[2])
}
