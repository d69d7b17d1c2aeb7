package cluster

// Internals for the tests in package cluster_test.

// Logs returns the node's Raft log store.
func (n *Node) Logs() *LogStore { return n.logs }

// Voters returns the number of voters in the node's Raft configuration.
func (n *Node) Voters() int { return n.voters() }

// BadgerOptions are the options the node opens its Badger databases with.
var BadgerOptions = badgerOptions

// MiB returns n bytes in mebibytes.
var MiB = mib
