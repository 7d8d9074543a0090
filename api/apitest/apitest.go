// Package apitest has helpers for tests and benchmarks of the API: a
// throwaway CA issuing server and client certificates, a domain of
// synthetic resources and sensors, an in-memory auditor and a hardware
// stand-in that records calls. None of it is for production use.
package apitest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"slices"
	"sync"
	"time"

	"hpiagent/api"
	"hpiagent/hpi"
)

// CA is a throwaway certificate authority.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	Pool *x509.CertPool
}

// NewCA returns a new CA named name, valid for a day.
func NewCA(name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{Cert: cert, Key: key, Pool: pool}, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}

// Server issues a server certificate for 127.0.0.1, ::1 and localhost.
func (ca *CA) Server() (tls.Certificate, error) {
	return ca.issue(&x509.Certificate{
		Subject: pkix.Name{CommonName: "hpiagent-test-server"}, DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
}

// Client issues a client certificate with common name cn and, when uri is
// not empty, that URI SAN.
func (ca *CA) Client(cn, uri string) (tls.Certificate, error) {
	tmpl := &x509.Certificate{Subject: pkix.Name{CommonName: cn}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if uri != "" {
		u, err := url.Parse(uri)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("client URI %q: %w", uri, err)
		}
		tmpl.URIs = []*url.URL{u}
	}
	return ca.issue(tmpl)
}

func (ca *CA) issue(tmpl *x509.Certificate) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generate key: %w", err)
	}
	tmpl.SerialNumber = serial()
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(12 * time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("create certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("parse certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// ClientTLS returns a TLS 1.3 client configuration that trusts ca and
// presents cert.
func (ca *CA) ClientTLS(cert tls.Certificate) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: ca.Pool, Certificates: []tls.Certificate{cert}}
}

// BladePath is the entity path of an ATCA front blade in slot.
func BladePath(slot hpi.EntityLocation) hpi.EntityPath {
	return hpi.EntityPath{{Type: hpi.EntPICMGFrontBlade}, {Type: hpi.EntPhysicalSlot, Location: slot}, {Type: hpi.EntAdvancedTCAChassis, Location: 1}}
}

// TempSensor returns a threshold temperature sensor RDR.
func TempSensor(num hpi.SensorNum, name string) hpi.RDR {
	return hpi.RDR{Type: hpi.SensorRDR, IDString: name, Sensor: &hpi.SensorRec{
		Num: num, Type: hpi.SensorTemperature, Category: hpi.ECThreshold, EventCtrl: hpi.SECPerEvent,
		Events:        hpi.ESUpperMinor | hpi.ESUpperMajor | hpi.ESUpperCrit,
		DataFormat:    hpi.SensorDataFormat{IsSupported: true, ReadingType: hpi.ReadingFloat64, BaseUnits: hpi.UnitsDegreesC},
		ThresholdDefn: hpi.SensorThdDefn{IsAccessible: true, ReadThold: hpi.ThdUpCrit | hpi.ThdUpMajor, WriteThold: hpi.ThdUpCrit},
	}}
}

// Blade RDR instrument numbers used by AddBlade.
const (
	BladeTempSensor hpi.SensorNum = 3
	BladeLED        hpi.CtrlNum   = hpi.ATCACtrlNumLED1
	BladeResetCtrl  hpi.CtrlNum   = hpi.ATCACtrlNumFRUIPMCReset
	BladeOEMCtrl    hpi.CtrlNum   = 0x40
	BladeIDR        hpi.IdrID     = 0
)

// AddBlade adds an ATCA blade in slot with a temperature sensor reading
// temp, an LED, an IPMC reset control, an OEM analog control and an
// inventory record, and returns its resource ID.
func AddBlade(d *hpi.Domain, slot hpi.EntityLocation, temp float64) (hpi.ResourceID, error) {
	e := hpi.RPTEntry{EntityPath: BladePath(slot), Tag: fmt.Sprintf("blade %d", slot), Severity: hpi.Major,
		Capabilities: hpi.CapabilityResource | hpi.CapabilityRDR | hpi.CapabilitySensor | hpi.CapabilityFRU |
			hpi.CapabilityManagedHotswap | hpi.CapabilityPower | hpi.CapabilityReset | hpi.CapabilityControl | hpi.CapabilityInventoryData}
	rdrs := []hpi.RDR{
		TempSensor(BladeTempSensor, "CPU Temp"),
		{Type: hpi.CtrlRDR, IDString: "LED1", Control: &hpi.CtrlRec{Num: BladeLED, OutputType: hpi.CtrlLED, Type: hpi.CtrlTypeDigital,
			DefaultMode: hpi.CtrlDefaultMode{Mode: hpi.CtrlModeManual}}},
		{Type: hpi.CtrlRDR, IDString: "IPMC reset", Control: &hpi.CtrlRec{Num: BladeResetCtrl, OutputType: hpi.CtrlReset, Type: hpi.CtrlTypeDigital,
			DefaultMode: hpi.CtrlDefaultMode{Mode: hpi.CtrlModeManual}, WriteOnly: true}},
		{Type: hpi.CtrlRDR, IDString: "fan level", Control: &hpi.CtrlRec{Num: BladeOEMCtrl, OutputType: hpi.CtrlFanSpeed, Type: hpi.CtrlTypeAnalog,
			AnalogMin: 0, AnalogMax: 15, DefaultMode: hpi.CtrlDefaultMode{Mode: hpi.CtrlModeManual}}},
		{Type: hpi.InventoryRDR, IDString: "FRU", Inventory: &hpi.InventoryRec{IdrID: BladeIDR, Areas: []hpi.IdrArea{
			{AreaID: 1, Type: hpi.IdrAreaBoardInfo, ReadOnly: true, Fields: []hpi.IdrField{
				{FieldID: 1, Type: hpi.IdrFieldManufacturer, ReadOnly: true, Value: "Example Boards"},
				{FieldID: 2, Type: hpi.IdrFieldSerialNumber, ReadOnly: true, Value: fmt.Sprintf("SN-%04d", slot)}}}}}},
	}
	id, err := d.UpsertResource(e, rdrs)
	if err != nil {
		return 0, fmt.Errorf("add blade %d: %w", slot, err)
	}
	if _, err := d.SetSensorReading(id, BladeTempSensor, hpi.Float(temp), 0, time.Time{}); err != nil {
		return 0, fmt.Errorf("set reading of blade %d: %w", slot, err)
	}
	return id, nil
}

// SyntheticDomain returns a domain of resources with n temperature sensors
// in total (at most 64 per resource), each with a reading, for benchmarks.
func SyntheticDomain(n int) (*hpi.Domain, error) {
	d := hpi.NewDomain(hpi.Config{EventLogSize: 4096, EventLogOverflow: hpi.OverflowOverwrite})
	const per = 64
	for slot := 0; n > 0; slot++ {
		k := min(n, per)
		e := hpi.RPTEntry{EntityPath: BladePath(hpi.EntityLocation(slot + 1)), Tag: fmt.Sprintf("synthetic %d", slot+1),
			Capabilities: hpi.CapabilityResource | hpi.CapabilityRDR | hpi.CapabilitySensor}
		rdrs := make([]hpi.RDR, k)
		for i := range k {
			rdrs[i] = TempSensor(hpi.SensorNum(i+1), fmt.Sprintf("Temp %d", i+1))
		}
		id, err := d.UpsertResource(e, rdrs)
		if err != nil {
			return nil, fmt.Errorf("synthetic resource %d: %w", slot+1, err)
		}
		for i := range k {
			if _, err := d.SetSensorReading(id, hpi.SensorNum(i+1), hpi.Float(20+float64(i%40)), 0, time.Time{}); err != nil {
				return nil, fmt.Errorf("synthetic reading: %w", err)
			}
		}
		n -= k
	}
	return d, nil
}

// Auditor keeps audit records in memory; Fail makes Append fail.
type Auditor struct {
	mu      sync.Mutex
	records []api.AuditRecord
	fail    error
}

// Append records r, or fails when Fail was set.
func (a *Auditor) Append(_ context.Context, r api.AuditRecord) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fail != nil {
		return a.fail
	}
	r.Seq = uint64(len(a.records) + 1)
	a.records = append(a.records, r)
	return nil
}

