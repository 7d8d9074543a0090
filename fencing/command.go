package fencing

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// CommandVersion is the version of the log payload format written by this
// package. Decode refuses other versions: a node that does not understand
// an entry must not guess at a fence decision.
const CommandVersion = 1

// Kind names a fencing log entry. It is both the Log.Propose kind and the
// "kind" field of the payload.
type Kind string

// Log entry kinds.
const (
	// KindFenceRequested asks for a target to be fenced (failure source or
	// operator). It carries the plan: the levels and their attempts, so
	// that a replay or a new leader follows the plan decided at request
	// time whatever the configuration says now.
	KindFenceRequested Kind = "fence-requested"
	// KindLevelStarted is written by the leader just before it executes a
	// level; the entry's index is the execution's identity.
	KindLevelStarted Kind = "level-started"
	// KindLevelResult is the outcome of one execution, with the state read
	// back. A success counts only with a read-back confirming "off".
	KindLevelResult Kind = "level-result"
	// KindUnfenceRequested asks for a fenced (or failed) target to be
	// powered on again; operator only.
	KindUnfenceRequested Kind = "unfence-requested"
	// KindUnfenceStarted is written before the unfence actions run.
	KindUnfenceStarted Kind = "unfence-started"
	// KindUnfenceResult is the outcome of an unfence.
	KindUnfenceResult Kind = "unfence-result"
)

// Source says what asked for a fence.
type Source string

// Failure sources.
const (
	SourceMemberDead Source = "member-dead" // cluster membership declared the node dead
	SourceHardware   Source = "hardware"    // the shelf model: critical sensor, M7, resource failed
	SourceWatchdog   Source = "watchdog"    // a watchdog expiry was reported for the node
	SourceOperator   Source = "operator"    // an operator with the fencer role (audited by the API)
)

// Action is what a fence request wants done to the target.
type Action string

// Fence actions.
const (
	ActionOff    Action = "off"    // fence and leave off until unfenced
	ActionReboot Action = "reboot" // fence, then unfence once fenced
)

// LevelPlan is one level of the fencing topology as recorded in a request.
type LevelPlan struct {
	// Name identifies the level (for logs and audit), e.g. "picmg".
	Name string `json:"name"`
	// Attempts is how many times the level is tried before the next level
	// is used (at least 1).
	Attempts int `json:"attempts"`
}

// Command is one fencing log entry. Only the fields of its Kind are used.
type Command struct {
	V    int  `json:"v"`
	Kind Kind `json:"kind"`
	// Target is the cluster node name being fenced.
	Target string `json:"target"`
	// ID identifies a fence or unfence operation (chosen by the proposer;
	// unique per operation). Later entries of the operation repeat it.
	ID string `json:"id"`

	// FenceRequested / UnfenceRequested.
	Action    Action      `json:"action,omitempty"`
	Reason    string      `json:"reason,omitempty"`
	Source    Source      `json:"source,omitempty"`
	Requester string      `json:"requester,omitempty"`
	Plan      []LevelPlan `json:"plan,omitempty"`

	// LevelStarted / LevelResult.
	Level   int `json:"level,omitempty"`
	Attempt int `json:"attempt,omitempty"`
	// Exec is, in a result, the log index of the LevelStarted or
	// UnfenceStarted entry whose execution this result reports.
	Exec uint64 `json:"exec,omitempty"`

	// LevelResult / UnfenceResult.
	OK       bool   `json:"ok,omitempty"`
	Readback string `json:"readback,omitempty"`
	Err      string `json:"err,omitempty"`
}

// Read-back values. A fence level counts as done only when its result says
// ReadbackOff; an unfence only with ReadbackOn.
const (
	ReadbackOff = "off"
	ReadbackOn  = "on"
)

// Limits on payload contents; a proposer cannot grow the state without bound.
const (
	MaxPayload    = 16 << 10
	MaxLevels     = 16
	MaxAttempts   = 10
	maxStringLen  = 1024
	maxTargetLen  = 253
	maxIDLen      = 128
	maxLevelNames = 64
)

