package labshelf_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hpiagent/internal/labshelf"
)

// testCtx returns a context that ends with the test (or after a minute).
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// sdrLine is one line of "ipmitool sdr elist": name | number | status | entity | reading.
type sdrLine struct{ name, num, status, entity, reading string }

func parseElist(t testing.TB, out string) []sdrLine {
	t.Helper()
	var lines []sdrLine
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(l, "|")
		if len(f) != 5 {
			t.Fatalf("unexpected sdr elist line %q", l)
		}
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
		}
		lines = append(lines, sdrLine{f[0], f[1], f[2], f[3], f[4]})
	}
	return lines
}

// reading returns the reading column of the named sensor in "sdr elist all".
func reading(ctx context.Context, t testing.TB, s *labshelf.Shelf, name string) string {
	t.Helper()
	out, err := s.Ipmitool(ctx, "sdr", "elist", "all")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range parseElist(t, out) {
		if l.name == name {
			return l.reading
		}
	}
	t.Fatalf("sensor %q not in sdr elist:\n%s", name, out)
	return ""
}

// waitReading polls until the named sensor reads want (ipmi_sim polls value
// files once a second) or ctx ends.
func waitReading(ctx context.Context, t testing.TB, s *labshelf.Shelf, name, want string) {
	t.Helper()
	var got string
	for {
		if got = reading(ctx, t, s, name); got == want {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("sensor %q reads %q, want %q", name, got, want)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func TestShelf(t *testing.T) {
	t.Parallel()
	start := time.Now()
	s := labshelf.Start(t)
	t.Logf("shelf %s (console %d) ready in %v", s.Addr(), s.ConsolePort, time.Since(start))

	t.Run("endpoints", func(t *testing.T) {
		if s.Host == "127.0.0.20" || s.Port == 623 || s.Port == 0 || s.ConsolePort == 0 {
			t.Errorf("shelf on %s, console port %d: want a loopback address of its own with free ports", s.Addr(), s.ConsolePort)
		}
		if !strings.HasPrefix(s.Host, "127.") {
			t.Errorf("shelf host %s is not a loopback address", s.Host)
		}
	})

	t.Run("sdr elist lists every sensor of the shelf", func(t *testing.T) {
		tests := []struct {
			kind string
			want int
		}{
			{"all", 29 + 6}, // 29 sensors and 6 MC device locators
			{"full", 23},    // threshold sensors: ShMC 4, fan tray 3, blades 4x4
			{"compact", 6},  // FRU hot-swap sensors, one per MC
			{"mcloc", 6},    // MC device locators
		}
		for _, tc := range tests {
			t.Run(tc.kind, func(t *testing.T) {
				out, err := s.Ipmitool(testCtx(t), "sdr", "elist", tc.kind)
				if err != nil {
					t.Fatal(err)
				}
				if got := len(parseElist(t, out)); got != tc.want {
					t.Errorf("sdr elist %s: %d records, want %d:\n%s", tc.kind, got, tc.want, out)
				}
			})
		}
	})

	t.Run("SDR repository was last changed at shelf start", func(t *testing.T) {
		// Get SDR Repository Info; ipmitool's "sdr info" prints "NA" for
		// ipmi_sim's time stamps, so read them raw.
		out, err := s.Ipmitool(testCtx(t), "raw", "0x0a", "0x20")
		if err != nil {
			t.Fatal(err)
		}
		b := strings.Fields(out)
		if len(b) != 14 {
			t.Fatalf("Get SDR Repository Info: %q", out)
		}
		var ts uint32
		for i := 8; i >= 5; i-- { // most recent addition, little-endian
			var v uint32
			fmt.Sscanf(b[i], "%x", &v)
			ts = ts<<8 | v
		}
		added := time.Unix(int64(ts), 0)
		if d := added.Sub(start); d < -time.Minute || d > time.Minute {
			t.Errorf("SDR repository addition time %v, shelf started at %v", added, start)
		}
	})

	t.Run("every hot-swap sensor is in M4", func(t *testing.T) {
		out, err := s.Ipmitool(testCtx(t), "sdr", "elist", "compact")
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range parseElist(t, out) {
			if l.reading != "Transition to M4" {
				t.Errorf("%s reads %q, want M4", l.name, l.reading)
			}
		}
	})

	t.Run("SEL clock is set", func(t *testing.T) {
		out, err := s.Ipmitool(testCtx(t), "sel", "elist")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out, "Pre-Init") || strings.Count(out, "Transition to M4") != len(s.Blades) {
			t.Errorf("want one M4 event per blade, none Pre-Init:\n%s", out)
		}
	})

	t.Run("console sets a sensor that ipmitool reads", func(t *testing.T) {
		tests := []struct {
			cmd, sensor, want string
		}{
			{"sensor_set_value 0x86 0 2 97 0", "B3 CPU Temp", "97 degrees C"},
			{"sensor_set_value 0x72 0 3 44 0", "FT1 Temp", "44 degrees C"},
			{"sensor_set_value 0x20 0 1 29 0", "Shelf Inlet", "29 degrees C"},
			{"sensor_set_bit_clr_rest 0x84 0 0 2 0", "B2 HotSwap", "Transition to M2"},
		}
		for _, tc := range tests {
			t.Run(tc.sensor, func(t *testing.T) {
				ctx := testCtx(t)
				if before := reading(ctx, t, s, tc.sensor); before == tc.want {
					t.Fatalf("%s already reads %q: the test would prove nothing", tc.sensor, before)
				}
				if _, err := s.Console(ctx, tc.cmd); err != nil {
					t.Fatal(err)
				}
				if got := reading(ctx, t, s, tc.sensor); got != tc.want {
					t.Errorf("after %q, %s reads %q, want %q", tc.cmd, tc.sensor, got, tc.want)
				}
			})
		}
	})

	t.Run("console reports rejected commands", func(t *testing.T) {
		tests := []struct {
			cmds    []string
			wantErr string
		}{
			{[]string{"sensor_set_value 0x99 0 2 97 0"}, "Invalid MC address"},
			{[]string{"no_such_command 1"}, "Unknown command"},
			{[]string{"sensor_set_value 0x82 0 2 60 0", "sensor_set_value 0x82 0 2"}, "No value given"},
			{[]string{"quit"}, "stop the shelf"},
			{[]string{"sensor_set_value 0x82 0 2 60 0\nquit"}, "line break"},
		}
		for _, tc := range tests {
			t.Run(tc.wantErr, func(t *testing.T) {
				_, err := s.Console(testCtx(t), tc.cmds...)
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("Console(%q) = %v, want error containing %q", tc.cmds, err, tc.wantErr)
				}
			})
		}
		// The shelf survives all of that.
		if _, err := s.Ipmitool(testCtx(t), "mc", "info"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("console under IPMI load", func(t *testing.T) {
		// ipmi_sim copies its session log to every console; replies must
		// still be found and errors still be seen.
		ctx, cancel := context.WithCancel(testCtx(t))
		var wg sync.WaitGroup
		var sessions atomic.Int64
		for i := 0; i < 2; i++ {
			wg.Go(func() {
				for ctx.Err() == nil {
					if _, err := s.Ipmitool(ctx, "-t", "0x86", "-b", "0", "picmg", "addrinfo"); err == nil {
						sessions.Add(1)
					}
				}
			})
		}
		defer func() { cancel(); wg.Wait() }()
		v := 0
		for ; v < 10 || sessions.Load() < 10; v++ {
			if _, err := s.Console(ctx, fmt.Sprintf("sensor_set_value 0x88 0 2 %d 0", 100+v%100)); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Console(ctx, "sensor_set_value 0x99 0 2 1 0"); err == nil || !strings.Contains(err.Error(), "Invalid MC address") {
				t.Fatalf("rejected command under load: %v", err)
			}
		}
		want := fmt.Sprintf("%d degrees C", 100+(v-1)%100)
		if got := reading(ctx, t, s, "B4 CPU Temp"); got != want {
			t.Errorf("B4 CPU Temp reads %q after %d console updates under load, want %q", got, v, want)
		}
	})

	t.Run("shelf survives console clients that reset", func(t *testing.T) {
		// A client that closes with unread input sends a TCP reset; ipmi_sim
		// then gets EPIPE writing its session log to it (SIGPIPE would kill it).
		ctx, cancel := context.WithCancel(testCtx(t))
		var wg sync.WaitGroup
		var sessions atomic.Int64
		wg.Go(func() {
			for ctx.Err() == nil {
				if _, err := s.Ipmitool(ctx, "mc", "info"); err == nil {
					sessions.Add(1)
				}
			}
		})
		defer func() { cancel(); wg.Wait() }()
		var d net.Dialer
		for i := 0; i < 50 || sessions.Load() < 3; i++ {
			c, err := d.DialContext(ctx, "tcp", s.ConsoleAddr())
			if err != nil {
				t.Fatalf("connection %d to the console: %v", i, err)
			}
			c.Write([]byte("sensor_set_value 0x88 0 3 200 0\n"))
			c.(*net.TCPConn).SetLinger(0) // close with a reset
			c.Close()
			time.Sleep(5 * time.Millisecond) // let the LAN channel in
		}
		cancel()
		wg.Wait()
		if _, err := s.Console(testCtx(t), "sensor_set_value 0x88 0 3 201 0"); err != nil {
			t.Fatalf("console after resets: %v", err)
		}
		if _, err := s.Ipmitool(testCtx(t), "mc", "info"); err != nil {
			t.Fatalf("LAN after console resets: %v", err)
		}
	})

	t.Run("bridged PICMG address info", func(t *testing.T) {
		tests := []struct {
			ipmc, hwAddr, site string
		}{
			{"0x82", "0x41", "0x01"},
			{"0x84", "0x42", "0x02"},
			{"0x88", "0x44", "0x04"},
		}
		for _, tc := range tests {
			t.Run(tc.ipmc, func(t *testing.T) {
				out, err := s.Ipmitool(testCtx(t), "-t", tc.ipmc, "-b", "0", "picmg", "addrinfo")
				if err != nil {
					t.Fatal(err)
				}
				for _, want := range []string{
					"Hardware Address : " + tc.hwAddr,
					"IPMB-0 Address   : " + tc.ipmc,
					"Site ID          : " + tc.site,
					"Site Type        : ATCA board",
				} {
					if !strings.Contains(out, want) {
						t.Errorf("picmg addrinfo of %s lacks %q:\n%s", tc.ipmc, want, out)
					}
				}
			})
		}
	})

	t.Run("board temperature from file", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(testCtx(t), 15*time.Second)
		defer cancel()
		if err := s.SetBoardTemp(0x86, 71); err != nil {
			t.Fatal(err)
		}
		waitReading(ctx, t, s, "B3 Board Temp", "71 degrees C")
		if got := reading(ctx, t, s, "B2 Board Temp"); got == "71 degrees C" {
			t.Errorf("B2 Board Temp follows B3's file")
		}
	})

	t.Run("SetBoardTemp rejects bad input", func(t *testing.T) {
		tests := []struct {
			addr    uint8
			celsius int
		}{
			{0x72, 40}, // the fan tray has no temperature file
			{0x20, 40},
			{0x86, -1},
			{0x86, 256},
		}
		for _, tc := range tests {
			if err := s.SetBoardTemp(tc.addr, tc.celsius); err == nil {
				t.Errorf("SetBoardTemp(0x%02x, %d) = nil, want an error", tc.addr, tc.celsius)
			}
		}
		if _, err := os.Stat(filepath.Join(s.Dir, "run", "sensors", "72-temp")); err == nil {
			t.Errorf("SetBoardTemp created a file for the fan tray")
		}
	})

	t.Run("FreeIPMI reads the same sensors as ipmitool", func(t *testing.T) {
		labshelf.RequireTools(t, "ipmi-sensors")
		ctx := testCtx(t)
		out, err := s.IpmiSensors(ctx, "--bridge-sensors", "--sdr-cache-recreate", "--no-header-output", "--comma-separated-output")
		if err != nil {
			t.Fatal(err)
		}
		elist, err := s.Ipmitool(ctx, "sdr", "elist", "full")
		if err != nil {
			t.Fatal(err)
		}
		fi := map[string]string{} // name -> reading
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.Split(l, ",")
			if len(f) < 4 {
				t.Fatalf("unexpected ipmi-sensors line %q", l)
			}
			fi[f[1]] = f[3]
		}
		full := parseElist(t, elist)
		num := regexp.MustCompile(`^-?[0-9.]+`)
		for _, l := range full {
			v, ok := fi[l.name]
			if !ok {
				t.Errorf("ipmi-sensors lacks %q", l.name)
				continue
			}
			var a, b float64
			fmt.Sscan(num.FindString(l.reading), &a)
			fmt.Sscan(v, &b)
			if a != b {
				t.Errorf("%s: ipmitool reads %q, ipmi-sensors %q", l.name, l.reading, v)
			}
		}
		if len(fi) != 29 {
			t.Errorf("ipmi-sensors --bridge-sensors lists %d sensors, want 29:\n%s", len(fi), out)
		}
	})
}

func TestBladePowerControl(t *testing.T) {
	t.Parallel()
	s := labshelf.Start(t)
	ctx := testCtx(t)
	const blade = "0x84"
	power := func() string {
		out, err := s.Ipmitool(ctx, "-t", blade, "-b", "0", "chassis", "power", "status")
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	payload := func(addr uint8) bool {
		on, err := s.PayloadRunning(addr)
		if err != nil {
			t.Fatal(err)
		}
		return on
	}
	if got := power(); got != "Chassis Power is on" || !payload(0x84) {
		t.Fatalf("blade %s at start: %q, payload running %v", blade, got, payload(0x84))
	}
	if _, err := s.Ipmitool(ctx, "-t", blade, "-b", "0", "chassis", "power", "off"); err != nil {
		t.Fatal(err)
	}
	// The payload's power-off handler reaches the console through the
	// environment the harness gave it and walks the sensor M6 -> M1.
	waitReading(ctx, t, s, "B2 HotSwap", "Transition to M1")
	// ipmi_sim reports "off" once it has seen the payload exit, which is
	// right after the payload's last hot-swap step.
	for power() != "Chassis Power is off" || payload(0x84) {
		select {
		case <-ctx.Done():
			t.Fatalf("blade %s after power off: %q, payload running %v", blade, power(), payload(0x84))
		case <-time.After(50 * time.Millisecond):
		}
	}
	if !payload(0x82) || !payload(0x20) {
		t.Errorf("other payloads stopped with %s", blade)
	}
	if got := reading(ctx, t, s, "B1 HotSwap"); got != "Transition to M4" {
		t.Errorf("another blade changed: B1 HotSwap %q", got)
	}
	if _, err := s.Ipmitool(ctx, "-t", blade, "-b", "0", "chassis", "power", "on"); err != nil {
		t.Fatal(err)
	}
	waitReading(ctx, t, s, "B2 HotSwap", "Transition to M4")
	if !payload(0x84) {
		t.Errorf("payload of %s does not run after power on", blade)
	}
	s.Stop()
	if payload(0x82) {
		t.Errorf("payload of 0x82 runs after Stop")
	}
}

func TestRestartKeepsAddress(t *testing.T) {
	t.Parallel()
	s := labshelf.Start(t)
	ctx := testCtx(t)
	addr, console := s.Addr(), s.ConsolePort
	initial := reading(ctx, t, s, "B1 CPU Temp")
	if _, err := s.Console(ctx, "sensor_set_value 0x82 0 2 88 0"); err != nil {
		t.Fatal(err)
	}
	if got := reading(ctx, t, s, "B1 CPU Temp"); got != "88 degrees C" || got == initial {
		t.Fatalf("B1 CPU Temp reads %q after setting 88 (initially %q)", got, initial)
	}
	start := time.Now()
	s.Restart(t)
	t.Logf("restart took %v", time.Since(start))
	if s.Addr() != addr || s.ConsolePort != console {
		t.Fatalf("after restart the shelf is on %s console %d, want %s console %d", s.Addr(), s.ConsolePort, addr, console)
	}
	// A fresh shelf again: initial values, all blades in M4.
	if got := reading(ctx, t, s, "B1 CPU Temp"); got != initial {
		t.Errorf("after restart B1 CPU Temp reads %q, want the initial %q", got, initial)
	}
	out, err := s.Ipmitool(ctx, "sdr", "elist", "compact")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out, "Transition to M4"); n != 6 {
		t.Errorf("after restart %d hot-swap sensors in M4, want 6:\n%s", n, out)
	}
	if _, err := s.Console(ctx, "sensor_set_value 0x82 0 2 61 0"); err != nil {
		t.Errorf("console after restart: %v", err)
	}
}

func TestRestartOnTakenPort(t *testing.T) {
	t.Parallel()
	s := labshelf.Start(t)
	s.Stop()
	// Someone else takes the LAN port while the shelf is down.
	squatter, err := net.ListenPacket("udp4", s.Addr())
	if err != nil {
		t.Fatalf("take the shelf's port: %v", err)
	}
	rec := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Restart(rec)
	}()
	<-done
	t.Log(rec.msg)
	if !rec.failed || !strings.Contains(rec.msg, "in use") || !strings.Contains(rec.msg, s.Addr()) {
		t.Errorf("Restart on a taken port: failed=%v %q, want a failure naming the address in use", rec.failed, rec.msg)
	}
	// Once the port is free again, the shelf comes back on it.
	squatter.Close()
	s.Restart(t)
	if _, err := s.Ipmitool(testCtx(t), "mc", "info"); err != nil {
		t.Fatal(err)
	}
}

func TestShelvesRunSideBySide(t *testing.T) {
	t.Parallel()
	var shelves [3]*labshelf.Shelf
	var wg sync.WaitGroup
	for i := range shelves {
		wg.Go(func() { shelves[i] = labshelf.Start(t) })
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	ctx := testCtx(t)
	seen := map[string]bool{}
	for i, s := range shelves {
		if seen[s.Addr()] || seen[s.ConsoleAddr()] {
			t.Fatalf("shelf %d reuses an address: %s / %s", i, s.Addr(), s.ConsoleAddr())
		}
		seen[s.Addr()], seen[s.ConsoleAddr()] = true, true
		if _, err := s.Console(ctx, fmt.Sprintf("sensor_set_value 0x82 0 2 %d 0", 70+i)); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range shelves {
		if got, want := reading(ctx, t, s, "B1 CPU Temp"), fmt.Sprintf("%d degrees C", 70+i); got != want {
			t.Errorf("shelf %d: B1 CPU Temp reads %q, want %q", i, got, want)
		}
	}
}

func TestStopLeavesNoProcesses(t *testing.T) {
	t.Parallel()
	s := labshelf.Start(t)
	before := labshelf.Processes(s)
	names := map[string]int{}
	for _, p := range before {
		if p.ParentName != p.Name { // not a payload script's subshell
			names[p.Name]++
		}
	}
	// ipmi_sim and one payload per MC with power control (ShMC + blades).
	if names["ipmi_sim"] != 1 || names["blade.sh"] != 1+len(s.Blades) {
		t.Fatalf("shelf processes before Stop: %v", before)
	}
	s.Stop()
	for _, p := range before {
		if labshelf.Alive(p.PID) {
			t.Errorf("process %d (%s) still alive after Stop", p.PID, p.Name)
		}
	}
	if left := labshelf.Processes(s); len(left) > 0 {
		t.Errorf("processes left after Stop: %v", left)
	}
	s.Stop() // idempotent
	if _, err := s.Ipmitool(testCtx(t), "-N", "1", "-R", "1", "mc", "info"); err == nil {
		t.Errorf("stopped shelf still answers")
	}
}

func TestOptions(t *testing.T) {
	t.Parallel()
	t.Run("own main SDR repository, no hot-swap sync", func(t *testing.T) {
		t.Parallel()
		s := labshelf.Start(t, labshelf.WithMainSDR(labshelf.MainSDROwn), labshelf.WithoutHotSwapSync())
		ctx := testCtx(t)
		out, err := s.Ipmitool(ctx, "sdr", "elist", "all")
		if err != nil {
			t.Fatal(err)
		}
		lines := parseElist(t, out)
		if len(lines) != 5+6 { // ShMC sensors and the 6 MC locators
			t.Errorf("own main SDR: %d records, want 11:\n%s", len(lines), out)
		}
		if strings.Contains(out, "B1 CPU Temp") {
			t.Errorf("own main SDR lists an IPMC sensor:\n%s", out)
		}
		// The blade sensors still exist: bridged Get Sensor Reading works.
		r, err := s.Ipmitool(ctx, "-t", "0x82", "-b", "0", "raw", "0x04", "0x2d", "0x02")
		if err != nil {
			t.Fatal(err)
		}
		if f := strings.Fields(r); len(f) == 0 || f[0] != "34" { // 52 °C
			t.Errorf("bridged reading of B1 CPU Temp: %q, want raw 0x34", r)
		}
		// Without hot-swap sync the blades stay in M1 and log no events.
		hs, err := s.Ipmitool(ctx, "-t", "0x82", "-b", "0", "raw", "0x04", "0x2d", "0x00")
		if err != nil {
			t.Fatal(err)
		}
		if f := strings.Fields(hs); len(f) < 3 || f[2] != "02" { // state bit 1 = M1
			t.Errorf("blade hot-swap state without sync: %q, want M1 (02)", hs)
		}
		sel, err := s.Ipmitool(ctx, "sel", "elist")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(sel, "Hot Swap") {
			t.Errorf("hot-swap events without sync:\n%s", sel)
		}
	})
	t.Run("hot-swap event styles", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			events labshelf.HotSwapEvents
			// event data 2 and 3 of the blade's M3 -> M4 event
			wantData23 string
		}{
			{labshelf.EventsPICMG, "03 00"}, // cause 0, previous M3; FRU 0
			{labshelf.EventsSim, "ff ff"},
		}
		for _, tc := range tests {
			t.Run(string(tc.events), func(t *testing.T) {
				t.Parallel()
				s := labshelf.Start(t, labshelf.WithHotSwapEvents(tc.events))
				got := m4EventData(testCtx(t), t, s, 0x82)
				if got != "a4 "+tc.wantData23 && got != "04 "+tc.wantData23 {
					t.Errorf("M4 event of 0x82: data %q, want data2/3 %q", got, tc.wantData23)
				}
			})
		}
	})
}

// m4EventData returns the event data bytes ("d1 d2 d3") of the SEL event that
// reports the hot-swap sensor of ipmc entering M4.
func m4EventData(ctx context.Context, t testing.TB, s *labshelf.Shelf, ipmc uint8) string {
	t.Helper()
	out, err := s.Ipmitool(ctx, "sel", "list")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		id := strings.TrimSpace(strings.Split(l, "|")[0])
		// Get SEL Entry: reservation 0, record id, offset 0, whole record.
		var rid int
		fmt.Sscanf(id, "%x", &rid)
		raw, err := s.Ipmitool(ctx, "raw", "0x0a", "0x43", "0x00", "0x00",
			fmt.Sprintf("0x%02x", rid&0xff), fmt.Sprintf("0x%02x", rid>>8), "0x00", "0xff")
		if err != nil {
			t.Fatal(err)
		}
		b := strings.Fields(raw)
		// next id (2), record id (2), type, timestamp (4), generator (2),
		// EvM rev, sensor type, sensor number, event dir/type, data 1..3
		if len(b) != 18 {
			t.Fatalf("SEL entry %s: %q", id, raw)
		}
		if b[9] == fmt.Sprintf("%02x", ipmc) && b[12] == "f0" && (b[15] == "a4" || b[15] == "04") {
			return strings.Join(b[15:18], " ")
		}
	}
	t.Fatalf("no M4 event of 0x%02x in the SEL:\n%s", ipmc, out)
	return ""
}

