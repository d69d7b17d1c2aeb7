package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
)

const (
	// Service is the DNS-SD service type Vigil appliances announce.
	Service = "_vigil._tcp"
	// Domain is the mDNS domain they announce it in.
	Domain = "local."
)

// The states an appliance announces. Browse accepts any lowercase word of
// up to MaxStateLen letters, so that a newer appliance's state does not make
// an older one drop it.
const (
	// StateNew is an appliance that belongs to no cluster yet.
	StateNew = "new"
	// StateJoining is an appliance that is joining a cluster.
	StateJoining = "joining"
	// StateMember is a member of the cluster it names.
	StateMember = "member"
)

var (
	// ErrMalformed marks an announcement, ours or a peer's, that breaks the
	// rules of its fields; a *FieldError says which.
	ErrMalformed = errors.New("malformed announcement")
	// ErrClosed refuses an Update after Close.
	ErrClosed = errors.New("advertiser is closed")
)

// FieldError names the field of an announcement that breaks a rule, and
// its value (cut short: it may be a stranger's).
type FieldError struct {
	Field  string
	Value  string
	Reason string
}

func (e *FieldError) Error() string {
	v := e.Value
	if len(v) > 40 {
		v = v[:40] + "..."
	}
	return fmt.Sprintf("%v: %s %q %s", ErrMalformed, e.Field, v, e.Reason)
}

// Unwrap makes errors.Is(err, ErrMalformed) hold.
func (e *FieldError) Unwrap() error { return ErrMalformed }

// Announcement is what an appliance tells the LAN about itself.
type Announcement struct {
	// ClusterID is the cluster the appliance belongs to; empty while it
	// belongs to none.
	ClusterID string
	// NodeID is the appliance's stable node ID.
	NodeID string
	// Name is a readable name for the operator, such as the host name.
	Name string
	// State is StateNew, StateJoining, StateMember or another lowercase word.
	State string
	// Port is the HTTPS (API) port a joiner talks to.
	Port int
	// ClusterPort is the cluster (Raft) port; 0 when not listening yet.
	ClusterPort int
	// Interfaces are the names of the interfaces to announce on, and whose
	// addresses to announce; empty for every multicast interface that is up.
	Interfaces []string
}

// Peer is an appliance found on the LAN: where it says it is, and what it
// says it is. None of it is authenticated.
type Peer struct {
	NodeID    string `json:"node_id"`
	ClusterID string `json:"cluster_id,omitempty"`
	Name      string `json:"name,omitempty"`
	State     string `json:"state"`
	// Addrs are the addresses it announced, IPv4 first.
	Addrs []net.IP `json:"addrs"`
	// Port is its HTTPS (API) port.
	Port int `json:"port"`
	// ClusterPort is its cluster port; 0 when it announced none.
	ClusterPort int `json:"cluster_port,omitempty"`
}

// Finder finds the appliances of a cluster, or of any cluster and none when
// clusterID is empty.
type Finder interface {
	Find(ctx context.Context, clusterID string) ([]Peer, error)
}

var (
	_ Finder = (*MDNS)(nil)
	_ Finder = Static(nil)
)

// Static is a Finder over a fixed list, for LANs without multicast: an
// installer names the peers instead.
type Static []Peer

// Find returns the peers of clusterID and those that name no cluster (a
// hand-written list need not know the IDs); all of them when clusterID is
// empty.
func (s Static) Find(_ context.Context, clusterID string) ([]Peer, error) {
	var out []Peer
	for _, p := range s {
		if clusterID == "" || p.ClusterID == "" || p.ClusterID == clusterID {
			p.Addrs = slices.Clone(p.Addrs)
			out = append(out, p)
		}
	}
	return out, nil
}
