// Package pet receives IPMI Platform Event Traps (PET, "IPMI Platform
// Event Trap Format Specification v1.0", enterprise 1.3.6.1.4.1.3183.1.1)
// that shelf managers send when an event enters their SEL.
//
// A trap is a hint: it tells the agent where to poll now. The state is
// always confirmed over IPMI, so a lost trap costs latency, never
// correctness, and a forged one must not cost more than a poll. The
// receiver is therefore built to refuse and to shed load cheaply:
//
//   - SNMPv3 with USM authPriv only by default (HMAC-SHA-96 or
//     HMAC-192-SHA-256, AES-128-CFB). The SNMP decoding, USM
//     authentication and decryption are done here, with the standard
//     library: the message HMAC is verified before anything else in the
//     message is trusted.
//   - SNMPv1/v2c traps are refused unless communities are configured;
//     then they are accepted, flagged Insecure and counted.
//   - Replay protection: the USM time window of RFC 3414 §3.2 step 7
//     (the trap sender is the authoritative engine, so the receiver
//     tracks each sender's boots and time) plus a cache of the messages
//     seen in the last 2×150 s, so that an exact copy is refused even
//     inside the window.
//   - A token bucket per source address and a global one, checked before
//     any parsing or cryptography; every table (sources, engines, replay
//     cache) is bounded.
//   - Every drop is counted by Reason (Receiver.Stats); drops are logged
//     one by one at debug level only, and summarized at most once per
//     Config.SummaryInterval.
//
// Limits: the first message from an engine not seen before (or forgotten
// after MaxEngines other engines) sets the receiver's notion of that
// engine's time, so a recorded message of an unknown engine is accepted
// once. InformRequest PDUs are refused (they need the receiver to be the
// authoritative engine).
//
// Decoded traps carry a Key that matches the SEL record behind them (see
// Key and SELKey), so a consumer reading both the SEL and the traps can
// handle each event once.
package pet