func TestWithCommands(t *testing.T) {
	t.Parallel()
	t.Run("commands run before the shelf is ready", func(t *testing.T) {
		t.Parallel()
		s := labshelf.Start(t, labshelf.WithCommands("sensor_set_value 0x86 0 2 93 0", "sensor_set_value 0x20 0 2 41 0"))
		ctx := testCtx(t)
		for name, want := range map[string]string{"B3 CPU Temp": "93 degrees C", "Shelf Exhaust": "41 degrees C"} {
			if got := reading(ctx, t, s, name); got != want {
				t.Errorf("%s reads %q, want %q", name, got, want)
			}
		}
	})
	tests := []struct {
		name    string
		cmds    []string
		wantErr string
	}{
		{"rejected command", []string{"sensor_set_value 0x99 0 2 93 0"}, "Invalid MC address"},
		{"unknown command", []string{"no_such_command"}, "Unknown command"},
		{"quit", []string{"quit"}, "quit"},
		{"line break", []string{"sensor_set_value 0x86 0 2 93 0\nquit"}, "line break"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := &recorder{TB: t}
			done := make(chan struct{})
			go func() {
				defer close(done)
				labshelf.Start(rec, labshelf.WithCommands(tc.cmds...))
			}()
			<-done
			t.Log(rec.msg)
			if !rec.failed || !strings.Contains(rec.msg, tc.wantErr) {
				t.Errorf("Start with %q: failed=%v %q, want a failure naming %q", tc.cmds, rec.failed, rec.msg, tc.wantErr)
			}
		})
	}
}

