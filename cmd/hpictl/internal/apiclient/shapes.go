package apiclient

import (
	"encoding/json"
	"time"
)

// The JSON shapes of the hpiagent API, as the server (package api) writes
// them. They are declared here rather than imported so that the client
// builds on its own and decodes leniently (unknown members are ignored);
// the compat test compares them member by member with the server's types.

// Resource is one resource (GET /v1/resources, /v1/resources/{id}).
type Resource struct {
	ID                  uint32   `json:"id"`
	EntityPath          string   `json:"entity_path"`
	Tag                 string   `json:"tag"`
	Capabilities        []string `json:"capabilities"`
	HotSwapCapabilities uint32   `json:"hotswap_capabilities"`
	Severity            string   `json:"severity"`
	Failed              bool     `json:"failed"`
	ManufacturerID      uint32   `json:"manufacturer_id"`
	ProductID           uint16   `json:"product_id"`
	FirmwareRevision    string   `json:"firmware_revision"`
	GUID                string   `json:"guid,omitempty"`
}

// RDR is one resource data record (GET /v1/resources/{id}/rdrs).
type RDR struct {
	RecordID    uint32          `json:"record_id"`
	Type        string          `json:"type"`
	Num         uint32          `json:"num"`
	Name        string          `json:"name"`
	EntityPath  string          `json:"entity_path,omitempty"`
	IsFRU       bool            `json:"is_fru"`
	Sensor      *SensorRec      `json:"sensor,omitempty"`
	Control     *ControlRec     `json:"control,omitempty"`
	Inventory   *InventorySum   `json:"inventory,omitempty"`
	Watchdog    *WatchdogRec    `json:"watchdog,omitempty"`
	Annunciator *AnnunciatorRec `json:"annunciator,omitempty"`
}

// SensorRec is the sensor part of an RDR.
type SensorRec struct {
	Type            uint32   `json:"sensor_type"`
	Category        uint8    `json:"event_category"`
	ReadingType     string   `json:"reading_type,omitempty"`
	Units           string   `json:"units"`
	SupportedEvents uint16   `json:"supported_event_states"`
	ThresholdsRead  []string `json:"thresholds_readable"`
	ThresholdsWrite []string `json:"thresholds_writable"`
	EnableCtrl      bool     `json:"enable_ctrl"`
}

// ControlRec is the control part of an RDR.
type ControlRec struct {
	OutputType  string `json:"output_type"`
	Type        string `json:"type"`
	DefaultMode string `json:"default_mode"`
	ReadOnly    bool   `json:"mode_read_only"`
	WriteOnly   bool   `json:"write_only"`
	Permission  string `json:"permission"`
}

// InventorySum is the inventory part of an RDR.
type InventorySum struct {
	IdrID      uint32 `json:"idr_id"`
	Persistent bool   `json:"persistent"`
	Areas      int    `json:"areas"`
}

// WatchdogRec is the watchdog part of an RDR.
type WatchdogRec struct {
	Num uint32 `json:"num"`
}

// AnnunciatorRec is the annunciator part of an RDR.
type AnnunciatorRec struct {
	Type          uint8  `json:"type"`
	ModeReadOnly  bool   `json:"mode_read_only"`
	MaxConditions uint32 `json:"max_conditions"`
}

// Reading is a sensor reading; Value is a json.Number for numeric types.
type Reading struct {
	Supported bool   `json:"supported"`
	Type      string `json:"type,omitempty"`
	Value     any    `json:"value,omitempty"`
	Buffer    string `json:"buffer,omitempty"`
}

// Thresholds are a sensor's current thresholds.
type Thresholds struct {
	LowCritical      *Reading `json:"low_critical,omitempty"`
	LowMajor         *Reading `json:"low_major,omitempty"`
	LowMinor         *Reading `json:"low_minor,omitempty"`
	UpCritical       *Reading `json:"up_critical,omitempty"`
	UpMajor          *Reading `json:"up_major,omitempty"`
	UpMinor          *Reading `json:"up_minor,omitempty"`
	PosThdHysteresis *Reading `json:"pos_hysteresis,omitempty"`
	NegThdHysteresis *Reading `json:"neg_hysteresis,omitempty"`
}

