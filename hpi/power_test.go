package hpi

import (
	"errors"
	"testing"
)

func TestPowerStateAndResetActionNames(t *testing.T) {
	for _, p := range []PowerState{PowerOff, PowerOn, PowerCycle} {
		got, err := ParsePowerState("sahpi_power_" + p.String())
		if err != nil || got != p {
			t.Errorf("ParsePowerState(%q) = %v, %v; want %v", p.String(), got, err, p)
		}
	}
	for _, a := range []ResetAction{ColdReset, WarmReset, ResetAssert, ResetDeassert} {
		got, err := ParseResetAction(a.String())
		if err != nil || got != a {
			t.Errorf("ParseResetAction(%q) = %v, %v; want %v", a.String(), got, err, a)
		}
	}
	for _, bad := range []string{"", "OFFF", "POWER_ON"} {
		if _, err := ParsePowerState(bad); !errors.Is(err, ErrInvalidParams) {
			t.Errorf("ParsePowerState(%q): err %v, want ErrInvalidParams", bad, err)
		}
		if _, err := ParseResetAction(bad); !errors.Is(err, ErrInvalidParams) {
			t.Errorf("ParseResetAction(%q): err %v, want ErrInvalidParams", bad, err)
		}
	}
	if PowerState(9).String() != "PowerState(9)" || ResetAction(9).String() != "ResetAction(9)" {
		t.Error("unknown values must print their number")
	}
}
