package discovery

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/grandcat/zeroconf"
)

// DefaultWait is how long MDNS.Find listens when its Wait is zero. An
// Advertiser answers a query at once, so on a LAN the answers come within
// milliseconds; the rest is for a busy or lossy network.
const DefaultWait = 2 * time.Second

// MDNS is the Finder that browses the LAN with multicast DNS.
type MDNS struct {
	// Interfaces are the interfaces to query on; empty for every multicast
	// interface that is up.
	Interfaces []net.Interface
	// Wait is how long Find listens; DefaultWait when zero.
	Wait time.Duration
	// Logger receives, at debug level, each announcement dropped and why;
	// nil discards.
	Logger *slog.Logger
}

// Find browses for Wait, or until ctx is done if that comes first, and
// returns the peers found (see Browse).
func (m *MDNS) Find(ctx context.Context, clusterID string) ([]Peer, error) {
	bctx, cancel := context.WithTimeout(ctx, cmp.Or(m.Wait, DefaultWait))
	defer cancel()
	logger := m.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	peers, dropped, err := browse(bctx, clusterID, m.Interfaces, logger)
	if err != nil {
		return nil, err
	}
	logger.Debug("discovery: browsed", logKeyCluster, clusterID, logKeyPeers, len(peers), logKeyDropped, dropped)
	return peers, nil
}

// Browse listens for the announcements of Service on ifaces (every
// multicast interface when empty) until ctx is done, and returns the peers
// found, sorted by node ID: those of clusterID, or all when clusterID is
// empty, one per node ID (the addresses of two announcements of one node
// merged). An announcement that breaks a rule of txt.go, or names no
// usable address, is dropped.
//
// It queries over IPv4 only: zeroconf v1.0.0's resolver fails outright
// where IPv6 multicast is not available (leaking its IPv4 socket). The
// answers still carry a peer's IPv6 addresses.
func Browse(ctx context.Context, clusterID string, ifaces []net.Interface) ([]Peer, error) {
	peers, _, err := browse(ctx, clusterID, ifaces, slog.New(slog.DiscardHandler))
	return peers, err
}

// browse is Browse, which also counts and logs the announcements dropped.
func browse(ctx context.Context, clusterID string, ifaces []net.Interface, logger *slog.Logger) (peers []Peer, dropped int, err error) {
	r, err := zeroconf.NewResolver(zeroconf.SelectIfaces(ifaces), zeroconf.SelectIPTraffic(zeroconf.IPv4))
	if err != nil {
		return nil, 0, fmt.Errorf("cannot browse for %s: %w", Service, err)
	}
	// The resolver closes entries, and its sockets, when ctx is done; it
	// blocks until each entry is taken, so every one is.
	entries := make(chan *zeroconf.ServiceEntry)
	if err := r.Browse(ctx, Service, Domain, entries); err != nil {
		return nil, 0, fmt.Errorf("cannot browse for %s: %w", Service, err)
	}
	byNode := make(map[string]int)
	for e := range entries {
		p, err := peerOf(e)
		if err != nil {
			dropped++
			logger.Debug("discovery: dropped an announcement", logKeyInstance, e.Instance, logKeyError, err)
			continue
		}
		if clusterID != "" && p.ClusterID != clusterID {
			continue
		}
		if i, ok := byNode[p.NodeID]; ok {
			peers[i].Addrs = mergeAddrs(peers[i].Addrs, p.Addrs)
			continue
		}
		byNode[p.NodeID] = len(peers)
		peers = append(peers, p)
	}
	slices.SortFunc(peers, func(a, b Peer) int { return strings.Compare(a.NodeID, b.NodeID) })
	return peers, dropped, nil
}

// peerOf reads an announcement by the rules of txt.go.
func peerOf(e *zeroconf.ServiceEntry) (Peer, error) {
	p, err := parseTXT(e.Text)
	if err != nil {
		return Peer{}, err
	}
	if e.Port < 1 || e.Port > 65535 {
		return Peer{}, &FieldError{Field: "SRV port", Value: fmt.Sprint(e.Port), Reason: "is not a port from 1 to 65535"}
	}
	p.Port = e.Port
	p.Addrs = mergeAddrs(nil, append(slices.Clone(e.AddrIPv4), e.AddrIPv6...))
	if len(p.Addrs) == 0 {
		return Peer{}, &FieldError{Field: "addresses", Value: fmt.Sprint(e.AddrIPv4, e.AddrIPv6), Reason: "name none usable"}
	}
	return p, nil
}

// mergeAddrs appends to have the usable addresses of more it lacks, and
// returns them IPv4 first, each in its shortest form.
func mergeAddrs(have, more []net.IP) []net.IP {
	out := slices.Clone(have)
	for _, ip := range more {
		if v4 := ip.To4(); v4 != nil {
			ip = v4
		}
		if usable(ip) && !slices.ContainsFunc(out, ip.Equal) {
			out = append(out, ip)
		}
	}
	slices.SortStableFunc(out, func(a, b net.IP) int { return cmp.Compare(len(a), len(b)) })
	return out
}
