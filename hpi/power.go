package hpi

import (
	"fmt"
	"strings"
)

// PowerState is SaHpiPowerStateT: the power of a resource with the
// POWER capability (an ATCA FRU: M4 is on, M1 is off).
type PowerState uint8

// Power states, with OpenHPI's names.
const (
	PowerOff   PowerState = 0 // SAHPI_POWER_OFF
	PowerOn    PowerState = 1 // SAHPI_POWER_ON
	PowerCycle PowerState = 2 // SAHPI_POWER_CYCLE (a request only, never a state read back)
)

var powerStateNames = [...]string{"OFF", "ON", "CYCLE"}

// String names the state as OpenHPI prints it without the SAHPI_POWER_ prefix.
func (p PowerState) String() string {
	if int(p) < len(powerStateNames) {
		return powerStateNames[p]
	}
	return fmt.Sprintf("PowerState(%d)", uint8(p))
}

// ParsePowerState parses "OFF", "ON" or "CYCLE" (any case, with or
// without the SAHPI_POWER_ prefix).
func ParsePowerState(s string) (PowerState, error) {
	u := strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(s)), "SAHPI_POWER_")
	for i, n := range powerStateNames {
		if u == n {
			return PowerState(i), nil
		}
	}
	return 0, fmt.Errorf("%w: power state %q (want OFF, ON or CYCLE)", ErrInvalidParams, s)
}

// ResetAction is SaHpiResetActionT: what a reset of a resource with the
// RESET capability does.
type ResetAction uint8

// Reset actions, with OpenHPI's names.
const (
	ColdReset     ResetAction = 0 // SAHPI_COLD_RESET
	WarmReset     ResetAction = 1 // SAHPI_WARM_RESET
	ResetAssert   ResetAction = 2 // SAHPI_RESET_ASSERT
	ResetDeassert ResetAction = 3 // SAHPI_RESET_DEASSERT
)

var resetActionNames = [...]string{"COLD_RESET", "WARM_RESET", "RESET_ASSERT", "RESET_DEASSERT"}

// String names the action as OpenHPI prints it without the SAHPI_ prefix.
func (a ResetAction) String() string {
	if int(a) < len(resetActionNames) {
		return resetActionNames[a]
	}
	return fmt.Sprintf("ResetAction(%d)", uint8(a))
}

// ParseResetAction parses an action name (any case, with or without the
// SAHPI_ prefix), e.g. "COLD_RESET".
func ParseResetAction(s string) (ResetAction, error) {
	u := strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(s)), "SAHPI_")
	for i, n := range resetActionNames {
		if u == n {
			return ResetAction(i), nil
		}
	}
	return 0, fmt.Errorf("%w: reset action %q (want COLD_RESET, WARM_RESET, RESET_ASSERT or RESET_DEASSERT)", ErrInvalidParams, s)
}
