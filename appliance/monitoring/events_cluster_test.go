package monitoring_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/monitoring/monitoringtest"
	"github.com/vigilarc/vigil/cluster/clustertest"
)

// eventKey is what must match between nodes for one event.
type eventKey struct {
	Index uint64
	Type  monitoring.EventType
	Alarm string
}

func keyOf(e monitoring.Event) eventKey {
	k := eventKey{Index: e.Index, Type: e.Type}
	if e.Alarm != nil {
		k.Alarm = e.Alarm.ID
	}
	return k
}

// TestEventsCluster_SameOrderOnEveryNode subscribes on all three nodes of
// a cluster, gives about fifty mixed commands through all of them, and
// requires that every node publishes the same events in the same order,
// in commit (index) order.
func TestEventsCluster_SameOrderOnEveryNode(t *testing.T) {
	if testing.Short() {
		t.Skip("three-node cluster test")
	}
	nodes := monitoringtest.MustCluster(t, 3, monitoringtest.Options{}).Nodes()
	subs := make([]*monitoring.Subscription, len(nodes))
	got := make([][]eventKey, len(nodes))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, n := range nodes {
		subs[i] = n.Service.Subscribe(monitoring.DefaultSubscriptionBuffer)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range subs[i].C {
				mu.Lock()
				got[i] = append(got[i], keyOf(e))
				mu.Unlock()
			}
		}()
	}
	defer func() {
		for _, s := range subs {
			s.Close()
		}
		wg.Wait()
	}()

	ctx := context.Background()
	svc := func(i int) *monitoring.Service { return nodes[i%len(nodes)].Service }
	step := 0
	must := func(what string, err error) {
		t.Helper()
		step++
		if err != nil {
			t.Fatalf("step %d (%s) through node %d: %v", step, what, step%len(nodes), err)
		}
	}
	id := func(s string) string { return fmt.Sprintf("%s-%d", s, step) }

	_, err := svc(step).PutOrganisation(ctx, id("org"), "admin", monitoring.Organisation{ID: "o1", Name: "Trust"})
	must("org", err)
	for _, w := range []string{"w1", "w2", "w3"} {
		_, err := svc(step).PutWorker(ctx, id("worker"), "admin", monitoring.Worker{ID: w, Name: "Worker " + w, OrgID: "o1"})
		must("worker", err)
		_, err = svc(step).PutDevice(ctx, id("device"), "admin", monitoring.Device{ID: "d" + w[1:], Kind: monitoring.DeviceDedicated, OrgID: "o1", WorkerID: w})
		must("device", err)
	}
	_, err = svc(step).SetPINs(ctx, id("pins"), "admin", "w1", "1111", "2222")
	must("pins", err)
	for i, w := range []string{"w1", "w2", "w3"} {
		_, err := svc(step).StartSession(ctx, id("start"), "device:d"+w[1:], monitoring.StartSessionRequest{
			SessionID: "s" + w[1:], WorkerID: w, DeviceID: "d" + w[1:], Duration: time.Duration(i+1) * time.Hour})
		must("start", err)
	}
	_, err = svc(step).CheckIn(ctx, id("checkin"), "device:d1", "s1", "1111")
	must("checkin", err)
	_, err = svc(step).CheckIn(ctx, id("duress"), "device:d1", "s1", "2222") // a duress alarm
	must("checkin duress", err)
	_, err = svc(step).Extend(ctx, id("extend"), "device:d2", "s2", "", 30*time.Minute)
	must("extend", err)

	var alarms []string
	for i := range 12 {
		dev := fmt.Sprintf("d%d", i%3+1)
		a, err := svc(step).RaiseAlarm(ctx, id("raise"), "device:"+dev, monitoring.RaiseAlarmRequest{
			Type: []monitoring.AlarmType{monitoring.AlarmRedAlert, monitoring.AlarmManDown, monitoring.AlarmLowBattery}[i%3], DeviceID: dev})
		must("raise", err)
		alarms = append(alarms, a.ID)
	}
	ops := []string{"olivia", "sam", "ray"}
	for i, a := range alarms {
		_, err := svc(step).Acknowledge(ctx, id("ack"), ops[i%3], a, false)
		must("ack", err)
		if i%2 == 0 {
			_, err := svc(step).LogAction(ctx, id("note"), ops[i%3], a, monitoring.TimelineEntry{Kind: monitoring.ActionNote, Text: "rang"})
			must("note", err)
		}
		if i%3 != 2 {
			_, err := svc(step).Close(ctx, id("close"), ops[i%3], a, monitoring.ResolutionWorkerSafe, monitoring.ConfirmedByWorker, "", "no contacts on file (test)")
			must("close", err)
		}
	}
	_, err = svc(step).EndSession(ctx, id("end"), "device:d3", "s3", "")
	must("end", err)

	// The end of s3 is the last command and its only session end: a node
	// that has published it has published everything before it.
	clustertest.PollUntil(t, 20*time.Second, "every node to publish the last command's event", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, g := range got {
			if len(g) == 0 || g[len(g)-1].Type != monitoring.EventSessionEnded {
				return false
			}
		}
		return true
	})

	mu.Lock()
	defer mu.Unlock()
	if step < 50 {
		t.Fatalf("only %d commands", step)
	}
	for i := range nodes {
		if subs[i].Lagged() {
			t.Fatalf("node %d's subscription lagged", i)
		}
		if len(got[i]) != len(got[0]) {
			t.Fatalf("node %d published %d events, node 0 %d", i, len(got[i]), len(got[0]))
		}
		for j := range got[i] {
			if got[i][j] != got[0][j] {
				t.Fatalf("event %d: node %d %+v, node 0 %+v", j, i, got[i][j], got[0][j])
			}
			if j > 0 && got[i][j].Index < got[i][j-1].Index {
				t.Fatalf("node %d: event %d at index %d after index %d", i, j, got[i][j].Index, got[i][j-1].Index)
			}
		}
	}
	// Strictly increasing from one command to the next: every command
	// emits at least one event, so the distinct indexes are all the
	// commands, in order.
	distinct := 0
	for j := range got[0] {
		if j == 0 || got[0][j].Index != got[0][j-1].Index {
			distinct++
		}
	}
	if distinct != step {
		t.Fatalf("%d distinct indexes for %d commands", distinct, step)
	}
	t.Logf("%d commands, %d events on each of %d nodes", step, len(got[0]), len(nodes))
}
