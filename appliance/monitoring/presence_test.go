package monitoring

import (
	"encoding/json"
	"slices"
	"testing"
	"time"
)

// conn reports presence of one connection of device, made at since on node.
func (e *dirEnv) conn(device, node string, since, seen time.Time, up bool, reason string) {
	e.t.Helper()
	e.must(CmdDeviceStatus, deviceStatusCmd{Header: e.hdr(), Devices: []DeviceStatus{{
		DeviceID: device, SeenAt: seen, Connected: &up, Node: node, ConnectedAt: since, Reason: reason}}})
}

func (e *dirEnv) wantPresence(device string, connected bool, node string) *Device {
	e.t.Helper()
	d := e.device(device)
	if d.Connected != connected || d.Node != node {
		e.t.Fatalf("device %s: connected=%v node=%q, want connected=%v node=%q", device, d.Connected, d.Node, connected, node)
	}
	onNode := e.keys(pNodeDevice)
	want := pNodeDevice + node + "/" + device
	if connected != slices.Contains(onNode, want) {
		e.t.Fatalf("device %s: presence index %v, connected=%v on %s", device, onNode, connected, node)
	}
	return d
}

// A device moves from node A to node B. A learns late that it lost the
// device (keepalive timeout), and the reports reach the log in either order:
// the device stays connected through B.
func TestPresence_LateDisconnectFromTheNodeLeft(t *testing.T) {
	for _, order := range []string{"connect-first", "disconnect-first"} {
		t.Run(order, func(t *testing.T) {
			e := mustOfflineEnv(t)
			t0 := e.now
			e.conn("d1", "a", t0, t0, true, "")
			tB := t0.Add(10 * time.Second)  // the device connects to B
			tA := t0.Add(100 * time.Second) // A times the old connection out
			e.now = tA
			if order == "connect-first" {
				e.conn("d1", "b", tB, tB, true, "")
				e.conn("d1", "a", t0, tA, false, DisconnectLost)
			} else {
				e.conn("d1", "a", t0, tA, false, DisconnectLost)
				if d := e.wantPresence("d1", false, "a"); d.DisconnectReason != DisconnectLost || !d.DisconnectedAt.Equal(tA) {
					t.Fatalf("disconnect recorded as %+v", d)
				}
				if len(e.offlineDeadlines()) != 1 {
					t.Fatal("no offline deadline while the device was away")
				}
				e.conn("d1", "b", tB, tB, true, "")
			}
			d := e.wantPresence("d1", true, "b")
			if !d.ConnectedAt.Equal(tB) || d.DisconnectReason != "" {
				t.Fatalf("device %+v", d)
			}
			if got := e.offlineDeadlines(); len(got) != 0 {
				t.Fatalf("offline deadline for a connected device: %+v", got)
			}
			// A heartbeat that A had queued before it lost the device
			// changes nothing either.
			e.conn("d1", "a", t0, t0.Add(5*time.Second), true, "")
			e.wantPresence("d1", true, "b")
		})
	}
}

// A report from a connection known to have ended does not bring it back.
func TestPresence_EndedConnectionStaysEnded(t *testing.T) {
	e := mustOfflineEnv(t)
	t0 := e.now
	e.conn("d1", "a", t0, t0, true, "")
	e.conn("d1", "a", t0, t0.Add(time.Minute), false, DisconnectClean)
	e.conn("d1", "a", t0, t0.Add(30*time.Second), true, "") // queued before the disconnect
	e.wantPresence("d1", false, "a")
	// The same disconnect again: nothing changes, one deadline.
	e.conn("d1", "a", t0, t0.Add(time.Minute), false, DisconnectClean)
	if got := e.offlineDeadlines(); len(got) != 1 || !got[0].Due.Equal(t0.Add(time.Minute+5*time.Minute)) {
		t.Fatalf("deadlines %+v", got)
	}
	// A new connection on the same node.
	e.conn("d1", "a", t0.Add(2*time.Minute), t0.Add(2*time.Minute), true, "")
	e.wantPresence("d1", true, "a")
	if got := e.offlineDeadlines(); len(got) != 0 {
		t.Fatalf("deadlines %+v", got)
	}
}

// NodeDown marks the devices still recorded on a node that stopped, sets
// their offline deadlines, and leaves alone a device that reconnected
// elsewhere and one that connected to the node after the cut-off.
func TestPresence_NodeDown(t *testing.T) {
	e := mustOfflineEnv(t)
	t0 := e.now
	e.conn("d1", "a", t0, t0, true, "")
	e.conn("d2", "a", t0, t0, true, "")
	e.conn("p1", "a", t0.Add(time.Minute), t0.Add(time.Minute), true, "") // after the cut-off
	e.conn("d2", "b", t0.Add(10*time.Second), t0.Add(10*time.Second), true, "")
	down := t0.Add(30 * time.Second)
	e.now = t0.Add(40 * time.Second)

	e.refused(CmdNodeDown, nodeDownCmd{Header: e.hdr(), Node: "a", Before: down, GoneAt: down, Reason: "crashed"}, CodeInvalid, "reason")
	resp := e.must(CmdNodeDown, nodeDownCmd{Header: e.hdr(), Node: "a", Before: down, GoneAt: down, Reason: DisconnectNodeDown})
	var r nodeDownResult
	if err := json.Unmarshal(resp, &r); err != nil {
		t.Fatal(err)
	}
	if r.Marked != 1 {
		t.Fatalf("marked %d devices, want 1 (d1)", r.Marked)
	}
	d1 := e.wantPresence("d1", false, "a")
	if d1.DisconnectReason != DisconnectNodeDown || !d1.DisconnectedAt.Equal(down) {
		t.Fatalf("d1 %+v", d1)
	}
	e.wantPresence("d2", true, "b")
	e.wantPresence("p1", true, "a")
	ds := e.offlineDeadlines()
	if len(ds) != 1 || ds[0].DeviceID != "d1" || !ds[0].Due.Equal(down.Add(5*time.Minute)) {
		t.Fatalf("offline deadlines %+v", ds)
	}
	// Again: nothing left to mark.
	if resp := e.must(CmdNodeDown, nodeDownCmd{Header: e.hdr(), Node: "a", Before: down, GoneAt: down, Reason: DisconnectNodeDown}); string(resp) != `{"marked":0}` {
		t.Fatalf("second NodeDown: %s", resp)
	}
	// d1 comes back through c: the deadline goes.
	e.conn("d1", "c", e.now, e.now, true, "")
	e.wantPresence("d1", true, "c")
	if ds := e.offlineDeadlines(); len(ds) != 0 {
		t.Fatalf("offline deadlines %+v", ds)
	}
}
