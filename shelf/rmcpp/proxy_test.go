package rmcpp

import (
	"errors"
	"net"
	"sync"
	"testing"
)

// proxy is an in-process UDP relay between one client and a BMC whose
// hooks may drop, modify, duplicate or inject packets.
type proxy struct {
	front, back *net.UDPConn
	mu          sync.Mutex
	client      *net.UDPAddr
	toClient    func(b []byte) [][]byte
	toServer    func(b []byte) [][]byte
	wg          sync.WaitGroup
}

func startProxy(t testing.TB, upstream string) *proxy {
	t.Helper()
	front, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ua, err := net.ResolveUDPAddr("udp", upstream)
	if err != nil {
		t.Fatal(err)
	}
	back, err := net.DialUDP("udp", nil, ua)
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{front: front, back: back}
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		buf := make([]byte, 4096)
		for {
			n, from, err := front.ReadFromUDP(buf)
			if err != nil {
				return
			}
			p.mu.Lock()
			p.client = from
			hook := p.toServer
			p.mu.Unlock()
			for _, b := range apply(hook, buf[:n]) {
				back.Write(b)
			}
		}
	}()
	go func() {
		defer p.wg.Done()
		buf := make([]byte, 4096)
		for {
			n, err := back.Read(buf)
			if err != nil {
				if ne, ok := err.(net.Error); ok && !ne.Timeout() && isClosed(err) {
					return
				}
				continue
			}
			p.mu.Lock()
			to, hook := p.client, p.toClient
			p.mu.Unlock()
			if to == nil {
				continue
			}
			for _, b := range apply(hook, buf[:n]) {
				front.WriteToUDP(b, to)
			}
		}
	}()
	t.Cleanup(func() {
		front.Close()
		back.Close()
		p.wg.Wait()
	})
	return p
}

func isClosed(err error) bool {
	return err != nil && (errorsIsClosed(err))
}

func apply(hook func([]byte) [][]byte, b []byte) [][]byte {
	c := append([]byte(nil), b...)
	if hook == nil {
		return [][]byte{c}
	}
	return hook(c)
}

func (p *proxy) Addr() string { return p.front.LocalAddr().String() }

func (p *proxy) setToClient(f func([]byte) [][]byte) {
	p.mu.Lock()
	p.toClient = f
	p.mu.Unlock()
}

func (p *proxy) setToServer(f func([]byte) [][]byte) {
	p.mu.Lock()
	p.toServer = f
	p.mu.Unlock()
}

// inject sends b to the client as if it came from the BMC.
func (p *proxy) inject(b []byte) {
	p.mu.Lock()
	to := p.client
	p.mu.Unlock()
	if to != nil {
		p.front.WriteToUDP(b, to)
	}
}

func errorsIsClosed(err error) bool { return errors.Is(err, net.ErrClosed) }