// Fail makes every later Append return err (nil: succeed again).
func (a *Auditor) Fail(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.fail = err
}

// Records returns a copy of the records appended so far.
func (a *Auditor) Records() []api.AuditRecord {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]api.AuditRecord(nil), a.records...)
}

// HardwareCall is one call recorded by Hardware.
type HardwareCall struct {
	Op  string // "SetPowerState", "PowerState", "Reset", "HotSwapAction", "SetControl"
	ID  hpi.ResourceID
	Arg string // the state, action or control number and state
}

// Hardware records calls and answers them with Err (nil: success) and
// Power.
type Hardware struct {
	mu    sync.Mutex
	calls []HardwareCall
	// Err is returned by every call when set.
	Err error
	// Power is the state PowerState returns; SetPowerState updates it.
	Power hpi.PowerState
}

func (h *Hardware) record(op string, id hpi.ResourceID, arg string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, HardwareCall{Op: op, ID: id, Arg: arg})
	return h.Err
}

// Calls returns a copy of the calls so far.
func (h *Hardware) Calls() []HardwareCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]HardwareCall(nil), h.calls...)
}

// SetPowerState implements api.Hardware.
func (h *Hardware) SetPowerState(ctx context.Context, id hpi.ResourceID, s hpi.PowerState) error {
	if err := h.record("SetPowerState", id, s.String()); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if s == hpi.PowerCycle {
		s = hpi.PowerOn
	}
	h.Power = s
	return nil
}

