package devipmi

import (
	"fmt"

	"hpiagent/shelf/ipmi"
)

// EventKind says what an Event carries.
type EventKind uint8

// Kinds of Event.
const (
	// AsyncEvent is an event message the driver read from the local
	// controller's event message buffer. Data is the 16-byte SEL-format
	// record (record ID, record type, timestamp, generator ID, EvM Rev,
	// sensor type and number, event dir/type, event data 1-3).
	AsyncEvent EventKind = iota + 1
	// Command is a request another controller sent to this one; the driver
	// delivers only commands a user registered for.
	Command
	// OEMMessage is a message from an OEM channel.
	OEMMessage
)

func (k EventKind) String() string {
	switch k {
	case AsyncEvent:
		return "async event"
	case Command:
		return "command"
	case OEMMessage:
		return "OEM message"
	}
	return fmt.Sprintf("kind %d", uint8(k))
}

// SELRecordLen is the length of a SEL-format event record.
const SELRecordLen = 16

// Event is an unsolicited message from the driver: an asynchronous event or
// an incoming command.
type Event struct {
	Kind EventKind
	// From is the source address the driver reported (the zero Addr for
	// the local controller).
	From ipmi.Addr
	// NetFn and Cmd are as the driver reported them (Command, OEMMessage).
	NetFn ipmi.NetFn
	Cmd   uint8
	// Seq is the driver's msgid of a Command (its IPMB sequence number).
	Seq int64
	// Data is the raw message: the SEL record of an AsyncEvent, the request
	// data of a Command. It has no completion code.
	Data []byte
	// Lost is how many events were dropped because the Events channel was
	// full since the previous delivered event.
	Lost uint64

	src []byte // driver source address, for Respond
}

// SEL returns the 16-byte SEL-format record of an AsyncEvent.
func (e Event) SEL() ([SELRecordLen]byte, error) {
	var r [SELRecordLen]byte
	if e.Kind != AsyncEvent {
		return r, fmt.Errorf("devipmi: %s is not an asynchronous event", e.Kind)
	}
	if len(e.Data) != SELRecordLen {
		return r, fmt.Errorf("devipmi: asynchronous event of %d bytes, a SEL record has %d", len(e.Data), SELRecordLen)
	}
	copy(r[:], e.Data)
	return r, nil
}
