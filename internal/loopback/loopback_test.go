package loopback

import (
	"net"
	"strings"
	"testing"
)

func TestClusterAddrs(t *testing.T) {
	g, r, p := ClusterAddrs(t)
	hosts := map[string]bool{}
	ports := map[string]bool{}
	for _, a := range []string{g, r, p} {
		h, port, err := net.SplitHostPort(a)
		if err != nil || !strings.HasPrefix(h, "127.") {
			t.Fatalf("address %q: %v", a, err)
		}
		hosts[h], ports[port] = true, true
	}
	if len(hosts) != 1 || len(ports) != 3 {
		t.Fatalf("want one host and three ports: %s %s %s", g, r, p)
	}
	// The gossip port is free for both TCP and UDP.
	l, err := net.Listen("tcp", g)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	u, err := net.ListenPacket("udp", g)
	if err != nil {
		t.Fatal(err)
	}
	u.Close()
}
