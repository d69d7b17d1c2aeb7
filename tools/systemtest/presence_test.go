package systemtest

import (
	"context"
	"testing"
	"time"

	"github.com/vigilarc/vigil/cluster/clustertest"

	"github.com/vigilarc/vigil/appliance/monitoring"
	vapi "github.com/vigilarc/vigil/ui/api"
)

// Figures of the presence test.
const (
	presenceNodeDownAfter = 2 * time.Second
	presenceOffline       = 4 * time.Second // the organisation's offline threshold
	presenceBudget        = 30 * time.Second
)

// TestCluster_NodeKilledItsDevicesGoOffline connects two devices in active
// sessions to the leader and SIGKILLs it. One device reconnects to another
// node at once; the other does not. The surviving nodes mark the second
// device disconnected (node_down) and raise one device-offline alarm for its
// session after the organisation's threshold; the first stays connected
// through its new node and raises nothing. The killed node starts again
// and changes none of that.
func TestCluster_NodeKilledItsDevicesGoOffline(t *testing.T) {
	if testing.Short() {
		t.Skip("system test: builds vigil and runs three processes")
	}
	bin := mustBuildVigil(t)
	c := mustStartCluster(t, bin, 3,
		"VIGIL_BROKER_NODE_DOWN_AFTER="+presenceNodeDownAfter.String(),
		"VIGIL_BROKER_TELEMETRY_FLUSH=200ms")
	leader := c.Leader()
	w := func(path string, body, out any) { mustWrite(t, c, leader, path, body, out) }
	cmd := func(id string) vapi.Command { return vapi.Command{ID: id, Actor: "systemtest"} }
	w("/api/v1/organisations", vapi.OrganisationRequest{Command: cmd("pr-org"),
		Org: vapi.OrganisationBody{ID: "pr", Name: "Riverside Community Trust", OfflineThreshold: presenceOffline.String()}}, nil)
	secrets := map[string]string{}
	for _, id := range []string{"stay", "move"} {
		w("/api/v1/workers", vapi.WorkerRequest{Command: cmd("pr-w-" + id),
			Worker: vapi.WorkerBody{ID: "w-" + id, Name: "Nurse " + id, OrgID: "pr"}}, nil)
		w("/api/v1/devices", vapi.DeviceRequest{Command: cmd("pr-d-" + id),
			Device: vapi.DeviceBody{ID: "d-" + id, Kind: monitoring.DevicePhoneApp, OrgID: "pr", WorkerID: "w-" + id}}, nil)
		var sec vapi.DeviceSecretResponse
		w("/api/v1/devices/d-"+id+"/secret", cmd("pr-s-"+id), &sec)
		secrets[id] = sec.Secret
		w("/api/v1/sessions", vapi.StartSessionBody{Command: cmd("pr-sess-" + id),
			SessionID: "s-" + id, WorkerID: "w-" + id, DeviceID: "d-" + id, Duration: "2h"}, nil)
	}
	c.waitConverged(convergeTimeout, 0)

	for _, id := range []string{"stay", "move"} {
		cl, err := connectDevice(c.mqtt[leader], "d-"+id, secrets[id], nil)
		if err != nil {
			t.Fatalf("connect d-%s: %v", id, err)
		}
		defer cl.Disconnect(0)
	}
	victim := c.nodes[leader].name
	others := c.Followers()
	for _, i := range others {
		for _, id := range []string{"d-stay", "d-move"} {
			clustertest.PollUntil(t, presenceBudget, id+" connected through "+victim, func() bool {
				d, err := c.device(i, id)
				return err == nil && d.Connected && d.Node == victim
			})
		}
	}

	c.Kill(leader)
	killed := time.Now()
	moved, err := connectDevice(c.mqtt[others[0]], "d-move", secrets["move"], nil)
	if err != nil {
		t.Fatalf("reconnect d-move to %s: %v", c.nodes[others[0]].name, err)
	}
	defer moved.Disconnect(0)

	for _, i := range others {
		clustertest.PollUntil(t, presenceBudget, "d-stay marked disconnected on "+c.nodes[i].name, func() bool {
			d, err := c.device(i, "d-stay")
			return err == nil && !d.Connected && d.DisconnectReason == monitoring.DisconnectNodeDown
		})
	}
	t.Logf("SIGKILL of %s -> d-stay marked disconnected on both survivors: %s", victim, time.Since(killed).Round(time.Millisecond))
	var alarm monitoring.Alarm
	for _, i := range others {
		clustertest.PollUntil(t, presenceBudget, "a device-offline alarm on "+c.nodes[i].name, func() bool {
			as, err := c.offlineAlarms(i)
			if err == nil && len(as) > 0 {
				alarm = as[0]
			}
			return err == nil && len(as) > 0
		})
	}
	t.Logf("SIGKILL -> device-offline alarm on both survivors: %s (node down after %s, threshold %s)",
		time.Since(killed).Round(time.Millisecond), presenceNodeDownAfter, presenceOffline)
	if alarm.DeviceID != "d-stay" || alarm.SessionID != "s-stay" || alarm.WorkerID != "w-stay" {
		t.Fatalf("device-offline alarm %+v, want one for d-stay's session", alarm)
	}

	// The killed node comes back. Nothing changes: one alarm, d-move still
	// on its new node, d-stay still away.
	c.Restart(leader)
	c.waitConverged(convergeTimeout, 0)
	time.Sleep(presenceOffline)
	for i := range c.nodes {
		as, err := c.offlineAlarms(i)
		if err != nil || len(as) != 1 || as[0].ID != alarm.ID {
			t.Fatalf("%s: device-offline alarms %+v (%v), want exactly %s", c.nodes[i].name, as, err, alarm.ID)
		}
		mv, err := c.device(i, "d-move")
		if err != nil || !mv.Connected || mv.Node != c.nodes[others[0]].name {
			t.Fatalf("%s: d-move %+v (%v), want connected through %s", c.nodes[i].name, mv, err, c.nodes[others[0]].name)
		}
		st, err := c.device(i, "d-stay")
		if err != nil || st.Connected {
			t.Fatalf("%s: d-stay %+v (%v), want disconnected", c.nodes[i].name, st, err)
		}
	}
}

// device reads a device from node i.
func (c *testCluster) device(i int, id string) (*monitoring.Device, error) {
	ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
	defer cancel()
	var d monitoring.Device
	err := c.api.getJSON(ctx, "http://"+c.http[i]+"/api/v1/devices/"+id, &d)
	return &d, err
}

// offlineAlarms returns the open device-offline alarms on node i.
func (c *testCluster) offlineAlarms(i int) ([]monitoring.Alarm, error) {
	ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
	defer cancel()
	var resp vapi.AlarmsResponse
	if err := c.api.getJSON(ctx, "http://"+c.http[i]+"/api/v1/alarms", &resp); err != nil {
		return nil, err
	}
	var out []monitoring.Alarm
	for _, a := range resp.Alarms {
		if a.Type == monitoring.AlarmDeviceOffline {
			out = append(out, a)
		}
	}
	return out, nil
}
