package shelf

import (
	"fmt"
	"time"

	"hpiagent/hpi"
	"hpiagent/shelf/ipmi"
)

// sensorKey names a sensor the way events do: the 8-bit IPMB address of
// its owner and its number (a PET carries neither channel nor LUN).
type sensorKey struct {
	gen, num uint8
}

// sensorRef ties a shelf sensor to its HPI resource and sensor number.
type sensorRef struct {
	res     hpi.ResourceID
	num     hpi.SensorNum
	sensor  Sensor
	hotSwap bool
}

// fruRef is what the hardware actions need to know of a FRU resource.
type fruRef struct {
	res  hpi.ResourceID
	mc   *MC
	fru  *FRU
	addr ipmi.Addr
}

func (f *fruRef) String() string { return fmt.Sprintf("%s FRU %d", f.mc, f.fru.ID) }

// fruAt finds the FRU with device ID fru on the controller at IPMB-0
// address ipmb; a nil index (before the first discovery) has none.
func (idx *monIndex) fruAt(ipmb, fru uint8) (hpi.ResourceID, *fruRef, bool) {
	if idx == nil {
		return 0, nil, false
	}
	for id, r := range idx.frus {
		if r.mc != nil && r.fru != nil && r.mc.IPMBAddr == ipmb && r.fru.ID == fru {
			return id, r, true
		}
	}
	return 0, nil, false
}

// monIndex maps what the shelf reports (sensors, controllers) to the
// domain's resources, as of one discovery. It is replaced, never changed,
// by a rediscovery (except thresholdsSet).
type monIndex struct {
	local     uint8
	repo      ipmi.SDRRepositoryInfo
	resources []hpi.ResourceID
	// polled are the sensors the poller reads (event-only records have
	// no reading).
	polled  []Sensor
	sensors map[SensorID]sensorRef
	// polledByGen, hotSwapByGen and all are sensors by event identity:
	// readable ones, hot-swap sensors (to their FRU resource) and all.
	polledByGen  map[sensorKey]SensorID
	hotSwapByGen map[sensorKey]hpi.ResourceID
	all          map[sensorKey]sensorRef
	// known are the IPMB addresses of the controllers, channel their
	// channel, fru0 the resource of their FRU 0, owners the addresses
	// commands go to.
	known   map[uint8]bool
	channel map[uint8]uint8
	fru0    map[uint8]hpi.ResourceID
	owners  map[ipmi.Addr]bool
	frus    map[hpi.ResourceID]*fruRef
	// thresholdsSet are the sensors whose thresholds were handed to the
	// domain.
	thresholdsSet map[SensorID]bool
}

// buildIndex indexes a snapshot that Apply put into d.
func buildIndex(snap *Snapshot, d *hpi.Domain, opts ModelOptions) *monIndex {
	idx := &monIndex{local: snap.LocalAddr, repo: snap.Repository,
		sensors: map[SensorID]sensorRef{}, polledByGen: map[sensorKey]SensorID{},
		hotSwapByGen: map[sensorKey]hpi.ResourceID{}, all: map[sensorKey]sensorRef{},
		known: map[uint8]bool{}, channel: map[uint8]uint8{}, fru0: map[uint8]hpi.ResourceID{},
		owners: map[ipmi.Addr]bool{}, frus: map[hpi.ResourceID]*fruRef{}, thresholdsSet: map[SensorID]bool{}}
	for _, mc := range snap.MCs {
		idx.known[mc.IPMBAddr] = true
		idx.channel[mc.IPMBAddr] = mc.Addr.Channel
		for _, s := range mc.Sensors {
			if s.Record.Type != ipmi.SDREventOnly {
				idx.polled = append(idx.polled, s)
				idx.owners[s.Owner] = true
			}
		}
	}
	resources, _ := Model(snap, opts)
	for _, r := range resources {
		id, ok := d.ResourceIDFor(r.Entry.EntityPath)
		if !ok {
			continue
		}
		if _, present := d.Resource(id); !present {
			continue
		}
		idx.resources = append(idx.resources, id)
		idx.frus[id] = &fruRef{res: id, mc: r.MC, fru: r.FRU, addr: r.MC.Addr}
		if r.FRU.ID == 0 {
			idx.fru0[r.MC.IPMBAddr] = id
		}
		for _, s := range r.MC.SensorsOfFRU(r.FRU) {
			ref := sensorRef{res: id, num: SensorNumOf(s), sensor: s,
				hotSwap: r.FRU.HotSwap != nil && r.FRU.HotSwap.ID() == s.ID()}
			key := sensorKey{gen: r.MC.IPMBAddr, num: s.Number}
			idx.all[key] = ref
			if ref.hotSwap {
				idx.hotSwapByGen[key] = id
			}
			if s.Record.Type != ipmi.SDREventOnly {
				idx.sensors[s.ID()] = ref
				idx.polledByGen[key] = s.ID()
			}
		}
	}
	return idx
}

// linkHealth decides when a shelf manager that does not answer is lost:
// after failing without a single success for the grace time. It does no
// I/O and takes the time as an argument.
type linkHealth struct {
	grace     time.Duration
	failing   bool
	firstFail time.Time
	lost      bool
}

// ok records an answer; it reports whether the link was lost until now.
func (h *linkHealth) ok(now time.Time) (recovered bool) {
	recovered = h.lost
	h.lost, h.failing = false, false
	return recovered
}

