package broker_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/cluster/clustertest"
)

// devicesAgree polls until every node's state shows device as want says.
func devicesAgree(t *testing.T, nodes []*testNode, id, what string, want func(*monitoring.Device) bool) *monitoring.Device {
	t.Helper()
	var last *monitoring.Device
	clustertest.PollUntil(t, 15*time.Second, what, func() bool {
		for _, n := range nodes {
			d, err := n.Service.Device(id)
			if err != nil || !want(d) {
				return false
			}
			last = d
		}
		return true
	})
	return last
}

// waitSecret polls until every node accepts f's secret.
func waitSecret(t *testing.T, nodes []*testNode, f fixture) {
	t.Helper()
	clustertest.PollUntil(t, 10*time.Second, "every node has the secret of "+f.device, func() bool {
		for _, n := range nodes {
			if !n.Service.CheckDeviceSecret(f.device, f.secret) {
				return false
			}
		}
		return true
	})
}

// A device's connection is recorded on every node with the node holding
// it; when it moves to another node and back, and when it says goodbye,
// every node follows.
func TestPresence_ConnectMoveDisconnect(t *testing.T) {
	nodes := mustThreeNodes(t)
	f := mustFixture(t, nodes[0].Service, "pres")
	waitSecret(t, nodes, f)
	ids := make([]string, 3)
	for i, n := range nodes {
		ids[i] = n.ID()
	}

	d := mustDevice(t, nodes[1].BrokerAddr(), f.device, f.secret)
	first := devicesAgree(t, nodes, f.device, "connected through node 2", func(d *monitoring.Device) bool {
		return d.Connected && d.Node == ids[1]
	})

	// The device loses node 2 without a word and connects to node 3; node
	// 2 notices later. The newer connection wins however the reports
	// arrive.
	d2 := mustDevice(t, nodes[2].BrokerAddr(), f.device, f.secret)
	devicesAgree(t, nodes, f.device, "connected through node 3", func(d *monitoring.Device) bool {
		return d.Connected && d.Node == ids[2] && d.ConnectedAt.After(first.ConnectedAt)
	})
	d.c.Disconnect(0) // node 2's connection ends after the move
	time.Sleep(time.Second)
	devicesAgree(t, nodes, f.device, "still connected through node 3", func(d *monitoring.Device) bool {
		return d.Connected && d.Node == ids[2]
	})

	// A clean DISCONNECT from node 3.
	d2.c.Disconnect(50)
	got := devicesAgree(t, nodes, f.device, "disconnected", func(d *monitoring.Device) bool { return !d.Connected })
	if got.Node != ids[2] || got.DisconnectReason != monitoring.DisconnectClean || got.DisconnectedAt.IsZero() {
		t.Fatalf("after DISCONNECT: %+v", got)
	}
}

// Heartbeats from many devices are written in batches, not one Raft entry
// each, and the latest of each device wins.
func TestPresence_HeartbeatsAreBatched(t *testing.T) {
	nodes := mustThreeNodes(t)
	const devices, beats = 20, 25
	svc := nodes[0].Service
	fs := make([]fixture, devices)
	for i := range fs {
		fs[i] = mustFixture(t, svc, fmt.Sprintf("hb%02d", i))
	}
	for _, f := range fs {
		waitSecret(t, nodes, f)
	}
	conns := make([]*device, devices)
	for i, f := range fs {
		conns[i] = mustDevice(t, nodes[i%3].BrokerAddr(), f.device, f.secret)
	}
	// Let the connects settle, then count the entries the heartbeats cost.
	for _, f := range fs {
		devicesAgree(t, nodes, f.device, "connected", func(d *monitoring.Device) bool { return d.Connected })
	}
	before := nodes[0].Cluster.Status().CommitIndex
	for b := range beats {
		for i, f := range fs {
			battery := 100 - b
			conns[i].publish(f.device, "heartbeat", map[string]any{"event_id": fmt.Sprintf("hb-%d", b), "ts": ts(), "battery": battery})
			if r, raw := conns[i].reply(); !r.OK {
				t.Fatalf("heartbeat reply %s", raw)
			}
		}
	}
	for _, f := range fs {
		devicesAgree(t, nodes, f.device, "the last heartbeat's battery", func(d *monitoring.Device) bool {
			return d.Battery == 100-(beats-1) && d.Connected
		})
	}
	entries := nodes[0].Cluster.Status().CommitIndex - before
	t.Logf("%d heartbeats from %d devices on 3 nodes: %d Raft entries", devices*beats, devices, entries)
	if entries >= devices*beats/5 {
		t.Fatalf("%d heartbeats cost %d Raft entries: not batched", devices*beats, entries)
	}
	var written uint64
	for _, n := range nodes {
		st := n.Broker().Stats()
		t.Logf("%s: %d reports in %d batches", n.ID(), st.TelemetryWritten, st.TelemetryBatches)
		written += st.TelemetryWritten
	}
	if written == 0 || written > uint64(devices*beats) {
		t.Fatalf("telemetry written: %d reports", written)
	}
}
