package broker_test

import (
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/monitoring/monitoringtest"
	"github.com/vigilarc/vigil/broker"
	"github.com/vigilarc/vigil/cluster/clustertest"
)

// A node whose disk is nearly full refuses an alarm: the device gets no
// PUBACK, so it never takes the alarm as saved, but a reply that says why
// (disk_full) before its connection is dropped; once space is freed, the
// same alarm, sent again, is raised. The data directory is a small tmpfs
// (root only).
func TestIngest_DiskFullRepliesAndWithholdsThePUBACK(t *testing.T) {
	fs := clustertest.MustTmpfs(t, 64<<20)
	const floor = 24 << 20
	opts := serviceOptions(nil)
	opts.DataDirs, opts.MinFreeBytes = fs, floor
	c := monitoringtest.MustCluster(t, 1, opts)
	n := c.Node(0)
	b := mustBroker(t, n, nil)
	f := mustFixture(t, n.Service, "disk")
	d := mustDevice(t, b.TCPAddr(), f.device, f.secret)

	release := clustertest.MustFill(t, fs, floor-4<<20)
	clustertest.PollUntil(t, 5*time.Second, "the node sees its disk full", func() bool {
		s := n.Cluster.Status()
		return s.Disk != nil && s.Disk.Full
	})

	alarm := []byte(`{"event_id":"full-1","ts":"` + ts() + `","alarm_type":"red_alert"}`)
	tok := d.c.Publish(broker.UpTopic(f.device, "alarm"), 1, false, alarm)
	r, raw := d.reply()
	if r.OK || r.Code != broker.CodeDiskFull || r.EventID != "full-1" {
		t.Fatalf("reply %s: want disk_full for full-1", raw)
	}
	select {
	case err := <-d.lost:
		t.Logf("connection dropped: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the connection was not dropped")
	}
	if tok.WaitTimeout(time.Second) && tok.Error() == nil {
		t.Fatal("the alarm refused for a full disk was PUBACKed")
	}
	if open, _ := n.Service.OpenAlarms(); len(open) != 0 {
		t.Fatalf("%d alarms raised on a full disk", len(open))
	}

	release()
	clustertest.PollUntil(t, 5*time.Second, "the node sees space again", func() bool {
		s := n.Cluster.Status()
		return s.Disk != nil && !s.Disk.Full
	})
	d = mustDevice(t, b.TCPAddr(), f.device, f.secret)
	d.publish(f.device, "alarm", alarm)
	if r, raw := d.reply(); !r.OK || r.EventID != "full-1" {
		t.Fatalf("reply %s after space was freed", raw)
	}
	if open, _ := n.Service.OpenAlarms(); len(open) != 1 || open[0].Type != monitoring.AlarmRedAlert {
		t.Fatalf("open alarms %+v: want the red alert", open)
	}
}
