// Package broker is Vigil's device gateway: an embedded mochi-mqtt broker
// on every node, with per-device authentication and ACLs, device protocol
// v1 (protocol.go, docs/device-protocol.md), and ingest that PUBACKs an
// alarm or session event only once the cluster has committed it.
//
// DESIGN.md explains the durability contract and how it is built on mochi's
// hooks.
package broker
