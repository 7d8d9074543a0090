package ipmi

import (
	"errors"
	"math"
	"testing"

	gotypes "github.com/bougou/go-ipmi/pkg/types"
)

func near(a, b float64) bool {
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

func TestConversionReal(t *testing.T) {
	// Expected values are the IPMI 2.0 §36.3 formula worked by hand.
	for _, tc := range []struct {
		name string
		c    Conversion
		raw  uint8
		want float64
	}{
		{"lab +12V M=6 R=-2", Conversion{M: 6, RExp: -2}, 201, 12.06},
		{"lab -48V feed M=3 R=-1", Conversion{M: 3, RExp: -1}, 160, 48.0},
		{"offset with B exponent", Conversion{M: 1, B: 5, BExp: 2}, 10, 510},
		{"negative B", Conversion{M: 2, B: -40}, 50, 60},
		{"negative 10-bit M", Conversion{M: -2, B: 500}, 100, 300},
		{"2's complement negative", Conversion{Format: AnalogTwos, M: 1}, 0xf6, -10},
		{"2's complement 0x80", Conversion{Format: AnalogTwos, M: 1}, 0x80, -128},
		{"1's complement negative", Conversion{Format: AnalogOnes, M: 1}, 0xf5, -10},
		{"1's complement -0", Conversion{Format: AnalogOnes, M: 1, B: 7}, 0xff, 7},
		{"1's complement 0x80", Conversion{Format: AnalogOnes, M: 1}, 0x80, -127},
		{"unsigned 0xff", Conversion{M: 1}, 0xff, 255},
		{"ln", Conversion{Linearization: LinLn, M: 1}, 20, math.Log(20)},
		{"log10", Conversion{Linearization: LinLog10, M: 1}, 100, 2},
		{"log2", Conversion{Linearization: LinLog2, M: 1}, 64, 6},
		{"e", Conversion{Linearization: LinE, M: 1, RExp: -1}, 15, math.Exp(1.5)},
		{"exp10 of a fraction", Conversion{Linearization: LinExp10, M: 1, RExp: -1}, 5, math.Sqrt(10)},
		{"exp2", Conversion{Linearization: LinExp2, M: 1, RExp: -1}, 15, math.Pow(2, 1.5)},
		{"1/x", Conversion{Linearization: Lin1X, M: 1}, 4, 0.25},
		{"sqr", Conversion{Linearization: LinSqr, M: 1}, 12, 144},
		{"cube", Conversion{Linearization: LinCube, M: 1, RExp: -1}, 15, 3.375},
		{"sqrt", Conversion{Linearization: LinSqrt, M: 1}, 81, 9},
		{"cbrt", Conversion{Linearization: LinCbrt, M: 1}, 125, 5},
		{"non-linear uses SDR factors only", Conversion{Linearization: LinNonLinear, M: 2}, 10, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.c.Real(tc.raw)
			if err != nil {
				t.Fatal(err)
			}
			if !near(got, tc.want) {
				t.Fatalf("Real(0x%02x) = %v, want %v", tc.raw, got, tc.want)
			}
		})
	}
}

func TestConversionRealErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Conversion
		raw  uint8
	}{
		{"no analog reading", Conversion{Format: AnalogNoReadings, M: 1}, 10},
		{"log of zero", Conversion{Linearization: LinLog10, M: 1}, 0},
		{"1/x of zero", Conversion{Linearization: Lin1X, M: 1}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if v, err := tc.c.Real(tc.raw); !errors.Is(err, ErrNotAnalog) {
				t.Fatalf("Real = %v, %v; want ErrNotAnalog", v, err)
			}
		})
	}
}

func goipmiFactors(c Conversion) gotypes.ReadingFactors {
	return gotypes.ReadingFactors{M: c.M, B: c.B, R_Exp: c.RExp, B_Exp: c.BExp}
}

