package shelf

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"

	"hpiagent/shelf/ipmi"
)

// readingConn answers Get Sensor Reading with the sensor number as raw
// value, fails for sensors in fail, and records the most requests it saw
// in flight at once.
type readingConn struct {
	mu             sync.Mutex
	inFlight, peak int
	fail           map[uint8]ipmi.CompletionCode
	release        chan struct{}
	thresholdReads int
}

func (c *readingConn) Exchange(ctx context.Context, to ipmi.Addr, req ipmi.Request) (ipmi.Response, error) {
	c.mu.Lock()
	c.inFlight++
	c.peak = max(c.peak, c.inFlight)
	c.mu.Unlock()
	defer func() { c.mu.Lock(); c.inFlight--; c.mu.Unlock() }()
	if c.release != nil {
		<-c.release
	}
	n := req.Data[0]
	if cc, ok := c.fail[n]; ok {
		return ipmi.Response{Code: cc}, nil
	}
	switch req.Cmd {
	case ipmi.CmdGetSensorReading:
		return ipmi.Response{Data: []byte{n, 0xc0, 0x00}}, nil
	case ipmi.CmdGetSensorThresholds:
		c.mu.Lock()
		c.thresholdReads++
		c.mu.Unlock()
		return ipmi.Response{Data: []byte{0x3f, 1, 2, 3, 4, 5, 6}}, nil
	}
	return ipmi.Response{Code: ipmi.CCInvalidCommand}, nil
}

func (c *readingConn) Close() error { return nil }

func thresholdSensor(n uint8) Sensor {
	rec := &ipmi.SensorRecord{Type: ipmi.SDRFullSensor, Number: n, EventReadingType: 0x01, Capabilities: 2 << 2}
	rec.Conv.M = 1
	return Sensor{Number: n, Name: "s", Record: rec}
}

func TestReadSensorsKeepsOrderAndIsolatesFailures(t *testing.T) {
	c := &readingConn{fail: map[uint8]ipmi.CompletionCode{3: ipmi.CCNotPresent}}
	var sensors []Sensor
	for n := range uint8(10) {
		sensors = append(sensors, thresholdSensor(n))
	}
	got := ReadSensors(context.Background(), c, sensors, SweepOptions{InFlight: 3, Thresholds: true})
	if len(got) != len(sensors) {
		t.Fatalf("%d readings for %d sensors", len(got), len(sensors))
	}
	for i, r := range got {
		if r.Sensor.Number != uint8(i) {
			t.Fatalf("reading %d is for sensor %d", i, r.Sensor.Number)
		}
		if i == 3 {
			if code, ok := ipmi.CodeOf(r.Err); !ok || code != ipmi.CCNotPresent {
				t.Errorf("sensor 3: err = %v, want completion code 0xcb", r.Err)
			}
			continue
		}
		if r.Err != nil || !r.HasValue || r.Value != float64(i) || r.Thresholds == nil {
			t.Errorf("sensor %d: %+v", i, r)
		}
	}
	if c.thresholdReads != 9 {
		t.Errorf("%d threshold reads, want 9", c.thresholdReads)
	}
}

func TestReadSensorsBoundsInFlight(t *testing.T) {
	c := &readingConn{release: make(chan struct{})}
	var sensors []Sensor
	for n := range uint8(20) {
		sensors = append(sensors, thresholdSensor(n))
	}
	done := make(chan []Reading)
	go func() { done <- ReadSensors(context.Background(), c, sensors, SweepOptions{InFlight: 5}) }()
	// Let the sweep fill its window before anything answers.
	for {
		c.mu.Lock()
		n := c.inFlight
		c.mu.Unlock()
		if n == 5 {
			break
		}
		runtime.Gosched()
	}
	close(c.release)
	<-done
	if c.peak != 5 {
		t.Errorf("peak in flight %d, want 5", c.peak)
	}
}

func TestReadSensorsStopsWhenContextEnds(t *testing.T) {
	c := &readingConn{release: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	sensors := []Sensor{thresholdSensor(1), thresholdSensor(2), thresholdSensor(3)}
	done := make(chan []Reading)
	go func() { done <- ReadSensors(ctx, c, sensors, SweepOptions{InFlight: 1}) }()
	c.release <- struct{}{} // first sensor answers
	cancel()
	close(c.release) // anything already sent may finish
	got := <-done
	if got[2].Err == nil || !errors.Is(got[2].Err, context.Canceled) {
		t.Errorf("last sensor: err = %v, want context.Canceled", got[2].Err)
	}
}
