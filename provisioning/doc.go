// Package provisioning makes a Vigil installation's trust: the cluster's
// own certificate authority, the node certificates it signs, the join
// tokens that let a new appliance get one, and the TLS configurations that
// the cluster port (mutual TLS between members) and a joining appliance
// (a TLS connection that pins the CA by its fingerprint) use. DESIGN.md in
// this directory has the threat model and the reasons.
//
// Identity is the node's ID, never its address: a node certificate names
// its cluster and node in a URI SAN, vigil://<cluster-id>/node/<node-id>,
// and a peer is checked by its chain to the cluster's CA and by that name,
// so an appliance keeps its certificate when its address changes.
//
// The files:
//
//	ca.go      the cluster CA: make, load, fingerprint, sign
//	node.go    node keys, certificate requests, certificates and identities
//	token.go   join tokens: their text form and how they are checked
//	tls.go     the TLS configurations built from all of it
//
// Package discovery, below, finds the other appliances on the LAN with
// multicast DNS, as a hint of where to dial: it trusts nothing it finds.
package provisioning
