package main

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"hpiagent/api"
	"hpiagent/api/audit"
	"hpiagent/hpi"
	"hpiagent/internal/pki"
	"hpiagent/shelf"
	"hpiagent/shelf/pet"
	"hpiagent/shelf/sim"
)

// startSimShelf starts the embedded shelf on loopback with one user and
// returns it with its address.
func startSimShelf(t *testing.T, ctx context.Context, password string) (*sim.Shelf, string) {
	t.Helper()
	cfg := sim.DefaultConfig()
	cfg.Users = []sim.User{{Name: "hpiagent", Password: password, MaxPrivilege: sim.PrivAdmin}}
	cfg.Start = time.Now()
	log := newLogger(os.Stderr, "error")
	sh, err := sim.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sim.Listen(ctx, sh, "127.0.0.1:0", log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	go sh.RunClock(ctx, 100*time.Millisecond)
	return sh, srv.Addr().String()
}

// notifications collects sd_notify datagrams.
type notifications struct {
	c  *net.UnixConn
	ch chan string
}

func newNotifications(t *testing.T) (string, *notifications) {
	addr, c := listenNotify(t, true)
	n := &notifications{c: c, ch: make(chan string, 1024)}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := c.Read(buf)
			if err != nil {
				close(n.ch)
				return
			}
			n.ch <- string(buf[:k])
		}
	}()
	return addr, n
}

// await returns the first notification containing want, skipping others
// (kept in skipped).
func (n *notifications) await(t *testing.T, want string) string {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case m, ok := <-n.ch:
			if !ok {
				t.Fatalf("notify socket closed while waiting for %q", want)
			}
			if strings.Contains(m, want) {
				return m
			}
		case <-timeout:
			t.Fatalf("no %q notification", want)
		}
	}
}

