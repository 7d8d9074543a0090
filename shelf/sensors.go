// Package shelf turns what hpiagent's transports see of a shelf into
// sensors, readings and (in later work) HPI resources and events. The
// transports live in subpackages: rmcpp (RMCP+ sessions to shelf managers),
// devipmi (/dev/ipmi0), ipmi (messages and typed commands), sim (an
// embedded simulated shelf).
package shelf

import (
	"context"
	"fmt"
	"sync"

	"hpiagent/shelf/ipmi"
)

// Sensor is one sensor named by an SDR, with the address its commands go
// to. A shared compact record stands for several Sensors.
type Sensor struct {
	// Owner is where Get Sensor Reading for this sensor is sent: the zero
	// Addr for the controller at the end of the transport, a bridged IPMB
	// address for a sensor owned by an IPMC.
	Owner  ipmi.Addr
	Number uint8
	Name   string
	// EntityInstance is the record's entity instance, adjusted for shared
	// records.
	EntityInstance uint8
	Record         *ipmi.SensorRecord
}

// SensorsOf lists the sensors that sdrs describe. local is the 8-bit IPMB
// address of the controller at the end of the transport (the shelf
// manager's own address; 0x20 on most shelves, read it from the shelf
// rather than assuming it): sensors it owns are read directly, the others
// are bridged to their owner. Event-only records have no reading and are
// left out.
func SensorsOf(sdrs []ipmi.SDR, local uint8) []Sensor {
	var out []Sensor
	for _, r := range sdrs {
		s := r.Sensor
		if s == nil || s.Type == ipmi.SDREventOnly {
			continue
		}
		owner := s.Owner(local)
		for _, sh := range s.Shared() {
			out = append(out, Sensor{Owner: owner, Number: sh.Number, Name: sh.Name, EntityInstance: sh.EntityInstance, Record: s})
		}
	}
	return out
}

// Reading is the result of reading one Sensor.
type Reading struct {
	Sensor Sensor
	ipmi.SensorReading
	// Value is the reading converted to its unit, set when HasValue.
	Value    float64
	HasValue bool
	// Thresholds are the sensor's thresholds, read when asked for and the
	// sensor is a threshold sensor whose thresholds are readable.
	Thresholds *ipmi.Thresholds
	// Err says why the sensor could not be read; the other fields are then
	// zero.
	Err error
}

// SweepOptions tune ReadSensors.
type SweepOptions struct {
	// InFlight is how many sensors are read at once. Default 4: a session
	// keeps several requests in flight, and bridged reads spend most of
	// their time waiting for the IPMC.
	InFlight int
	// Thresholds also reads the thresholds of threshold sensors (one more
	// request per sensor), as `ipmitool sensor` does.
	Thresholds bool
}

// ReadSensors reads every sensor in sensors over c and returns one Reading
// per sensor, in the same order. A sensor that cannot be read has its Err
// set; the others are still read. It returns early only when ctx ends.
func ReadSensors(ctx context.Context, c ipmi.Conn, sensors []Sensor, opt SweepOptions) []Reading {
	if opt.InFlight <= 0 {
		opt.InFlight = 4
	}
	out := make([]Reading, len(sensors))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(opt.InFlight, len(sensors)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i] = readSensor(ctx, c, sensors[i], opt.Thresholds)
			}
		}()
	}
feed:
	for i := range sensors {
		select {
		case next <- i:
		case <-ctx.Done():
			for j := i; j < len(sensors); j++ {
				out[j] = Reading{Sensor: sensors[j], Err: fmt.Errorf("reading sensor %q: %w", sensors[j].Name, ctx.Err())}
			}
			break feed
		}
	}
	close(next)
	wg.Wait()
	return out
}

func readSensor(ctx context.Context, c ipmi.Conn, s Sensor, withThresholds bool) Reading {
	r := Reading{Sensor: s}
	rd, err := ipmi.GetSensorReading(ctx, c, s.Owner, s.Number)
	if err != nil {
		r.Err = fmt.Errorf("reading sensor %q: %w", s.Name, err)
		return r
	}
	r.SensorReading = rd
	if rd.Valid() && s.Record.Analog() {
		if v, err := s.Record.Conv.Real(rd.Raw); err == nil {
			r.Value, r.HasValue = v, true
		}
	}
	if withThresholds && s.Record.IsThreshold() && s.Record.ThresholdAccess() != 0 {
		th, err := ipmi.GetSensorThresholds(ctx, c, s.Owner, s.Number)
		if err != nil {
			r.Err = fmt.Errorf("reading thresholds of sensor %q: %w", s.Name, err)
			return r
		}
		r.Thresholds = &th
	}
	return r
}
