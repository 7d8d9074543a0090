// Package hotswap runs the cluster-synchronized hot-swap workflows of
// AdvancedTCA FRUs: insertion, extraction (latch or operator request),
// surprise removal and operator-forced extraction.
//
// Every step of a workflow is an entry of the cluster's coordination log.
// Machine is the replicated, deterministic state machine those entries are
// applied to; it does no I/O. From its state it derives the next actions the
// leader must carry out (hold the FRU, ask a member to apply or revoke its
// policy hooks, activate, wipe, deactivate, retry or abort) — from state,
// never from time — so a new leader that has replayed the log resumes exactly
// where the old one stopped.
//
// Coordinator is the I/O driver on the leader: it turns hpi hot-swap events
// into WorkflowStarted entries, calls the members over peer RPC, drives the
// shelf hardware through the Hardware interface (every action confirmed by
// reading state back) and proposes each outcome as the next entry.
//
// Member runs the local policy hooks (Hook: ExecHook, RuleFileHook) of a
// workflow step and answers with a digest of what it applied. A step it has
// already applied answers with the stored digest without running again
// (the record is kept fsynced in a state directory), so a retried step cannot
// apply twice.
//
// Safety rules the Machine enforces whatever the proposer does:
//   - an insertion is activated only once every required member has acked the
//     application of its hooks; a member that is down or refuses keeps the
//     FRU locked in M1 and raises an alarm;
//   - an extraction deactivates only after every member revoked its policies
//     and the FRU's sensitive state was wiped and verified (a certificate
//     recorded), or after an audited, role-gated override;
//   - at most one workflow per FRU is in flight;
//   - duplicated or reordered acks and results change nothing;
//   - the certificates a verified wipe's result carries are kept only when
//     they match the result's digest, were issued by the workflow's owner
//     and verify with the signer key the entry names (at most
//     secureerase.MaxCertificatesSize bytes); otherwise the entry is
//     refused and nothing changes.
//
// Wipe certificates belong to the cluster, not to the owner. The owner's
// wipe reply carries its certificates and its peer certificate; the leader
// checks that certificate against the cluster CA and the owner's name
// (CoordinatorConfig.VerifySigner, SignerVerifier) and the certificates'
// signatures against its key, and only then records the verified wipe with
// the certificates in the log; a reply that fails the checks is recorded as
// a failed wipe. Every member's Machine then holds them
// (Machine.WipeCertificates), so any member can serve them after the owner's
// blade was removed or died, and a restarted member gets them back from the
// log or a snapshot.
package hotswap
