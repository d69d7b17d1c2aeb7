package discovery

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"testing"
	"time"
)

// newClusterID returns a cluster ID no other test run uses: the host's LAN
// is shared, and Browse keeps only the peers of the cluster asked for.
func newClusterID(t *testing.T) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "test-" + hex.EncodeToString(b)
}

func mustAdvertise(t *testing.T, a Announcement) *Advertiser {
	t.Helper()
	ad, err := Advertise(a, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ad.Close)
	return ad
}

// browseUntil browses in windows of a second until ok holds of the peers
// of clusterID, and returns them; it fails t after timeout.
func browseUntil(t *testing.T, clusterID string, timeout time.Duration, ok func([]Peer) bool) []Peer {
	t.Helper()
	m := &MDNS{Wait: time.Second}
	var peers []Peer
	for end := time.Now().Add(timeout); time.Now().Before(end); {
		var err error
		peers, err = m.Find(t.Context(), clusterID)
		if err != nil {
			t.Fatal(err)
		}
		if ok(peers) {
			return peers
		}
	}
	t.Fatalf("after %v, browsing found %+v", timeout, peers)
	return nil
}

func byNode(peers []Peer) map[string]Peer {
	m := make(map[string]Peer, len(peers))
	for _, p := range peers {
		m[p.NodeID] = p
	}
	return m
}

// hostIPv4 reports whether ip is one of this host's addresses.
func hostIPv4(t *testing.T, ip net.IP) bool {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.Equal(ip) {
			return ip.To4() != nil
		}
	}
	return false
}

// On the host's own network, in one process: multicast loops back to the
// host's other sockets, so two Advertisers and a browser meet here.
func TestAdvertise_FoundOnHostNetwork(t *testing.T) {
	cluster := newClusterID(t)
	a := Announcement{ClusterID: cluster, NodeID: cluster + "-a", Name: "vigil a", State: StateMember, Port: 18443, ClusterPort: 17000}
	b := Announcement{ClusterID: cluster, NodeID: cluster + "-b", Name: "vigil b", State: StateJoining, Port: 18444}
	adA := mustAdvertise(t, a)
	adB := mustAdvertise(t, b)

	start := time.Now()
	peers := browseUntil(t, cluster, 10*time.Second, func(ps []Peer) bool { return len(ps) == 2 })
	t.Logf("found both in %v", time.Since(start).Round(time.Millisecond))
	for _, want := range []Announcement{a, b} {
		p := byNode(peers)[want.NodeID]
		if p.ClusterID != cluster || p.Name != want.Name || p.State != want.State || p.Port != want.Port || p.ClusterPort != want.ClusterPort {
			t.Errorf("found %+v for %+v", p, want)
		}
		if len(p.Addrs) == 0 || !hostIPv4(t, p.Addrs[0]) {
			t.Errorf("%s: addresses %v, want this host's IPv4 address first", p.NodeID, p.Addrs)
		}
	}

	if err := adB.Update(cluster, StateMember); err != nil {
		t.Fatal(err)
	}
	browseUntil(t, cluster, 10*time.Second, func(ps []Peer) bool {
		return len(ps) == 2 && byNode(ps)[b.NodeID].State == StateMember
	})
	if err := adB.Update(cluster, "Not A State"); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Update with a bad state: %v, want ErrMalformed", err)
	}
	if got := adB.Announcement().State; got != StateMember {
		t.Fatalf("a refused Update changed the state to %q", got)
	}

	adA.Close()
	adA.Close()
	if err := adA.Update(cluster, StateMember); !errors.Is(err, ErrClosed) {
		t.Fatalf("Update after Close: %v, want ErrClosed", err)
	}
	browseUntil(t, cluster, 10*time.Second, func(ps []Peer) bool {
		_, found := byNode(ps)[a.NodeID]
		return len(ps) == 1 && !found
	})
}

func TestAdvertise_UnknownInterface(t *testing.T) {
	_, err := Advertise(Announcement{NodeID: "n1", State: StateNew, Port: 8443, Interfaces: []string{"no-such-if0"}}, nil)
	if err == nil {
		t.Fatal("announced on an interface that does not exist")
	}
}