// ErrBadCommand is matched (errors.Is) by every Decode and Validate error.
var ErrBadCommand = errors.New("fencing: invalid command")

// Encode validates c and returns its payload (JSON with the version set).
func Encode(c Command) ([]byte, error) {
	c.V = CommandVersion
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(c)
}

// Decode parses and validates a log payload. Unknown fields, other versions
// and trailing data are refused.
func Decode(b []byte) (Command, error) {
	var c Command
	if len(b) > MaxPayload {
		return c, fmt.Errorf("%w: payload of %d bytes exceeds %d", ErrBadCommand, len(b), MaxPayload)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Command{}, fmt.Errorf("%w: decoding payload: %v", ErrBadCommand, err)
	}
	if dec.More() {
		return Command{}, fmt.Errorf("%w: trailing data after payload", ErrBadCommand)
	}
	if c.V != CommandVersion {
		return Command{}, fmt.Errorf("%w: payload version %d, want %d", ErrBadCommand, c.V, CommandVersion)
	}
	if err := c.Validate(); err != nil {
		return Command{}, err
	}
	return c, nil
}

func badf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadCommand}, args...)...)
}

func checkString(field, s string, max int) error {
	if len(s) > max {
		return badf("%s longer than %d bytes", field, max)
	}
	if !utf8.ValidString(s) {
		return badf("%s is not UTF-8", field)
	}
	return nil
}

// Validate checks the fields c.Kind needs.
func (c Command) Validate() error {
	if c.Target == "" {
		return badf("%s without target", c.Kind)
	}
	if c.ID == "" {
		return badf("%s for %q without operation id", c.Kind, c.Target)
	}
	for _, f := range []struct {
		name string
		s    string
		max  int
	}{
		{"target", c.Target, maxTargetLen}, {"id", c.ID, maxIDLen}, {"reason", c.Reason, maxStringLen},
		{"requester", c.Requester, maxStringLen}, {"readback", c.Readback, maxStringLen},
		{"err", c.Err, maxStringLen}, {"source", string(c.Source), maxLevelNames},
	} {
		if err := checkString(f.name, f.s, f.max); err != nil {
			return err
		}
	}
	if c.Level < 0 || c.Level >= MaxLevels || c.Attempt < 0 || c.Attempt > MaxAttempts {
		return badf("%s for %q: level %d attempt %d out of range", c.Kind, c.Target, c.Level, c.Attempt)
	}
	switch c.Kind {
	case KindFenceRequested:
		switch c.Action {
		case ActionOff, ActionReboot:
		default:
			return badf("fence request for %q: action %q (want off or reboot)", c.Target, c.Action)
		}
		switch c.Source {
		case SourceMemberDead, SourceHardware, SourceWatchdog, SourceOperator:
		default:
			return badf("fence request for %q: unknown source %q", c.Target, c.Source)
		}
		if c.Source == SourceOperator && c.Requester == "" {
			return badf("operator fence request for %q without requester", c.Target)
		}
		if len(c.Plan) == 0 || len(c.Plan) > MaxLevels {
			return badf("fence request for %q: plan of %d levels (want 1..%d)", c.Target, len(c.Plan), MaxLevels)
		}
		for i, l := range c.Plan {
			if l.Name == "" || l.Attempts < 1 || l.Attempts > MaxAttempts {
				return badf("fence request for %q: level %d %q with %d attempts", c.Target, i, l.Name, l.Attempts)
			}
			if err := checkString("level name", l.Name, maxLevelNames); err != nil {
				return err
			}
		}
	case KindLevelStarted:
		if c.Attempt < 1 {
			return badf("level start for %q without attempt", c.Target)
		}
	case KindLevelResult:
		if c.Attempt < 1 || c.Exec == 0 {
			return badf("level result for %q without attempt or execution", c.Target)
		}
	case KindUnfenceRequested:
		if c.Requester == "" {
			return badf("unfence request for %q without requester", c.Target)
		}
	case KindUnfenceStarted:
	case KindUnfenceResult:
		if c.Exec == 0 {
			return badf("unfence result for %q without execution", c.Target)
		}
	default:
		return badf("unknown kind %q", c.Kind)
	}
	return nil
}
