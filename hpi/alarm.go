package hpi

import (
	"fmt"
	"sort"
	"strconv"
	"time"
)

// StatusCondType is SaHpiStatusCondTypeT.
type StatusCondType uint8

// SaHpiStatusCondTypeT values.
const (
	CondSensor   StatusCondType = 0 // SAHPI_STATUS_COND_TYPE_SENSOR
	CondResource StatusCondType = 1 // SAHPI_STATUS_COND_TYPE_RESOURCE
	CondOEM      StatusCondType = 2 // SAHPI_STATUS_COND_TYPE_OEM
	CondUser     StatusCondType = 3 // SAHPI_STATUS_COND_TYPE_USER
)

// String returns the OpenHPI text form ("SENSOR").
func (t StatusCondType) String() string {
	switch t {
	case CondSensor:
		return "SENSOR"
	case CondResource:
		return "RESOURCE"
	case CondOEM:
		return "OEM"
	case CondUser:
		return "USER"
	}
	return "UNKNOWN(" + strconv.Itoa(int(t)) + ")"
}

// Condition is SaHpiConditionT: what an alarm is about.
type Condition struct {
	Type       StatusCondType
	Entity     EntityPath
	ResourceID ResourceID
	SensorNum  SensorNum
	EventState EventState
	Name       string
}

func (c Condition) key() string {
	k := fmt.Sprintf("%d/%d/%d/%d", c.Type, c.ResourceID, c.SensorNum, c.EventState)
	if c.Type == CondOEM || c.Type == CondUser {
		k += "/" + c.Name
	}
	return k
}

// Alarm is SaHpiAlarmT of the domain alarm table (DAT).
type Alarm struct {
	AlarmID      uint32
	Timestamp    time.Time
	Severity     Severity
	Acknowledged bool
	Condition    Condition
}

func (a Alarm) clone() Alarm {
	a.Condition.Entity = a.Condition.Entity.Clone()
	return a
}

// condition names of the resource conditions.
const condResourceFailed = "resource failed"

type alarmTable struct {
	byKey  map[string]*Alarm
	nextID uint32
}

// raiseLocked adds the alarm for cond unless it is already active.
func (d *Domain) raiseAlarmLocked(cond Condition, sev Severity, now time.Time) {
	k := cond.key()
	if _, ok := d.alarms.byKey[k]; ok {
		return
	}
	d.alarms.nextID++
	a := &Alarm{AlarmID: d.alarms.nextID, Timestamp: now, Severity: sev, Condition: cond}
	d.alarms.byKey[k] = a
	d.datChangedLocked(now)
	d.emitAlarmLocked(*a, AlarmAdded, now)
}

// clearAlarmLocked removes the alarm for cond, if active.
func (d *Domain) clearAlarmLocked(cond Condition, now time.Time) {
	k := cond.key()
	a, ok := d.alarms.byKey[k]
	if !ok {
		return
	}
	delete(d.alarms.byKey, k)
	d.datChangedLocked(now)
	d.emitAlarmLocked(*a, AlarmCleared, now)
}

// clearResourceAlarmsLocked removes every alarm of resource id.
func (d *Domain) clearResourceAlarmsLocked(id ResourceID, now time.Time, keep func(Condition) bool) {
	var gone []*Alarm
	for _, a := range d.alarms.byKey {
		if a.Condition.ResourceID == id && (keep == nil || !keep(a.Condition)) {
			gone = append(gone, a)
		}
	}
	sort.Slice(gone, func(i, j int) bool { return gone[i].AlarmID < gone[j].AlarmID })
	for _, a := range gone {
		d.clearAlarmLocked(a.Condition, now)
	}
}

func (d *Domain) datChangedLocked(now time.Time) {
	d.info.DatUpdateCount++
	d.info.DatUpdateTimestamp = now
}

func (d *Domain) emitAlarmLocked(a Alarm, action AlarmAction, now time.Time) {
	sev := a.Severity
	if action != AlarmAdded {
		sev = Informational
	}
	d.emitLocked(Event{
		Source:    a.Condition.ResourceID,
		Type:      EventHPISW,
		Timestamp: now,
		Severity:  sev,
		HPISW: HPISWEvent{Type: 2, Data: fmt.Sprintf("alarm %d %s: %s", a.AlarmID, action, a.Condition.Name),
			Alarm: &AlarmChange{Alarm: a.clone(), Action: action}},
	})
}

// Alarms returns the active alarms ordered by AlarmID
// (saHpiAlarmGetNext).
func (d *Domain) Alarms() []Alarm {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Alarm, 0, len(d.alarms.byKey))
	for _, a := range d.alarms.byKey {
		out = append(out, a.clone())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].AlarmID < out[j].AlarmID })
	return out
}

// AcknowledgeAlarm marks an active alarm acknowledged (saHpiAlarmAcknowledge).
// It stays in the table until its condition clears.
func (d *Domain) AcknowledgeAlarm(id uint32) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, a := range d.alarms.byKey {
		if a.AlarmID == id {
			if a.Acknowledged {
				return nil
			}
			a.Acknowledged = true
			now := d.now()
			d.datChangedLocked(now)
			d.emitAlarmLocked(*a, AlarmAcknowledged, now)
			return nil
		}
	}
	return fmt.Errorf("hpi: acknowledge alarm %d: %w", id, ErrNotPresent)
}

// alarmSeverity returns the alarm severity of one event state bit of a
// sensor of category cat, and whether the bit is an alarm condition (MAJOR
// or CRITICAL).
func alarmSeverity(cat EventCategory, st EventState) (Severity, bool) {
	switch cat {
	case ECThreshold:
		switch st {
		case ESLowerCrit, ESUpperCrit:
			return Critical, true
		case ESLowerMajor, ESUpperMajor:
			return Major, true
		}
	case ECSeverity:
		switch st {
		case ESCritical, ESCriticalFromLess:
			return Critical, true
		case ESMajorFromLess, ESMajorFromCritical:
			return Major, true
		}
	}
	return 0, false
}

// eventSeverity is the severity of a sensor event asserting st.
func eventSeverity(cat EventCategory, st EventState) Severity {
	if sev, ok := alarmSeverity(cat, st); ok {
		return sev
	}
	if (cat == ECThreshold && (st == ESLowerMinor || st == ESUpperMinor)) ||
		(cat == ECSeverity && (st == ESMinorFromOK || st == ESMinorFromMore)) {
		return Minor
	}
	return Informational
}