func TestRequireToolsSkipsOrFails(t *testing.T) {
	// A missing tool skips the test, or fails it under CI.
	tests := []struct {
		ci       string
		wantSkip bool
	}{
		{"", true},
		{"true", false},
	}
	for _, tc := range tests {
		t.Run("CI="+tc.ci, func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			rec := &recorder{TB: t}
			done := make(chan struct{})
			go func() {
				defer close(done)
				labshelf.RequireTools(rec, "no-such-tool-for-labshelf")
			}()
			<-done
			if rec.skipped != tc.wantSkip || rec.failed == tc.wantSkip {
				t.Errorf("CI=%q: skipped=%v failed=%v", tc.ci, rec.skipped, rec.failed)
			}
		})
	}
}

// recorder records Skip and Fatal instead of acting on them; the rest goes
// to the real test (TempDir, Cleanup, Logf).
type recorder struct {
	testing.TB
	skipped, failed bool
	msg             string
}

func (r *recorder) Helper() {}
func (r *recorder) Skip(args ...any) {
	r.skipped, r.msg = true, fmt.Sprint(args...)
	runtime.Goexit()
}
func (r *recorder) Fatal(args ...any) {
	r.failed, r.msg = true, fmt.Sprint(args...)
	runtime.Goexit()
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed, r.msg = true, fmt.Sprintf(format, args...)
	runtime.Goexit()
}