// TestDaemonLifecycle runs the daemon against the embedded shelf with
// systemd's notify socket and watchdog: READY=1 with a status after the
// first discovery, watchdog pings, a reload that applies, a bad reload that
// is refused while the old configuration and the domain's subscriptions
// stay, secrets never in the debug log, STOPPING=1 and a clean exit with
// every step in the audit log.
func TestDaemonLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the embedded shelf and the API")
	}
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const password = "shelf-pw-3f9a1c"
	sh, shelfAddr := startSimShelf(t, ctx, password)
	dir := t.TempDir()
	dp, err := writeDemoFiles(dir, shelfAddr, password, "127.0.0.1:0", time.Second, "debug")
	if err != nil {
		t.Fatal(err)
	}
	goodConfig, err := os.ReadFile(dp.config)
	if err != nil {
		t.Fatal(err)
	}
	apiKey, err := os.ReadFile(filepath.Join(dir, "hpiagent-demo.key"))
	if err != nil {
		t.Fatal(err)
	}

	notifyAddr, notes := newNotifications(t)
	env := map[string]string{"NOTIFY_SOCKET": notifyAddr, "WATCHDOG_USEC": "400000"}
	var stderr syncBuffer
	reload := make(chan os.Signal, 1)
	reloaded := make(chan error, 1)
	subs := make(chan *hpi.Subscription, 1)
	domains := make(chan *hpi.Domain, 1)
	done := make(chan error, 1)
	apiAddrs := make(chan net.Addr, 1)
	go func() {
		done <- runDaemon(ctx, daemonOptions{
			ConfigPath: dp.config, Stderr: &stderr, Reload: reload,
			Getenv:    func(k string) string { return env[k] },
			LookupEnv: func(string) (string, bool) { return "", false },
			OnReload:  func(err error) { reloaded <- err },
			OnReady:   func(a net.Addr, _ string) { apiAddrs <- a },
			Domain: func(c hpi.Config) *hpi.Domain {
				d := hpi.NewDomain(c)
				s, err := d.Subscribe(4096)
				if err != nil {
					t.Error(err)
				}
				subs <- s
				domains <- d
				return d
			},
		})
	}()
	sub, domain := <-subs, <-domains

	ready := notes.await(t, "READY=1")
	if !regexp.MustCompile(`STATUS=1/1 shelves discovered, [1-9][0-9]* resources, API on 127\.0\.0\.1:\d+`).MatchString(ready) {
		t.Errorf("READY notification %q lacks the status", ready)
	}
	if len(domain.Resources()) == 0 {
		t.Fatal("READY=1 before any resource was discovered")
	}
	notes.await(t, "WATCHDOG=1")

	// An API event stream opened before the reloads.
	apiAddr := <-apiAddrs
	ca, err := pki.LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	operator, err := pki.LoadCert(dir, "demo-operator")
	if err != nil {
		t.Fatal(err)
	}
	tc, err := pki.TLSConfigClient(ca, operator)
	if err != nil {
		t.Fatal(err)
	}
	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	req, _ := http.NewRequestWithContext(sctx, "GET", "https://"+apiAddr.String()+"/v1/events", nil)
	resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: tc}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/events: %s", resp.Status)
	}
	streamed := make(chan string, 4096)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			streamed <- sc.Text()
		}
		close(streamed)
	}()

	doReload := func(content string) error {
		t.Helper()
		if err := os.WriteFile(dp.config, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		reload <- os.Interrupt // any signal value: the channel is the request
		notes.await(t, "RELOADING=1\nMONOTONIC_USEC=")
		err := <-reloaded
		notes.await(t, "READY=1")
		return err
	}

	// A bad configuration is refused, naming key and line.
	bad := strings.Replace(string(goodConfig), "monitor:\n", "monitor:\n  poll_intervall: 2s\n", 1)
	err = doReload(bad)
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Key != "monitor.poll_intervall" || ce.Line == 0 {
		t.Errorf("bad reload: %v, want an error naming monitor.poll_intervall and its line", err)
	}
	if !strings.Contains(stderr.String(), "configuration refused; the running configuration stays") {
		t.Errorf("no refusal in the log")
	}
	// A world-readable secret file is refused too.
	pwFile := filepath.Join(dir, "open.password")
	os.WriteFile(pwFile, []byte(password), 0o644)
	os.Chmod(pwFile, 0o644)
	if err := doReload(strings.Replace(string(goodConfig), filepath.Join(dir, "shelf.password"), pwFile, 1)); err == nil || !strings.Contains(err.Error(), "chmod 600") || !strings.Contains(err.Error(), "shelves[0].password") {
		t.Errorf("reload with a world-readable password file: %v", err)
	}
	// A change that needs a restart is refused as a whole.
	if err := doReload(strings.Replace(string(goodConfig), "name: demo", "name: other", 1)); err == nil || !strings.Contains(err.Error(), "need a restart") {
		t.Errorf("reload renaming the shelf: %v", err)
	}
	// A good one applies: the log level goes from debug to warn (and
	// lines that only moved are no change).
	if err := doReload("# moved down a line\n" + strings.Replace(string(goodConfig), "log_level: debug", "log_level: warn", 1)); err != nil {
		t.Fatalf("good reload: %v", err)
	}
	if !strings.Contains(stderr.String(), "configuration reloaded") {
		t.Error("no reload line in the log")
	}
	before := len(stderr.String())
	if err := doReload(strings.Replace(string(goodConfig), "log_level: debug", "log_level: warn", 1)); err != nil {
		t.Fatalf("second good reload: %v", err)
	}
	if after := stderr.String()[before:]; strings.Contains(after, "level=INFO") || strings.Contains(after, "level=DEBUG") {
		t.Errorf("info or debug lines after the level went to warn:\n%s", after)
	}

	// The subscription made before the reloads still delivers: a blade
	// extraction shows up as hot-swap events.
	var blade uint8
	for _, a := range sh.Addrs() {
		if a != sh.Config().Addr {
			blade = a
			break
		}
	}
	if err := sh.Extract(blade); err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
	defer rcancel()
	for {
		e, err := sub.Receive(rctx)
		var oe *hpi.OverflowError
		if errors.As(err, &oe) {
			continue
		}
		if err != nil {
			t.Fatalf("subscription after reloads: %v", err)
		}
		if e.Type == hpi.EventHotSwap && e.HotSwap.HotSwapState == hpi.HsStateExtractionPending {
			break
		}
	}

	// ... and the API stream opened before the reloads too.
	for found := false; !found; {
		select {
		case l, ok := <-streamed:
			if !ok {
				t.Fatal("the API event stream ended across the reloads")
			}
			found = strings.HasPrefix(l, "data:") && strings.Contains(l, "EXTRACTION_PENDING")
		case <-rctx.Done():
			t.Fatal("no hot-swap event on the API stream opened before the reloads")
		}
	}
	scancel()

	cancel()
	notes.await(t, "STOPPING=1")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("runDaemon: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the daemon did not stop")
	}

	logs := stderr.String()
	if !strings.Contains(logs, "level=DEBUG") {
		t.Error("the debug log is empty; the secret check below would prove nothing")
	}
	for _, secret := range []string{password, strings.TrimSpace(string(apiKey)), "MIG"} {
		if strings.Contains(logs, secret) {
			t.Errorf("a secret reached the log: %q", secret)
		}
	}
	f, err := os.Open(filepath.Join(dir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := audit.Verify(f)
	if err != nil {
		t.Fatalf("audit log does not verify: %v", err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "audit.log"))
	for _, want := range []string{`"action":"agent.start"`, `"action":"config.reload","target":"hpiagent","result":"refused"`, `"action":"config.reload","target":"hpiagent","result":"ok"`, `"action":"agent.stop"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("audit log lacks %s:\n%s", want, b)
		}
	}
	if rep.ProblemCount != 0 || rep.Records < 7 { // start, 5 reloads, stop
		t.Errorf("audit log: %+v", rep)
	}
}

// TestDaemonRefusesBadStart checks that the daemon does not start with a
// configuration or a secret it cannot use, and says which key on which line.
func TestDaemonRefusesBadStart(t *testing.T) {
	dir := t.TempDir()
	open := filepath.Join(dir, "open.pw")
	os.WriteFile(open, []byte("secret-value-123"), 0o644)
	os.Chmod(open, 0o644)
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown key", "shelves:\n  - name: a\n    adress: x\n", "line 3: shelves[0].adress: unknown key"},
		{"world-readable password", "shelves:\n  - name: a\n    address: 127.0.0.1:1\n    username: u\n    password: {file: " + open + "}\n", "line 5: shelves[0].password: refusing secret file"},
		{"prompt without a terminal", "shelves:\n  - name: a\n    address: 127.0.0.1:1\n    username: u\n    password: {prompt: true}\n", "line 5: shelves[0].password: prompt: no terminal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, "c.yaml")
			os.WriteFile(p, []byte(tc.yaml), 0o600)
			var stderr syncBuffer
			err := runDaemon(context.Background(), daemonOptions{ConfigPath: p, Stderr: &stderr,
				Getenv: func(string) string { return "" }, LookupEnv: func(string) (string, bool) { return "", false }})
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error()+stderr.String(), "secret-value-123") {
				t.Errorf("err = %v, want it to contain %q (and no secret)", err, tc.want)
			}
		})
	}
}

// TestDaemonTwoShelves runs one agent over two shelf managers: one domain
// holds both shelves under different chassis entity paths, and a hardware
// action on a resource goes to the shelf that owns it.
func TestDaemonTwoShelves(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two embedded shelves")
	}
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const pwA, pwB = "password-of-a-1", "password-of-b-2"
	_, addrA := startSimShelf(t, ctx, pwA)
	_, addrB := startSimShelf(t, ctx, pwB)
	dir := t.TempDir()
	for name, pw := range map[string]string{"a.pw": pwA, "b.pw": pwB} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(pw), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfgPath := filepath.Join(dir, "hpiagent.yaml")
	y := "audit: {path: " + filepath.Join(dir, "audit.log") + "}\nshelves:\n" +
		"  - {name: a, address: \"" + addrA + "\", username: hpiagent, password: {file: " + filepath.Join(dir, "a.pw") + "}}\n" +
		"  - {name: b, address: \"" + addrB + "\", username: hpiagent, password: {file: " + filepath.Join(dir, "b.pw") + "}, chassis_instance: 7}\n"
	if err := os.WriteFile(cfgPath, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	started := make(chan *daemon, 1)
	readyc := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- runDaemon(ctx, daemonOptions{ConfigPath: cfgPath, Stderr: &stderr,
			Getenv: func(string) string { return "" }, LookupEnv: func(string) (string, bool) { return "", false },
			started: func(d *daemon) { started <- d },
			OnReady: func(net.Addr, string) { close(readyc) }})
	}()
	d := <-started
	select {
	case <-readyc:
	case err := <-done:
		t.Fatalf("daemon ended: %v\n%s", err, stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("not ready")
	}
	if !strings.Contains(d.status(), "2/2 shelves discovered") {
		t.Fatalf("status %q", d.status())
	}
	// The same blade of each shelf, told apart by the chassis instance.
	bladeOf := map[int]hpi.RPTEntry{}
	perChassis := map[int]int{}
	for _, r := range d.domain.Resources() {
		p := r.EntityPath
		root := p[len(p)-1]
		if root.Type != hpi.EntAdvancedTCAChassis {
			t.Errorf("resource %d: entity path %s not under a chassis", r.ResourceID, p)
			continue
		}
		perChassis[int(root.Location)]++
		if _, seen := bladeOf[int(root.Location)]; !seen && p[0].Type == hpi.EntPICMGFrontBlade {
			bladeOf[int(root.Location)] = r
		}
	}
	if len(perChassis) != 2 || perChassis[1] == 0 || perChassis[1] != perChassis[7] {
		t.Fatalf("resources per chassis: %v, want the same number under chassis 1 and 7", perChassis)
	}
	a, b := bladeOf[1], bladeOf[7]
	if a.ResourceID == 0 || b.ResourceID == 0 || a.ResourceID == b.ResourceID || a.Tag != b.Tag {
		t.Fatalf("blades: %+v", bladeOf)
	}
	// Power off the blade of shelf b only; read both back.
	hw := &hardwareRouter{d: d}
	actx, acancel := context.WithTimeout(ctx, 30*time.Second)
	defer acancel()
	if err := hw.SetPowerState(actx, b.ResourceID, hpi.PowerOff); err != nil {
		t.Fatalf("powering off resource %d on shelf b: %v", b.ResourceID, err)
	}
	sa, errA := hw.PowerState(actx, a.ResourceID)
	sb, errB := hw.PowerState(actx, b.ResourceID)
	if errA != nil || errB != nil || sa != hpi.PowerOn || sb != hpi.PowerOff {
		t.Errorf("power after powering off b's blade: a %v (%v), b %v (%v); want a on, b off", sa, errA, sb, errB)
	}
	if _, err := hw.PowerState(actx, 999999); !errors.Is(err, hpi.ErrInvalidResource) {
		t.Errorf("unknown resource: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestDaemonPETTraps sends PETs with net-snmp's snmptrap to the agent's
// receiver, configured with passphrases from systemd credentials: an
// SNMPv3 authPriv trap from the shelf manager's address reaches that
// shelf's Monitor, a v2c trap is refused.
func TestDaemonPETTraps(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the embedded shelf and sends traps")
	}
	if _, err := exec.LookPath("snmptrap"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("snmptrap (Debian package snmp) is not installed")
		}
		t.Skip("snmptrap (Debian package snmp) is not installed")
	}
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const password = "shelf-pw-77"
	_, shelfAddr := startSimShelf(t, ctx, password)
	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials")
	os.Mkdir(creds, 0o700)
	for name, v := range map[string]string{"shelf.password": password, "pet-auth": "pet-auth-passphrase", "pet-priv": "pet-priv-passphrase"} {
		if err := os.WriteFile(filepath.Join(creds, name), []byte(v), 0o400); err != nil {
			t.Fatal(err)
		}
	}
	cfgPath := filepath.Join(dir, "hpiagent.yaml")
	y := "log_level: debug\naudit: {path: " + filepath.Join(dir, "audit.log") + "}\nshelves:\n" +
		"  - {name: a, address: \"" + shelfAddr + "\", username: hpiagent, password: {credential: shelf.password}}\n" +
		"pet:\n  listen: 127.0.0.1:0\n  users:\n    - {name: shelfmgr, auth: sha256, auth_passphrase: {credential: pet-auth}, priv_passphrase: {credential: pet-priv}}\n"
	if err := os.WriteFile(cfgPath, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	started := make(chan *daemon, 1)
	readyc := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- runDaemon(ctx, daemonOptions{ConfigPath: cfgPath, Stderr: &stderr,
			Getenv: func(string) string { return "" },
			LookupEnv: func(k string) (string, bool) {
				if k == "CREDENTIALS_DIRECTORY" {
					return creds, true
				}
				return "", false
			},
			started: func(d *daemon) { started <- d },
			OnReady: func(net.Addr, string) { close(readyc) }})
	}()
	var d *daemon
	select {
	case d = <-started:
	case err := <-done:
		t.Fatalf("daemon ended: %v\n%s", err, stderr.String())
	}
	select {
	case <-readyc:
	case <-time.After(30 * time.Second):
		t.Fatal("not ready")
	}
	target := d.pet.Addr().String()
	// A PET: the fixed 46 bytes of PET v1.0 table 3, then the OEM end
	// marker. Sensor 0x81 of the shelf manager (0x20), event data 01.
	petData := make([]byte, 0, 47)
	petData = append(petData, make([]byte, 16)...)                            // GUID
	petData = append(petData, 0x00, 0x01)                                     // sequence
	petData = append(petData, 0, 0, 0, 0)                                     // local timestamp: unspecified
	petData = append(petData, 0xff, 0xff)                                     // UTC offset: unspecified
	petData = append(petData, 0x20, 0x20, 0x08, 0x20, 0x81)                   // trap source type, event source type, severity, sensor device, sensor number
	petData = append(petData, 0xf0, 0x60)                                     // entity, instance
	petData = append(petData, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff) // event data
	petData = append(petData, 0x19, 0x00, 0x31, 0x57, 0x00, 0x00, 0x00)       // language, manufacturer ID, system ID
	petData = append(petData, 0xc1)
	specific := 0xF06F01 // sensor type F0h, event type 6Fh, offset 1
	send := func(args ...string) {
		t.Helper()
		sdir := t.TempDir()
		ent := "1.3.6.1.4.1.3183.1.1"
		full := append(args, "udp:"+target, "", fmt.Sprintf("%s.0.%d", ent, specific), ent+".1", "x", hex.EncodeToString(petData))
		cmd := exec.Command("snmptrap", full...)
		cmd.Env = append(os.Environ(), "SNMP_PERSISTENT_DIR="+sdir, "SNMPCONFPATH="+sdir, "MIBS=", "MIBDIRS="+sdir, "HOME="+sdir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("snmptrap: %v\n%s", err, out)
		}
	}
	send("-v", "3", "-u", "shelfmgr", "-l", "authPriv", "-e", "0x80001f88804c414253494d01",
		"-a", "SHA-256", "-A", "pet-auth-passphrase", "-x", "AES", "-X", "pet-priv-passphrase")
	send("-v", "2c", "-c", "public")
	deadline := time.Now().Add(15 * time.Second)
	for {
		m := d.shelves[0].monitor()
		st := d.pet.Stats()
		if m != nil && m.Stats().Traps >= 1 && st.Dropped[pet.ReasonInsecureVersion] >= 1 {
			if st.Accepted != 1 {
				t.Errorf("accepted %d traps, want 1 (stats %+v)", st.Accepted, st)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("trap not delivered: pet %+v, log:\n%s", st, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{password, "pet-auth-passphrase", "pet-priv-passphrase"} {
		if strings.Contains(stderr.String(), secret) {
			t.Errorf("secret %q in the debug log", secret)
		}
	}
}

// TestReloadRolesAndCertificate changes the API role map and renews the
// API certificate in place, then reloads: a client without a role is
// refused before and served after, new connections see the new
// certificate, and a connection opened before the reload keeps working.
// It needs the API server's reload hooks (SetRoles, SetCertificate).
func TestReloadRolesAndCertificate(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the embedded shelf and the API")
	}
	var probe *api.Server
	_, okRoles := any(probe).(roleSetter)
	_, okCert := any(probe).(certSetter)
	if !okRoles || !okCert {
		t.Skip("api.Server has no SetRoles/SetCertificate yet: role map and certificate reload need a restart")
	}
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const password = "shelf-pw-reload"
	_, shelfAddr := startSimShelf(t, ctx, password)
	dir := t.TempDir()
	dp, err := writeDemoFiles(dir, shelfAddr, password, "127.0.0.1:0", time.Second, "info")
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	late, err := ca.Issue(pki.IssueRequest{Name: "late-client", Kind: pki.KindClient, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	reload := make(chan os.Signal, 1)
	reloaded := make(chan error, 1)
	apiAddr := make(chan net.Addr, 1)
	done := make(chan error, 1)
	var stderr syncBuffer
	go func() {
		done <- runDaemon(ctx, daemonOptions{ConfigPath: dp.config, Stderr: &stderr, Reload: reload,
			Getenv: func(string) string { return "" }, LookupEnv: func(string) (string, bool) { return "", false },
			OnReload: func(err error) { reloaded <- err },
			OnReady:  func(a net.Addr, _ string) { apiAddr <- a }})
	}()
	var addr net.Addr
	select {
	case addr = <-apiAddr:
	case err := <-done:
		t.Fatalf("daemon ended: %v\n%s", err, stderr.String())
	}
	client := func(c *pki.Cert) *http.Client {
		tc, err := pki.TLSConfigClient(ca, c)
		if err != nil {
			t.Fatal(err)
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 10 * time.Second}
	}
	get := func(c *http.Client) (int, *x509.Certificate) {
		t.Helper()
		resp, err := c.Get("https://" + addr.String() + "/v1/resources")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.TLS.PeerCertificates[0]
	}
	operator, err := pki.LoadCert(dir, "demo-operator")
	if err != nil {
		t.Fatal(err)
	}
	kept := client(operator) // keeps its connection across the reload
	lateClient := client(late)
	code, before := get(kept)
	if code != http.StatusOK {
		t.Fatalf("operator: %d", code)
	}
	if code, _ := get(lateClient); code != http.StatusForbidden {
		t.Fatalf("a client without a role: %d, want 403", code)
	}

	// Renew the server certificate in place and give late-client a role.
	server, err := ca.Issue(pki.IssueRequest{Name: "hpiagent-demo", Kind: pki.KindServer, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(pki.CertFile(dir, "hpiagent-demo"))
	os.Remove(pki.KeyFile(dir, "hpiagent-demo"))
	if err := server.Save(dir); err != nil {
		t.Fatal(err)
	}
	cfg, _ := os.ReadFile(dp.config)
	newCfg := strings.Replace(string(cfg), "  roles:\n", "  roles:\n    \"hpiagent://client/late-client\": [viewer]\n", 1)
	os.WriteFile(dp.config, []byte(newCfg), 0o600)
	reload <- syscall.SIGHUP
	if err := <-reloaded; err != nil {
		t.Fatalf("reload: %v", err)
	}
	if code, _ := get(lateClient); code != http.StatusOK {
		t.Errorf("late-client after the reload: %d, want 200", code)
	}
	code, still := get(kept)
	if code != http.StatusOK || !still.Equal(before) {
		t.Errorf("the connection opened before the reload: %d, same certificate %t", code, still.Equal(before))
	}
	code, renewed := get(client(operator))
	if code != http.StatusOK || renewed.SerialNumber.Cmp(server.Cert.SerialNumber) != 0 {
		t.Errorf("a new connection after the reload: %d, serial %v, want the renewed %v", code, renewed.SerialNumber, server.Cert.SerialNumber)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestSamePETIgnoresLines(t *testing.T) {
	const base = "pet:\n  listen: 127.0.0.1:0\n  users:\n    - {name: u, auth_passphrase: {credential: a}, priv_passphrase: {credential: p}}\n"
	a, err := ParseConfig([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	b, err := ParseConfig([]byte("\n\n# comment\n" + base))
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseConfig([]byte(strings.Replace(base, "credential: p", "credential: q", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if !samePET(a.PET, b.PET) {
		t.Error("moved lines count as a change")
	}
	if samePET(a.PET, c.PET) {
		t.Error("a changed credential name is no change")
	}
}

// TestReloadRefusesWhatItCannotApply: without the API's reload hooks a
// changed role map or a renewed certificate is refused, never half
// applied; with them (TestReloadRolesAndCertificate) they apply.
func TestReloadRefusesWhatItCannotApply(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the embedded shelf and the API")
	}
	var probe *api.Server
	_, okRoles := any(probe).(roleSetter)
	_, okCert := any(probe).(certSetter)
	var mon *shelf.Monitor
	_, okPoll := any(mon).(pollSetter)
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const password = "shelf-pw-refuse"
	_, shelfAddr := startSimShelf(t, ctx, password)
	dir := t.TempDir()
	dp, err := writeDemoFiles(dir, shelfAddr, password, "127.0.0.1:0", time.Second, "info")
	if err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(dp.config)
	reload := make(chan os.Signal, 1)
	reloaded := make(chan error, 1)
	readyc := make(chan struct{})
	done := make(chan error, 1)
	var stderr syncBuffer
	go func() {
		done <- runDaemon(ctx, daemonOptions{ConfigPath: dp.config, Stderr: &stderr, Reload: reload,
			Getenv: func(string) string { return "" }, LookupEnv: func(string) (string, bool) { return "", false },
			OnReload: func(err error) { reloaded <- err },
			OnReady:  func(net.Addr, string) { close(readyc) }})
	}()
	select {
	case <-readyc:
	case err := <-done:
		t.Fatalf("daemon ended: %v\n%s", err, stderr.String())
	}
	ca, err := pki.LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		hooked  bool
		prepare func() string
		want    string
	}{
		{"role map", okRoles, func() string {
			return strings.Replace(string(good), "  roles:\n", "  roles:\n    someone: [viewer]\n", 1)
		}, "api.roles: this build cannot change the role map"},
		{"poll interval", okPoll, func() string {
			return strings.Replace(string(good), "poll_interval: 1s", "poll_interval: 3s", 1)
		}, "monitor: this build cannot change poll intervals"},
		{"renewed certificate", okCert, func() string {
			server, err := ca.Issue(pki.IssueRequest{Name: "hpiagent-demo", Kind: pki.KindServer, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Validity: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			os.Remove(pki.CertFile(dir, "hpiagent-demo"))
			os.Remove(pki.KeyFile(dir, "hpiagent-demo"))
			if err := server.Save(dir); err != nil {
				t.Fatal(err)
			}
			return string(good)
		}, "api.tls: this build cannot change the API certificate"},
	} {
		if tc.hooked {
			continue
		}
		os.WriteFile(dp.config, []byte(tc.prepare()), 0o600)
		reload <- syscall.SIGHUP
		if err := <-reloaded; err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: reload %v, want a refusal containing %q", tc.name, err, tc.want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestReloadPollIntervalWithoutSession: a reload that changes the monitor
// settings while a shelf manager has never answered (no session, no
// monitor yet) is applied; the monitor that starts later takes the new
// settings from the configuration.
func TestReloadPollIntervalWithoutSession(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// A UDP port nothing answers on.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	silent := pc.LocalAddr().String()
	pc.Close()
	dir := t.TempDir()
	dp, err := writeDemoFiles(dir, silent, "shelf-pw-silent", "127.0.0.1:0", time.Second, "info")
	if err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(dp.config)
	reload := make(chan os.Signal, 1)
	reloaded := make(chan error, 1)
	readyc := make(chan struct{})
	done := make(chan error, 1)
	var stderr syncBuffer
	go func() {
		done <- runDaemon(ctx, daemonOptions{ConfigPath: dp.config, Stderr: &stderr, Reload: reload,
			Getenv: func(string) string { return "" }, LookupEnv: func(string) (string, bool) { return "", false },
			OnReload: func(err error) { reloaded <- err },
			OnReady:  func(net.Addr, string) { close(readyc) }})
	}()
	select {
	case <-readyc:
	case err := <-done:
		t.Fatalf("daemon ended: %v\n%s", err, stderr.String())
	}
	if err := os.WriteFile(dp.config, []byte(strings.Replace(string(good), "poll_interval: 1s", "poll_interval: 3s", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	reload <- syscall.SIGHUP
	if err := <-reloaded; err != nil {
		t.Fatalf("reload with a shelf manager that never answered: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
