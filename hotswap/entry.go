package hotswap

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"hpiagent/hpi"
	secureerase "hpiagent/secure-erase"
)

// LogKind is the kind under which hot-swap entries go into the cluster log
// (the FSM registration name).
const LogKind = "hotswap"

// EntryVersion is the version of the entry payload format this package
// writes and reads.
const EntryVersion = 1

// Limits of entry fields. They bound what one entry can make the Machine
// store.
const (
	maxIDLen       = 128
	maxReasonLen   = 512
	maxMembers     = 64
	maxAttempts    = 100
	maxClassLen    = 64
	maxShelfLen    = 128
	maxPayloadSize = 64 << 10
)

// Kind is the kind of a workflow.
type Kind string

// Workflow kinds.
const (
	// KindInsertion: a FRU reached M2, or is held in M1 by the Locked
	// policy; it is activated once every member applied its policies.
	KindInsertion Kind = "insertion"
	// KindExtraction: the FRU's latch opened (M5 request); the policies are
	// revoked everywhere, the FRU is wiped and then deactivated.
	KindExtraction Kind = "extraction"
	// KindSurprise: the FRU disappeared without an extraction request
	// (M7/M0); the policies are revoked everywhere. Nothing can be wiped or
	// deactivated any more. A surprise removal supersedes a workflow in
	// flight for the same FRU.
	KindSurprise Kind = "surprise"
	// KindForced: an operator asked for an extraction (the latch may still
	// be closed); otherwise the same steps as KindExtraction.
	KindForced Kind = "forced"
)

func (k Kind) valid() bool {
	switch k {
	case KindInsertion, KindExtraction, KindSurprise, KindForced:
		return true
	}
	return false
}

// extracts reports whether workflows of kind k end with a wipe and a
// deactivation.
func (k Kind) extracts() bool { return k == KindExtraction || k == KindForced }

// EntryType is the type of a log entry.
type EntryType string

// Entry types. Each is one step of a workflow.
const (
	TypeWorkflowStarted       EntryType = "workflow_started"
	TypeHeld                  EntryType = "held"
	TypeHookApplied           EntryType = "hook_applied"
	TypeHookRefused           EntryType = "hook_refused"
	TypeActivationRequested   EntryType = "activation_requested"
	TypeActivationConfirmed   EntryType = "activation_confirmed"
	TypePoliciesRevoked       EntryType = "policies_revoked"
	TypeRevokeRefused         EntryType = "revoke_refused"
	TypeWipeStarted           EntryType = "wipe_started"
	TypeWipeResult            EntryType = "wipe_result"
	TypeDeactivationRequested EntryType = "deactivation_requested"
	TypeDeactivationConfirmed EntryType = "deactivation_confirmed"
	TypeRetry                 EntryType = "retry"
	TypeAborted               EntryType = "aborted"
	TypeOverrideGranted       EntryType = "override_granted"
)

// FRU names the FRU a workflow is about: where it is reached (shelf
// manager, IPMB address of its IPMC, FRU device ID) and its entity path.
// Two FRUs are the same when Shelf, IPMB and ID are equal.
type FRU struct {
	// Entity is the FRU's HPI entity path in text form
	// ("{ADVANCEDTCA_CHASSIS,1}{PHYSICAL_SLOT,3}{SYSTEM_BOARD,3}" ...).
	Entity string `json:"entity"`
	// Shelf is the name of the shelf manager (as configured) the FRU sits
	// behind.
	Shelf string `json:"shelf"`
	// IPMB is the 8-bit IPMB address of the FRU's IPMC.
	IPMB uint8 `json:"ipmb"`
	// ID is the FRU device ID on that IPMC (0 for the board itself).
	ID uint8 `json:"id"`
}

// Key identifies the FRU independently of its entity path.
func (f FRU) Key() string { return fmt.Sprintf("%s/0x%02x/%d", f.Shelf, f.IPMB, f.ID) }

// String is the FRU's key and entity path, for logs and errors.
func (f FRU) String() string { return f.Key() + " " + f.Entity }

func (f FRU) validate() error {
	if f.Shelf == "" || len(f.Shelf) > maxShelfLen || !printable(f.Shelf) {
		return fmt.Errorf("fru: shelf name %q is empty, too long or not printable", truncate(f.Shelf, 40))
	}
	if f.IPMB&1 != 0 {
		return fmt.Errorf("fru: IPMB address 0x%02x is not an 8-bit slave address", f.IPMB)
	}
	if f.Entity != "" {
		p, err := hpi.ParseEntityPath(f.Entity)
		if err != nil {
			return fmt.Errorf("fru: entity path: %w", err)
		}
		if err := p.Validate(); err != nil {
			return fmt.Errorf("fru: entity path: %w", err)
		}
	}
	return nil
}

