// Package ipmi holds the IPMI message model shared by every transport of
// hpiagent (RMCP+ sessions to shelf managers, the local /dev/ipmi0 driver,
// the embedded simulated shelf): requests, responses, completion codes,
// IPMB addressing and framing. It does no I/O of its own.
//
// On top of that model it holds the typed IPMI 2.0 and PICMG 3.0 commands,
// functions of the form F(ctx, c Conn, to Addr, ...) that send one request
// (or a few: partial SDR and FRU reads, SEL iteration) over any Conn and
// return decoded values, and the pure decoders and encoders behind them:
// SDR records and sensor conversion (IPMI 2.0 §36, §43), SEL records, FRU
// inventory images, and the response data of every command (ParseX
// functions and Marshal methods, so that a simulated controller answers
// with the same encoding the client decodes). A command the controller
// answers with 0xC1 yields an error matching ErrNotSupported that says
// which peer does not support it.
package ipmi

import (
	"context"
	"errors"
	"fmt"
)

// NetFn is an IPMI network function code (request form, even).
type NetFn uint8

// Network functions used by hpiagent (IPMI 2.0 table 5-1, PICMG 3.0 §3.1.1).
const (
	NetFnChassis   NetFn = 0x00
	NetFnBridge    NetFn = 0x02
	NetFnSensor    NetFn = 0x04 // Sensor/Event
	NetFnApp       NetFn = 0x06
	NetFnFirmware  NetFn = 0x08
	NetFnStorage   NetFn = 0x0A
	NetFnTransport NetFn = 0x0C
	NetFnGroup     NetFn = 0x2C // Group Extension; first data byte is the defining body (0x00 = PICMG)
	NetFnOEM       NetFn = 0x2E
)

// Response returns the response NetFn paired with a request NetFn.
func (n NetFn) Response() NetFn { return n | 1 }

// IsResponse reports whether n is an (odd) response NetFn.
func (n NetFn) IsResponse() bool { return n&1 == 1 }

// Request is one IPMI request as the application sees it: no addressing
// and no sequence numbers, which belong to the transport.
type Request struct {
	NetFn NetFn
	Cmd   uint8
	Data  []byte
	// ReadOnly marks a request that only reads state, so a transport may
	// resend it after a timeout. Requests that change state (power, FRU
	// activation, SEL clear, reservations) are never resent: a lost
	// response must surface as an error rather than risk acting twice.
	ReadOnly bool
}

func (r Request) String() string {
	return fmt.Sprintf("netfn 0x%02x cmd 0x%02x", uint8(r.NetFn), r.Cmd)
}

// Response is one IPMI response: the completion code and the data after it.
type Response struct {
	Code CompletionCode
	Data []byte
}

// Addr says which controller a request is for. The zero Addr is the
// controller at the other end of the transport itself (the shelf manager
// of an RMCP+ session, the local BMC of /dev/ipmi0). A non-zero Slave
// bridges the request over IPMB on Channel to that controller (Send Message
// for RMCP+ sessions, IPMB addressing for /dev/ipmi0).
type Addr struct {
	// Channel is the IPMI channel of the IPMB the target sits on (0 = IPMB-0).
	Channel uint8
	// Slave is the target's 8-bit IPMB slave address (e.g. 0x82), or 0 for
	// the controller at the end of the transport.
	Slave uint8
	// LUN is the target LUN (normally 0).
	LUN uint8
}

// Local reports whether a is the controller at the end of the transport.
func (a Addr) Local() bool { return a.Slave == 0 }

func (a Addr) String() string {
	if a.Local() {
		return "local controller"
	}
	if a.Channel == 0 && a.LUN == 0 {
		return fmt.Sprintf("IPMB 0x%02x", a.Slave)
	}
	return fmt.Sprintf("IPMB 0x%02x (channel %d, LUN %d)", a.Slave, a.Channel, a.LUN)
}

// Conn is a transport that exchanges IPMI requests with a controller and,
// through it, with the controllers it bridges to. Implementations are safe
// for concurrent use by many goroutines.
//
// Exchange returns the response whatever its completion code; an error
// means no trustworthy response arrived (timeout, session lost, closed,
// context done). Callers that want a non-zero completion code as an error
// use Do.
type Conn interface {
	Exchange(ctx context.Context, to Addr, req Request) (Response, error)
	Close() error
}

// ErrClosed is returned by transports after Close.
var ErrClosed = errors.New("ipmi: connection closed")

// Do sends req to the controller at to and returns the response data,
// turning a non-zero completion code into a *CompletionError.
func Do(ctx context.Context, c Conn, to Addr, req Request) ([]byte, error) {
	resp, err := c.Exchange(ctx, to, req)
	if err != nil {
		return nil, fmt.Errorf("%s to %s: %w", req, to, err)
	}
	if resp.Code != CCOK {
		return resp.Data, &CompletionError{Addr: to, NetFn: req.NetFn, Cmd: req.Cmd, Code: resp.Code}
	}
	return resp.Data, nil
}
