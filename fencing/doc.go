// Package fencing decides and carries out fences of cluster nodes that are
// AdvancedTCA blades, so that a failed node is known to be off before the
// cluster moves its services.
//
// It has three parts, in the style of etcd's raft (pure core, caller does
// I/O):
//
//   - Machine is the replicated state machine. Every decision is a log
//     entry (Command, JSON with a version field): FenceRequested (with the
//     plan of levels), LevelStarted (its log index identifies the
//     execution), LevelResult (with the state read back), UnfenceRequested,
//     UnfenceStarted, UnfenceResult. Per target: idle, fencing, fenced,
//     unfencing or failed. At most one fence per target is in flight (a
//     second request is recorded as a duplicate); a fenced target stays
//     fenced until an operator unfences it; a level is retried, then the
//     next level is used; when every level failed the target is failed
//     (an alarm). A result counts only for the execution in flight and
//     only with an "off" read-back, so a result from a deposed leader is
//     ignored and a fence completes exactly once. Machine implements the
//     cluster's FSM interface (Apply, Snapshot, Restore).
//
//   - Coordinator is the driver on the cluster leader holding quorum. It
//     turns failure reports (member dead, hardware failure from the HPI
//     model, watchdog expiry, operator request) into log entries before
//     acting, executes the levels the Machine asks for and writes the
//     results back. After becoming leader it waits for a Barrier, then
//     resumes every fence in flight: an execution started by the old
//     leader is superseded by a new LevelStarted and run again (off is
//     idempotent; the read-back decides). At every scan the leader also
//     consults the current state, not only the reports it received:
//     members membership holds dead (DeadMembers) and hardware failures
//     the HPI model holds now (FailedHardware, CurrentFailures: a FRU in
//     M7, a CRITICAL sensor), so a failure reported before it became
//     leader is not lost. A node never fences itself: the leader that
//     finds its own node failed (or asked by an operator to fence it, or
//     holding a fence of itself in flight) hands the leadership over to
//     another voter (LeadershipTransferer, at most once per
//     RepeatInterval), whose scan then fences it; without another voter it
//     does nothing and the node's watchdog remains its fence.
//
//   - Executors are the mechanisms behind one interface, grouped in
//     ordered Levels (like Pacemaker's fencing topology): PICMG through
//     the shelf manager (Set Power Level 0, or Set FRU Activation
//     deactivate with the FRU locked in M1), IPMI chassis power, and fabric
//     ports through SNMPv3 ifAdminStatus. SetAndConfirm asks for the
//     change and reads the state back until it shows, or fails.
//
// Build turns the fencing section of the configuration (TopologyConfig)
// into Levels and node mappings. cmd/fence_hpiagent lets Pacemaker fence
// through the agent's API.
package fencing