// TestHysteresisDiffersFromGoIPMI shows the go-ipmi bug this package
// replaces: go-ipmi converts hysteresis with the reading formula, adding
// the B offset (and treating the count as signed). Hysteresis is a
// distance in raw counts: only M and the R exponent apply (ipmitool's
// sdr_convert_sensor_hysterisis agrees).
func TestHysteresisDiffersFromGoIPMI(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Conversion
		raw  uint8
		want float64
	}{
		{"temperature with offset B=-40", Conversion{M: 1, B: -40}, 2, 2},
		{"voltage M=6 R=-2 B=10", Conversion{M: 6, RExp: -2, B: 10}, 1, 0.06},
		{"2's complement sensor, count above 0x7f", Conversion{Format: AnalogTwos, M: 1, B: 3}, 0x90, 144},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := tc.c.Hysteresis(tc.raw)
			if !ok || !near(got, tc.want) {
				t.Fatalf("Hysteresis(%d) = %v, %t; want %v", tc.raw, got, ok, tc.want)
			}
			theirs := gotypes.ConvertSensorHysteresis(tc.raw, gotypes.SensorAnalogUnitFormat(tc.c.Format), goipmiFactors(tc.c), gotypes.LinearizationFunc(tc.c.Linearization))
			if near(theirs, tc.want) {
				t.Fatalf("go-ipmi now gives the right value %v; reconsider using it", theirs)
			}
			t.Logf("hysteresis raw %d: %v (go-ipmi: %v)", tc.raw, got, theirs)
		})
	}
}

func TestHysteresisNone(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Conversion
		raw  uint8
	}{
		{"zero", Conversion{M: 1}, 0},
		{"0xff means none", Conversion{M: 1}, 0xff},
		{"non-linear", Conversion{M: 1, Linearization: LinLog10}, 2},
		{"not analog", Conversion{M: 1, Format: AnalogNoReadings}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if v, ok := tc.c.Hysteresis(tc.raw); ok {
				t.Fatalf("Hysteresis(%d) = %v, want none", tc.raw, v)
			}
		})
	}
}

// TestExp10DiffersFromGoIPMI: go-ipmi computes exp10 with
// math.Pow10(int(x)) and so truncates the exponent.
func TestExp10DiffersFromGoIPMI(t *testing.T) {
	c := Conversion{Linearization: LinExp10, M: 1, RExp: -1}
	got, err := c.Real(5) // x = 0.5
	if err != nil {
		t.Fatal(err)
	}
	theirs := gotypes.ConvertReading(5, 0, goipmiFactors(c), gotypes.LinearizationFunc(LinExp10))
	if !near(got, math.Sqrt(10)) || near(theirs, got) {
		t.Fatalf("exp10(0.5): ours %v, go-ipmi %v; want ours = sqrt(10) and go-ipmi different", got, theirs)
	}
}

// TestRealAgreesWithGoIPMI: where go-ipmi is right (every format and
// linearization but exp10), both conversions agree on all raw values.
func TestRealAgreesWithGoIPMI(t *testing.T) {
	factors := []Conversion{
		{M: 6, RExp: -2}, {M: -3, B: 100, BExp: 1, RExp: -1}, {M: 511, B: -512, BExp: -8, RExp: 7}, {M: 1, B: 1, BExp: 7, RExp: -8},
	}
	for _, base := range factors {
		for f := AnalogUnsigned; f <= AnalogTwos; f++ {
			for l := LinLinear; l <= LinCbrt; l++ {
				if l == LinExp10 {
					continue
				}
				c := base
				c.Format, c.Linearization = f, l
				for r := 0; r < 256; r++ {
					ours, err := c.Real(uint8(r))
					theirs := gotypes.ConvertReading(uint8(r), gotypes.SensorAnalogUnitFormat(f), goipmiFactors(c), gotypes.LinearizationFunc(l))
					if err != nil {
						if !math.IsNaN(theirs) && !math.IsInf(theirs, 0) {
							t.Fatalf("%+v raw %d: we fail (%v), go-ipmi gives %v", c, r, err, theirs)
						}
						continue
					}
					if !near(ours, theirs) {
						t.Fatalf("%+v raw %d: ours %v, go-ipmi %v", c, r, ours, theirs)
					}
				}
			}
		}
	}
}

func TestConversionRawRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Conversion
	}{
		{"linear", Conversion{M: 6, RExp: -2}},
		{"2's complement", Conversion{Format: AnalogTwos, M: 1}},
		{"1's complement", Conversion{Format: AnalogOnes, M: 5, RExp: -1}},
		{"negative M", Conversion{M: -2, B: 500}},
		{"sqr", Conversion{Linearization: LinSqr, M: 1, RExp: -1}},
		{"1/x", Conversion{Linearization: Lin1X, M: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for r := 0; r < 256; r++ {
				v, err := tc.c.Real(uint8(r))
				if err != nil {
					continue
				}
				back, err := tc.c.Raw(v)
				if err != nil {
					t.Fatalf("Raw(%v): %v", v, err)
				}
				if w, _ := tc.c.Real(back); !near(w, v) {
					t.Fatalf("raw %d -> %v -> raw %d -> %v", r, v, back, w)
				}
			}
		})
	}
}

func TestConversionRawRejects(t *testing.T) {
	c := Conversion{M: 6, RExp: -2} // 0 .. 15.30 V
	for _, v := range []float64{-1, 15.4, math.NaN(), math.Inf(1)} {
		if r, err := c.Raw(v); err == nil {
			t.Errorf("Raw(%v) = %d, want an error", v, r)
		}
	}
	// Nearest code, half a step either side of the range is accepted.
	if r, err := c.Raw(12.07); err != nil || r != 201 {
		t.Errorf("Raw(12.07) = %d, %v; want 201", r, err)
	}
	if _, err := (Conversion{Format: AnalogNoReadings}).Raw(1); !errors.Is(err, ErrNotAnalog) {
		t.Errorf("Raw on a non-analog sensor: %v", err)
	}
}

func TestAccuracyTolerance(t *testing.T) {
	c := Conversion{M: 6, RExp: -2, Tolerance: 3, Accuracy: 150, AccuracyExp: 1}
	if got := c.ToleranceReal(); !near(got, 0.09) {
		t.Errorf("ToleranceReal = %v, want 0.09", got)
	}
	if got := c.AccuracyPercent(); !near(got, 15) {
		t.Errorf("AccuracyPercent = %v, want 15", got)
	}
}

func TestSignExtend(t *testing.T) {
	for _, tc := range []struct {
		v    uint16
		n    uint
		want int16
	}{
		{0x3ff, 10, -1}, {0x200, 10, -512}, {0x1ff, 10, 511}, {0x8, 4, -8}, {0x7, 4, 7}, {0xf, 4, -1},
	} {
		if got := signExtend(tc.v, tc.n); got != tc.want {
			t.Errorf("signExtend(0x%x, %d) = %d, want %d", tc.v, tc.n, got, tc.want)
		}
	}
}

func TestUnitsString(t *testing.T) {
	for _, tc := range []struct {
		u    Units
		want string
	}{
		{Units{Base: 1}, "degrees C"},
		{Units{Base: 4}, "Volts"},
		{Units{Base: 18}, "RPM"},
		{Units{Base: 6, Relation: 1, Modifier: 24}, "Watts/hour"},
		{Units{Base: 5, Relation: 2, Modifier: 22}, "Amps*second"},
		{Units{Percentage: true}, "percent"},
		{Units{Base: 18, Rate: 4}, "RPM per minute"},
		{Units{Base: 200}, "unit 0xc8"},
	} {
		if got := tc.u.String(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.u, got, tc.want)
		}
	}
}

func TestNames(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{EntityName(0xa0), "PICMG Front Board"},
		{EntityName(0xf0), "PICMG Shelf Management Controller"},
		{EntityName(0x1e), "Cooling Unit"},
		{EntityName(0x95), "Chassis-specific entity 0x95"},
		{EntityName(0xe1), "OEM entity 0xe1"},
		{SensorTypeName(0x01), "Temperature"},
		{SensorTypeName(0xf0), "FRU Hot Swap"},
		{SensorTypeName(0xc5), "OEM sensor type 0xc5"},
		{Threshold(4).String(), "ucr"},
		{SiteShelfManager.String(), "Dedicated Shelf Manager"},
		{LEDAmber.String(), "amber"},
		{FRUQuiesce.String(), "quiesce"},
		{ChassisSoftOff.String(), "soft shutdown"},
	} {
		if tc.got != tc.want {
			t.Errorf("%q, want %q", tc.got, tc.want)
		}
	}
}
