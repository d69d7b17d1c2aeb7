package broker_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/broker"
	"github.com/vigilarc/vigil/cluster/clustertest"
)

// AppendAudio makes fakeService (unavailable_test.go) a broker.Service: the
// fake has no audio.
func (f *fakeService) AppendAudio(context.Context, string, string, monitoring.AudioChunkRequest) (*monitoring.AudioChunkResult, error) {
	return nil, errNotInFake
}

// pcmChunk returns n bytes of 16-bit PCM that differ from chunk to chunk.
func pcmChunk(seq, n int) []byte {
	b := make([]byte, 0, n)
	for i := 0; len(b) < n; i++ {
		b = binary.LittleEndian.AppendUint16(b, uint16(seq*7919+i*31))
	}
	return b
}

func audioMsg(eventID, alarmID string, seq int, codec string, data []byte) map[string]any {
	return map[string]any{"event_id": eventID, "ts": ts(), "alarm_id": alarmID, "seq": seq, "codec": codec,
		"sample_rate": 8000, "channels": 1, "data": base64.StdEncoding.EncodeToString(data)}
}

// A device in alarm streams five PCM chunks of one second each (payloads
// larger than MaxPayload, within MaxAudioPayload) through a follower, one
// of them sent twice with the same event_id. When each PUBACK is in, the
// node the device is connected to and the leader hold the chunk; then every
// node holds exactly the five, in order, byte for byte; the resend made no
// second event.
func TestBroker_AudioReplicatedBeforePUBACK(t *testing.T) {
	nodes := mustThreeNodes(t)
	var leader, fol, third *testNode
	for _, n := range nodes {
		switch {
		case n.Cluster.IsLeader():
			leader = n
		case fol == nil:
			fol = n
		default:
			third = n
		}
	}
	if leader == nil || fol == nil || third == nil {
		t.Fatal("want one leader and two followers")
	}
	f := mustFixture(t, leader.Service, "au")
	clustertest.PollUntil(t, 10*time.Second, "the secret on the follower", func() bool {
		return fol.Service.CheckDeviceSecret(f.device, f.secret)
	})
	d := mustDevice(t, fol.BrokerAddr(), f.device, f.secret)
	alarmID := raise(t, d, f, "al-1", "red_alert")
	sub := third.Service.Subscribe(1024)
	defer sub.Close()

	const chunkBytes = 16000 // one second of 8 kHz mono: base64 makes the payload larger than MaxPayload
	var sent [][]byte
	for seq := range 5 {
		data := pcmChunk(seq, chunkBytes)
		sent = append(sent, data)
		msg := audioMsg(fmt.Sprint("au-", seq), alarmID, seq, "pcm_s16le", data)
		if b, _ := json.Marshal(msg); len(b) <= broker.MaxPayload || len(b) > broker.MaxAudioPayload {
			t.Fatalf("payload of %d bytes: the test means one above MaxPayload", len(b))
		}
		d.publish(f.device, "audio", msg)
		for _, n := range []*testNode{fol, leader} {
			if n == leader && !n.Cluster.IsLeader() {
				t.Logf("leadership moved during chunk %d (a loaded machine): the old leader is not checked", seq)
				continue
			}
			got, err := n.Service.AudioChunks(alarmID, uint64(seq), 1)
			if err != nil || len(got) != 1 || got[0].Seq != uint64(seq) || !bytes.Equal(got[0].Data, data) {
				t.Fatalf("node %s right after the PUBACK of chunk %d: %d chunks (%v)", n.ID(), seq, len(got), err)
			}
		}
		r, raw := d.reply()
		want := fmt.Sprintf(`{"alarm_id":%q,"seq":%d,"bytes":%d}`, alarmID, seq, chunkBytes)
		if !r.OK || r.Type != "audio" || string(r.Result) != want {
			t.Fatalf("reply %s, want result %s", raw, want)
		}
		if seq == 2 { // the device did not see the PUBACK: it sends the chunk again
			d.publish(f.device, "audio", msg)
			if r2, raw2 := d.reply(); !r2.OK || string(r2.Result) != want {
				t.Fatalf("reply to the resend %s, want result %s", raw2, want)
			}
		}
	}

	clustertest.PollUntil(t, 10*time.Second, "the five chunks on the third node", func() bool {
		got, _ := third.Service.AudioChunks(alarmID, 0, 0)
		return len(got) == 5
	})
	for _, n := range nodes {
		got, err := n.Service.AudioChunks(alarmID, 0, 0)
		if err != nil || len(got) != 5 {
			t.Fatalf("node %s: %d chunks (%v)", n.ID(), len(got), err)
		}
		for i, c := range got {
			if c.Seq != uint64(i) || !bytes.Equal(c.Data, sent[i]) {
				t.Fatalf("node %s: chunk %d is seq %d, %d bytes; want seq %d as sent", n.ID(), i, c.Seq, len(c.Data), i)
			}
		}
		info, err := n.Service.AudioInfo(alarmID)
		if err != nil || info.Chunks != 5 || info.Bytes != 5*chunkBytes || info.Duration != 5*time.Second || info.Missing != 0 {
			t.Fatalf("node %s: audio %+v (%v)", n.ID(), info, err)
		}
	}
	var seqs []uint64
	for len(seqs) < 5 {
		select {
		case e := <-sub.C:
			if e.Type == monitoring.EventAudioChunk {
				seqs = append(seqs, e.Audio.Seq)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("audio events on the third node: %v", seqs)
		}
	}
	select {
	case e := <-sub.C:
		if e.Type == monitoring.EventAudioChunk {
			t.Fatalf("a sixth audio event: %+v", e.Audio)
		}
	case <-time.After(200 * time.Millisecond):
	}
	if fmt.Sprint(seqs) != "[0 1 2 3 4]" {
		t.Fatalf("audio events %v", seqs)
	}
}

// Bad audio messages get error replies naming the problem, and are
// PUBACKed; nothing is stored.
func TestBroker_AudioErrorReplies(t *testing.T) {
	n := mustNode(t, nil)
	f := mustFixture(t, n.Service, "ae")
	d := mustDevice(t, n.BrokerAddr(), f.device, f.secret)
	alarmID := raise(t, d, f, "al-1", "man_down")
	good := pcmChunk(0, 800)
	with := func(eventID string, change func(m map[string]any)) map[string]any {
		m := audioMsg(eventID, alarmID, 0, "pcm_s16le", good)
		change(m)
		return m
	}
	huge := base64.StdEncoding.EncodeToString(make([]byte, 40<<10)) // over MaxAudioPayload, under the MQTT packet limit
	for _, tc := range []struct {
		name        string
		msg         any
		code, field string
		mention     string
	}{
		{"unknown codec", with("x1", func(m map[string]any) { m["codec"] = "mp3" }), broker.CodeInvalidField, "codec", `"mp3" is not a codec of protocol v1: one of pcm_s16le, wav, ogg_opus`},
		{"no codec", with("x2", func(m map[string]any) { delete(m, "codec") }), broker.CodeMissingField, "codec", "pcm_s16le"},
		{"no seq", with("x3", func(m map[string]any) { delete(m, "seq") }), broker.CodeMissingField, "seq", "from 0"},
		{"negative seq", with("x4", func(m map[string]any) { m["seq"] = -1 }), broker.CodeInvalidField, "seq", "-1"},
		{"not base64", with("x5", func(m map[string]any) { m["data"] = "not base64!" }), broker.CodeInvalidField, "data", "not base64"},
		{"no data", with("x6", func(m map[string]any) { delete(m, "data") }), broker.CodeMissingField, "data", "base64"},
		{"no alarm", with("x7", func(m map[string]any) { delete(m, "alarm_id") }), broker.CodeMissingField, "alarm_id", "alarm"},
		{"pcm without rate", with("x8", func(m map[string]any) { delete(m, "sample_rate") }), broker.CodeMissingField, "sample_rate", "Hz"},
		{"half a frame", with("x9", func(m map[string]any) { m["data"] = base64.StdEncoding.EncodeToString(good[:5]) }), "invalid", "data", "16-bit frames"},
		{"unknown alarm", with("x10", func(m map[string]any) { m["alarm_id"] = "nope" }), "not_found", "alarm_id", "nope"},
		{"too large", with("x11", func(m map[string]any) { m["data"] = huge }), broker.CodeTooLarge, "", "49152"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d.publish(f.device, "audio", tc.msg)
			r, raw := d.reply()
			if r.OK || r.Code != tc.code || r.Field != tc.field || !strings.Contains(r.Error, tc.mention) {
				t.Fatalf("reply %s; want code %q field %q mentioning %q", raw, tc.code, tc.field, tc.mention)
			}
		})
	}
	if _, err := n.Service.AudioInfo(alarmID); err == nil {
		t.Fatal("a refused chunk was stored")
	}
}

