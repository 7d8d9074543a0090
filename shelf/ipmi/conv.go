package ipmi

import (
	"errors"
	"fmt"
	"math"
)

// AnalogFormat is the analog data format of a sensor (SDR byte 21 bits 7:6).
type AnalogFormat uint8

// Analog data formats.
const (
	AnalogUnsigned   AnalogFormat = 0
	AnalogOnes       AnalogFormat = 1 // 1's complement (signed)
	AnalogTwos       AnalogFormat = 2 // 2's complement (signed)
	AnalogNoReadings AnalogFormat = 3 // no analog reading
)

// Linearization is the linearization function of a full sensor record
// (IPMI 2.0 §36.3, SDR byte 24 bits 6:0).
type Linearization uint8

// Linearization functions; 0x70 is non-linear, 0x71-0x7F OEM non-linear.
const (
	LinLinear Linearization = 0x00
	LinLn     Linearization = 0x01
	LinLog10  Linearization = 0x02
	LinLog2   Linearization = 0x03
	LinE      Linearization = 0x04
	LinExp10  Linearization = 0x05
	LinExp2   Linearization = 0x06
	Lin1X     Linearization = 0x07
	LinSqr    Linearization = 0x08
	LinCube   Linearization = 0x09
	LinSqrt   Linearization = 0x0a
	LinCbrt   Linearization = 0x0b
	// LinNonLinear and above (to 0x7F, OEM) mean that the factors change
	// with the reading (Get Sensor Reading Factors); the SDR factors are
	// then valid only near the reading they were given for.
	LinNonLinear Linearization = 0x70
)

// NonLinear reports whether l is one of the non-linear codes 0x70..0x7F.
func (l Linearization) NonLinear() bool { return l >= 0x70 && l <= 0x7f }

func (l Linearization) apply(x float64) float64 {
	switch l {
	case LinLn:
		return math.Log(x)
	case LinLog10:
		return math.Log10(x)
	case LinLog2:
		return math.Log2(x)
	case LinE:
		return math.Exp(x)
	case LinExp10:
		return math.Pow(10, x) // not math.Pow10(int(x)): x is real
	case LinExp2:
		return math.Exp2(x)
	case Lin1X:
		return 1 / x
	case LinSqr:
		return x * x
	case LinCube:
		return x * x * x
	case LinSqrt:
		return math.Sqrt(x)
	case LinCbrt:
		return math.Cbrt(x)
	}
	return x // linear, non-linear and OEM: no function
}

// Conversion holds the factors that turn a raw one-byte sensor value into
// a real value: y = L[(M*x + B*10^BExp) * 10^RExp] (IPMI 2.0 §36.3).
type Conversion struct {
	Format        AnalogFormat
	Linearization Linearization
	M             int16 // 10-bit 2's complement
	B             int16 // 10-bit 2's complement
	RExp          int8  // 4-bit 2's complement (K2)
	BExp          int8  // 4-bit 2's complement (K1)
	Tolerance     uint8 // 6 bits, in +/- half raw counts
	Accuracy      uint16
	AccuracyExp   uint8
}

// ErrNotAnalog is returned when a raw value of a sensor without analog
// readings (or with a function that has no value there) is converted.
var ErrNotAnalog = errors.New("sensor has no analog reading")

// Analog reports whether the conversion yields real values.
func (c Conversion) Analog() bool { return c.Format != AnalogNoReadings }

// Signed returns the raw byte as the signed or unsigned number the
// analog format says it is.
func (c Conversion) Signed(raw uint8) int {
	switch c.Format {
	case AnalogOnes:
		if raw&0x80 != 0 {
			return -int(^raw & 0x7f) // 0xFF is -0
		}
		return int(raw)
	case AnalogTwos:
		return int(int8(raw))
	}
	return int(raw)
}

// Real converts a raw reading or threshold to its real value in the
// sensor's units.
func (c Conversion) Real(raw uint8) (float64, error) {
	if !c.Analog() {
		return 0, ErrNotAnalog
	}
	x := float64(c.Signed(raw))
	y := (float64(c.M)*x + float64(c.B)*math.Pow(10, float64(c.BExp))) * math.Pow(10, float64(c.RExp))
	y = c.Linearization.apply(y)
	if math.IsNaN(y) || math.IsInf(y, 0) {
		return 0, fmt.Errorf("raw 0x%02x: %w: linearization 0x%02x has no value at %g", raw, ErrNotAnalog, uint8(c.Linearization), x)
	}
	return y, nil
}

