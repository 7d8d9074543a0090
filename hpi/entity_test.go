package hpi

import (
	"errors"
	"strings"
	"testing"
)

func TestEntityPathString(t *testing.T) {
	tests := []struct {
		name string
		path EntityPath
		want string
	}{
		{"atca blade", EntityPath{{EntPICMGFrontBlade, 0}, {EntPhysicalSlot, 5}, {EntAdvancedTCAChassis, 1}},
			"{ADVANCEDTCA_CHASSIS,1}{PHYSICAL_SLOT,5}{PICMG_FRONT_BLADE,0}"},
		{"single", EntityPath{{EntSystemChassis, 2}}, "{SYSTEM_CHASSIS,2}"},
		{"numeric type", EntityPath{{EntityType(12345), 7}}, "{12345,7}"},
		{"atca slot type prints as chassis specific", EntityPath{{ATCAEntFanTraySlot, 1}}, "{CHASSIS_SPECIFIC04,1}"},
		{"root ends the path", EntityPath{{EntFan, 1}, {EntRoot, 0}, {EntRack, 9}}, "{FAN,1}"},
		{"empty", nil, ""},
		{"max location", EntityPath{{EntShelfManager, 4294967295}}, "{SHELF_MANAGER,4294967295}"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.path.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseEntityPath(t *testing.T) {
	tests := []struct {
		in      string
		want    EntityPath
		wantErr bool
	}{
		{in: "{ADVANCEDTCA_CHASSIS,1}{PHYSICAL_SLOT,5}{PICMG_FRONT_BLADE,0}",
			want: EntityPath{{EntPICMGFrontBlade, 0}, {EntPhysicalSlot, 5}, {EntAdvancedTCAChassis, 1}}},
		{in: "  { SYSTEM_CHASSIS , 1 }\t{ SBC_BLADE ,2 } ", want: EntityPath{{EntSBCBlade, 2}, {EntSystemChassis, 1}}},
		{in: "{ROOT,0}{SYSTEM_CHASSIS,3}", want: EntityPath{{EntSystemChassis, 3}}},
		{in: "{12345,2}", want: EntityPath{{EntityType(12345), 2}}},
		{in: "{0x91,1}", want: EntityPath{{ATCAEntPowerEntryModuleSlot, 1}}},
		{in: "{UNSPECIFIED,0}", want: EntityPath{{EntUnspecified, 0}}},
		{in: "{SHELF_MANAGER,4294967295}", want: EntityPath{{EntShelfManager, 4294967295}}},
		{in: "", wantErr: true},
		{in: "   ", wantErr: true},
		{in: "{NOT_A_TYPE,1}", wantErr: true},
		{in: "{0,1}", wantErr: true},
		{in: "{-3,1}", wantErr: true},
		{in: "{SYSTEM_CHASSIS}", wantErr: true},
		{in: "{SYSTEM_CHASSIS,}", wantErr: true},
		{in: "{SYSTEM_CHASSIS,x}", wantErr: true},
		{in: "{SYSTEM_CHASSIS,-1}", wantErr: true},
		{in: "{SYSTEM_CHASSIS,+1}", wantErr: true},
		{in: "{SYSTEM_CHASSIS,1,2}", wantErr: true},
		{in: "{SYSTEM_CHASSIS,4294967296}", wantErr: true},
		{in: "{SYSTEM_CHASSIS,1", wantErr: true},
		{in: "SYSTEM_CHASSIS,1}", wantErr: true},
		{in: "{SYSTEM_CHASSIS,1}x", wantErr: true},
		{in: "{SYSTEM_CHASSIS,1}}", wantErr: true},
		{in: "{{SYSTEM_CHASSIS,1}", wantErr: true},
		{in: "{SYSTEM_CHASSIS,1}{ROOT,0}", wantErr: true},
		{in: "{ROOT,1}{SYSTEM_CHASSIS,1}", wantErr: true},
		{in: "{ROOT,0}", wantErr: true},
		{in: strings.Repeat("{RACK,1}", MaxEntityPath), want: func() EntityPath {
			p := make(EntityPath, MaxEntityPath)
			for i := range p {
				p[i] = Entity{EntRack, 1}
			}
			return p
		}()},
		{in: strings.Repeat("{RACK,1}", MaxEntityPath+1), wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseEntityPath(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ParseEntityPath(%q) = %v, want error", tc.in, got)
				}
				if !errors.Is(err, ErrEntityPath) {
					t.Errorf("error %v does not wrap ErrEntityPath", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseEntityPath(%q): %v", tc.in, err)
			}
			if !got.Equal(tc.want) {
				t.Fatalf("ParseEntityPath(%q) = %v, want %v", tc.in, []Entity(got), []Entity(tc.want))
			}
		})
	}
}

func TestEntityTypeNamesRoundTrip(t *testing.T) {
	for typ, name := range entityTypeNames {
		got, err := ParseEntityType(name)
		if err != nil || got != typ {
			t.Errorf("ParseEntityType(%q) = %v, %v; want %d", name, got, err, typ)
		}
		if typ.String() != name {
			t.Errorf("%d.String() = %q, want %q", typ, typ.String(), name)
		}
	}
	// Values from SaHpi.h, spot-checked against the published constants.
	spot := map[EntityType]uint32{
		EntPhysicalSlot: 65557, EntPICMGFrontBlade: 65558, EntShelfManager: 65554, EntAdvancedTCAChassis: 65539,
		EntSwitchBlade: 65543, EntAMC: 65561, EntBMC: 65584, EntIPMC: 65585, EntIndicator: 65602,
		EntSystemFirmware: 54, EntCoolingUnit: 30, EntRoot: 65535, ATCAEntRTMSlot: 153,
	}
	for typ, v := range spot {
		if uint32(typ) != v {
			t.Errorf("%s = %d, want %d", typ, uint32(typ), v)
		}
	}
}

func TestEntityTypeFromIPMI(t *testing.T) {
	tests := []struct {
		id   uint8
		want EntityType
	}{
		{0xA0, EntPICMGFrontBlade},
		{0xC0, EntBackPanelBoard},
		{0xC1, EntAMC},
		{0xC2, EntSwitchBlade},
		{0xF0, EntShelfManager},
		{0xF1, EntFiltrationUnit},
		{0xF2, EntSystemInventoryDevice},
		{0xF3, EntAlarmManager},
		{0x1E, EntCoolingUnit},
		{0x0A, EntPowerSupply},
		{0x17, EntSystemChassis},
		{0x07, EntSystemBoard},
		{0x00, EntUnspecified},
		{0xD1, EntityType(0xD1)},
	}
	for _, tc := range tests {
		if got := EntityTypeFromIPMI(tc.id); got != tc.want {
			t.Errorf("EntityTypeFromIPMI(0x%02X) = %s, want %s", tc.id, got, tc.want)
		}
	}
}

func TestIPMIEntityLocation(t *testing.T) {
	tests := []struct {
		in   uint8
		want EntityLocation
	}{{0, 0}, {5, 5}, {0x5F, 0x5F}, {0x60, 0}, {0x61, 1}, {0x7F, 0x1F}, {0x81, 1}, {0xE2, 2}}
	for _, tc := range tests {
		if got := IPMIEntityLocation(tc.in); got != tc.want {
			t.Errorf("IPMIEntityLocation(0x%02X) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestEntityPathHelpers(t *testing.T) {
	chassis := EntityPath{{EntAdvancedTCAChassis, 1}}
	blade := EntityPath{{EntPICMGFrontBlade, 0}, {EntPhysicalSlot, 4}}.Concat(chassis)
	if got := blade.String(); got != "{ADVANCEDTCA_CHASSIS,1}{PHYSICAL_SLOT,4}{PICMG_FRONT_BLADE,0}" {
		t.Errorf("Concat = %s", got)
	}
	if loc, ok := blade.Location(EntPhysicalSlot); !ok || loc != 4 {
		t.Errorf("Location(PHYSICAL_SLOT) = %d, %v", loc, ok)
	}
	if _, ok := blade.Location(EntFan); ok {
		t.Error("Location(FAN) found")
	}
	c := blade.Clone()
	c[0].Location = 9
	if blade[0].Location != 0 {
		t.Error("Clone shares memory")
	}
	if err := (EntityPath{{EntFan, 1}, {EntRoot, 0}}).Validate(); err == nil {
		t.Error("Validate accepted a ROOT element")
	}
	if err := (EntityPath{}).Validate(); err == nil {
		t.Error("Validate accepted an empty path")
	}
}

func FuzzParseEntityPath(f *testing.F) {
	for _, s := range []string{
		"{ADVANCEDTCA_CHASSIS,1}{PHYSICAL_SLOT,5}{PICMG_FRONT_BLADE,0}",
		"{ROOT,0}{SYSTEM_CHASSIS,3}",
		" { SYSTEM_CHASSIS , 1 } { SBC_BLADE , 2 } ",
		"{12345,2}", "{0x91,1}", "{017,3}", "{SYSTEM_CHASSIS,1", "{SYSTEM_CHASSIS,1}}", "",
		strings.Repeat("{RACK,1}", 17),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseEntityPath(s)
		if err != nil {
			if !errors.Is(err, ErrEntityPath) {
				t.Fatalf("error %v does not wrap ErrEntityPath", err)
			}
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("parsed path %v does not validate: %v", []Entity(p), err)
		}
		text := p.String()
		q, err := ParseEntityPath(text)
		if err != nil {
			t.Fatalf("reparse of %q (from %q): %v", text, s, err)
		}
		if !q.Equal(p) {
			t.Fatalf("round trip %q -> %q -> %v, want %v", s, text, []Entity(q), []Entity(p))
		}
		if q.String() != text {
			t.Fatalf("print not stable: %q vs %q", q.String(), text)
		}
	})
}
