package pet

import (
	"fmt"
)

// SNMP message versions (the msgVersion field).
const (
	snmpV1  = 0
	snmpV2c = 1
	snmpV3  = 3
)

// msgFlags bits (RFC 3412 §6.4).
const (
	flagAuth       = 0x01
	flagPriv       = 0x02
	flagReportable = 0x04
)

// securityModelUSM is the User-based Security Model (RFC 3414).
const securityModelUSM = 3

// maxVarBinds bounds the work spent on one PDU.
const maxVarBinds = 64

// message is the outer layer of an SNMP message. Every slice aliases
// the packet.
type message struct {
	version   int64
	community []byte // v1/v2c
	pdu       tlv    // v1/v2c: the PDU; v3: ScopedPDU (tagSequence) or encrypted (tagOctetString)

	// v3 only.
	msgID    int64
	maxSize  int64
	flags    byte
	secModel int64
	usm      usmParams
}

// usmParams are the USM security parameters (RFC 3414 §2.4).
type usmParams struct {
	engineID   []byte
	boots      int64
	time       int64
	user       []byte
	authParams []byte // aliases the packet: zeroed for the HMAC
	privParams []byte
}

// parseMessage decodes the outer layer of an SNMP message. It does not
// authenticate or decrypt anything.
func parseMessage(b []byte) (message, error) {
	var m message
	top := berReader{b: b}
	r, err := top.sequence("message")
	if err != nil {
		return m, err
	}
	if !top.empty() {
		return m, fmt.Errorf("%w: %d bytes after the message", errBER, len(top.b))
	}
	if m.version, err = r.integer("msgVersion"); err != nil {
		return m, err
	}
	switch m.version {
	case snmpV1, snmpV2c:
		if m.community, err = r.octets("community"); err != nil {
			return m, err
		}
		if m.pdu, err = r.next(); err != nil {
			return m, fmt.Errorf("reading PDU: %w", err)
		}
	case snmpV3:
		if err := m.parseV3(&r); err != nil {
			return m, err
		}
	default:
		return m, nil // the caller rejects the version
	}
	if !r.empty() {
		return m, fmt.Errorf("%w: %d bytes after the PDU", errBER, len(r.b))
	}
	return m, nil
}

func (m *message) parseV3(r *berReader) error {
	g, err := r.sequence("msgGlobalData")
	if err != nil {
		return err
	}
	if m.msgID, err = g.integer("msgID"); err != nil {
		return err
	}
	if m.maxSize, err = g.integer("msgMaxSize"); err != nil {
		return err
	}
	flags, err := g.octets("msgFlags")
	if err != nil {
		return err
	}
	if len(flags) != 1 {
		return fmt.Errorf("%w: msgFlags of %d bytes", errBER, len(flags))
	}
	m.flags = flags[0]
	if m.secModel, err = g.integer("msgSecurityModel"); err != nil {
		return err
	}
	if !g.empty() {
		return fmt.Errorf("%w: trailing bytes in msgGlobalData", errBER)
	}
	switch {
	case m.msgID < 0 || m.msgID > maxInt31:
		return fmt.Errorf("%w: msgID %d out of range", errBER, m.msgID)
	case m.maxSize < 484 || m.maxSize > maxInt31:
		return fmt.Errorf("%w: msgMaxSize %d out of range", errBER, m.maxSize)
	case m.secModel < 1 || m.secModel > maxInt31:
		return fmt.Errorf("%w: msgSecurityModel %d out of range", errBER, m.secModel)
	}
	sp, err := r.octets("msgSecurityParameters")
	if err != nil {
		return err
	}
	if m.pdu, err = r.next(); err != nil {
		return fmt.Errorf("reading msgData: %w", err)
	}
	if m.pdu.tag != tagSequence && m.pdu.tag != tagOctetString {
		return fmt.Errorf("%w: msgData has tag 0x%02x", errBER, m.pdu.tag)
	}
	if m.secModel != securityModelUSM {
		return nil // the caller rejects the model; its parameters are opaque
	}
	return m.usm.parse(sp)
}

const maxInt31 = 1<<31 - 1

