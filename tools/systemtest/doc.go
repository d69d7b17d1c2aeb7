// Package systemtest holds Vigil's system tests: they build the real vigil
// binary and run it as separate processes on loopback, talking to it only
// through its command line, its HTTP API and signals, as an operator and a
// client would.
//
// The tests kill and restart nodes while a client writes, then check every
// node's copy of the diagnostic journal: each acknowledged command is there
// exactly once, nothing is there twice, and all nodes agree. They are slow
// (tens of seconds) and skipped with go test -short.
package systemtest
