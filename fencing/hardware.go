package fencing

import (
	"fmt"

	"hpiagent/hpi"
)

// Failure is a hardware failure the HPI model holds now: the entity it
// concerns and why it is one. CoordinatorConfig.FailedHardware returns
// them; the coordinator maps each entity to its node with NodeFor.
type Failure struct {
	// Entity is the entity path of the failed resource.
	Entity hpi.EntityPath
	// Reason says what failed, for the log entry and the operator.
	Reason string
}

// HardwareView is the part of the HPI domain (*hpi.Domain) that
// CurrentFailures reads.
type HardwareView interface {
	Resources() []hpi.RPTEntry
	HotSwapState(id hpi.ResourceID) (hpi.HotSwapStatus, error)
	Alarms() []hpi.Alarm
}

// CurrentFailures returns the hardware failures v holds now, in the sense
// of FailureOf:
//
//   - a FRU resource whose controller stopped answering: ResourceFailed
//     with M7 (communication lost) as its last observed M-state;
//   - a sensor asserting a CRITICAL state: an active alarm of severity
//     CRITICAL on a sensor condition (a threshold sensor beyond its
//     critical or non-recoverable threshold, or a severity sensor in a
//     critical state).
//
// A resource marked failed without M7 is not counted: that is what a
// shelf manager that stopped answering does to every resource of its
// shelf, a failure of the shelf manager or of the path to it, not of the
// blades, and fencing every blade for it would be wrong (and would fail:
// the executors talk to that shelf manager). A failure is reported under
// the entity path of the resource (as the domain's events are), so a
// node's entity matches it the same way. It only reads.
func CurrentFailures(v HardwareView) []Failure {
	var out []Failure
	res := v.Resources()
	byID := make(map[hpi.ResourceID]hpi.RPTEntry, len(res))
	for _, r := range res {
		byID[r.ResourceID] = r
		if !r.ResourceFailed {
			continue
		}
		hs, err := v.HotSwapState(r.ResourceID)
		if err != nil || hs.LastMState != hpi.M7 {
			continue
		}
		out = append(out, Failure{Entity: r.EntityPath.Clone(),
			Reason: fmt.Sprintf("resource %d %q failed: communication lost (M7)", r.ResourceID, r.Tag)})
	}
	for _, a := range v.Alarms() {
		c := a.Condition
		if c.Type != hpi.CondSensor || a.Severity != hpi.Critical {
			continue
		}
		entity := c.Entity
		tag := ""
		if r, ok := byID[c.ResourceID]; ok {
			entity, tag = r.EntityPath, r.Tag
		}
		out = append(out, Failure{Entity: entity.Clone(),
			Reason: fmt.Sprintf("critical sensor %d of resource %d %q asserts state %#x", c.SensorNum, c.ResourceID, tag, uint16(c.EventState))})
	}
	return out
}
