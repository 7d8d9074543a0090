package pki

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func newCA(t testing.TB) *CA {
	t.Helper()
	ca, err := NewCA("test-ca", time.Hour*24)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func issue(t testing.TB, ca *CA, name string, k Kind) *Cert {
	t.Helper()
	c, err := ca.Issue(IssueRequest{Name: name, Kind: k, DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestIssuedCertsVerifyWithTheirUsage(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	tests := []struct {
		kind       Kind
		serverAuth bool
		clientAuth bool
	}{
		{KindServer, true, false},
		{KindClient, false, true},
		{KindPeer, true, true},
	}
	for _, tc := range tests {
		c := issue(t, ca, "n1", tc.kind)
		for _, u := range []struct {
			usage x509.ExtKeyUsage
			want  bool
		}{{x509.ExtKeyUsageServerAuth, tc.serverAuth}, {x509.ExtKeyUsageClientAuth, tc.clientAuth}} {
			_, err := c.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{u.usage}})
			if (err == nil) != u.want {
				t.Errorf("%s cert, usage %v: verify err %v, want ok=%v", tc.kind, u.usage, err, u.want)
			}
		}
		if c.Cert.IsCA {
			t.Errorf("%s cert is a CA", tc.kind)
		}
		id, err := Identity(c.Cert)
		if want := "hpiagent://" + string(tc.kind) + "/n1"; err != nil || id != want {
			t.Errorf("%s identity %q %v, want %q", tc.kind, id, err, want)
		}
	}
	other := newCA(t)
	c := issue(t, ca, "n1", KindClient)
	if _, err := c.Cert.Verify(x509.VerifyOptions{Roots: other.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("certificate verified against another CA")
	}
}

func TestIssueRefuses(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	keyless := &CA{Cert: ca.Cert}
	tests := []struct {
		name string
		ca   *CA
		req  IssueRequest
	}{
		{"bad name", ca, IssueRequest{Name: "a/b", Kind: KindClient}},
		{"empty name", ca, IssueRequest{Kind: KindClient}},
		{"leading dash", ca, IssueRequest{Name: "-x", Kind: KindClient}},
		{"bad kind", ca, IssueRequest{Name: "a", Kind: "admin"}},
		{"our scheme in extra URIs", ca, IssueRequest{Name: "a", Kind: KindClient, URIs: []*url.URL{IdentityURI(KindServer, "b")}}},
		{"outlasts CA", ca, IssueRequest{Name: "a", Kind: KindClient, Validity: 48 * time.Hour}},
		{"CA without key", keyless, IssueRequest{Name: "a", Kind: KindClient}},
	}
	for _, tc := range tests {
		if _, err := tc.ca.Issue(tc.req); err == nil {
			t.Errorf("%s: Issue succeeded", tc.name)
		}
	}
}

// handshake runs one TLS handshake over a real loopback socket and returns
// the server's and the client's errors.
func handshake(t *testing.T, srv, cli *tls.Config) (serverErr, clientErr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		tc := tls.Server(c, srv)
		err = tc.HandshakeContext(context.Background())
		if err == nil {
			// TLS 1.3 client certificates are checked after the client's
			// handshake returns: read so the client sees the verdict.
			_, err = tc.Write([]byte("ok"))
		}
		done <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := tls.Dialer{Config: cli}
	c, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err == nil {
		buf := make([]byte, 2)
		_, err = io.ReadFull(c, buf)
		c.Close()
	}
	return <-done, err
}

func TestMutualTLS(t *testing.T) {
	t.Parallel()
	ca, other := newCA(t), newCA(t)
	tls12 := func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS12, tls.VersionTLS12 }
	noCert := func(c *tls.Config) { c.Certificates = nil }
	tests := []struct {
		name           string
		serverCA       *CA
		serverKind     Kind
		clientCA       *CA // issuer of the client's certificate
		clientKind     Kind
		tweakClient    func(*tls.Config)
		wantOK         bool
		wantErrContain string
	}{
		{"server and client", ca, KindServer, ca, KindClient, nil, true, ""},
		{"peers", ca, KindPeer, ca, KindPeer, nil, true, ""},
		{"client cert as server cert", ca, KindClient, ca, KindClient, nil, false, "usage"},
		{"server cert as client cert", ca, KindServer, ca, KindServer, nil, false, ""},
		{"client of another CA", ca, KindServer, other, KindClient, nil, false, ""},
		{"no client cert", ca, KindServer, ca, KindClient, noCert, false, ""},
		{"TLS 1.2 client", ca, KindServer, ca, KindClient, tls12, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srvCfg, err := TLSConfigServer(ca, issue(t, tc.serverCA, "srv", tc.serverKind))
			if err != nil {
				t.Fatal(err)
			}
			cliCfg, err := TLSConfigClient(ca, issue(t, tc.clientCA, "cli", tc.clientKind))
			if err != nil {
				t.Fatal(err)
			}
			cliCfg.ServerName = "localhost"
			if tc.tweakClient != nil {
				tc.tweakClient(cliCfg)
			}
			serr, cerr := handshake(t, srvCfg, cliCfg)
			if ok := serr == nil && cerr == nil; ok != tc.wantOK {
				t.Fatalf("server err %v, client err %v; want ok=%v", serr, cerr, tc.wantOK)
			}
			if tc.wantErrContain != "" && (cerr == nil || !strings.Contains(cerr.Error(), tc.wantErrContain)) {
				t.Fatalf("client err %v, want it to mention %q", cerr, tc.wantErrContain)
			}
		})
	}
}

func TestSaveLoad(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "pki")
	ca := newCA(t)
	if err := ca.Save(dir); err != nil {
		t.Fatal(err)
	}
	c := issue(t, ca, "node1", KindPeer)
	if err := c.Save(dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		path string
		mode os.FileMode
	}{{filepath.Join(dir, CAKeyFile), 0o600}, {KeyFile(dir, "node1"), 0o600}, {CertFile(dir, "node1"), 0o644}, {dir, 0o700}} {
		fi, err := os.Stat(f.path)
		if err != nil || fi.Mode().Perm() != f.mode {
			t.Errorf("%s: mode %v %v, want %v", f.path, fi.Mode().Perm(), err, f.mode)
		}
	}
	ca2, err := LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := LoadCert(dir, "node1")
	if err != nil {
		t.Fatal(err)
	}
	if !ca2.Cert.Equal(ca.Cert) || !c2.Cert.Equal(c.Cert) {
		t.Fatal("loaded certificates differ from saved")
	}
	if !ca2.Key.Public().(*ecdsa.PublicKey).Equal(ca.Key.Public()) || !c2.Key.Public().(*ecdsa.PublicKey).Equal(c.Key.Public()) {
		t.Fatal("loaded keys differ from saved")
	}
	// The loaded CA can still issue, and what it issues verifies against the original.
	c3 := issue(t, ca2, "node2", KindClient)
	if _, err := c3.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Save(dir); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second Save: %v", err)
	}
	// A CA copy without its key loads and verifies but cannot issue.
	nodeDir := t.TempDir()
	b, _ := os.ReadFile(filepath.Join(dir, CACertFile))
	os.WriteFile(filepath.Join(nodeDir, CACertFile), b, 0o644)
	ca3, err := LoadCA(nodeDir)
	if err != nil || ca3.Key != nil {
		t.Fatalf("LoadCA without key: %v %v", ca3, err)
	}
	// A key readable by others is refused.
	os.Chmod(KeyFile(dir, "node1"), 0o644)
	if _, err := LoadCert(dir, "node1"); err == nil || !strings.Contains(err.Error(), "group or others") {
		t.Fatalf("LoadCert with a 0644 key: %v", err)
	}
	// A key of another certificate is refused.
	os.Chmod(KeyFile(dir, "node1"), 0o600)
	if _, err := LoadKeyPair(CertFile(dir, "node1"), filepath.Join(dir, CAKeyFile)); err == nil {
		t.Fatal("mismatched key pair loaded")
	}
}

