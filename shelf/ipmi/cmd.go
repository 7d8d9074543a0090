package ipmi

import (
	"context"
	"errors"
	"fmt"
)

// ErrShortResponse is matched (errors.Is) by every decoder error about a
// response or record that has fewer bytes than its format requires.
var ErrShortResponse = errors.New("response too short")

// ErrMalformed is matched (errors.Is) by decoder errors about data whose
// length is fine but whose content breaks its format.
var ErrMalformed = errors.New("malformed data")

// short builds an ErrShortResponse error for what with got/need bytes.
func short(what string, got, need int) error {
	return fmt.Errorf("%s: %w: %d bytes, need at least %d", what, ErrShortResponse, got, need)
}

// who names the peer for plain operator-facing messages: a request to the
// zero Addr goes to the shelf manager at the end of the session, anything
// else is bridged to a controller (IPMC).
func who(to Addr) string {
	if to.Local() {
		return "this shelf manager"
	}
	return "this controller"
}

// call sends req to to and wraps any failure with what was asked (what)
// and of whom. A 0xC1 answer yields an error that matches ErrNotSupported
// and says plainly that the peer does not support the command.
func call(ctx context.Context, c Conn, to Addr, what string, req Request) ([]byte, error) {
	data, err := Do(ctx, c, to, req)
	if err != nil {
		if errors.Is(err, ErrNotSupported) {
			return data, fmt.Errorf("%s on %s: not supported by %s: %w", what, to, who(to), err)
		}
		return data, fmt.Errorf("%s on %s: %w", what, to, err)
	}
	return data, nil
}

// get is call for a read-only request.
func get(ctx context.Context, c Conn, to Addr, what string, netfn NetFn, cmd uint8, data ...byte) ([]byte, error) {
	return call(ctx, c, to, what, Request{NetFn: netfn, Cmd: cmd, Data: data, ReadOnly: true})
}

// set is call for a request that changes state (never resent by transports).
func set(ctx context.Context, c Conn, to Addr, what string, netfn NetFn, cmd uint8, data ...byte) ([]byte, error) {
	return call(ctx, c, to, what, Request{NetFn: netfn, Cmd: cmd, Data: data})
}

// decodeErr wraps a decoding failure of the answer to what from to.
func decodeErr(what string, to Addr, err error) error {
	return fmt.Errorf("%s on %s: decoding response: %w", what, to, err)
}

func le16(b []byte) uint16 { return uint16(b[0]) | uint16(b[1])<<8 }

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

func put16(v uint16) []byte { return []byte{byte(v), byte(v >> 8)} }

func put32(v uint32) []byte { return []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)} }

func bit(b byte, n uint) bool { return b&(1<<n) != 0 }

func setBit(v bool, n uint) byte {
	if v {
		return 1 << n
	}
	return 0
}
