package monitoring_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/monitoring/monitoringtest"
	"github.com/vigilarc/vigil/cluster/clustertest"
)

// The Service checks a chunk before proposing, and a retry with the same
// command ID returns the first answer.
func TestAudioService(t *testing.T) {
	ctx := context.Background()
	n := mustSingle(t, monitoring.T0)
	seedService(t, n.Service)
	a, err := n.Service.RaiseAlarm(ctx, "raise", "device:d1", monitoring.RaiseAlarmRequest{Type: monitoring.AlarmRedAlert, DeviceID: "d1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Service.AudioInfo(a.ID); !monitoring.IsCode(err, monitoring.CodeNotFound) || !strings.Contains(err.Error(), "(audio)") {
		t.Fatalf("info before audio: %v", err)
	}
	if got, err := n.Service.AudioChunks(a.ID, 0, 10); err != nil || len(got) != 0 {
		t.Fatalf("chunks before audio: %v, %v", got, err)
	}
	req := monitoring.AudioChunkRequest{AlarmID: a.ID, DeviceID: "d1", Codec: monitoring.CodecPCM, SampleRate: 8000, Channels: 1}
	var all []byte
	for seq := range 4 {
		req.Seq, req.Data = uint64(seq), monitoring.PCMTone(8000, 1, seq*400, 400)
		all = append(all, req.Data...)
		res, err := n.Service.AppendAudio(ctx, fmt.Sprintf("ev-%d", seq), "device:d1", req)
		if err != nil || res.Seq != uint64(seq) || res.Bytes != 800 {
			t.Fatalf("append %d: %+v, %v", seq, res, err)
		}
	}
	if res, err := n.Service.AppendAudio(ctx, "ev-3", "device:d1", req); err != nil || res.Seq != 3 {
		t.Fatalf("retry: %+v, %v", res, err)
	}
	before := n.Cluster.AppliedIndex()
	req.Data = monitoring.PCMTone(8000, 1, 0, 10)
	if _, err := n.Service.AppendAudio(ctx, "ev-x", "olivia", req); !monitoring.IsCode(err, monitoring.CodeInvalid) || n.Cluster.AppliedIndex() != before {
		t.Fatalf("from an operator: %v (applied %d, was %d)", err, n.Cluster.AppliedIndex(), before)
	}
	req.Codec = "aac"
	if _, err := n.Service.AppendAudio(ctx, "ev-y", "device:d1", req); !monitoring.IsCode(err, monitoring.CodeInvalid) || n.Cluster.AppliedIndex() != before {
		t.Fatalf("unknown codec: %v", err)
	}
	chunks, err := n.Service.AudioChunks(a.ID, 0, 0)
	if err != nil || len(chunks) != 4 {
		t.Fatalf("chunks: %d, %v", len(chunks), err)
	}
	var got []byte
	for _, c := range chunks {
		got = append(got, c.Data...)
	}
	if !bytes.Equal(got, all) {
		t.Fatal("the chunks read back differ from those sent")
	}
	i, err := n.Service.AudioInfo(a.ID)
	if err != nil || i.Chunks != 4 || i.Bytes != 3200 || i.Duration != 200*time.Millisecond {
		t.Fatalf("info %+v, %v", i, err)
	}
	if _, err := n.Service.AudioChunks("nope", 0, 0); !monitoring.IsCode(err, monitoring.CodeNotFound) {
		t.Fatalf("chunks of no alarm: %v", err)
	}
}

// A follower whose state is lost restores it from a snapshot and replays
// the log after it: it ends with the same audio, byte for byte, as the
// others.
func TestAudioCluster_SnapshotCarriesAudio(t *testing.T) {
	ctx := context.Background()
	c := monitoringtest.MustCluster(t, 3, monitoringtest.Options{})
	lead := c.Leader()
	seedService(t, lead.Service)
	a, err := lead.Service.RaiseAlarm(ctx, "raise", "device:d1", monitoring.RaiseAlarmRequest{Type: monitoring.AlarmRedAlert, DeviceID: "d1"})
	if err != nil {
		t.Fatal(err)
	}
	send := func(seq int) {
		req := monitoring.AudioChunkRequest{AlarmID: a.ID, DeviceID: "d1", Seq: uint64(seq), Codec: monitoring.CodecPCM, SampleRate: 16000,
			Channels: 1, Data: monitoring.PCMTone(16000, 1, seq*8000, 8000)}
		if _, err := lead.Service.AppendAudio(ctx, fmt.Sprint("ev-", seq), "device:d1", req); err != nil {
			t.Fatal(err)
		}
	}
	for seq := range 3 {
		send(seq)
	}
	var f *monitoringtest.Node
	fi := -1
	for i, n := range c.Nodes() {
		if n != lead {
			f, fi = n, i
		}
	}
	clustertest.PollUntil(t, 10*time.Second, "the follower to apply the chunks", func() bool {
		return f.Cluster.AppliedIndex() >= lead.Cluster.AppliedIndex()
	})
	if err := f.Cluster.Snapshot(); err != nil {
		t.Fatal(err)
	}
	c.Stop(fi)
	if snaps, err := os.ReadDir(filepath.Join(c.DataDir(fi), "snapshots")); err != nil || len(snaps) == 0 {
		t.Fatalf("no snapshot on the follower (%v)", err)
	}
	if err := os.RemoveAll(filepath.Join(c.DataDir(fi), "state")); err != nil {
		t.Fatal(err)
	}
	for seq := 3; seq < 5; seq++ {
		send(seq)
	}
	f = c.Restart(fi)
	clustertest.PollUntil(t, 20*time.Second, "the restored follower to catch up", func() bool {
		return f.Cluster.AppliedIndex() >= lead.Cluster.AppliedIndex()
	})
	hash := func(n *monitoringtest.Node) []byte {
		var h []byte
		if err := n.Cluster.View(func(txn *badger.Txn) (err error) { h, err = monitoring.StateHash(txn); return err }); err != nil {
			t.Fatal(err)
		}
		return h
	}
	if !bytes.Equal(hash(f), hash(lead)) {
		t.Fatal("the restored follower's state differs from the leader's")
	}
	chunks, err := f.Service.AudioChunks(a.ID, 0, 0)
	if err != nil || len(chunks) != 5 {
		t.Fatalf("restored follower: %d chunks, %v", len(chunks), err)
	}
	for i, c := range chunks {
		if c.Seq != uint64(i) || !bytes.Equal(c.Data, monitoring.PCMTone(16000, 1, i*8000, 8000)) {
			t.Fatalf("chunk %d differs", i)
		}
	}
}