// Hysteresis converts a raw hysteresis (a distance in raw counts, not a
// reading) to real units: |M| * raw * 10^RExp. B is an offset and does
// not apply to a distance. For non-linear functions a fixed distance has
// no single real value, so ok is false, as it is for 0 and 0xFF ("none").
func (c Conversion) Hysteresis(raw uint8) (v float64, ok bool) {
	if !c.Analog() || raw == 0 || raw == 0xff || c.Linearization != LinLinear {
		return 0, false
	}
	return math.Abs(float64(c.M)) * float64(raw) * math.Pow(10, float64(c.RExp)), true
}

// ToleranceReal is the tolerance in real units (+/- half of M*tolerance*10^RExp,
// IPMI 2.0 §36.4.1) for linear sensors.
func (c Conversion) ToleranceReal() float64 {
	return math.Abs(float64(c.M)) * float64(c.Tolerance) / 2 * math.Pow(10, float64(c.RExp))
}

// AccuracyPercent is the basic sensor accuracy in percent.
func (c Conversion) AccuracyPercent() float64 {
	return float64(c.Accuracy) * math.Pow(10, float64(c.AccuracyExp)) / 100
}

// Raw finds the raw value whose real value is nearest to v (for Set Sensor
// Thresholds). It searches all 256 codes, so it is exact for every
// linearization, and fails when v lies outside the representable range by
// more than half a step.
func (c Conversion) Raw(v float64) (uint8, error) {
	if !c.Analog() {
		return 0, ErrNotAnalog
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("value %g cannot be converted to a raw sensor value", v)
	}
	best, bestDiff := -1, math.Inf(1)
	lo, hi := math.Inf(1), math.Inf(-1)
	for r := 0; r < 256; r++ {
		y, err := c.Real(uint8(r))
		if err != nil {
			continue
		}
		lo, hi = math.Min(lo, y), math.Max(hi, y)
		if d := math.Abs(y - v); d < bestDiff {
			best, bestDiff = r, d
		}
	}
	if best < 0 {
		return 0, fmt.Errorf("value %g: %w", v, ErrNotAnalog)
	}
	step := c.step()
	if v < lo-step/2 || v > hi+step/2 {
		return 0, fmt.Errorf("value %g outside the sensor's range %g..%g", v, lo, hi)
	}
	return uint8(best), nil
}

// step is the real distance of one raw count for linear sensors, and 0
// (no slack) otherwise.
func (c Conversion) step() float64 {
	if c.Linearization != LinLinear {
		return 0
	}
	return math.Abs(float64(c.M)) * math.Pow(10, float64(c.RExp))
}

// signExtend interprets the low n bits of v as an n-bit 2's complement number.
func signExtend(v uint16, n uint) int16 {
	v &= 1<<n - 1
	if v&(1<<(n-1)) != 0 {
		return int16(v) - int16(1<<n)
	}
	return int16(v)
}

// parseConversion decodes full sensor record bytes 20 (units 1) and 23..29
// (linearization, M, tolerance, B, accuracy, exponents), counted from 0 at
// the start of the record header.
func parseConversion(b []byte) Conversion {
	return Conversion{
		Format:        AnalogFormat(b[20] >> 6),
		Linearization: Linearization(b[23] & 0x7f),
		M:             signExtend(uint16(b[25]>>6)<<8|uint16(b[24]), 10),
		Tolerance:     b[25] & 0x3f,
		B:             signExtend(uint16(b[27]>>6)<<8|uint16(b[26]), 10),
		Accuracy:      uint16(b[28]>>4)<<6 | uint16(b[27]&0x3f),
		AccuracyExp:   (b[28] >> 2) & 0x03,
		RExp:          int8(signExtend(uint16(b[29]>>4), 4)),
		BExp:          int8(signExtend(uint16(b[29]&0x0f), 4)),
	}
}
