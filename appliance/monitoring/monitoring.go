// Package monitoring is Vigil's domain: organisations, workers, devices,
// timed sessions, duress, and alarms with their whole lifecycle. It holds
// the deterministic state machine that the cluster replicates, the queries
// the console needs, the events every node publishes, the deadline
// scheduler, and the Service API that the broker and the console call.
//
// Every change enters as a command: one type byte from the append-only
// CmdType enum, then a JSON body with a Header (time, actor, node). FSM.Apply
// decodes and applies it inside the Badger transaction that the cluster
// hands it, so it can be replayed against Badger without a running Raft. It
// never reads a clock or a random source: times and new IDs come in the
// command, made by the Service on the node that proposes it. A handler
// checks every rule before its first write, because a refusal must leave the
// state untouched; refusals are *RuleError values with a code and the field
// at fault, and they cross the cluster as text (ParseRefusal).
//
// Slow or secret work happens in the Service, before proposing: PINs are
// checked there against argon2id hashes (always both the Safe and the Duress
// hash, so the work is the same whichever matches), and only the outcome is
// replicated.
//
// Deadlines (a session's timer and grace period, a device away too long
// during a session, an alarm missing its acknowledgement targets, the next
// escalation contact due: escalation.go) are stored in the state.
// Only the leader's Scheduler acts on them, proposing CmdFireDeadline with
// the deadline's ID as the command ID, so a deadline fires at most once even
// across a failover, and the alarm it raises has an ID derived from it.
//
// A police call on a lone-worker URN (urn.go) is accepted only for an alarm
// that is evidence of a threat (NPCC policy) and a force the organisation
// holds a URN for that has not expired; Service.URNFor shows the same
// decision to the console before the operator acts.
//
// After the incident: a signed, expiring link to an alarm's audio
// (audiolink.go) works on every node without a sign-in, because its HMAC
// key is in the replicated state; every download is a command, refused once
// the link expired or was revoked, and audited. A genuine alarm's close
// makes its post-incident report (postincident.go), due 48 hours later,
// which a supervisor signs off with recommendations.
//
// The outbox (outbox.go, outboxnotice.go) holds the notifications sent
// outside Vigil, one record per recipient and channel with its delivery
// state: a genuine close enqueues its summary in its own entry; the leader
// enqueues duress and escalation notices from a scan of the state, and
// the signed-off reports and the month before's statistics (monthly.go)
// to the organisation's reports list; an operator's SendBriefing mails the
// escalation contacts (briefing.go); other parts call
// Service.EnqueueNotification. The appliance's notify package delivers
// them while its node leads and records each attempt's outcome.
//
// The diagnostic journal (diag.go) is a list of records that an
// administrator or a test appends through the API to check replication end
// to end.
package monitoring
