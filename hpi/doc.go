// Package hpi is the SAF HPI B.03 style model of a shelf: the domain with
// its resource presence table (RPT), resource data records (RDRs), entity
// paths, events, the domain event log, the alarm table and the hot-swap
// state machine with its AdvancedTCA M-state mapping.
//
// The package does no I/O and starts no goroutines. It is a state machine in
// the style of a consensus core: callers feed observations in (resources
// discovered, sensor readings, M-state changes, ticks of the clock) and get
// events and intents out. Intents (activate, deactivate, ...) are never
// executed here; the caller carries them out over IPMI and reports the
// outcome back as an observation. Every exported method of Domain and
// Subscription is safe for concurrent use.
//
// Events get strictly increasing IDs. A consumer that resumes a stream
// after the last ID it saw uses SubscribeAfter (or EventsSince), which says
// whether the event log still held every event after that ID; when it did
// not, the consumer resynchronizes from the RPT, sensor values and alarms.
//
// An Intent carries the hot-swap epoch it was made in; the caller drops it
// when IntentStale reports that the resource has moved on (another state,
// communication lost or restored, removed) before carrying it out.
//
// Names follow SaHpi.h and SaHpiAtca.h as published by OpenHPI: a Go
// constant EntPhysicalSlot is SAHPI_ENT_PHYSICAL_SLOT, HsStateActive is
// SAHPI_HS_STATE_ACTIVE, and the String methods print the text forms of the
// OpenHPI oh_lookup_* functions.
package hpi
