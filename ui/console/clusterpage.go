package console

// The cluster page: the nodes, the leader, each node's health, the
// devices connected through each node, and how far each node's copy of
// the state lags. It shows the cluster as the node serving the page sees
// it, and refreshes itself every few seconds.

import (
	"crypto/sha256"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilarc/vigil/ui"
)

// clusterView is what the cluster page shows.
type clusterView struct {
	pageBase
	HasCluster  bool
	Leader      string
	State       string // this node's Raft state
	Term        uint64
	Commit      uint64
	Nodes       []nodeRow
	Voters      int
	VotersUp    int
	Quorum      int
	Connected   int // devices connected, through any node
	Elsewhere   int // connected through a node that is not a member
	PlainMQTT   int // nodes with a plain MQTT listener on the network
	DevicesErr  string
	SnapshotIdx uint64
	// DiskFull lists the nodes whose disk is under its free-space floor:
	// they refuse writes until space is freed.
	DiskFull []diskAlarm
	// Problems are what the members' services report as wrong (an MQTT
	// listener that cannot accept, connections refused at a cap), by node.
	Problems []nodeProblem
	// CAFingerprint is the SHA-256 of the cluster CA that operator PCs
	// install, hex in pairs; empty when the node serves none.
	CAFingerprint string
}

// nodeRow is one member of the cluster.
type nodeRow struct {
	ID          string
	Name        string // its readable name, if registered
	Addr        string
	URL         string // its console, if registered
	MQTT        []string
	Plain       []string // MQTT listeners without TLS on an address other machines reach
	Self        bool
	Leader      bool
	Voter       bool
	State       string
	Health      string
	HealthClass string
	Applied     uint64
	Lag         uint64 // log entries behind the most advanced node known
	Devices     int
}

// nodeProblem is one problem a member reported.
type nodeProblem struct{ Node, Text string }

// diskAlarm is a node whose disk is nearly full.
type diskAlarm struct {
	Node  string // its name, or its ID
	Free  string
	Floor string
}

// mib formats bytes in MiB for the disk banner.
func mib(b uint64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// plainListeners are the MQTT listeners of urls that speak without TLS on
// an address other than loopback: there, device secrets and alarms cross
// the network in clear.
func plainListeners(urls []string) []string {
	var out []string
	for _, u := range urls {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "tcp" && p.Scheme != "ws") {
			continue
		}
		if ip := net.ParseIP(p.Hostname()); p.Hostname() == "localhost" || ip != nil && ip.IsLoopback() {
			continue
		}
		out = append(out, u)
	}
	return out
}

// GET /ui/ca.crt: the cluster CA's certificate, for operator PCs to
// install (docs/install.md). It is public; a PC checks it by the
// fingerprint IT was given, not by where it came from.
func (co *Console) caCert(c *gin.Context) {
	if len(co.cfg.ClusterCAPEM) == 0 {
		c.String(http.StatusNotFound, "this node serves no cluster CA certificate")
		return
	}
	c.Header("Content-Disposition", `attachment; filename="vigil-cluster-ca.crt"`)
	c.Data(http.StatusOK, "application/x-x509-ca-cert", co.cfg.ClusterCAPEM)
}

// caFingerprint is the SHA-256 of the first certificate of pemBytes, hex
// in colon-separated pairs as operating systems show it.
func caFingerprint(pemBytes []byte) string {
	b, _ := pem.Decode(pemBytes)
	if b == nil {
		return ""
	}
	sum := sha256.Sum256(b.Bytes)
	parts := make([]string, len(sum))
	for i, x := range sum {
		parts[i] = fmt.Sprintf("%02X", x)
	}
	return strings.Join(parts, ":")
}

// GET /ui/cluster
func (co *Console) clusterPage(c *gin.Context) {
	v := clusterView{pageBase: co.base(c, "Cluster"), CAFingerprint: caFingerprint(co.cfg.ClusterCAPEM)}
	v.Page, v.Section = "cluster", "cluster"
	perNode := map[string]int{}
	if devices, err := co.svc.Devices(); err != nil {
		v.DevicesErr = ui.ErrorText(err)
	} else {
		for _, d := range devices {
			if d.Connected {
				perNode[d.Node]++
				v.Connected++
			}
		}
	}
	urls := map[string]string{}
	mqtt := map[string][]string{}
	names := map[string]string{}
	for _, n := range co.consoleNodes() {
		urls[n.NodeID], mqtt[n.NodeID], names[n.NodeID] = n.URL, n.MQTT, n.Name
	}
	if co.cfg.Cluster == nil {
		v.Nodes = []nodeRow{{ID: co.cfg.NodeID, Self: true, Leader: true, Voter: true, Health: "this node", HealthClass: "ok",
			Devices: perNode[co.cfg.NodeID], URL: urls[co.cfg.NodeID], MQTT: mqtt[co.cfg.NodeID]}}
		co.render(c, http.StatusOK, "cluster", v)
		return
	}
	st := co.cfg.Cluster.Status()
	v.HasCluster = true
	v.Leader, v.State, v.Term, v.Commit, v.SnapshotIdx = st.LeaderID, st.State, st.Term, st.CommitIndex, st.LastSnapshot
	ref := st.CommitIndex
	for _, m := range st.Members {
		ref = max(ref, m.AppliedIndex)
	}
	members := map[string]bool{}
	for _, m := range st.Members {
		members[m.ID] = true
		r := nodeRow{ID: m.ID, Name: names[m.ID], Addr: m.Addr, URL: urls[m.ID], MQTT: mqtt[m.ID], Self: m.Self, Leader: m.Leader, Voter: m.Voter,
			State: m.State, Applied: m.AppliedIndex, Devices: perNode[m.ID]}
		if r.State == "" {
			r.State = "unknown"
		}
		if m.AppliedIndex <= ref {
			r.Lag = ref - m.AppliedIndex
		}
		switch {
		case m.Self:
			r.Health, r.HealthClass = "this node", "ok"
		case m.Reachable:
			r.Health, r.HealthClass = fmt.Sprintf("up, answered %s ago", shortDur(time.Duration(m.LastContactMS)*time.Millisecond)), "ok"
		case m.LastContactMS < 0:
			r.Health, r.HealthClass = "never heard from", "bad"
		default:
			r.Health, r.HealthClass = fmt.Sprintf("NOT ANSWERING for %s", ago(time.Duration(m.LastContactMS)*time.Millisecond)), "bad"
		}
		if r.HealthClass == "bad" {
			r.Lag = 0 // unknown
		}
		if m.Voter {
			v.Voters++
			if m.Reachable {
				v.VotersUp++
			}
		}
		if m.Disk != nil && m.Disk.Full {
			name := r.Name
			if name == "" {
				name = m.ID
			}
			v.DiskFull = append(v.DiskFull, diskAlarm{Node: name, Free: mib(m.Disk.FreeBytes), Floor: mib(m.Disk.FloorBytes)})
		}
		for _, p := range m.Problems {
			name := r.Name
			if name == "" {
				name = m.ID
			}
			v.Problems = append(v.Problems, nodeProblem{Node: name, Text: p})
		}
		r.Plain = plainListeners(r.MQTT)
		if len(r.Plain) > 0 {
			v.PlainMQTT++
		}
		v.Nodes = append(v.Nodes, r)
	}
	for node, n := range perNode {
		if !members[node] {
			v.Elsewhere += n
		}
	}
	v.Quorum = v.Voters/2 + 1
	co.render(c, http.StatusOK, "cluster", v)
}

// shortDur formats a short duration with a tenth of a second.
func shortDur(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
	return ago(d)
}
