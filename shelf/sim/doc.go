// Package sim is an embedded, simulated AdvancedTCA shelf: a PICMG 3.0
// shelf manager that answers IPMI over LAN (RMCP+, cipher suites 3 and 17)
// on a UDP socket, and blade and fan tray IPMCs reachable only by IPMB
// bridging (Send Message) through it. It is the demo's shelf and the test
// peer for what ipmi_sim lacks (cipher suite 17, FRU activation policy,
// power levels, Reserve Device SDR Repository).
//
// It behaves like a shelf manager and IPMCs per the IPMI 2.0 and PICMG 3.0
// specifications, not like a fake tuned to one client:
//
//   - The shelf manager keeps the main SDR repository (MC and FRU device
//     locators, full sensor records with conversion factors, thresholds and
//     hysteresis, compact records for the hot-swap sensors), aggregated from
//     every installed IPMC's device SDRs; reservations are cancelled when
//     the repository changes (an IPMC comes or goes).
//   - FRUs move through the hot-swap states M0..M7 (PICMG 3.0 §3.2.4) as the
//     handle, the activation policy (Locked / Deactivation-Locked), Set FRU
//     Activation, Set Power Level and shelf power dictate. Every transition
//     updates the hot-swap sensor and logs a hot-swap event in the SEL
//     (data 1 = A0h|new state, data 2 = cause<<4|previous state, data 3 =
//     FRU 0), with the IPMC as generator. A commanded deactivation leaves
//     the FRU in M1 with its Locked bit set, so a fenced FRU stays off.
//   - Threshold crossings log assertion/deassertion events as the sensor's
//     MC would send them (with hysteresis, per the event enables).
//   - Bridged requests come back either embedded in the Send Message
//     response or as a separate message (Config.Bridge). An absent address
//     gives completion code 83h (NAK on write); a frame with a bad checksum
//     or a lost IPMC gets no answer (or C3h in the embedded style).
//   - Privileges are checked per command, for bridged commands too: a
//     user-level session cannot power off, deactivate or clear the SEL.
//   - Like a BMC with IPMI 1.5 sessions disabled, the shelf manager answers
//     the session-less pre-session requests Get Channel Authentication
//     Capabilities and Get Channel Cipher Suites in whichever format they
//     come (IPMI 1.5 with authentication type none, or IPMI 2.0), offering
//     IPMI 2.0 and no IPMI 1.5 authentication type; every other IPMI 1.5
//     packet (Get Session Challenge, Activate Session, session or
//     authenticated packets) is dropped.
//
// The shelf clock moves only when told (Shelf.Advance), so tests are
// deterministic; Shelf.RunClock (or Start with realTime) makes it follow
// the wall clock for the demo.
//
// Starting a shelf on loopback:
//
//	srv, err := sim.Start(ctx, sim.DefaultConfig(), "127.0.0.1:0", true, log)
//	port := srv.Addr().Port
//	shelf := srv.Shelf()
//
// Test controls on Shelf: Insert, Extract, Remove (board and handle),
// SetUnresponsive (M7, bridged requests time out), PullPower, SetSensorRaw,
// Advance, and read-backs State, PowerLevel, Policy, ChassisPower, SEL,
// Counters (packets, drops, sessions, IPMI 1.5 pre-session answers and
// refusals, commands per controller), Resets. On Server: Restart (reboot on the same port, sessions
// lost), Sessions, Close.
//
// Shelf.Handle (IPMB frames in, frames out) and Server.HandlePacket
// (datagram in, datagrams out) are the I/O-free cores.
package sim
