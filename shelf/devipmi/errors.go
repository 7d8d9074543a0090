package devipmi

import (
	"errors"
	"fmt"

	"hpiagent/shelf/ipmi"
)

// ErrNoResponse is matched (errors.Is) by errors saying that no response
// came back from the addressed controller: the OpenIPMI driver timed the
// request out or could not deliver it on IPMB. Whether a state-changing
// request took effect is then unknown; read the state back.
var ErrNoResponse = errors.New("no response from the controller")

// DriverError is a one-byte response that the OpenIPMI driver makes up
// itself when no real response arrived: completion code 0xC3 after its
// timeout, the IPMB errors 0x81 (lost arbitration), 0x82 (bus error) and
// 0x83 (NAK on write) reported by the local controller's Send Message, and
// 0xFF when the interface failed or is going away. A controller may return
// the same code itself; the two cannot be told apart, and both mean the
// command's outcome is unknown.
//
// errors.Is(err, ErrNoResponse) is true for every DriverError, and
// ipmi.CodeOf(err) returns its code (it unwraps to an *ipmi.CompletionError).
type DriverError struct {
	Addr     ipmi.Addr
	NetFn    ipmi.NetFn
	Cmd      uint8
	Code     ipmi.CompletionCode
	Attempts int // how many times the request was sent
}

// Driver-generated completion codes (linux/ipmi_msgdefs.h).
const (
	ccLostArbitration ipmi.CompletionCode = 0x81 // IPMI_LOST_ARBITRATION_ERR
	ccBusError        ipmi.CompletionCode = 0x82 // IPMI_BUS_ERR
	ccNAKOnWrite      ipmi.CompletionCode = 0x83 // IPMI_NAK_ON_WRITE_ERR
)

func (e *DriverError) meaning() string {
	switch e.Code {
	case ipmi.CCTimeout:
		if e.Addr.Local() {
			return "the system interface timed out"
		}
		return "timed out waiting for the response on IPMB"
	case ccLostArbitration:
		return "lost arbitration on IPMB"
	case ccBusError:
		return "IPMB bus error"
	case ccNAKOnWrite:
		return "NAK on write: nothing acknowledged this IPMB address"
	case ipmi.CCUnspecified:
		return "the IPMI interface failed or is going away"
	}
	return "no response"
}

func (e *DriverError) Error() string {
	s := fmt.Sprintf("netfn 0x%02x cmd 0x%02x to %s: %v: %s (driver completion code 0x%02x", uint8(e.NetFn), e.Cmd, e.Addr, ErrNoResponse, e.meaning(), uint8(e.Code))
	if e.Attempts > 1 {
		s += fmt.Sprintf(", %d attempts", e.Attempts)
	}
	return s + ")"
}

// Is makes errors.Is(err, ErrNoResponse) true.
func (e *DriverError) Is(target error) bool { return target == ErrNoResponse }

// Unwrap exposes the completion code as an *ipmi.CompletionError.
func (e *DriverError) Unwrap() error {
	return &ipmi.CompletionError{Addr: e.Addr, NetFn: e.NetFn, Cmd: e.Cmd, Code: e.Code}
}

// retryable reports whether a read-only request may be sent again.
// A NAK on write means nothing is at the address: sending again does not
// help.
func (e *DriverError) retryable() bool { return e.Code != ccNAKOnWrite }

// isDriverCode reports whether a one-byte response with code cc is one the
// driver generates when no response arrived.
func isDriverCode(cc ipmi.CompletionCode, bridged bool) bool {
	switch cc {
	case ipmi.CCTimeout, ipmi.CCUnspecified:
		return true
	case ccLostArbitration, ccBusError, ccNAKOnWrite:
		return bridged
	}
	return false
}

// Errors of the request path, matched with errors.Is.
var (
	// ErrBadRequest: the request cannot be sent as given.
	ErrBadRequest = errors.New("invalid IPMI request")
	// ErrBadResponse: the driver returned something that is not a
	// trustworthy response to the request.
	ErrBadResponse = errors.New("invalid response from the IPMI driver")
)
