package api

import (
	"slices"
	"strings"

	"hpiagent/hpi"
)

// Role is a named set of permissions an identity is given in Config.Roles.
type Role string

// The roles.
const (
	// RoleViewer reads everything: resources, sensors, logs, alarms, events,
	// metrics.
	RoleViewer Role = "viewer"
	// RoleOperator reads, runs hot-swap actions and workflows (forced
	// extraction, abort, retry), sets LEDs, acknowledges alarms and reads
	// erase certificates.
	RoleOperator Role = "operator"
	// RoleFencer reads, controls power and reset and fences and unfences
	// cluster nodes (what a fence agent needs: status, list, off, on,
	// reboot).
	RoleFencer Role = "fencer"
	// RoleAdmin may do everything, and is the only role that may override
	// a hot-swap workflow's wipe guard.
	RoleAdmin Role = "admin"
	// RoleDiagnostics reads, collects diagnostics (dumps, logs) and reads
	// erase certificates.
	RoleDiagnostics Role = "diagnostics"
)

// AllRoles returns every role.
func AllRoles() []Role {
	return []Role{RoleViewer, RoleOperator, RoleFencer, RoleAdmin, RoleDiagnostics}
}

// Permission is what a route (or a control's kind) needs.
type Permission string

// The permissions.
const (
	// PermNone is needed by nothing: any verified client certificate, even
	// one whose identity has no role (/v1/whoami).
	PermNone Permission = ""
	// PermRead reads the model, the logs, the event stream and the metrics.
	PermRead Permission = "read"
	// PermHotSwap runs hot-swap actions (and writes FRU activation controls).
	PermHotSwap Permission = "hotswap"
	// PermLED writes LED controls.
	PermLED Permission = "led"
	// PermAlarmAck acknowledges alarms.
	PermAlarmAck Permission = "alarm_ack"
	// PermPower sets power states (and writes power controls).
	PermPower Permission = "power"
	// PermReset resets resources (and writes reset controls).
	PermReset Permission = "reset"
	// PermControl writes any other control.
	PermControl Permission = "control"
	// PermDiagnostics collects dumps and logs.
	PermDiagnostics Permission = "diagnostics"
	// PermFence fences and unfences cluster nodes (POST /v1/fence/{node}).
	PermFence Permission = "fence"
	// PermOverride overrides a hot-swap workflow's wipe guard: the FRU
	// leaves without a verified wipe. Admin only.
	PermOverride Permission = "override"
	// PermEraseCerts reads secure-erase certificates. They name media
	// (model, serial number), FRUs and nodes, which a viewer (dashboards,
	// monitoring) has no need for; operators, who extract FRUs, and
	// diagnostics, who collect evidence, do.
	PermEraseCerts Permission = "erase_certificates"
	// PermAnyControl is held by whoever holds any permission that writes
	// some kind of control; the control's kind then decides.
	PermAnyControl Permission = "led|hotswap|power|reset|control"
)

// rolePermissions is the access matrix: the permissions each role grants.
// Roles add up; an identity with several roles has the union.
//
//	            read hotswap led alarm_ack power reset control diagnostics fence override erase_certificates
//	viewer       x
//	operator     x     x      x     x                                                          x
//	fencer       x                          x     x                         x
//	diagnostics  x                                                 x                           x
//	admin        x     x      x     x       x     x      x         x        x      x           x
var rolePermissions = map[Role][]Permission{
	RoleViewer:      {PermRead},
	RoleOperator:    {PermRead, PermHotSwap, PermLED, PermAlarmAck, PermEraseCerts},
	RoleFencer:      {PermRead, PermPower, PermReset, PermFence},
	RoleDiagnostics: {PermRead, PermDiagnostics, PermEraseCerts},
	RoleAdmin:       {PermRead, PermHotSwap, PermLED, PermAlarmAck, PermPower, PermReset, PermControl, PermDiagnostics, PermFence, PermOverride, PermEraseCerts},
}

// allPermissions lists every permission in a fixed order (whoami).
var allPermissions = []Permission{PermRead, PermHotSwap, PermLED, PermAlarmAck, PermPower, PermReset, PermControl, PermDiagnostics, PermFence, PermOverride, PermEraseCerts}

// Permissions returns the permissions role grants (none for an unknown
// role).
func Permissions(role Role) []Permission { return slices.Clone(rolePermissions[role]) }

// allowed reports whether any of roles grants p (one of the alternatives
// of p when it lists several, separated by "|").
func allowed(roles []Role, p Permission) bool {
	if p == PermNone {
		return true
	}
	for _, alt := range strings.Split(string(p), "|") {
		for _, r := range roles {
			if slices.Contains(rolePermissions[r], Permission(alt)) {
				return true
			}
		}
	}
	return false
}

// controlPermission is the permission needed to write a control: by its
// kind (output type) and the AdvancedTCA control numbers HPI defines.
func controlPermission(rec *hpi.CtrlRec) Permission {
	switch rec.Num {
	case hpi.ATCACtrlNumFRUActivation:
		return PermHotSwap
	case hpi.ATCACtrlNumFRUControl, hpi.ATCACtrlNumFRUIPMCReset:
		return PermReset
	case hpi.ATCACtrlNumDesiredPwr:
		return PermPower
	}
	switch rec.OutputType {
	case hpi.CtrlLED:
		return PermLED
	case hpi.CtrlPowerState, hpi.CtrlPowerInterlock, hpi.CtrlPowerSupplyInhibit, hpi.CtrlPowerBudget:
		return PermPower
	case hpi.CtrlReset:
		return PermReset
	case hpi.CtrlActivate:
		return PermHotSwap
	}
	return PermControl
}