func (u *usmParams) parse(b []byte) error {
	top := berReader{b: b}
	r, err := top.sequence("UsmSecurityParameters")
	if err != nil {
		return err
	}
	if !top.empty() {
		return fmt.Errorf("%w: trailing bytes after UsmSecurityParameters", errBER)
	}
	if u.engineID, err = r.octets("msgAuthoritativeEngineID"); err != nil {
		return err
	}
	if u.boots, err = r.integer("msgAuthoritativeEngineBoots"); err != nil {
		return err
	}
	if u.time, err = r.integer("msgAuthoritativeEngineTime"); err != nil {
		return err
	}
	if u.user, err = r.octets("msgUserName"); err != nil {
		return err
	}
	if u.authParams, err = r.octets("msgAuthenticationParameters"); err != nil {
		return err
	}
	if u.privParams, err = r.octets("msgPrivacyParameters"); err != nil {
		return err
	}
	if !r.empty() {
		return fmt.Errorf("%w: trailing bytes in UsmSecurityParameters", errBER)
	}
	switch {
	case len(u.engineID) > 32:
		return fmt.Errorf("%w: engine ID of %d bytes", errBER, len(u.engineID))
	case u.boots < 0 || u.boots > maxInt31:
		return fmt.Errorf("%w: engine boots %d out of range", errBER, u.boots)
	case u.time < 0 || u.time > maxInt31:
		return fmt.Errorf("%w: engine time %d out of range", errBER, u.time)
	case len(u.user) > 32:
		return fmt.Errorf("%w: user name of %d bytes", errBER, len(u.user))
	}
	return nil
}

// parseScopedPDU decodes a ScopedPDU (RFC 3412 §6.8) and returns its PDU.
// Bytes after the ScopedPDU are ignored: some agents pad the plaintext
// to the cipher block size.
func parseScopedPDU(b []byte) (tlv, error) {
	top := berReader{b: b}
	r, err := top.sequence("ScopedPDU")
	if err != nil {
		return tlv{}, err
	}
	return scopedPDUContent(r)
}

// scopedPDUContent decodes the content of a ScopedPDU SEQUENCE.
func scopedPDUContent(r berReader) (tlv, error) {
	if _, err := r.octets("contextEngineID"); err != nil {
		return tlv{}, err
	}
	if _, err := r.octets("contextName"); err != nil {
		return tlv{}, err
	}
	pdu, err := r.next()
	if err != nil {
		return tlv{}, fmt.Errorf("reading PDU: %w", err)
	}
	if !r.empty() {
		return tlv{}, fmt.Errorf("%w: trailing bytes in ScopedPDU", errBER)
	}
	return pdu, nil
}

// varBind is one variable binding; val aliases the packet.
type varBind struct {
	name oid
	tag  byte
	val  []byte
}

func parseVarBinds(r *berReader) ([]varBind, error) {
	list, err := r.sequence("variable-bindings")
	if err != nil {
		return nil, err
	}
	var out []varBind
	for !list.empty() {
		if len(out) == maxVarBinds {
			return nil, fmt.Errorf("%w: more than %d variable bindings", errBER, maxVarBinds)
		}
		vb, err := list.sequence("VarBind")
		if err != nil {
			return nil, err
		}
		nb, err := vb.expect(tagOID, "VarBind name")
		if err != nil {
			return nil, err
		}
		name, err := parseOID(nb)
		if err != nil {
			return nil, fmt.Errorf("VarBind name: %w", err)
		}
		v, err := vb.next()
		if err != nil {
			return nil, fmt.Errorf("VarBind %s value: %w", name, err)
		}
		if !vb.empty() {
			return nil, fmt.Errorf("%w: trailing bytes in VarBind %s", errBER, name)
		}
		out = append(out, varBind{name: name, tag: v.tag, val: v.val})
	}
	return out, nil
}

// Well-known OIDs.
func oidPETEnterprise() oid { return oid{1, 3, 6, 1, 4, 1, 3183, 1, 1} }    // PET enterprise
func oidPETTrapPrefix() oid { return oid{1, 3, 6, 1, 4, 1, 3183, 1, 1, 0} } // + .<specific>
func oidPETVarBind() oid    { return oid{1, 3, 6, 1, 4, 1, 3183, 1, 1, 1} } // PET data
func oidSnmpTrapOID() oid   { return oid{1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0} } // snmpTrapOID.0
func oidSysUpTime() oid     { return oid{1, 3, 6, 1, 2, 1, 1, 3, 0} }       // sysUpTime.0

// trapContent is what a trap PDU says, in a version-independent form.
type trapContent struct {
	trapOID  oid // v2/v3 snmpTrapOID.0, or v1 enterprise
	v1       bool
	generic  int64 // v1 generic-trap
	specific int64 // v1 specific-trap
	varBinds []varBind
}

// errPDUType means the PDU is not a notification this receiver handles.
type errPDUType byte

func (e errPDUType) Error() string {
	return fmt.Sprintf("PDU type 0x%02x is not a trap", byte(e))
}

