package ipmi

import (
	"errors"
	"fmt"
)

// CompletionCode is the first byte of every IPMI response.
type CompletionCode uint8

// Completion codes (IPMI 2.0 table 5-2).
const (
	CCOK                    CompletionCode = 0x00
	CCNodeBusy              CompletionCode = 0xC0
	CCInvalidCommand        CompletionCode = 0xC1
	CCInvalidForLUN         CompletionCode = 0xC2
	CCTimeout               CompletionCode = 0xC3
	CCOutOfSpace            CompletionCode = 0xC4
	CCReservationInvalid    CompletionCode = 0xC5
	CCRequestDataTruncated  CompletionCode = 0xC6
	CCRequestDataLength     CompletionCode = 0xC7
	CCRequestDataTooLong    CompletionCode = 0xC8
	CCParameterOutOfRange   CompletionCode = 0xC9
	CCCannotReturnBytes     CompletionCode = 0xCA
	CCNotPresent            CompletionCode = 0xCB
	CCInvalidDataField      CompletionCode = 0xCC
	CCIllegalForSensor      CompletionCode = 0xCD
	CCCannotRespond         CompletionCode = 0xCE
	CCDuplicateRequest      CompletionCode = 0xCF
	CCSDRInUpdateMode       CompletionCode = 0xD0
	CCFirmwareUpdateMode    CompletionCode = 0xD1
	CCInitInProgress        CompletionCode = 0xD2
	CCDestinationUnavail    CompletionCode = 0xD3
	CCInsufficientPrivilege CompletionCode = 0xD4
	CCNotSupportedInState   CompletionCode = 0xD5
	CCSubFunctionDisabled   CompletionCode = 0xD6
	CCUnspecified           CompletionCode = 0xFF
)

var ccNames = map[CompletionCode]string{
	CCOK:                    "command completed normally",
	CCNodeBusy:              "node busy",
	CCInvalidCommand:        "invalid command (not supported)",
	CCInvalidForLUN:         "command invalid for given LUN",
	CCTimeout:               "timeout while processing command",
	CCOutOfSpace:            "out of space",
	CCReservationInvalid:    "reservation cancelled or invalid",
	CCRequestDataTruncated:  "request data truncated",
	CCRequestDataLength:     "request data length invalid",
	CCRequestDataTooLong:    "request data field length limit exceeded",
	CCParameterOutOfRange:   "parameter out of range",
	CCCannotReturnBytes:     "cannot return number of requested data bytes",
	CCNotPresent:            "requested sensor, data or record not present",
	CCInvalidDataField:      "invalid data field in request",
	CCIllegalForSensor:      "command illegal for specified sensor or record type",
	CCCannotRespond:         "command response could not be provided",
	CCDuplicateRequest:      "cannot execute duplicated request",
	CCSDRInUpdateMode:       "SDR repository in update mode",
	CCFirmwareUpdateMode:    "device in firmware update mode",
	CCInitInProgress:        "BMC initialization in progress",
	CCDestinationUnavail:    "destination unavailable",
	CCInsufficientPrivilege: "insufficient privilege level",
	CCNotSupportedInState:   "command not supported in present state",
	CCSubFunctionDisabled:   "command sub-function disabled or unavailable",
	CCUnspecified:           "unspecified error",
}

func (c CompletionCode) String() string {
	if s, ok := ccNames[c]; ok {
		return fmt.Sprintf("0x%02x (%s)", uint8(c), s)
	}
	return fmt.Sprintf("0x%02x", uint8(c))
}

// ErrNotSupported is matched (errors.Is) by a CompletionError whose code
// says the controller does not implement the command (0xC1). Callers use it
// to fall back to the next mechanism and to tell the operator plainly.
var ErrNotSupported = errors.New("command not supported by this controller")

// CompletionError is a response that arrived intact but carried a non-zero
// completion code.
type CompletionError struct {
	Addr  Addr
	NetFn NetFn
	Cmd   uint8
	Code  CompletionCode
}

func (e *CompletionError) Error() string {
	return fmt.Sprintf("netfn 0x%02x cmd 0x%02x to %s: completion code %s", uint8(e.NetFn), e.Cmd, e.Addr, e.Code)
}

// Is makes errors.Is(err, ErrNotSupported) true for 0xC1.
func (e *CompletionError) Is(target error) bool {
	return target == ErrNotSupported && e.Code == CCInvalidCommand
}

// CodeOf returns the completion code carried by err, if any.
func CodeOf(err error) (CompletionCode, bool) {
	var ce *CompletionError
	if errors.As(err, &ce) {
		return ce.Code, true
	}
	return 0, false
}
