// Package monitoring is Vigil's domain: the deterministic state machine that
// the cluster replicates, its commands, and the queries over its state.
//
// Today it holds only the diagnostic journal, a list of records that an
// administrator or a test appends through the API to check that replication
// works end to end. Organisations, workers, devices, sessions, alarms and the
// audit log arrive with a later issue.
//
// Every change enters as a command: one type byte from the append-only
// CmdType enum, then a JSON body. FSM.Apply decodes and applies it inside the
// Badger transaction that the cluster hands it, so it can be replayed against
// Badger without a running Raft.
package monitoring
