// Package audit keeps the agent's tamper-evident audit log: one JSON line per
// state change (who, with which roles, did what to which resource, and how
// it ended), hash-chained so that a changed, removed, inserted or reordered
// record is detected by [Verify].
//
// # File format
//
// The log is a text file of records, one per line, each line a JSON object
// with exactly these members in this order (members marked * are left out
// when empty):
//
//	{"seq":7,"time":"2026-11-23T16:20:01.123456789Z","actor":"client/ops1",
//	 "roles":["operator"]*,"action":"hotswap.extract","target":"res/17",
//	 "result":"ok","detail":"..."*,"prev":"<64 hex>","hash":"<64 hex>"}
//
// Seq starts at 1 and grows by one per record. Time is UTC, RFC 3339 with
// nanoseconds. Prev is the Hash of the record before it; the first record's
// Prev is [Genesis], 64 zeros (a fixed value rather than a random log id in
// a header line: the format has only one kind of line, and a header would
// not be protected by anything the records are not protected by).
//
// Hash is hex(SHA-256(L)), where L is the record's line without the
// "hash" member: the same JSON encoding (Go's encoding/json of the fields
// above, HTML characters escaped, invalid UTF-8 replaced by U+FFFD before
// hashing) ending in "}" right after "prev". A line must be exactly this
// canonical encoding: [Verify] re-encodes every record and reports a line
// that differs (extra members, other spacing, other member order), so
// what a reader sees is what the hash covers.
//
// # What the chain proves and what it does not
//
// The chain detects any change inside the file: an edited record (its hash
// no longer matches), a removed one (a gap in seq, a prev that does not
// match), an inserted or reordered one (seq out of order, prev mismatch), a
// removed head (the first record is not seq 1 with the genesis prev). It
// cannot by itself detect that the newest records were cut off, or that the
// whole file was rewritten by someone able to recompute every hash: for
// that, copy [Log.Last] (seq and hash) somewhere the writer of the file
// cannot change (a remote log, the cluster log) and check it later with
// [VerifyAnchored] (hpictl audit verify --anchor <seq>:<hash>).
//
// # Writing
//
// [Open] opens the file with O_APPEND|O_WRONLY (creating it with mode
// 0600), refuses a file that group or others may access, a symlink or a
// file owned by another user, takes an exclusive flock so that two agents
// never write one log, and verifies the whole existing chain. A log that
// does not verify (a changed record, or a torn last line left by a crash
// during a write) is reported and not appended to unless
// [Options.AllowBroken] is set; even then nothing is truncated or
// rewritten: a torn line is closed with a newline and kept as evidence,
// and the next record chains to the last record that parsed, with an
// "audit.resume" record saying what was found.
//
// [Log.Append] writes each record with a single write(2) after reserving
// the space (fallocate), then fsyncs before returning. If the disk is full
// the record is refused with an error wrapping [ErrNoSpace] and the file is
// left exactly as it was; a partial write is cut back to the previous end.
// After a failed fsync the log refuses further appends (the kernel may have
// dropped the data), and must be reopened, which verifies it again; so it
// does when the file was written, cut or removed by anyone else since the
// last record (the flock is only advisory).
//
// # Rotation
//
// Once the file reaches [Options.MaxBytes] (64 MiB by default) the next
// Append renames it to <path>.<last seq, 12 digits> and starts a new file
// at path whose first record, "audit.rotate", continues the chain: its seq
// follows the renamed file's last and its prev is that record's hash. Each
// file verifies alone (a file may start with an "audit.rotate" record),
// and [VerifyFiles] checks a set oldest first as one chain, so a file
// removed, reordered or replaced between others is reported. Rotated
// files are never deleted by the agent. If the rotation cannot complete,
// the old file is put back and the record is refused, so nothing is lost.
package audit
