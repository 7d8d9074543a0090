package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Genesis is the Prev of the first record of every log.
const Genesis = "0000000000000000000000000000000000000000000000000000000000000000"

// MaxLineBytes bounds one encoded record (including its newline). Append
// refuses a larger record and Verify reports a longer line rather than
// reading it whole.
const MaxLineBytes = 64 << 10

// Record is one audited action.
type Record struct {
	// Time is when the action happened; Append fills it from the clock
	// when zero. Stored in UTC.
	Time time.Time
	// Actor is the authenticated identity that asked for the action (the
	// certificate identity for API calls, "agent" for the agent's own).
	Actor string
	// Roles are the roles the actor held when the action was authorised.
	Roles []string
	// Action names what was done, e.g. "hotswap.extract", "power.set".
	Action string
	// Target names what it was done to, e.g. a resource ID or entity path.
	Target string
	// Result says how it ended: "ok", "denied", "failed", ...
	Result string
	// Detail is free text (no secrets).
	Detail string
	// Seq is the record's number in the log, from 1; filled by Append.
	Seq uint64
	// Prev is the Hash of the record before (Genesis for the first); filled
	// by Append.
	Prev string
	// Hash is hex(SHA-256) of the record's canonical encoding without Hash;
	// filled by Append.
	Hash string
}

// wire is the canonical on-disk form; the member order is part of the format.
type wire struct {
	Seq    uint64   `json:"seq"`
	Time   string   `json:"time"`
	Actor  string   `json:"actor"`
	Roles  []string `json:"roles,omitempty"`
	Action string   `json:"action"`
	Target string   `json:"target"`
	Result string   `json:"result"`
	Detail string   `json:"detail,omitempty"`
	Prev   string   `json:"prev"`
	Hash   string   `json:"hash,omitempty"`
}

const timeLayout = time.RFC3339Nano

func validUTF8(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

// toWire normalises r into its canonical form (UTC time, valid UTF-8, no
// empty role list) without Hash.
func toWire(r Record) (wire, error) {
	t := r.Time.UTC()
	if y := t.Year(); y < 1 || y > 9999 {
		return wire{}, fmt.Errorf("record time %v out of range (years 1-9999)", r.Time)
	}
	w := wire{
		Seq:    r.Seq,
		Time:   t.Format(timeLayout),
		Actor:  validUTF8(r.Actor),
		Action: validUTF8(r.Action),
		Target: validUTF8(r.Target),
		Result: validUTF8(r.Result),
		Detail: validUTF8(r.Detail),
		Prev:   r.Prev,
	}
	if len(r.Roles) > 0 {
		w.Roles = make([]string, len(r.Roles))
		for i, role := range r.Roles {
			w.Roles[i] = validUTF8(role)
		}
	}
	return w, nil
}

// fromWire turns a parsed line back into a Record.
func fromWire(w wire) (Record, error) {
	t, err := time.Parse(timeLayout, w.Time)
	if err != nil {
		return Record{}, fmt.Errorf("time %q: %w", w.Time, err)
	}
	return Record{
		Time: t.UTC(), Actor: w.Actor, Roles: w.Roles, Action: w.Action,
		Target: w.Target, Result: w.Result, Detail: w.Detail,
		Seq: w.Seq, Prev: w.Prev, Hash: w.Hash,
	}, nil
}

// hashOf returns the chain hash of w (whose Hash field is ignored).
func hashOf(w wire) (string, error) {
	w.Hash = ""
	b, err := json.Marshal(w)
	if err != nil {
		return "", fmt.Errorf("encoding record %d: %w", w.Seq, err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// encodeLine returns w's line (with hash and trailing newline) and its hash.
func encodeLine(w wire) ([]byte, string, error) {
	h, err := hashOf(w)
	if err != nil {
		return nil, "", err
	}
	w.Hash = h
	b, err := json.Marshal(w)
	if err != nil {
		return nil, "", fmt.Errorf("encoding record %d: %w", w.Seq, err)
	}
	return append(b, '\n'), h, nil
}

// errNotCanonical marks a line that parses but is not in canonical form.
var errNotCanonical = errors.New("line is not in canonical form (extra or reordered members, spacing, or null values)")

// decodeLine parses one line (without its newline) strictly: known members
// only, canonical form. It returns the wire form for chain checks.
func decodeLine(line []byte) (wire, error) {
	var w wire
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return wire{}, fmt.Errorf("not a record: %w", err)
	}
	if dec.More() {
		return wire{}, errors.New("not a record: trailing data after the JSON object")
	}
	t, err := time.Parse(timeLayout, w.Time)
	if err != nil {
		return wire{}, fmt.Errorf("not a record: time %q: %w", w.Time, err)
	}
	if t.UTC().Format(timeLayout) != w.Time {
		return wire{}, fmt.Errorf("not a record: time %q is not in canonical UTC form", w.Time)
	}
	b, err := json.Marshal(w)
	if err != nil {
		return wire{}, fmt.Errorf("re-encoding record: %w", err)
	}
	if !bytes.Equal(b, line) {
		return wire{}, errNotCanonical
	}
	return w, nil
}

// ParseLine decodes one line of an audit log (with or without its
// newline) into a Record, checking that it is in canonical form and that
// its Hash matches its content. It does not check the chain; use Verify.
func ParseLine(line []byte) (Record, error) {
	line = bytes.TrimSuffix(line, []byte("\n"))
	w, err := decodeLine(line)
	if err != nil {
		return Record{}, err
	}
	h, err := hashOf(w)
	if err != nil {
		return Record{}, err
	}
	if h != w.Hash {
		return Record{}, fmt.Errorf("record %d: hash does not match its content", w.Seq)
	}
	return fromWire(w)
}