// Sensor is GET /v1/resources/{id}/sensors/{num}.
type Sensor struct {
	ResourceID uint32      `json:"resource_id"`
	Num        uint32      `json:"num"`
	Name       string      `json:"name"`
	EntityPath string      `json:"entity_path"`
	Units      string      `json:"units"`
	Reading    *Reading    `json:"reading"`
	EventState uint16      `json:"event_state"`
	Timestamp  *time.Time  `json:"timestamp"`
	Thresholds *Thresholds `json:"thresholds"`
}

// Inventory is one inventory data repository (GET .../inventory returns a list).
type Inventory struct {
	IdrID      uint32 `json:"idr_id"`
	Name       string `json:"name"`
	Persistent bool   `json:"persistent"`
	Areas      []Area `json:"areas"`
}

// Area is one IDR area.
type Area struct {
	AreaID   uint32  `json:"area_id"`
	Type     uint8   `json:"type"`
	ReadOnly bool    `json:"read_only"`
	Fields   []Field `json:"fields"`
}

// Field is one IDR field.
type Field struct {
	FieldID  uint32 `json:"field_id"`
	Type     uint8  `json:"type"`
	ReadOnly bool   `json:"read_only"`
	Value    string `json:"value"`
}

// HotSwap is the hot-swap state of a FRU (GET/POST .../hotswap).
type HotSwap struct {
	ResourceID         uint32     `json:"resource_id"`
	State              string     `json:"state"`
	Known              bool       `json:"known"`
	MState             string     `json:"m_state,omitempty"`
	Failed             bool       `json:"failed"`
	PolicyCanceled     bool       `json:"policy_canceled"`
	Deadline           *time.Time `json:"deadline,omitempty"`
	AutoInsertTimeout  string     `json:"auto_insert_timeout"`
	AutoExtractTimeout string     `json:"auto_extract_timeout"`
}

// HotSwapRequest is the body of POST .../hotswap.
type HotSwapRequest struct {
	Action string `json:"action"`
}

// Power is the answer of the power routes.
type Power struct {
	ResourceID uint32 `json:"resource_id"`
	State      string `json:"state"`
}

// PowerRequest is the body of PUT .../power.
type PowerRequest struct {
	State string `json:"state"`
}

// ResetRequest is the body of POST .../reset.
type ResetRequest struct {
	Action string `json:"action"`
}

// Reset is the answer of POST .../reset.
type Reset struct {
	ResourceID uint32 `json:"resource_id"`
	Action     string `json:"action"`
}

// ControlState is a control state; Type names the member that holds it.
type ControlState struct {
	Type     string  `json:"type"`
	Digital  string  `json:"digital,omitempty"`
	Discrete *uint32 `json:"discrete,omitempty"`
	Analog   *int32  `json:"analog,omitempty"`
	Stream   string  `json:"stream,omitempty"`
	Text     string  `json:"text,omitempty"`
}

// ControlRequest is the body of PUT .../controls/{num}.
type ControlRequest struct {
	State ControlState `json:"state"`
}

// Event is one HPI event (event log entries and the event stream).
type Event struct {
	ID         uint64    `json:"id"`
	Source     uint32    `json:"source"`
	EntityPath string    `json:"entity_path,omitempty"`
	Type       string    `json:"type"`
	Timestamp  time.Time `json:"timestamp"`
	Severity   string    `json:"severity"`

	Resource *ResourceEvent `json:"resource,omitempty"`
	Sensor   *SensorEvent   `json:"sensor,omitempty"`
	HotSwap  *HotSwapEvent  `json:"hotswap,omitempty"`
	User     *TextEvent     `json:"user,omitempty"`
	OEM      *TextEvent     `json:"oem,omitempty"`
	HPISW    *HPISWEvent    `json:"hpi_sw,omitempty"`
	Domain   *DomainEvent   `json:"domain,omitempty"`
}

// ResourceEvent is the payload of a RESOURCE event.
type ResourceEvent struct {
	Type string `json:"type"`
}

// SensorEvent is the payload of a SENSOR event.
type SensorEvent struct {
	Num              uint32   `json:"num"`
	SensorType       uint32   `json:"sensor_type"`
	Category         uint8    `json:"event_category"`
	Assertion        bool     `json:"assertion"`
	EventState       uint16   `json:"event_state"`
	TriggerReading   *Reading `json:"trigger_reading,omitempty"`
	TriggerThreshold *Reading `json:"trigger_threshold,omitempty"`
	PreviousState    uint16   `json:"previous_state"`
	CurrentState     uint16   `json:"current_state"`
}