// audioFake is fakeService with an AppendAudio that fails as the cluster
// does without a leader.
type audioFake struct {
	*fakeService
	calls chan string
}

func (f *audioFake) AppendAudio(_ context.Context, cmdID, _ string, _ monitoring.AudioChunkRequest) (*monitoring.AudioChunkResult, error) {
	f.calls <- cmdID
	return nil, fmt.Errorf("cannot apply: %w", monitoring.ErrNoLeader)
}

// A chunk the cluster did not commit is not PUBACKed and the connection is
// dropped, as for an alarm: the device must resend it.
func TestBroker_AudioNotCommittedNoPUBACK(t *testing.T) {
	fake := &audioFake{calls: make(chan string, 4), fakeService: &fakeService{
		checkDeviceSecret: func(id, secret string) bool { return id == fakeDevice && secret == fakeSecret },
	}}
	b := mustFakeBroker(t, fake)
	d := mustDevice(t, b.TCPAddr(), fakeDevice, fakeSecret)
	payload, _ := json.Marshal(audioMsg("au-1", "alarm-1", 0, "pcm_s16le", pcmChunk(0, 320)))
	tok := d.c.Publish(broker.UpTopic(fakeDevice, "audio"), 1, false, payload)
	select {
	case <-d.lost:
	case <-time.After(waitTimeout):
		t.Fatal("the connection was kept after a failed commit")
	}
	if !tok.WaitTimeout(waitTimeout) || tok.Error() == nil {
		t.Fatal("the broker PUBACKed an uncommitted audio chunk")
	}
	if got := <-fake.calls; got != "dev/"+fakeDevice+"/au-1" {
		t.Fatalf("command ID %q", got)
	}
	if s := b.Stats(); s.Unavailable != 1 || s.Committed != 0 {
		t.Fatalf("stats %+v", s)
	}
}