// PowerState implements api.Hardware.
func (h *Hardware) PowerState(ctx context.Context, id hpi.ResourceID) (hpi.PowerState, error) {
	if err := h.record("PowerState", id, ""); err != nil {
		return 0, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.Power, nil
}

// Reset implements api.Hardware.
func (h *Hardware) Reset(ctx context.Context, id hpi.ResourceID, a hpi.ResetAction) error {
	return h.record("Reset", id, a.String())
}

// HotSwapAction implements api.Hardware.
func (h *Hardware) HotSwapAction(ctx context.Context, id hpi.ResourceID, a hpi.IntentAction) error {
	return h.record("HotSwapAction", id, a.String())
}

// SetControl implements api.Hardware.
func (h *Hardware) SetControl(ctx context.Context, id hpi.ResourceID, num hpi.CtrlNum, s hpi.CtrlState) error {
	arg := fmt.Sprintf("%d:%d", num, s.Type)
	switch s.Type {
	case hpi.CtrlTypeDigital:
		arg += fmt.Sprintf(":%d", s.Digital)
	case hpi.CtrlTypeAnalog:
		arg += fmt.Sprintf(":%d", s.Analog)
	}
	return h.record("SetControl", id, arg)
}

// ErrInjected is a ready-made failure for Auditor.Fail and Hardware.Err.
var ErrInjected = errors.New("injected failure")

var _ api.Hardware = (*Hardware)(nil)
var _ api.Auditor = (*Auditor)(nil)

// Cluster is a fixed cluster status.
type Cluster struct{ View api.ClusterView }

// ClusterStatus implements api.ClusterStatus.
func (c *Cluster) ClusterStatus() api.ClusterView { return c.View }

// CoordCall is one call recorded by Fencing or Workflows.
type CoordCall struct {
	Op, Target, Actor, Arg string
}

// Fencing is a fencing coordinator stand-in: nodes with a phase and a
// power state; Fence and Unfence record the call and move the phase.
// NotLeader, when set, makes every request answer *api.NotLeaderError
// naming it.
type Fencing struct {
	mu        sync.Mutex
	Views     map[string]api.FenceNodeView
	NotLeader string
	// NotLeaderAPI is the leader's API endpoint given with NotLeader.
	NotLeaderAPI string
	calls        []CoordCall
	n            int
}

// Calls returns the recorded requests.
func (f *Fencing) Calls() []CoordCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]CoordCall(nil), f.calls...)
}

// Nodes implements api.Fencing.
func (f *Fencing) Nodes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for n := range f.Views {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// View implements api.Fencing.
func (f *Fencing) View(_ context.Context, node string) (api.FenceNodeView, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.Views[node]
	if !ok {
		return v, fmt.Errorf("node %s: %w", node, api.ErrNotFound)
	}
	return v, nil
}

func (f *Fencing) request(op, node, requester, arg string, phase string) (api.FenceOutcome, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.NotLeader != "" {
		return api.FenceOutcome{}, &api.NotLeaderError{Leader: f.NotLeader, LeaderAPI: f.NotLeaderAPI}
	}
	v, ok := f.Views[node]
	if !ok {
		return api.FenceOutcome{}, fmt.Errorf("fencing %s: %w", node, api.ErrNotFound)
	}
	f.calls = append(f.calls, CoordCall{Op: op, Target: node, Actor: requester, Arg: arg})
	f.n++
	id := fmt.Sprintf("op-%d", f.n)
	v.Phase = phase
	if op == "Fence" {
		v.Fence = &api.FenceOpView{ID: id, Action: arg, Source: "operator"}
	}
	f.Views[node] = v
	return api.FenceOutcome{Op: id, Phase: phase, Accepted: true}, nil
}

// Fence implements api.Fencing.
func (f *Fencing) Fence(_ context.Context, node string, a api.FenceAction, requester, _ string) (api.FenceOutcome, error) {
	return f.request("Fence", node, requester, string(a), "fencing")
}

// Unfence implements api.Fencing.
func (f *Fencing) Unfence(_ context.Context, node, requester, _ string) (api.FenceOutcome, error) {
	return f.request("Unfence", node, requester, "on", "unfencing")
}

// Workflows is a workflow coordinator stand-in over a map of workflows.
// Extract starts a "forced" workflow for the resource's entity path (it
// does not refuse a second one); Override is refused (ErrInvalidState) unless the workflow has a
// WipeError. NotLeader as in Fencing.
type Workflows struct {
	mu        sync.Mutex
	WFs       map[string]api.WorkflowView
	NotLeader string
	// NotLeaderAPI is the leader's API endpoint given with NotLeader.
	NotLeaderAPI string
	calls        []CoordCall
	n            int
}

// Calls returns the recorded requests.
func (w *Workflows) Calls() []CoordCall {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]CoordCall(nil), w.calls...)
}