// HotSwapEvent is the payload of a HOTSWAP event.
type HotSwapEvent struct {
	State         string `json:"state"`
	PreviousState string `json:"previous_state"`
	Cause         string `json:"cause"`
}

// TextEvent is the payload of USER and OEM events.
type TextEvent struct {
	MId  uint32 `json:"manufacturer_id,omitempty"`
	Data string `json:"data"`
}

// HPISWEvent is the payload of an HPI_SW event.
type HPISWEvent struct {
	Type   uint8  `json:"type"`
	Data   string `json:"data,omitempty"`
	Alarm  *Alarm `json:"alarm,omitempty"`
	Action string `json:"alarm_action,omitempty"`
}

// DomainEvent is the payload of a DOMAIN event.
type DomainEvent struct {
	Type     uint8  `json:"type"`
	DomainID uint32 `json:"domain_id"`
}

// Alarm is one alarm (GET /v1/alarms, POST /v1/alarms/{id}/ack).
type Alarm struct {
	ID           uint32    `json:"id"`
	Timestamp    time.Time `json:"timestamp"`
	Severity     string    `json:"severity"`
	Acknowledged bool      `json:"acknowledged"`
	Condition    Condition `json:"condition"`
}

// Condition is what an alarm is about.
type Condition struct {
	Type       string `json:"type"`
	EntityPath string `json:"entity_path"`
	ResourceID uint32 `json:"resource_id"`
	SensorNum  uint32 `json:"sensor_num"`
	EventState uint16 `json:"event_state"`
	Name       string `json:"name"`
}

// EventLog is GET /v1/eventlog.
type EventLog struct {
	Info    EventLogInfo    `json:"info"`
	Entries []EventLogEntry `json:"entries"`
}

// EventLogInfo describes the domain event log.
type EventLogInfo struct {
	Entries        int        `json:"entries"`
	Size           int        `json:"size"`
	Enabled        bool       `json:"enabled"`
	Overflow       bool       `json:"overflow"`
	OverflowAction string     `json:"overflow_action"`
	Dropped        uint64     `json:"dropped"`
	Updated        *time.Time `json:"updated,omitempty"`
}

// EventLogEntry is one entry of the domain event log.
type EventLogEntry struct {
	EntryID   uint32    `json:"entry_id"`
	Timestamp time.Time `json:"timestamp"`
	Event     Event     `json:"event"`
}

// WhoAmI is GET /v1/whoami.
type WhoAmI struct {
	Identity    string   `json:"identity"`
	Roles       []string `json:"roles"`
	Permissions []string `json:"permissions"`
}

// Gap is the data of a "gap" stream event: events FirstMissing to
// LastMissing will never be delivered.
type Gap struct {
	FirstMissing uint64 `json:"first_missing"`
	LastMissing  uint64 `json:"last_missing"`
	Count        uint64 `json:"count"`
}

// StreamReset is the data of a "reset" stream event: the agent's event IDs
// began again; the whole event log follows.
type StreamReset struct {
	ResumeID    uint64 `json:"resume_id"`
	LastEventID uint64 `json:"last_event_id"`
	Reason      string `json:"reason"`
}

// ErrorBody is the body of every error answer.
type ErrorBody struct {
	Error struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		RequestID string `json:"request_id"`
		Leader    string `json:"leader,omitempty"`
		LeaderAPI string `json:"leader_api,omitempty"`
	} `json:"error"`
}

// Cluster is GET /v1/cluster.
type Cluster struct {
	Node         string          `json:"node"`
	Leader       string          `json:"leader"`
	State        string          `json:"state"`
	Term         uint64          `json:"term"`
	LastIndex    uint64          `json:"last_index"`
	CommitIndex  uint64          `json:"commit_index"`
	AppliedIndex uint64          `json:"applied_index"`
	Quorum       bool            `json:"quorum"`
	Members      []ClusterMember `json:"members"`
}

// ClusterMember is one member of the cluster.
type ClusterMember struct {
	Name     string `json:"name"`
	Address  string `json:"address"`
	State    string `json:"state"`
	Verified bool   `json:"verified"`
	Voter    bool   `json:"voter"`
	Self     bool   `json:"self,omitempty"`
}

