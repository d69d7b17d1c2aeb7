package discovery

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"

	"github.com/grandcat/zeroconf"
)

// Log attribute keys used by this package.
const (
	logKeyNode     = "node"
	logKeyCluster  = "cluster"
	logKeyState    = "state"
	logKeyAddrs    = "addrs"
	logKeyInstance = "instance"
	logKeyError    = "error"
	logKeyPeers    = "peers"
	logKeyDropped  = "dropped"
)

// Advertiser announces one appliance on the LAN until it is closed: it
// answers the queries of Browse on the announcement's interfaces.
type Advertiser struct {
	logger *slog.Logger

	mu     sync.Mutex
	a      Announcement
	server *zeroconf.Server // nil after a failed Update
	closed bool
}

// Advertise checks a by the rules Browse reads announcements by, and
// announces it on a's interfaces, with the non-loopback addresses they have
// now. It announces the node under its own host name (from the node ID,
// not the machine's name, which three appliances made from one image may
// share). A nil logger discards.
func Advertise(a Announcement, logger *slog.Logger) (*Advertiser, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ad := &Advertiser{logger: logger}
	if err := ad.register(a); err != nil {
		return nil, err
	}
	return ad, nil
}

// Update announces the appliance's new cluster ID (empty for none) and
// state, and the addresses its interfaces have now. It withdraws the old
// announcement and makes a new one rather than use zeroconf's SetText,
// which in v1.0.0 replaces the record that the server's receiving
// goroutines read without a lock. On an error the appliance is announced
// no more, until an Update succeeds.
func (ad *Advertiser) Update(clusterID, state string) error {
	ad.mu.Lock()
	defer ad.mu.Unlock()
	if ad.closed {
		return ErrClosed
	}
	a := ad.a
	a.ClusterID, a.State = clusterID, state
	if err := a.check(); err != nil {
		return err
	}
	if ad.server != nil {
		ad.server.Shutdown()
		ad.server = nil
	}
	return ad.register(a)
}

// Announcement returns what the Advertiser announces.
func (ad *Advertiser) Announcement() Announcement {
	ad.mu.Lock()
	defer ad.mu.Unlock()
	return ad.a
}

// Close withdraws the announcement (a goodbye with TTL 0, so that browsers
// forget it) and stops answering. It is safe to call twice.
func (ad *Advertiser) Close() {
	ad.mu.Lock()
	defer ad.mu.Unlock()
	if ad.closed {
		return
	}
	ad.closed = true
	if ad.server != nil {
		ad.server.Shutdown()
		ad.server = nil
	}
}

// register announces a; the caller holds mu or is Advertise.
func (ad *Advertiser) register(a Announcement) error {
	if err := a.check(); err != nil {
		return err
	}
	ifaces, err := interfaces(a.Interfaces)
	if err != nil {
		return err
	}
	ips := addresses(ifaces)
	if len(ips) == 0 {
		return fmt.Errorf("cannot announce %s: no usable address on %s", Service, names(ifaces))
	}
	label := instanceLabel(a.NodeID)
	s, err := zeroconf.RegisterProxy(label, Service, Domain, a.Port, label, ips, a.txt(), ifaces)
	if err != nil {
		return fmt.Errorf("cannot announce %s on %s: %w", Service, names(ifaces), err)
	}
	ad.a, ad.server = a, s
	ad.logger.Info("discovery: announcing", logKeyNode, a.NodeID, logKeyCluster, a.ClusterID,
		logKeyState, a.State, logKeyAddrs, strings.Join(ips, ","))
	return nil
}

// interfaces returns the named interfaces, or, for none, every interface
// that is up and multicast (as zeroconf would choose).
func interfaces(named []string) ([]net.Interface, error) {
	if len(named) > 0 {
		out := make([]net.Interface, 0, len(named))
		for _, n := range named {
			ifi, err := net.InterfaceByName(n)
			if err != nil {
				return nil, fmt.Errorf("cannot announce on interface %q: %w", n, err)
			}
			out = append(out, *ifi)
		}
		return out, nil
	}
	all, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("cannot list interfaces: %w", err)
	}
	var out []net.Interface
	for _, ifi := range all {
		if ifi.Flags&net.FlagUp != 0 && ifi.Flags&net.FlagMulticast != 0 {
			out = append(out, ifi)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("cannot announce %s: no multicast interface is up", Service)
	}
	return out, nil
}

// addresses returns the addresses of ifaces that a peer could dial (the
// rule Browse keeps addresses by), IPv4 first.
func addresses(ifaces []net.Interface) []string {
	var v4, v6 []string
	for _, ifi := range ifaces {
		addrs, err := ifi.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok || !usable(ipn.IP) {
				continue
			}
			if ipn.IP.To4() != nil {
				v4 = append(v4, ipn.IP.String())
			} else {
				v6 = append(v6, ipn.IP.String())
			}
		}
	}
	return append(v4, v6...)
}

// instanceLabel is the DNS label a node is announced under, as service
// instance and as host: its ID when that is one label (at most 63 bytes,
// no dot), else a hash of it, so that two nodes never share one.
func instanceLabel(nodeID string) string {
	if len(nodeID) <= 63 && !strings.Contains(nodeID, ".") {
		return nodeID
	}
	sum := sha256.Sum256([]byte(nodeID))
	return "vigil-" + hex.EncodeToString(sum[:8])
}

func names(ifaces []net.Interface) string {
	n := make([]string, len(ifaces))
	for i, ifi := range ifaces {
		n[i] = ifi.Name
	}
	return strings.Join(n, ",")
}
