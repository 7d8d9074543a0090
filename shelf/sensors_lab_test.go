package shelf_test

import (
	"context"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"hpiagent/internal/labshelf"
	"hpiagent/shelf"
	"hpiagent/shelf/ipmi"
	"hpiagent/shelf/rmcpp"
)

// ipmitoolSensor is one line of `ipmitool sensor`.
type ipmitoolSensor struct {
	value      string
	thresholds [6]string // lnr lcr lnc unc ucr unr as ipmitool prints them
}

func parseIpmitoolSensor(t *testing.T, out string) map[string]ipmitoolSensor {
	t.Helper()
	m := map[string]ipmitoolSensor{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(line, "|")
		if len(f) < 10 {
			continue
		}
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
		}
		// name | value | unit | status | lnr | lcr | lnc | unc | ucr | unr
		m[f[0]] = ipmitoolSensor{value: f[1], thresholds: [6]string{f[4], f[5], f[6], f[7], f[8], f[9]}}
	}
	return m
}

// TestSweepMatchesIpmitool reads every sensor of the lab shelf through its
// shelf manager (bridging to the IPMCs that own most of them) and compares
// names, readings and thresholds with what `ipmitool sensor` prints for the
// same simulator.
func TestSweepMatchesIpmitool(t *testing.T) {
	sh := labshelf.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sess, err := rmcpp.Dial(ctx, rmcpp.Config{Addr: sh.Addr(), Username: sh.User, Password: []byte(sh.Password), CipherSuites: []int{3}})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()

	sdrs, err := ipmi.ReadSDRRepository(ctx, sess, ipmi.Addr{}, ipmi.MainSDR)
	if err != nil {
		t.Fatal(err)
	}
	sensors := shelf.SensorsOf(sdrs, ipmi.AddrBMC)
	readings := shelf.ReadSensors(ctx, sess, sensors, shelf.SweepOptions{Thresholds: true, InFlight: 6})

	out, err := sh.Ipmitool(ctx, "sensor")
	if err != nil {
		t.Fatal(err)
	}
	want := parseIpmitoolSensor(t, out)
	if len(readings) != len(want) || len(want) == 0 {
		t.Errorf("swept %d sensors, ipmitool lists %d", len(readings), len(want))
	}
	bridged := 0
	for _, r := range readings {
		if r.Err != nil {
			t.Errorf("%s: %v", r.Sensor.Name, r.Err)
			continue
		}
		if !r.Sensor.Owner.Local() {
			bridged++
		}
		w, ok := want[r.Sensor.Name]
		if !ok {
			t.Errorf("sensor %q not listed by ipmitool", r.Sensor.Name)
			continue
		}
		if !r.HasValue {
			continue // discrete (hot-swap) sensors: ipmitool prints a hex state
		}
		if !closeTo(t, w.value, r.Value) {
			t.Errorf("%s: value %v, ipmitool %s", r.Sensor.Name, r.Value, w.value)
		}
		if r.Thresholds == nil {
			continue
		}
		order := []ipmi.Threshold{ipmi.LowerNonRecoverable, ipmi.LowerCritical, ipmi.LowerNonCritical, ipmi.UpperNonCritical, ipmi.UpperCritical, ipmi.UpperNonRecoverable}
		for i, th := range order {
			if !r.Thresholds.Has(th) {
				if w.thresholds[i] != "na" {
					t.Errorf("%s %s: not readable here, ipmitool %s", r.Sensor.Name, th, w.thresholds[i])
				}
				continue
			}
			v, err := r.Sensor.Record.Conv.Real(r.Thresholds.Value[th])
			if err != nil {
				t.Errorf("%s %s: %v", r.Sensor.Name, th, err)
				continue
			}
			if !closeTo(t, w.thresholds[i], v) {
				t.Errorf("%s %s: %v, ipmitool %s", r.Sensor.Name, th, v, w.thresholds[i])
			}
		}
	}
	t.Logf("%d sensors, %d read through bridging", len(readings), bridged)
	if bridged == 0 {
		t.Error("no sensor was read through IPMB bridging; the lab shelf's IPMCs own most sensors")
	}
}

func closeTo(t *testing.T, s string, v float64) bool {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return false
	}
	return math.Abs(f-v) < 0.0015 // ipmitool prints three decimals
}
