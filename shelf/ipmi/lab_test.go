package ipmi_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"hpiagent/internal/labshelf"
	"hpiagent/shelf/ipmi"
	"hpiagent/shelf/rmcpp"
)

// These tests run the typed commands over a real RMCP+ session against
// ipmi_sim (ATCA mode) and compare what they decode with what ipmitool
// prints on the same simulator. Nothing about the lab's sensors, names or
// factors is assumed: every expectation comes from ipmitool.

type lab struct {
	sh *labshelf.Shelf
	c  ipmi.Conn
}

func startLab(t *testing.T) *lab {
	t.Helper()
	sh := labshelf.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := rmcpp.Dial(ctx, rmcpp.Config{Addr: sh.Addr(), Username: sh.User, Password: []byte(sh.Password), CipherSuites: []int{3}})
	if err != nil {
		t.Fatalf("dial lab shelf: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return &lab{sh: sh, c: s}
}

func (l *lab) ipmitool(t *testing.T, ctx context.Context, to ipmi.Addr, args ...string) string {
	t.Helper()
	if !to.Local() {
		args = append([]string{"-t", fmt.Sprintf("0x%02x", to.Slave), "-b", strconv.Itoa(int(to.Channel))}, args...)
	}
	out, err := l.sh.Ipmitool(ctx, args...)
	if err != nil {
		t.Fatalf("ipmitool: %v", err)
	}
	return out
}

// fields splits "Key : value" lines as ipmitool prints them.
func fields(out string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}

func num(t *testing.T, s string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(strings.Fields(s)[0], 64)
	if err != nil {
		t.Fatalf("number %q: %v", s, err)
	}
	return f
}

func close3(a, b float64) bool { return math.Abs(a-b) < 0.0005+1e-9*math.Abs(b) }

func TestLab(t *testing.T) {
	l := startLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	blade := ipmi.Addr{Slave: l.sh.Blades[0]}
	// The shelf manager's own IPMB address, to tell its sensors from bridged ones.
	self, err := ipmi.GetAddressInfo(ctx, l.c, ipmi.Addr{}, ipmi.ByFRU(0))
	if err != nil {
		t.Fatal(err)
	}
	local := self.IPMBAddress

	t.Run("mc info", func(t *testing.T) {
		for _, to := range []ipmi.Addr{{}, blade} {
			d, err := ipmi.GetDeviceID(ctx, l.c, to)
			if err != nil {
				t.Fatal(err)
			}
			f := fields(l.ipmitool(t, ctx, to, "mc", "info"))
			for k, got := range map[string]string{
				"Device ID":            strconv.Itoa(int(d.DeviceID)),
				"Device Revision":      strconv.Itoa(int(d.DeviceRevision)),
				"Firmware Revision":    d.FirmwareString(),
				"IPMI Version":         d.IPMIVersionString(),
				"Manufacturer ID":      strconv.Itoa(int(d.ManufacturerID)),
				"Provides Device SDRs": map[bool]string{true: "yes", false: "no"}[d.ProvidesSDRs],
				"Device Available":     map[bool]string{true: "yes", false: "no"}[d.Available],
			} {
				if f[k] != got {
					t.Errorf("%s %s: ours %q, ipmitool %q", to, k, got, f[k])
				}
			}
			if !strings.HasPrefix(f["Product ID"], strconv.Itoa(int(d.ProductID))+" ") {
				t.Errorf("%s product id %d, ipmitool %q", to, d.ProductID, f["Product ID"])
			}
		}
	})

	var sdrs []ipmi.SDR
	t.Run("main sdr repository vs sdr elist all", func(t *testing.T) {
		info, err := ipmi.GetSDRRepositoryInfo(ctx, l.c, ipmi.Addr{})
		if err != nil {
			t.Fatal(err)
		}
		sdrs, err = ipmi.ReadSDRRepository(ctx, l.c, ipmi.Addr{}, ipmi.MainSDR)
		if err != nil {
			t.Fatal(err)
		}
		if len(sdrs) != int(info.RecordCount) {
			t.Errorf("read %d records, repository info says %d", len(sdrs), info.RecordCount)
		}
		out := l.ipmitool(t, ctx, ipmi.Addr{}, "sdr", "elist", "all")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		named := 0
		for _, r := range sdrs {
			if r.Sensor != nil || r.MCLocator != nil || r.FRULocator != nil {
				named++
			}
		}
		if named != len(lines) {
			t.Errorf("%d named records, ipmitool lists %d", named, len(lines))
		}
		for _, line := range lines {
			col := strings.Split(line, "|")
			name, num, entity := strings.TrimSpace(col[0]), strings.TrimSpace(col[1]), strings.TrimSpace(col[3])
			r := findSDR(sdrs, name)
			if r == nil {
				t.Errorf("ipmitool lists %q, we do not", name)
				continue
			}
			var gotNum, gotEntity string
			switch {
			case r.Sensor != nil:
				gotNum = fmt.Sprintf("%02Xh", r.Sensor.Number)
				gotEntity = fmt.Sprintf("%d.%d", r.Sensor.EntityID, r.Sensor.EntityInstance)
			case r.MCLocator != nil:
				gotNum, gotEntity = "00h", fmt.Sprintf("%d.%d", r.MCLocator.EntityID, r.MCLocator.EntityInstance)
			case r.FRULocator != nil:
				gotNum, gotEntity = num, fmt.Sprintf("%d.%d", r.FRULocator.EntityID, r.FRULocator.EntityInstance)
			}
			if gotNum != num || gotEntity != entity {
				t.Errorf("%s: number %s entity %s, ipmitool %s %s", name, gotNum, gotEntity, num, entity)
			}
		}
	})
	if len(sdrs) == 0 {
		t.Fatal("no SDRs, cannot go on")
	}

	t.Run("sensor readings and thresholds vs ipmitool sensor", func(t *testing.T) {
		out := l.ipmitool(t, ctx, ipmi.Addr{}, "sensor")
		checked := 0
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			col := strings.Split(line, "|")
			for i := range col {
				col[i] = strings.TrimSpace(col[i])
			}
			r := findSDR(sdrs, col[0])
			if r == nil || r.Sensor == nil || !r.Sensor.Analog() {
				continue
			}
			s := r.Sensor
			to := s.Owner(local)
			rd, err := ipmi.GetSensorReading(ctx, l.c, to, s.Number)
			if err != nil {
				t.Fatal(err)
			}
			if !rd.Valid() {
				t.Errorf("%s: reading not valid: %+v", col[0], rd)
				continue
			}
			v, err := s.Conv.Real(rd.Raw)
			if err != nil || !close3(v, num(t, col[1])) {
				t.Errorf("%s: reading %v (%v), ipmitool %s", col[0], v, err, col[1])
			}
			if s.Units.String() != col[2] {
				t.Errorf("%s: units %q, ipmitool %q", col[0], s.Units.String(), col[2])
			}
			th, err := ipmi.GetSensorThresholds(ctx, l.c, to, s.Number)
			if err != nil {
				t.Fatal(err)
			}
			// ipmitool columns: lnr lcr lnc unc ucr unr.
			for i, which := range []ipmi.Threshold{ipmi.LowerNonRecoverable, ipmi.LowerCritical, ipmi.LowerNonCritical,
				ipmi.UpperNonCritical, ipmi.UpperCritical, ipmi.UpperNonRecoverable} {
				want := col[4+i]
				if !th.Has(which) {
					if want != "na" {
						t.Errorf("%s %s: not readable, ipmitool %s", col[0], which, want)
					}
					continue
				}
				got, err := s.Conv.Real(th.Value[which])
				if want == "na" || err != nil || !close3(got, num(t, want)) {
					t.Errorf("%s %s: %v (%v), ipmitool %s", col[0], which, got, err, want)
				}
			}
			checked++
		}
		if checked == 0 {
			t.Fatal("no analog sensor compared")
		}
	})

	t.Run("hysteresis and event enables vs ipmitool sensor get", func(t *testing.T) {
		checked := 0
		for _, r := range sdrs {
			if r.Sensor == nil || !r.Sensor.Analog() || r.Sensor.HysteresisAccess() == 0 {
				continue
			}
			s := r.Sensor
			to := s.Owner(local)
			f := fields(l.ipmitool(t, ctx, ipmi.Addr{}, "sensor", "get", s.Name()))
			h, err := ipmi.GetSensorHysteresis(ctx, l.c, to, s.Number)
			if err != nil {
				t.Fatal(err)
			}
			for name, raw := range map[string]uint8{"Positive Hysteresis": h.Positive, "Negative Hysteresis": h.Negative} {
				got, ok := s.Conv.Hysteresis(raw)
				want := f[name]
				if !ok {
					if want != "" && want != "Unspecified" {
						t.Errorf("%s %s: none, ipmitool %q", s.Name(), name, want)
					}
					continue
				}
				if !close3(got, num(t, want)) {
					t.Errorf("%s %s: %v, ipmitool %q", s.Name(), name, got, want)
				}
			}
			e, err := ipmi.GetSensorEventEnable(ctx, l.c, to, s.Number)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := thresholdEvents(e.Assert), f["Assertions Enabled"]; got != want {
				t.Errorf("%s assertions: %q, ipmitool %q", s.Name(), got, want)
			}
			checked++
			if checked >= 4 {
				break // a sample of owners is enough; each ipmitool run costs a session
			}
		}
		if checked == 0 {
			t.Fatal("no sensor with hysteresis compared")
		}
	})

	t.Run("full sensor records vs ipmitool sdr get", func(t *testing.T) {
		order := []ipmi.Threshold{ipmi.LowerNonRecoverable, ipmi.LowerCritical, ipmi.LowerNonCritical,
			ipmi.UpperNonCritical, ipmi.UpperCritical, ipmi.UpperNonRecoverable}
		label := map[ipmi.Threshold]string{
			ipmi.UpperNonRecoverable: "Upper non-recoverable", ipmi.UpperCritical: "Upper critical", ipmi.UpperNonCritical: "Upper non-critical",
			ipmi.LowerNonRecoverable: "Lower non-recoverable", ipmi.LowerCritical: "Lower critical", ipmi.LowerNonCritical: "Lower non-critical",
		}
		checked := 0
		for _, r := range sdrs {
			s := r.Sensor
			if s == nil || !s.Analog() {
				continue
			}
			f := fields(l.ipmitool(t, ctx, ipmi.Addr{}, "sdr", "get", s.Name()))
			if want := fmt.Sprintf("%d.%d (%s)", s.EntityID, s.EntityInstance, ipmi.EntityName(s.EntityID)); f["Entity ID"] != want {
				t.Errorf("%s entity %q, ipmitool %q", s.Name(), want, f["Entity ID"])
			}
			if want := fmt.Sprintf("%s (0x%02x)", ipmi.SensorTypeName(s.SensorType), s.SensorType); f["Sensor Type (Threshold)"] != want {
				t.Errorf("%s type %q, ipmitool %q", s.Name(), want, f["Sensor Type (Threshold)"])
			}
			if s.AnalogFlags&1 != 0 {
				v, _ := s.Conv.Real(s.Nominal)
				if !close3(v, num(t, f["Nominal Reading"])) {
					t.Errorf("%s nominal %v, ipmitool %q", s.Name(), v, f["Nominal Reading"])
				}
			}
			var readable, settable []string
			for _, th := range order {
				if s.Readable(th) {
					readable = append(readable, th.String()[:3])
					v, _ := s.Conv.Real(s.Thresholds[th])
					if !close3(v, num(t, f[label[th]])) {
						t.Errorf("%s %s %v, ipmitool %q", s.Name(), th, v, f[label[th]])
					}
				}
				if s.Settable(th) {
					settable = append(settable, th.String()[:3])
				}
			}
			if got := strings.Join(readable, " "); got != f["Readable Thresholds"] {
				t.Errorf("%s readable %q, ipmitool %q", s.Name(), got, f["Readable Thresholds"])
			}
			if got := strings.Join(settable, " "); got != f["Settable Thresholds"] {
				t.Errorf("%s settable %q, ipmitool %q", s.Name(), got, f["Settable Thresholds"])
			}
			for name, raw := range map[string]uint8{"Positive Hysteresis": s.PosHysteresis, "Negative Hysteresis": s.NegHysteresis} {
				if v, ok := s.Conv.Hysteresis(raw); ok && !close3(v, num(t, f[name])) {
					t.Errorf("%s %s %v, ipmitool %q", s.Name(), name, v, f[name])
				}
			}
			checked++
		}
		if checked == 0 {
			t.Fatal("no full sensor record compared")
		}
	})

	t.Run("device SDRs of an IPMC (no reservation) match the main repository", func(t *testing.T) {
		info, err := ipmi.GetDeviceSDRInfo(ctx, l.c, blade)
		if err != nil {
			t.Fatal(err)
		}
		dev, err := ipmi.ReadSDRRepository(ctx, l.c, blade, ipmi.DeviceSDR)
		if err != nil {
			t.Fatal(err)
		}
		if len(dev) != int(info.Count) {
			t.Errorf("read %d device SDRs, device SDR info says %d", len(dev), info.Count)
		}
		for _, r := range dev {
			if r.Sensor == nil {
				continue
			}
			m := findSDR(sdrs, r.Name())
			if m == nil || m.Sensor == nil || m.Sensor.Number != r.Sensor.Number || m.Sensor.OwnerID != blade.Slave {
				t.Errorf("device SDR %q (#%d) not in the main repository as owned by %s", r.Name(), r.Sensor.Number, blade)
			}
		}
		_, err = ipmi.ReserveSDRRepository(ctx, l.c, blade, ipmi.DeviceSDR)
		if !errors.Is(err, ipmi.ErrNotSupported) || !strings.Contains(err.Error(), "not supported by this controller") {
			t.Errorf("reserve device SDR repository on ipmi_sim: %v (ipmi_sim answers 0xC1)", err)
		}
	})

	t.Run("fru print", func(t *testing.T) {
		for _, to := range []ipmi.Addr{{}, {Slave: l.sh.Blades[1]}} {
			img, err := ipmi.ReadFRU(ctx, l.c, to, 0)
			if err != nil {
				t.Fatal(err)
			}
			fru, err := ipmi.ParseFRU(img)
			if err != nil {
				t.Fatal(err)
			}
			f := fields(l.ipmitool(t, ctx, to, "fru", "print", "0"))
			want := map[string]string{}
			if c := fru.Chassis; c != nil {
				want["Chassis Part Number"], want["Chassis Serial"] = c.PartNumber.Text(), c.Serial.Text()
			}
			if b := fru.Board; b != nil {
				want["Board Mfg"], want["Board Product"], want["Board Serial"], want["Board Part Number"] =
					b.Manufacturer.Text(), b.Product.Text(), b.Serial.Text(), b.PartNumber.Text()
				want["Board Mfg Date"] = b.MfgTime.Format("Mon Jan 2 15:04:05 2006 MST")
			}
			if p := fru.Product; p != nil {
				want["Product Manufacturer"], want["Product Name"], want["Product Part Number"] = p.Manufacturer.Text(), p.Name.Text(), p.PartNumber.Text()
				want["Product Version"], want["Product Serial"], want["Product Asset Tag"] = p.Version.Text(), p.Serial.Text(), p.AssetTag.Text()
			}
			if len(want) == 0 {
				t.Fatalf("%s: FRU has no areas", to)
			}
			for k, v := range want {
				// ipmitool prints the date field with a colon-free key.
				if k == "Board Mfg Date" {
					if !strings.Contains(l.ipmitool(t, ctx, to, "fru", "print", "0"), v) {
						t.Errorf("%s %s: %q not in ipmitool output", to, k, v)
					}
					continue
				}
				if f[k] != v {
					t.Errorf("%s %s: ours %q, ipmitool %q", to, k, v, f[k])
				}
			}
		}
	})

	t.Run("picmg properties, address info, LEDs", func(t *testing.T) {
		for _, to := range []ipmi.Addr{{}, blade} {
			p, err := ipmi.GetPICMGProperties(ctx, l.c, to)
			if err != nil {
				t.Fatal(err)
			}
			f := fields(l.ipmitool(t, ctx, to, "picmg", "properties"))
			if f["PICMG Ext. Version"] != p.VersionString() || hexField(t, f["Max FRU Device ID"]) != int(p.MaxFRUID) ||
				hexField(t, f["FRU Device ID"]) != int(p.IPMCFRUID) {
				t.Errorf("%s properties %+v, ipmitool %v", to, p, f)
			}
			a, err := ipmi.GetAddressInfo(ctx, l.c, to, ipmi.ByFRU(0))
			if err != nil {
				t.Fatal(err)
			}
			f = fields(l.ipmitool(t, ctx, to, "picmg", "addrinfo"))
			if hexField(t, f["Hardware Address"]) != int(a.HardwareAddress) || hexField(t, f["IPMB-0 Address"]) != int(a.IPMBAddress) ||
				hexField(t, f["Site ID"]) != int(a.SiteID) || !strings.EqualFold(f["Site Type"], a.SiteType.String()) {
				t.Errorf("%s address info %+v, ipmitool %v", to, a, f)
			}
			// The shelf manager resolves the same controller by hardware address and by site.
			for _, q := range []ipmi.AddressQuery{ipmi.ByHardwareAddress(a.HardwareAddress), ipmi.BySite(a.SiteType, a.SiteID)} {
				b, err := ipmi.GetAddressInfo(ctx, l.c, ipmi.Addr{}, q)
				if err != nil {
					t.Fatal(err)
				}
				if b.IPMBAddress != a.IPMBAddress {
					t.Errorf("%+v resolves to 0x%02x, want 0x%02x", q, b.IPMBAddress, a.IPMBAddress)
				}
			}
		}
		props, err := ipmi.GetFRULEDProperties(ctx, l.c, blade, 0)
		if err != nil {
			t.Fatal(err)
		}
		f := fields(l.ipmitool(t, ctx, blade, "picmg", "led", "prop", "0"))
		if hexField(t, f["General Status LED Properties"]) != int(props.General) || hexField(t, f["App. Specific  LED Count"]) != int(props.AppSpecific) {
			t.Errorf("led properties %+v, ipmitool %v", props, f)
		}
		for _, led := range props.LEDIDs() {
			caps, err := ipmi.GetLEDColorCapabilities(ctx, l.c, blade, 0, led)
			if err != nil {
				t.Fatal(err)
			}
			out := l.ipmitool(t, ctx, blade, "picmg", "led", "cap", "0", strconv.Itoa(int(led)))
			for col := ipmi.LEDBlue; col <= ipmi.LEDWhite; col++ {
				if caps.Supports(col) != strings.Contains(strings.SplitN(out, "\n", 2)[0], strings.ToUpper(col.String())) {
					t.Errorf("led %d color %s: supported %t, ipmitool %q", led, col, caps.Supports(col), out)
				}
			}
			st, err := ipmi.GetFRULEDState(ctx, l.c, blade, 0, led)
			if err != nil {
				t.Fatal(err)
			}
			out = l.ipmitool(t, ctx, blade, "picmg", "led", "get", "0", strconv.Itoa(int(led)))
			if !st.HasLocal {
				if !strings.Contains(out, "NO LOCAL CONTROL") {
					t.Errorf("led %d state %+v, ipmitool %q", led, st, out)
				}
				continue
			}
			if !regexp.MustCompile(`Local Control Color:\s+`+strconv.Itoa(int(st.Local.Color))+`\b`).MatchString(out) ||
				!regexp.MustCompile(`Local Control function:\s+`+strconv.Itoa(int(st.Local.Function))+`\b`).MatchString(out) {
				t.Errorf("led %d state %+v, ipmitool %q", led, st, out)
			}
		}
		caps, err := ipmi.GetFRUControlCapabilities(ctx, l.c, blade, 0)
		if err != nil {
			t.Fatal(err)
		}
		raw := l.ipmitool(t, ctx, blade, "raw", "0x2c", "0x1e", "0", "0")
		if got := fmt.Sprintf("00 %02x", caps.Marshal()[1]); strings.TrimSpace(raw) != got {
			t.Errorf("fru control capabilities %+v (%s), ipmitool raw %q", caps, got, raw)
		}
	})

	t.Run("activation policy and power level are not supported by ipmi_sim", func(t *testing.T) {
		checks := map[string]error{}
		_, checks["get policy"] = ipmi.GetFRUActivationPolicy(ctx, l.c, ipmi.Addr{}, 0)
		checks["set policy"] = ipmi.SetFRUActivationPolicy(ctx, l.c, ipmi.Addr{}, 0, ipmi.PolicyLockedBit, ipmi.ActivationPolicy{Locked: true})
		_, checks["get power"] = ipmi.GetPowerLevel(ctx, l.c, ipmi.Addr{}, 0, ipmi.PowerSteadyState)
		checks["set power"] = ipmi.SetPowerLevel(ctx, l.c, ipmi.Addr{}, 0, 1, false)
		for name, err := range checks {
			if !errors.Is(err, ipmi.ErrNotSupported) || !strings.Contains(err.Error(), "not supported by this shelf manager") {
				t.Errorf("%s: %v", name, err)
			}
		}
		_, err := ipmi.GetPowerLevel(ctx, l.c, blade, 0, ipmi.PowerSteadyState)
		if !errors.Is(err, ipmi.ErrNotSupported) || !strings.Contains(err.Error(), "not supported by this controller") {
			t.Errorf("bridged get power level: %v", err)
		}
	})

	t.Run("chassis status and watchdog", func(t *testing.T) {
		for _, to := range []ipmi.Addr{{}, blade} {
			st, err := ipmi.GetChassisStatus(ctx, l.c, to)
			if err != nil {
				t.Fatal(err)
			}
			f := fields(l.ipmitool(t, ctx, to, "chassis", "status"))
			if want := map[bool]string{true: "on", false: "off"}[st.PowerOn]; f["System Power"] != want {
				t.Errorf("%s power %s, ipmitool %q", to, want, f["System Power"])
			}
			if f["Main Power Fault"] != strconv.FormatBool(st.PowerFault) || f["Power Overload"] != strconv.FormatBool(st.Overload) {
				t.Errorf("%s status %+v, ipmitool %v", to, st, f)
			}
		}
		w, err := ipmi.GetWatchdog(ctx, l.c, ipmi.Addr{})
		if err != nil {
			t.Fatal(err)
		}
		f := fields(l.ipmitool(t, ctx, ipmi.Addr{}, "mc", "watchdog", "get"))
		if !strings.Contains(f["Watchdog Timer Use"], fmt.Sprintf("(0x%02x)", uint8(w.Use))) ||
			f["Initial Countdown"] != fmt.Sprintf("%.1f sec", w.Initial.Seconds()) ||
			f["Watchdog Timer Is"] != map[bool]string{true: "Started/Running", false: "Stopped"}[w.Running] {
			t.Errorf("watchdog %+v, ipmitool %v", w, f)
		}
		// Set it (not running) and read it back through both.
		set := ipmi.Watchdog{Use: ipmi.WatchdogUseSMSOS, DontLog: true, Action: ipmi.WatchdogNoAction, Initial: 123400 * time.Millisecond}
		if err := ipmi.SetWatchdog(ctx, l.c, ipmi.Addr{}, set); err != nil {
			t.Fatal(err)
		}
		w, err = ipmi.GetWatchdog(ctx, l.c, ipmi.Addr{})
		if err != nil {
			t.Fatal(err)
		}
		if w.Use != set.Use || w.Initial != set.Initial || w.Action != set.Action {
			t.Errorf("watchdog after set: %+v", w)
		}
		f = fields(l.ipmitool(t, ctx, ipmi.Addr{}, "mc", "watchdog", "get"))
		if f["Initial Countdown"] != "123.4 sec" || !strings.Contains(f["Watchdog Timer Use"], "SMS/OS") {
			t.Errorf("ipmitool after set: %v", f)
		}
	})

	t.Run("sel list and clear", func(t *testing.T) {
		info, err := ipmi.GetSELInfo(ctx, l.c, ipmi.Addr{})
		if err != nil {
			t.Fatal(err)
		}
		recs, err := ipmi.ReadSEL(ctx, l.c, ipmi.Addr{})
		if err != nil {
			t.Fatal(err)
		}
		f := fields(l.ipmitool(t, ctx, ipmi.Addr{}, "sel", "info"))
		if f["Entries"] != strconv.Itoa(int(info.Entries)) || len(recs) != int(info.Entries) {
			t.Errorf("sel info entries %d, records read %d, ipmitool %q", info.Entries, len(recs), f["Entries"])
		}
		out := strings.TrimSpace(l.ipmitool(t, ctx, ipmi.Addr{}, "sel", "list"))
		lines := strings.Split(out, "\n")
		if out == "" {
			lines = nil
		}
		if len(lines) != len(recs) {
			t.Fatalf("%d records, ipmitool lists %d", len(recs), len(lines))
		}
		for i, line := range lines {
			col := strings.Split(line, "|")
			id, _ := strconv.ParseUint(strings.TrimSpace(col[0]), 16, 16)
			dir := strings.TrimSpace(col[len(col)-1])
			r := recs[i]
			if uint16(id) != r.RecordID || (dir == "Deasserted") != r.Deassert {
				t.Errorf("record %d: ours %v, ipmitool %q", i, r, line)
			}
			if r.PreInit() != strings.Contains(line, "Pre-Init") {
				t.Errorf("record %d: pre-init %t, ipmitool %q", i, r.PreInit(), line)
			}
		}
		if err := ipmi.ClearSEL(ctx, l.c, ipmi.Addr{}, 50*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		f = fields(l.ipmitool(t, ctx, ipmi.Addr{}, "sel", "info"))
		if f["Entries"] != "0" {
			t.Errorf("after clear, ipmitool says %q entries", f["Entries"])
		}
		if recs, err := ipmi.ReadSEL(ctx, l.c, ipmi.Addr{}); err != nil || len(recs) != 0 {
			t.Errorf("after clear: %d records, %v", len(recs), err)
		}
	})

	t.Run("set thresholds, hysteresis, event enable, led", func(t *testing.T) {
		var s *ipmi.SensorRecord
		for _, r := range sdrs {
			if r.Sensor != nil && r.Sensor.Analog() && r.Sensor.Settable(ipmi.UpperNonCritical) && r.Sensor.OwnerID == blade.Slave {
				s = r.Sensor
				break
			}
		}
		if s == nil {
			t.Skip("no sensor with a settable upper non-critical threshold on the blade")
		}
		to := s.Owner(local)
		orig, err := ipmi.GetSensorThresholds(ctx, l.c, to, s.Number)
		if err != nil {
			t.Fatal(err)
		}
		cur, _ := s.Conv.Real(orig.Value[ipmi.UpperNonCritical])
		want := cur + 2*math.Abs(float64(s.Conv.M))*math.Pow(10, float64(s.Conv.RExp)) // two counts up
		raw, err := s.Conv.Raw(want)
		if err != nil {
			t.Fatal(err)
		}
		if err := ipmi.SetSensorThresholds(ctx, l.c, to, s.Number, ipmi.Thresholds{}.With(ipmi.UpperNonCritical, raw)); err != nil {
			t.Fatal(err)
		}
		f := fields(l.ipmitool(t, ctx, ipmi.Addr{}, "sensor", "get", s.Name()))
		if !close3(num(t, f["Upper Non-Critical"]), want) {
			t.Errorf("unc set to %v, ipmitool reads %q", want, f["Upper Non-Critical"])
		}
		err = ipmi.SetSensorHysteresis(ctx, l.c, to, s.Number, ipmi.Hysteresis{Positive: 3, Negative: 2})
		switch {
		case s.HysteresisAccess() != 2:
			// The SDR says hysteresis is not settable; ipmi_sim then answers 0xC1.
			if err == nil {
				t.Logf("hysteresis set although the SDR says access %d", s.HysteresisAccess())
			} else if !errors.Is(err, ipmi.ErrNotSupported) && !isCode(err, ipmi.CCIllegalForSensor) {
				t.Errorf("set hysteresis on a sensor without settable hysteresis: %v", err)
			}
		case err != nil:
			t.Fatal(err)
		default:
			f = fields(l.ipmitool(t, ctx, ipmi.Addr{}, "sensor", "get", s.Name()))
			if h, _ := s.Conv.Hysteresis(3); !close3(num(t, f["Positive Hysteresis"]), h) {
				t.Errorf("positive hysteresis set to %v, ipmitool reads %q", h, f["Positive Hysteresis"])
			}
		}
		// Disable the unc going-high assertion (event offset 7).
		if err := ipmi.SetSensorEventEnable(ctx, l.c, to, s.Number, ipmi.EventEnable{EventsEnabled: true, ScanningEnabled: true, Assert: 1 << 7}, ipmi.EventEnableDisable); err != nil {
			t.Fatal(err)
		}
		e, err := ipmi.GetSensorEventEnable(ctx, l.c, to, s.Number)
		if err != nil {
			t.Fatal(err)
		}
		f = fields(l.ipmitool(t, ctx, ipmi.Addr{}, "sensor", "get", s.Name()))
		if e.Assert&(1<<7) != 0 || strings.Contains(f["Assertions Enabled"], "unc+") || thresholdEvents(e.Assert) != f["Assertions Enabled"] {
			t.Errorf("after disabling unc+: ours %q, ipmitool %q", thresholdEvents(e.Assert), f["Assertions Enabled"])
		}

		if err := ipmi.SetFRULEDState(ctx, l.c, blade, 0, 0, ipmi.LEDSetting{Function: ipmi.LEDOn, Color: ipmi.LEDBlue}); err != nil {
			t.Fatal(err)
		}
		st, err := ipmi.GetFRULEDState(ctx, l.c, blade, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		out := l.ipmitool(t, ctx, blade, "picmg", "led", "get", "0", "0")
		if !st.OverrideEnabled || st.Override.Function != ipmi.LEDOn || !strings.Contains(out, "OVERRIDE") {
			t.Errorf("led after override on: %+v, ipmitool %q", st, out)
		}
		if err := ipmi.FRUControl(ctx, l.c, blade, 0, ipmi.FRUWarmReset); err != nil {
			t.Errorf("fru control warm reset: %v", err)
		}
	})

	t.Run("set fru activation: deactivate and activate a blade", func(t *testing.T) {
		to := ipmi.Addr{Slave: l.sh.Blades[2]}
		var hs *ipmi.SensorRecord
		for _, r := range sdrs {
			if r.Sensor != nil && r.Sensor.OwnerID == to.Slave && r.Sensor.SensorType == 0xf0 {
				hs = r.Sensor // PICMG FRU hot-swap sensor
			}
		}
		if hs == nil {
			t.Fatalf("no hot-swap sensor for %s in the SDRs", to)
		}
		waitState := func(m int) {
			t.Helper()
			for {
				rd, err := ipmi.GetSensorReading(ctx, l.c, to, hs.Number)
				if err != nil {
					t.Fatal(err)
				}
				if rd.States&(1<<m) != 0 {
					break
				}
				select {
				case <-ctx.Done():
					t.Fatalf("%s never reached M%d (states 0x%04x)", to, m, rd.States)
				case <-time.After(100 * time.Millisecond):
				}
			}
			out := l.ipmitool(t, ctx, ipmi.Addr{}, "sdr", "get", hs.Name())
			if !strings.Contains(out, fmt.Sprintf("M%d", m)) {
				t.Errorf("we read M%d, ipmitool %q", m, out)
			}
		}
		waitState(4)
		if err := ipmi.SetFRUActivation(ctx, l.c, to, 0, false); err != nil {
			t.Fatal(err)
		}
		waitState(1) // ipmi_sim goes straight back to M1
		// ipmi_sim activates only from M2: put the FRU there as an insertion would.
		if _, err := l.sh.Console(ctx, fmt.Sprintf("sensor_set_bit_clr_rest 0x%02x 0 %d 2 1", to.Slave, hs.Number)); err != nil {
			t.Fatal(err)
		}
		waitState(2)
		if err := ipmi.SetFRUActivation(ctx, l.c, to, 0, true); err != nil {
			t.Fatal(err)
		}
		waitState(4)
	})

	t.Run("device locator record id is not supported by ipmi_sim", func(t *testing.T) {
		_, err := ipmi.GetDeviceLocatorRecordID(ctx, l.c, blade, 0)
		if !errors.Is(err, ipmi.ErrNotSupported) || !strings.Contains(err.Error(), "not supported by this controller") {
			t.Errorf("get device locator record id: %v", err)
		}
	})

	t.Run("chassis control power down and up a blade", func(t *testing.T) {
		to := ipmi.Addr{Slave: l.sh.Blades[len(l.sh.Blades)-1]}
		waitPower := func(on bool) {
			t.Helper()
			for {
				st, err := ipmi.GetChassisStatus(ctx, l.c, to)
				if err != nil {
					t.Fatal(err)
				}
				if st.PowerOn == on {
					return
				}
				select {
				case <-ctx.Done():
					t.Fatalf("%s power never became %t", to, on)
				case <-time.After(100 * time.Millisecond):
				}
			}
		}
		if err := ipmi.ChassisControl(ctx, l.c, to, ipmi.ChassisPowerDown); err != nil {
			t.Fatal(err)
		}
		waitPower(false)
		if f := fields(l.ipmitool(t, ctx, to, "chassis", "status")); f["System Power"] != "off" {
			t.Errorf("ipmitool says %q after power down", f["System Power"])
		}
		if err := ipmi.ChassisControl(ctx, l.c, to, ipmi.ChassisPowerUp); err != nil {
			t.Fatal(err)
		}
		waitPower(true)
	})
}

func isCode(err error, c ipmi.CompletionCode) bool {
	code, ok := ipmi.CodeOf(err)
	return ok && code == c
}

func findSDR(sdrs []ipmi.SDR, name string) *ipmi.SDR {
	for i := range sdrs {
		if sdrs[i].Name() == name {
			return &sdrs[i]
		}
	}
	return nil
}

func hexField(t *testing.T, s string) int {
	t.Helper()
	s = strings.ReplaceAll(strings.TrimSpace(s), " ", "")
	v, err := strconv.ParseInt(strings.TrimPrefix(s, "0x"), 16, 32)
	if err != nil {
		t.Fatalf("hex field %q: %v", s, err)
	}
	return int(v)
}

// thresholdEvents renders threshold event enables the way "ipmitool sensor
// get" does: "lnc- lcr- lnr- unc+ ucr+ unr+".
func thresholdEvents(m uint16) string {
	names := []string{"lnc-", "lnc+", "lcr-", "lcr+", "lnr-", "lnr+", "unc-", "unc+", "ucr-", "ucr+", "unr-", "unr+"}
	var out []string
	for i, n := range names {
		if m&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return strings.Join(out, " ")
}