// foreignCert makes a certificate by hand for Identity's edge cases.
func foreignCert(t *testing.T, cn string, uris []string, eku []x509.ExtKeyUsage) *x509.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: eku}
	for _, s := range uris {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestIdentity(t *testing.T) {
	t.Parallel()
	cli := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	tests := []struct {
		name string
		cn   string
		uris []string
		eku  []x509.ExtKeyUsage
		want string // "" = error
	}{
		{"our URI", "ops", []string{"hpiagent://client/ops"}, cli, "hpiagent://client/ops"},
		{"our URI after another scheme", "ops", []string{"spiffe://x/y", "hpiagent://client/ops"}, cli, "hpiagent://client/ops"},
		{"scheme in capitals", "ops", []string{"HPIAGENT://client/ops"}, cli, "hpiagent://client/ops"},
		{"CN only", "ops", nil, cli, "ops"},
		{"other scheme then CN", "ops", []string{"spiffe://x/y"}, cli, "ops"},
		{"CN posing as URI", "hpiagent://client/admin", nil, cli, ""},
		{"two of our URIs", "ops", []string{"hpiagent://client/ops", "hpiagent://client/admin"}, cli, ""},
		{"kind without its usage", "ops", []string{"hpiagent://server/ops"}, cli, ""},
		{"peer kind with client usage only", "ops", []string{"hpiagent://peer/ops"}, cli, ""},
		{"unknown kind", "ops", []string{"hpiagent://admin/ops"}, cli, ""},
		{"bad name", "ops", []string{"hpiagent://client/a/b"}, cli, ""},
		{"query", "ops", []string{"hpiagent://client/ops?x=1"}, cli, ""},
		{"user", "ops", []string{"hpiagent://u@client/ops"}, cli, ""},
		{"nothing", "", nil, cli, ""},
	}
	for _, tc := range tests {
		got, err := Identity(foreignCert(t, tc.cn, tc.uris, tc.eku))
		if tc.want == "" {
			if err == nil {
				t.Errorf("%s: identity %q, want an error", tc.name, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: identity %q %v, want %q", tc.name, got, err, tc.want)
		}
	}
	if _, err := Identity(nil); err == nil {
		t.Error("nil certificate has an identity")
	}
}

func FuzzParseIdentity(f *testing.F) {
	for _, s := range []string{"hpiagent://client/ops", "hpiagent://peer/n.1", "hpiagent://server/", "spiffe://a/b", "hpiagent://client/ops?x", "hpiagent:opaque", "%zz", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, name, err := ParseIdentity(s)
		if err != nil {
			return
		}
		if ValidName(name) != nil {
			t.Fatalf("%q: accepted bad name %q", s, name)
		}
		canon := IdentityURI(k, name).String()
		k2, n2, err := ParseIdentity(canon)
		if err != nil || k2 != k || n2 != name {
			t.Fatalf("%q: canonical %q does not round-trip: %v", s, canon, err)
		}
	})
}

// TestOpenSSLAgrees checks the saved files with an independent
// implementation: openssl verify, by purpose.
func TestOpenSSLAgrees(t *testing.T) {
	t.Parallel()
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	dir := t.TempDir()
	ca := newCA(t)
	if err := ca.Save(dir); err != nil {
		t.Fatal(err)
	}
	for _, k := range []Kind{KindServer, KindClient, KindPeer} {
		if err := issue(t, ca, string(k), k).Save(dir); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name, purpose string
		ok            bool
	}{
		{"server", "sslserver", true}, {"server", "sslclient", false},
		{"client", "sslclient", true}, {"client", "sslserver", false},
		{"peer", "sslserver", true}, {"peer", "sslclient", true},
	}
	for _, tc := range tests {
		out, err := exec.Command(openssl, "verify", "-CAfile", filepath.Join(dir, CACertFile), "-purpose", tc.purpose, CertFile(dir, tc.name)).CombinedOutput()
		if (err == nil) != tc.ok {
			t.Errorf("openssl verify %s as %s: %v\n%s", tc.name, tc.purpose, err, out)
		}
	}
	// The key files parse for openssl too.
	if out, err := exec.Command(openssl, "pkey", "-in", KeyFile(dir, "peer"), "-noout").CombinedOutput(); err != nil {
		t.Errorf("openssl pkey: %v\n%s", err, out)
	}
}