// parseTrapPDU decodes a Trap-PDU (v1, RFC 1157 §4.1.6) or SNMPv2-Trap-PDU
// (RFC 3416 §4.2.6). InformRequest is refused: it asks for a response
// and makes the receiver the authoritative engine, which this receiver
// does not implement.
func parseTrapPDU(p tlv) (trapContent, error) {
	var c trapContent
	r := berReader{b: p.val}
	switch p.tag {
	case tagTrapV1:
		c.v1 = true
		eb, err := r.expect(tagOID, "enterprise")
		if err != nil {
			return c, err
		}
		if c.trapOID, err = parseOID(eb); err != nil {
			return c, fmt.Errorf("enterprise: %w", err)
		}
		if _, err := r.expect(tagIPAddress, "agent-addr"); err != nil {
			return c, err
		}
		if c.generic, err = r.integer("generic-trap"); err != nil {
			return c, err
		}
		if c.specific, err = r.integer("specific-trap"); err != nil {
			return c, err
		}
		if _, err := r.expect(tagTimeTicks, "time-stamp"); err != nil {
			return c, err
		}
		if c.varBinds, err = parseVarBinds(&r); err != nil {
			return c, err
		}
	case tagTrapV2:
		if _, err := r.integer("request-id"); err != nil {
			return c, err
		}
		if _, err := r.integer("error-status"); err != nil {
			return c, err
		}
		if _, err := r.integer("error-index"); err != nil {
			return c, err
		}
		var err error
		if c.varBinds, err = parseVarBinds(&r); err != nil {
			return c, err
		}
		// RFC 3416 §4.2.6: sysUpTime.0 first, snmpTrapOID.0 second.
		if len(c.varBinds) < 2 || !c.varBinds[0].name.equal(oidSysUpTime()) || !c.varBinds[1].name.equal(oidSnmpTrapOID()) {
			return c, fmt.Errorf("%w: SNMPv2-Trap without sysUpTime.0 and snmpTrapOID.0 first", errBER)
		}
		if c.varBinds[1].tag != tagOID {
			return c, fmt.Errorf("%w: snmpTrapOID.0 has tag 0x%02x", errBER, c.varBinds[1].tag)
		}
		if c.trapOID, err = parseOID(c.varBinds[1].val); err != nil {
			return c, fmt.Errorf("snmpTrapOID.0: %w", err)
		}
	default:
		return c, errPDUType(p.tag)
	}
	if !r.empty() {
		return c, fmt.Errorf("%w: trailing bytes in PDU", errBER)
	}
	return c, nil
}

// errNotPET means a well-formed trap that is not an IPMI PET.
type errNotPET struct{ trap string }

func (e errNotPET) Error() string { return "trap " + e.trap + " is not an IPMI Platform Event Trap" }

// petPayload extracts the specific trap number and the PET octets.
func (c trapContent) petPayload() (uint32, []byte, error) {
	var specific int64
	if c.v1 {
		// enterprise 1.3.6.1.4.1.3183.1.1, generic 6 (enterpriseSpecific).
		if !c.trapOID.equal(oidPETEnterprise()) || c.generic != 6 {
			return 0, nil, errNotPET{trap: fmt.Sprintf("%s generic %d", c.trapOID, c.generic)}
		}
		specific = c.specific
	} else {
		// 1.3.6.1.4.1.3183.1.1.0.<specific> (RFC 3584 §3.1 mapping).
		pre := oidPETTrapPrefix()
		if len(c.trapOID) != len(pre)+1 || !c.trapOID.hasPrefix(pre) {
			return 0, nil, errNotPET{trap: c.trapOID.String()}
		}
		specific = int64(c.trapOID[len(pre)])
	}
	if specific < 0 || specific > 0xffffffff {
		return 0, nil, fmt.Errorf("%w: specific trap %d out of range", ErrBadPET, specific)
	}
	var data []byte
	found := false
	for _, vb := range c.varBinds {
		if !vb.name.equal(oidPETVarBind()) {
			continue
		}
		if found {
			return 0, nil, fmt.Errorf("%w: two PET variable bindings", ErrBadPET)
		}
		if vb.tag != tagOctetString {
			return 0, nil, fmt.Errorf("%w: PET variable binding has tag 0x%02x, want OCTET STRING", ErrBadPET, vb.tag)
		}
		data, found = vb.val, true
	}
	if !found {
		return 0, nil, fmt.Errorf("%w: no variable binding %s", ErrBadPET, oidPETVarBind())
	}
	return uint32(specific), data, nil
}