// Entry is one hot-swap log entry. Which fields are set depends on Type;
// Validate says which are required. Entries are JSON with a version field.
type Entry struct {
	// V is the payload format version (EntryVersion).
	V int `json:"v"`
	// Type is the step this entry records.
	Type EntryType `json:"type"`
	// Workflow is the workflow's ID (unique cluster-wide).
	Workflow string `json:"workflow"`

	// Workflow started.
	Kind        Kind     `json:"kind,omitempty"`
	FRU         *FRU     `json:"fru,omitempty"`
	DeviceClass string   `json:"device_class,omitempty"`
	Required    []string `json:"required,omitempty"`
	// Owner is the member that wipes the FRU's sensitive state
	// (extractions).
	Owner string `json:"owner,omitempty"`
	// MaxAttempts is how many times a refused step is tried before the
	// workflow is aborted.
	MaxAttempts int `json:"max_attempts,omitempty"`

	// Actor is the operator (forced extraction, override, abort by hand).
	Actor string `json:"actor,omitempty"`
	// Reason says why (refusal, abort, override, wipe failure).
	Reason string `json:"reason,omitempty"`
	// Member is the member whose hooks applied, refused or revoked.
	Member string `json:"member,omitempty"`
	// Digest is the digest of what a member applied or revoked, or of the
	// wipe certificate ("sha256:<64 hex>").
	Digest string `json:"digest,omitempty"`
	// Attempt is the attempt the entry belongs to (refusals, retries,
	// wipe results); entries of an earlier attempt are ignored.
	Attempt int `json:"attempt,omitempty"`
	// OK is the wipe result.
	OK bool `json:"ok,omitempty"`
	// Policy is the hold the FRU was put in (held).
	Policy string `json:"policy,omitempty"`
	// MState is the M-state read back (confirmations).
	MState *uint8 `json:"mstate,omitempty"`

	// Certificates are the signed certificates of a verified wipe (a JSON
	// array of secure-erase certificates, at most
	// secureerase.MaxCertificatesSize bytes) whose digest is Digest. They
	// ride in the log so that every member keeps them and can serve them
	// even after the owner that wiped the FRU left the shelf or died: the
	// FRU being removed is often the owner's own blade. Optional: a wipe
	// result without them records the digest only (the certificates then
	// stay on the owner), which is what logs written before them hold.
	Certificates json.RawMessage `json:"certificates,omitempty"`
	// SignerKey is the PKIX (DER) public key every one of Certificates
	// verifies with: the key of the owner's peer certificate, checked by
	// the leader against the cluster CA and the owner's name before it
	// proposed the entry. Required with Certificates.
	SignerKey []byte `json:"signer_key,omitempty"`
}