// FenceNode is GET /v1/fence/{node}.
type FenceNode struct {
	Node  string   `json:"node"`
	Phase string   `json:"phase"`
	Power string   `json:"power"`
	Fence *FenceOp `json:"fence,omitempty"`
}

// FenceOp is a fence operation.
type FenceOp struct {
	ID     string `json:"id"`
	Action string `json:"action"`
	Source string `json:"source"`
	Done   bool   `json:"done"`
	Failed bool   `json:"failed"`
	Error  string `json:"error,omitempty"`
}

// FenceList is GET /v1/fence.
type FenceList struct {
	Nodes []FenceNode `json:"nodes"`
}

// FenceRequest is the body of POST /v1/fence/{node}.
type FenceRequest struct {
	Action string `json:"action"`
	Reason string `json:"reason,omitempty"`
}

// FenceOutcome is the answer of POST /v1/fence/{node}.
type FenceOutcome struct {
	Node     string `json:"node"`
	Op       string `json:"op"`
	Phase    string `json:"phase"`
	Accepted bool   `json:"accepted"`
	Note     string `json:"note,omitempty"`
}

// Workflow is one hot-swap workflow (GET /v1/workflows, /v1/workflows/{id}).
type Workflow struct {
	ID          string            `json:"id"`
	Kind        string            `json:"kind"`
	FRU         FRU               `json:"fru"`
	Phase       string            `json:"phase"`
	Active      bool              `json:"active"`
	Attempt     int               `json:"attempt"`
	Actor       string            `json:"actor,omitempty"`
	Required    []string          `json:"required"`
	Applied     map[string]string `json:"applied,omitempty"`
	Refused     map[string]string `json:"refused,omitempty"`
	Revoked     map[string]string `json:"revoked,omitempty"`
	Certificate string            `json:"certificate,omitempty"`
	WipeError   string            `json:"wipe_error,omitempty"`
	Override    *WorkflowOverride `json:"override,omitempty"`
	Alarm       string            `json:"alarm,omitempty"`
	Outcome     string            `json:"outcome,omitempty"`
	Reason      string            `json:"reason,omitempty"`
	StartIndex  uint64            `json:"start_index"`
	EndIndex    uint64            `json:"end_index,omitempty"`
	LastIndex   uint64            `json:"last_index"`
}

// FRU names the FRU of a workflow.
type FRU struct {
	Entity string `json:"entity"`
	Shelf  string `json:"shelf"`
	IPMB   uint8  `json:"ipmb"`
	ID     uint8  `json:"id"`
}

// WorkflowOverride records an override of a failed wipe.
type WorkflowOverride struct {
	Actor  string `json:"actor"`
	Reason string `json:"reason"`
	Index  uint64 `json:"index"`
}

// WorkflowRequest is the body of the workflow actions.
type WorkflowRequest struct {
	Reason string `json:"reason,omitempty"`
}

// WorkflowStarted is the answer of POST /v1/resources/{id}/extract.
type WorkflowStarted struct {
	Workflow string `json:"workflow"`
}

// EraseCertificateSummary is an element of GET /v1/erase-certificates.
type EraseCertificateSummary struct {
	ID        string     `json:"id"`
	FRU       string     `json:"fru"`
	Node      string     `json:"node"`
	Target    string     `json:"target"`
	Outcome   string     `json:"outcome"`
	Completed *time.Time `json:"completed,omitempty"`
	KeyID     string     `json:"key_id,omitempty"`
	Error     string     `json:"error,omitempty"`
}

// AuditAnchor is one member's audit log head in GET /v1/audit/anchors.
type AuditAnchor struct {
	Node  string    `json:"node"`
	Seq   uint64    `json:"seq"`
	Hash  string    `json:"hash"`
	Time  time.Time `json:"time"`
	Index uint64    `json:"index"`
}

// AuditAnchorConflict is a conflict in GET /v1/audit/anchors.
type AuditAnchorConflict struct {
	Node    string      `json:"node"`
	Reason  string      `json:"reason"`
	Earlier AuditAnchor `json:"earlier"`
	Later   AuditAnchor `json:"later"`
}

// AuditAnchors is the answer of GET /v1/audit/anchors.
type AuditAnchors struct {
	Anchors   []AuditAnchor         `json:"anchors"`
	Conflicts []AuditAnchorConflict `json:"conflicts"`
}

// RawJSON is an undecoded answer (for --json output).
type RawJSON = json.RawMessage
