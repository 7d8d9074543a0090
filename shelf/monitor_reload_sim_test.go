package shelf_test

import (
	"testing"
	"time"

	"hpiagent/shelf"
	"hpiagent/shelf/ipmi"
	"hpiagent/shelf/sim"
)

// TestMonitorSetPollConfig shortens the poll interval of a running
// Monitor of the embedded shelf: the sensor, read once at the start under
// an interval of an hour, is read again within seconds, and the reading
// taken before the change stays in its history.
func TestMonitorSetPollConfig(t *testing.T) {
	t.Parallel()
	cfg := sim.DefaultConfig()
	blade := cfg.IPMCs[0]
	var sc sim.SensorConfig
	found := false
	for _, s := range blade.Sensors {
		if s.Type != shelf.SensorTypeHotSwap { // polled at the hot-swap interval
			sc, found = s, true
			break
		}
	}
	if !found {
		t.Fatal("the first IPMC of the configuration has no sensor besides hot-swap")
	}
	id := shelf.SensorID{Owner: ipmi.Addr{Slave: blade.Addr}, Number: sc.Number}
	_, sess, ctx := simMonitorSession(t, cfg)
	mcfg := simMonitorConfig()
	mcfg.Poll.Default = time.Hour
	mcfg.Poll.Jitter = -1 // first reads at once, then an hour apart
	r := startMonitor(ctx, t, sess, mcfg)
	var first shelf.Sample
	r.waitUntil(ctx, t, "the first reading", 10*time.Second, func() bool {
		st, ok := r.m.SensorStatus(id)
		if ok && len(st.History) > 0 {
			first = st.History[0]
			return true
		}
		return false
	})
	if st, _ := r.m.SensorStatus(id); st.Interval != time.Hour {
		t.Fatalf("interval %v before the change, want 1h", st.Interval)
	}

	newCfg := mcfg.Poll
	newCfg.Default = 100 * time.Millisecond
	r.m.SetPollConfig(newCfg)
	r.waitUntil(ctx, t, "two more readings", 10*time.Second, func() bool {
		st, _ := r.m.SensorStatus(id)
		return len(st.History) >= 3
	})
	st, _ := r.m.SensorStatus(id)
	if st.Interval != 100*time.Millisecond {
		t.Errorf("interval %v after the change, want 100ms", st.Interval)
	}
	if !st.History[0].Time.Equal(first.Time) || st.History[0].Raw != first.Raw {
		t.Errorf("history starts with %+v, want the reading from before the change %+v", st.History[0], first)
	}
}
