// Package appliance is the Vigil product as it runs on one appliance: its
// configuration, the vigil command line, and the Node that wires the parts
// together and shuts them down in reverse order. The alarm domain is
// appliance/monitoring.
//
// A Node is the composition root (node.go): it opens the cluster member
// (Raft over Badger, hosting the monitoring state machine), the deadline
// scheduler, the delivery of notifications (notify/: mail and webhooks,
// while the node leads), the MQTT broker (broker/) and the HTTP surface (ui/: the
// console, the REST API and their authentication), each in one small step,
// and closes them in reverse order. It is the one place that knows all the
// parts: the broker and the HTTP surface reach the cluster only through
// the monitoring Service and the small interfaces built here
// (clusterview.go). ARCHITECTURE.md at the top of the repository draws the
// arrows.
//
// The command line also carries two tools that are not the product's
// runtime and live in packages of their own, which it dispatches to:
// vigil sim (appliance/sim/simcmd, over the device simulator of
// appliance/sim), to commission an installation and to give demos and
// benchmarks their load, and vigil devcluster (appliance/devcluster), a
// three-node cluster on one machine to develop, try or train on.
package appliance