// List implements api.Workflows.
func (w *Workflows) List() []api.WorkflowView {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := []api.WorkflowView{}
	for _, v := range w.WFs {
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b api.WorkflowView) int { return int(a.StartIndex) - int(b.StartIndex) })
	return out
}

// Get implements api.Workflows.
func (w *Workflows) Get(id string) (api.WorkflowView, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	v, ok := w.WFs[id]
	return v, ok
}

// Extract implements api.Workflows.
func (w *Workflows) Extract(_ context.Context, res hpi.RPTEntry, actor, reason string) (string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.NotLeader != "" {
		return "", &api.NotLeaderError{Leader: w.NotLeader, LeaderAPI: w.NotLeaderAPI}
	}
	ent := res.EntityPath.String()
	w.calls = append(w.calls, CoordCall{Op: "Extract", Target: ent, Actor: actor, Arg: reason})
	w.n++
	id := fmt.Sprintf("wf-new-%d", w.n)
	if w.WFs == nil {
		w.WFs = map[string]api.WorkflowView{}
	}
	w.WFs[id] = api.WorkflowView{ID: id, Kind: "forced", FRU: api.FRUView{Entity: ent}, Phase: "holding", Active: true,
		Attempt: 1, Actor: actor, Required: []string{}, StartIndex: uint64(100 + w.n)}
	return id, nil
}

func (w *Workflows) op(op, id, actor, arg string, f func(*api.WorkflowView) error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.NotLeader != "" {
		return &api.NotLeaderError{Leader: w.NotLeader, LeaderAPI: w.NotLeaderAPI}
	}
	v, ok := w.WFs[id]
	if !ok {
		return fmt.Errorf("workflow %s: %w", id, api.ErrNotFound)
	}
	if err := f(&v); err != nil {
		return err
	}
	w.calls = append(w.calls, CoordCall{Op: op, Target: id, Actor: actor, Arg: arg})
	w.WFs[id] = v
	return nil
}

// Override implements api.Workflows.
func (w *Workflows) Override(_ context.Context, id, actor, reason string) error {
	return w.op("Override", id, actor, reason, func(v *api.WorkflowView) error {
		if v.WipeError == "" {
			return fmt.Errorf("override of workflow %s: the wipe did not fail: %w", id, api.ErrInvalidState)
		}
		v.Override = &api.WorkflowOverrideView{Actor: actor, Reason: reason}
		return nil
	})
}

// Abort implements api.Workflows.
func (w *Workflows) Abort(_ context.Context, id, actor, reason string) error {
	return w.op("Abort", id, actor, reason, func(v *api.WorkflowView) error {
		v.Active, v.Phase, v.Outcome, v.Reason = false, "done", "aborted", reason
		return nil
	})
}

// Retry implements api.Workflows.
func (w *Workflows) Retry(_ context.Context, id, actor string) error {
	return w.op("Retry", id, actor, "", func(v *api.WorkflowView) error {
		v.Attempt++
		return nil
	})
}

// EraseCertificates is an in-memory certificate store: ID → stored JSON.
type EraseCertificates struct {
	Certs map[string][]byte
}

// CertificateIDs implements api.EraseCertificates.
func (e *EraseCertificates) CertificateIDs() ([]string, error) {
	var out []string
	for id := range e.Certs {
		out = append(out, id)
	}
	slices.Sort(out)
	return out, nil
}

// Certificate implements api.EraseCertificates.
func (e *EraseCertificates) Certificate(id string) ([]byte, error) {
	b, ok := e.Certs[id]
	if !ok {
		return nil, fmt.Errorf("certificate %s: %w", id, api.ErrNotFound)
	}
	return b, nil
}
