// Package discovery finds the other Vigil appliances on the LAN with
// multicast DNS (DNS-SD service "_vigil._tcp" in "local."), so that an
// installer joining an appliance to a cluster does not have to type
// addresses, and an appliance can show the operator which nodes it sees.
//
// Discovery is unauthenticated, by design and by the nature of mDNS: anyone
// on the LAN can answer, claim any node or cluster ID, and name any
// address. A discovered Peer is therefore only a hint of where to dial. All
// trust comes from elsewhere: a joiner pins the cluster's CA with the
// fingerprint in its join token, and members check each other's node
// certificates (package provisioning, DESIGN.md there). Nothing in this
// package decides who is a member.
//
// Because announcements come from strangers, Browse checks every field of
// every announcement against strict rules (IDs, names, states, ports,
// addresses; see txt.go) and drops, with a debug log, the ones that break
// them, rather than carry an attacker's bytes into logs, the console or a
// dial. A peer of another cluster is filtered out when a cluster ID is
// given, and peers are deduplicated by node ID.
//
// The files:
//
//	discovery.go   the names, the Peer, the Finder interface and Static
//	txt.go         the TXT record: how it is written and the rules it is read by
//	advertise.go   the Advertiser: one appliance's announcement
//	browse.go      MDNS and Browse: listening for the others
//
// netnstest, below, builds network namespaces on a bridge, for the tests
// that run appliances on separate network stacks.
package discovery
