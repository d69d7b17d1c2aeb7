// Package chaos is Vigil's fault-injection harness: it checks that an
// alarm acknowledged to a device survives any single failure, the way
// Jepsen and etcd's robustness tests check their systems' promises.
//
// A run makes a small network of Linux namespaces (netns.go): three real
// vigil processes, each in its own namespace with its own address, joined
// through a bridge; the harness and its simulated devices sit in the root
// namespace and reach the nodes over that network, their API over HTTPS
// (trust.go: the nodes' certificates come from the run's cluster CA, a
// replacement's with a join token). It forms the cluster,
// provisions devices, and starts the device simulator (appliance/sim) on
// all three brokers with a load drawn from the seed (load.go): most devices
// raise alarms, a few run timed sessions and let some run out. An operator
// (operator.go) acknowledges and closes alarms through the API meanwhile.
//
// Then it injects faults from a schedule drawn from the seed (schedule.go),
// one at a time, each healed and followed by a wait until the cluster is
// whole again: SIGKILL a node and restart it, SIGSTOP a node and SIGCONT
// it, cut the leader's link, split one node from the two others, wipe
// a node and replace it by a new member, and cut the power of one node or
// of all three. Each node's data directory is on a disk of its own that
// can lose power (package powerfs, a FUSE file system the harness
// serves): a power cut SIGKILLs the node, throws away whatever its disk
// had not synced, and starts the node again on the rest. The seed fixes
// the schedule and the load, so a run can be replayed with its seed.
//
// Once the schedule is over, the load stops, every deadline due fires, and
// the checker (check.go) reads every node's whole state through the
// read-only diagnostic routes (ui/api/diagstate.go) and holds it
// against the simulator's history of every send and PUBACK and against the
// operator's record: nothing acknowledged lost, nothing applied twice, no
// alarm closed that no operator closed, one missed-check-in alarm per
// session let run out, every node with the same state hash. The report
// (report.go) adds availability: the longest time with no alarm
// acknowledged, overall and around each fault. The last line is
//
//	chaos: seed=S faults=F acked=A lost=L duplicated=D diverged=0|1 max_unavailable_ms=M
//
// Every seed that once found a bug is kept in regressions.txt and run
// again by TestChaos_Regressions.
//
// The harness needs root, iproute2, nftables and /dev/fuse; make chaos
// runs it (tools/chaos/cmd/chaos). docs/reliability.md says what is
// promised and what the runs measured.
package chaos
