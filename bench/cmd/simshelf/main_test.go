package main

import (
	"strings"
	"testing"
)

func TestConfig(t *testing.T) {
	tests := []struct {
		name           string
		sensors, blade int
		wantPerBlade   []int
		wantErr        string
	}{
		{"even", 28, 14, []int{2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2}, ""},
		{"remainder to the first blades", 1000, 14, []int{72, 72, 72, 72, 72, 72, 71, 71, 71, 71, 71, 71, 71, 71}, ""},
		{"none", 0, 2, []int{0, 0}, ""},
		{"too many per blade", 401, 2, nil, "at most 200"},
		{"no blade", 10, 0, nil, "1 to 16"},
		{"too many blades", 10, 17, nil, "1 to 16"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Config(tt.sensors, tt.blade, "pw")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(cfg.IPMCs) != len(tt.wantPerBlade) {
				t.Fatalf("%d IPMCs, want %d", len(cfg.IPMCs), len(tt.wantPerBlade))
			}
			addrs := map[uint8]bool{}
			for i, mc := range cfg.IPMCs {
				if len(mc.Sensors) != tt.wantPerBlade[i] {
					t.Errorf("blade %d: %d sensors, want %d", i+1, len(mc.Sensors), tt.wantPerBlade[i])
				}
				if addrs[mc.Addr] || mc.Addr%2 != 0 {
					t.Errorf("blade %d: address %#x duplicate or odd", i+1, mc.Addr)
				}
				addrs[mc.Addr] = true
				for _, s := range mc.Sensors {
					if s.Number == mc.HotSwapSensor {
						t.Errorf("blade %d: sensor %d collides with the hot-swap sensor", i+1, s.Number)
					}
				}
			}
			if len(cfg.Users) != 1 || cfg.Users[0].Password != "pw" {
				t.Errorf("users = %+v, want the one bench user", cfg.Users)
			}
		})
	}
}
