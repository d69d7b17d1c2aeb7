// Package appliance is the Vigil product as it runs on one appliance: its
// configuration, the vigil command line, and the Node that wires the parts
// together and shuts them down in reverse order.
//
// Today a Node is a cluster node (Raft over Badger, hosting the monitoring
// state machine) and the HTTP API. The MQTT broker, the operator console and
// provisioning are wired in here as they arrive.
package appliance