// Encode validates e and returns its JSON payload.
func (e Entry) Encode() ([]byte, error) {
	if e.V == 0 {
		e.V = EntryVersion
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(e)
}

// DecodeEntry decodes and validates one log entry payload. Unknown fields,
// unknown versions and types, trailing data and invalid field values are
// errors.
func DecodeEntry(payload []byte) (Entry, error) {
	if len(payload) > maxPayloadSize {
		return Entry{}, fmt.Errorf("decoding hot-swap entry: %d bytes is more than %d", len(payload), maxPayloadSize)
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	var e Entry
	if err := dec.Decode(&e); err != nil {
		return Entry{}, fmt.Errorf("decoding hot-swap entry: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Entry{}, errors.New("decoding hot-swap entry: trailing data after the entry")
	}
	if err := e.Validate(); err != nil {
		return Entry{}, err
	}
	return e, nil
}

// Hold policies recorded by a held entry.
const (
	// HoldLocked: the Locked bit keeps the FRU in M1 (insertion).
	HoldLocked = "locked"
	// HoldDeactivationLocked: the Deactivation-Locked bit keeps the FRU in
	// M4 (extraction).
	HoldDeactivationLocked = "deactivation-locked"
	// HoldNotActivating: the shelf manager has no activation policy; the
	// FRU is held by not commanding its transition (it waits in M2 for an
	// activation, or in M5 for a deactivation).
	HoldNotActivating = "not-activating"
)

// Validate checks that e is well formed for its type.
func (e Entry) Validate() error {
	if e.V != EntryVersion {
		return fmt.Errorf("hot-swap entry: unsupported version %d (want %d)", e.V, EntryVersion)
	}
	if err := checkName("workflow ID", e.Workflow); err != nil {
		return fmt.Errorf("hot-swap entry %s: %w", e.Type, err)
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("hot-swap entry %s of workflow %s: %s", e.Type, e.Workflow, fmt.Sprintf(format, a...))
	}
	if len(e.Reason) > maxReasonLen || !utf8Printable(e.Reason) {
		return bad("reason is longer than %d bytes or not printable", maxReasonLen)
	}
	if e.Actor != "" {
		if err := checkName("actor", e.Actor); err != nil {
			return bad("%v", err)
		}
	}
	if e.Attempt < 0 || e.Attempt > maxAttempts {
		return bad("attempt %d out of range", e.Attempt)
	}
	if extra := e.extraFields(); extra != "" {
		return bad("field %s does not belong to this entry type", extra)
	}
	needMember := func() error {
		if err := checkName("member", e.Member); err != nil {
			return bad("%v", err)
		}
		return nil
	}
	needDigest := func() error {
		if !validDigest(e.Digest) {
			return bad("digest %q is not sha256:<64 hex digits>", truncate(e.Digest, 80))
		}
		return nil
	}
	switch e.Type {
	case TypeWorkflowStarted:
		if !e.Kind.valid() {
			return bad("unknown kind %q", truncate(string(e.Kind), 40))
		}
		if e.FRU == nil {
			return bad("no FRU")
		}
		if err := e.FRU.validate(); err != nil {
			return bad("%v", err)
		}
		if len(e.DeviceClass) > maxClassLen || !printable(e.DeviceClass) {
			return bad("device class is longer than %d bytes or not printable", maxClassLen)
		}
		if len(e.Required) == 0 || len(e.Required) > maxMembers {
			return bad("%d required members (want 1..%d)", len(e.Required), maxMembers)
		}
		for _, m := range e.Required {
			if err := checkName("required member", m); err != nil {
				return bad("%v", err)
			}
		}
		if e.Kind.extracts() {
			if err := checkName("owner", e.Owner); err != nil {
				return bad("%v", err)
			}
		} else if e.Owner != "" {
			if err := checkName("owner", e.Owner); err != nil {
				return bad("%v", err)
			}
		}
		if e.MaxAttempts < 1 || e.MaxAttempts > maxAttempts {
			return bad("max attempts %d (want 1..%d)", e.MaxAttempts, maxAttempts)
		}
		if e.Kind == KindForced && e.Actor == "" {
			return bad("a forced extraction needs the operator who asked for it")
		}
	case TypeHeld:
		switch e.Policy {
		case HoldLocked, HoldDeactivationLocked, HoldNotActivating:
		default:
			return bad("unknown hold policy %q", truncate(e.Policy, 40))
		}
	case TypeHookApplied, TypePoliciesRevoked:
		if err := needMember(); err != nil {
			return err
		}
		if err := needDigest(); err != nil {
			return err
		}
	case TypeHookRefused, TypeRevokeRefused:
		if err := needMember(); err != nil {
			return err
		}
		if e.Reason == "" {
			return bad("a refusal needs a reason")
		}
	case TypeActivationRequested, TypeWipeStarted, TypeDeactivationRequested, TypeRetry:
	case TypeActivationConfirmed, TypeDeactivationConfirmed:
		if e.MState == nil || *e.MState > 7 {
			return bad("no M-state read back")
		}
	case TypeWipeResult:
		if e.OK {
			if err := needDigest(); err != nil {
				return err
			}
		} else if e.Reason == "" {
			return bad("a failed wipe needs a reason")
		}
		if err := e.checkCertificates(); err != nil {
			return bad("%v", err)
		}
	case TypeAborted:
		if e.Reason == "" {
			return bad("an abort needs a reason")
		}
	case TypeOverrideGranted:
		if e.Actor == "" {
			return bad("an override needs the operator who granted it")
		}
		if e.Reason == "" {
			return bad("an override needs a reason")
		}
	default:
		return fmt.Errorf("hot-swap entry of workflow %s: unknown type %q", e.Workflow, truncate(string(e.Type), 40))
	}
	return nil
}

func checkName(what, s string) error {
	if s == "" {
		return fmt.Errorf("%s is empty", what)
	}
	if len(s) > maxIDLen {
		return fmt.Errorf("%s is longer than %d bytes", what, maxIDLen)
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("._:-@/", r):
		default:
			return fmt.Errorf("%s %q has a character outside [A-Za-z0-9._:-@/]", what, truncate(s, 40))
		}
	}
	return nil
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func utf8Printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == '\uFFFD' {
			return false
		}
	}
	return true
}

func validDigest(s string) bool {
	h, ok := strings.CutPrefix(s, "sha256:")
	if !ok || len(h) != 64 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// truncate shortens s to at most n bytes (plus "...") without splitting a
// character, and replaces control characters and invalid UTF-8, so that
// what comes from outside can go into an entry or an error.
func truncate(s string, n int) string {
	var b strings.Builder
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			r = '?'
		}
		if b.Len()+utf8.RuneLen(r) > n {
			b.WriteString("...")
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

// sortedUnique returns the sorted set of names.
func sortedUnique(names []string) []string {
	c := slices.Clone(names)
	slices.Sort(c)
	return slices.Compact(c)
}

// allowedFields lists, per entry type, the optional fields it may carry.
var allowedFields = map[EntryType]string{
	TypeWorkflowStarted:       "kind fru device_class required owner max_attempts actor reason",
	TypeHeld:                  "policy",
	TypeHookApplied:           "member digest attempt",
	TypePoliciesRevoked:       "member digest attempt",
	TypeHookRefused:           "member reason attempt",
	TypeRevokeRefused:         "member reason attempt",
	TypeActivationRequested:   "",
	TypeWipeStarted:           "",
	TypeDeactivationRequested: "",
	TypeActivationConfirmed:   "mstate",
	TypeDeactivationConfirmed: "mstate",
	TypeWipeResult:            "ok digest reason attempt certificates signer_key",
	TypeRetry:                 "attempt actor reason",
	TypeAborted:               "reason actor",
	TypeOverrideGranted:       "actor reason",
}

// extraFields names the first field set in e that its type does not use
// ("" when none, or for an unknown type, which Validate reports itself).
func (e Entry) extraFields() string {
	allowed, ok := allowedFields[e.Type]
	if !ok {
		return ""
	}
	set := []struct {
		name string
		set  bool
	}{
		{"kind", e.Kind != ""}, {"fru", e.FRU != nil}, {"device_class", e.DeviceClass != ""},
		{"required", e.Required != nil}, {"owner", e.Owner != ""}, {"max_attempts", e.MaxAttempts != 0},
		{"actor", e.Actor != ""}, {"reason", e.Reason != ""}, {"member", e.Member != ""},
		{"digest", e.Digest != ""}, {"attempt", e.Attempt != 0}, {"ok", e.OK},
		{"policy", e.Policy != ""}, {"mstate", e.MState != nil},
		{"certificates", len(e.Certificates) != 0}, {"signer_key", len(e.SignerKey) != 0},
	}
	for _, f := range set {
		if f.set && !slices.Contains(strings.Fields(allowed), f.name) {
			return f.name
		}
	}
	return ""
}

// checkCertificates checks the certificates a wipe result carries: only
// with a verified wipe, with the signer's key, at most
// secureerase.MaxCertificatesSize bytes, matching the entry's digest, and
// every one signed by that key. It depends on the entry alone, so every
// member reaches the same verdict when it applies the entry.
func (e Entry) checkCertificates() error {
	if len(e.Certificates) == 0 && len(e.SignerKey) == 0 {
		return nil
	}
	switch {
	case !e.OK:
		return errors.New("certificates come only with a verified wipe")
	case len(e.Certificates) == 0:
		return errors.New("a signer key without certificates")
	case len(e.SignerKey) == 0:
		return errors.New("certificates without the key that signed them")
	case len(e.Certificates) > secureerase.MaxCertificatesSize:
		return fmt.Errorf("certificates of %d bytes, more than %d", len(e.Certificates), secureerase.MaxCertificatesSize)
	case string(DigestOf(e.Certificates)) != e.Digest:
		return fmt.Errorf("the certificates' digest is not the entry's digest %s", e.Digest)
	}
	pub, err := secureerase.ParseSignerKey(e.SignerKey)
	if err != nil {
		return err
	}
	if _, err := secureerase.VerifyCertificates(e.Certificates, pub); err != nil {
		return err
	}
	return nil
}