// fail records a failure; it reports whether the link is lost from now
// on (true once per outage).
func (h *linkHealth) fail(now time.Time) (becameLost bool) {
	if h.lost {
		return false
	}
	if !h.failing {
		h.failing, h.firstFail = true, now
	}
	if now.Sub(h.firstFail) >= h.grace {
		h.lost = true
		return true
	}
	return false
}

// hsCause maps the cause of an ATCA hot-swap transition (PICMG 3.0 table
// 3-23) to HPI's cause of state change, as the HPI-to-AdvancedTCA mapping
// does where it says, and UNKNOWN otherwise.
func hsCause(h *HotSwapEvent) hpi.HsCause {
	if h == nil || !h.CauseKnown {
		return hpi.HsCauseUnknown
	}
	switch h.Cause {
	case CauseNormal:
		return hpi.HsCauseAutoPolicy
	case CauseShelfManager:
		return hpi.HsCauseExtSoftware
	case CauseHandle:
		return hpi.HsCauseOperatorInit
	case CauseProgrammatic:
		return hpi.HsCauseUserUpdate
	case CauseCommunication, CauseCommunicationLocal:
		return hpi.HsCauseHardwareFault
	case CauseSurpriseExtraction:
		return hpi.HsCauseSurpriseExtraction
	case CauseUnexpectedDeactivate:
		return hpi.HsCauseUnexpectedDeactivation
	}
	return hpi.HsCauseUnknown
}

// hpiThresholds converts raw limits to the HPI thresholds of an analog
// sensor (non-analog sensors get raw counts).
func hpiThresholds(s Sensor, lim Limits) hpi.SensorThresholds {
	rec := s.Record
	conv := func(raw uint8) hpi.SensorReading {
		if rec.Analog() {
			if v, err := rec.Conv.Real(raw); err == nil {
				return hpi.Float(v)
			}
			return hpi.SensorReading{}
		}
		return hpi.Float(float64(rec.Conv.Signed(raw)))
	}
	var out hpi.SensorThresholds
	dst := [6]*hpi.SensorReading{
		ipmi.LowerNonCritical: &out.LowMinor, ipmi.LowerCritical: &out.LowMajor, ipmi.LowerNonRecoverable: &out.LowCritical,
		ipmi.UpperNonCritical: &out.UpMinor, ipmi.UpperCritical: &out.UpMajor, ipmi.UpperNonRecoverable: &out.UpCritical,
	}
	for t := ipmi.LowerNonCritical; t <= ipmi.UpperNonRecoverable; t++ {
		if lim.Thresholds.Has(t) {
			*dst[t] = conv(lim.Thresholds.Value[t])
		}
	}
	if h := hysteresis(rec, lim.Hysteresis.Positive); h > 0 {
		out.PosThdHysteresis = hpi.Float(h)
	}
	if h := hysteresis(rec, lim.Hysteresis.Negative); h > 0 {
		out.NegThdHysteresis = hpi.Float(h)
	}
	return out
}

// thresholdSeverity is the severity of a threshold being crossed: the
// non-critical thresholds are minor, the critical ones major, the
// non-recoverable ones critical (the IPMI-to-HPI mapping).
func thresholdSeverity(t ipmi.Threshold) hpi.Severity {
	switch t {
	case ipmi.LowerNonCritical, ipmi.UpperNonCritical:
		return hpi.Minor
	case ipmi.LowerCritical, ipmi.UpperCritical:
		return hpi.Major
	}
	return hpi.Critical
}

// hpiEventOf builds the HPI sensor event of a shelf event record whose
// sensor the poller cannot read (an event-only or unknown sensor); now is
// its time stamp when the record has none.
func hpiEventOf(e Event, idx *monIndex, key sensorKey, now time.Time) hpi.Event {
	ev := hpi.Event{Source: hpi.UnspecifiedResourceID, Type: hpi.EventSensor, Timestamp: e.Time, Severity: hpi.Informational}
	if ev.Timestamp.IsZero() {
		ev.Timestamp = now
	}
	se := hpi.SensorEvent{Num: hpi.SensorNum(e.Sensor), SensorType: hpi.SensorType(e.SensorType),
		Category: categoryOf(e.EventType), Assertion: !e.Deassert,
		SensorSpecific:      uint32(e.Data[0]) | uint32(e.Data[1])<<8 | uint32(e.Data[2])<<16,
		OptionalDataPresent: hpi.SODSensorSpecific}
	if ref, ok := idx.all[key]; ok {
		ev.Source, se.Num = ref.res, ref.num
	} else if id, ok := idx.fru0[key.gen]; ok {
		ev.Source = id
	}
	switch {
	case e.Threshold != nil:
		se.EventState = hpi.EventState(1) << e.Threshold.Threshold
		if !e.Deassert {
			ev.Severity = thresholdSeverity(e.Threshold.Threshold)
		} else {
			ev.Severity = hpi.OK
		}
		if ref, ok := idx.all[key]; ok && ref.sensor.Record.Analog() {
			c := e
			c.Convert(ref.sensor.Record.Conv)
			if c.Threshold.HasValue {
				se.TriggerReading = hpi.Float(c.Threshold.Value)
				se.OptionalDataPresent |= hpi.SODTriggerReading
			}
			if c.Threshold.HasThresholdValue {
				se.TriggerThreshold = hpi.Float(c.Threshold.ThresholdValue)
				se.OptionalDataPresent |= hpi.SODTriggerThreshold
			}
		}
	case e.Discrete != nil:
		se.EventState = hpi.EventState(1) << e.Discrete.Offset
	case e.HotSwap != nil:
		se.EventState = hpi.EventState(1) << e.HotSwap.New
	}
	ev.Sensor = se
	return ev
}
