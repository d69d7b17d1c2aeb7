package broker_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/broker"
	"github.com/vigilarc/vigil/cluster/clustertest"
)

// An alarm published to a follower's broker is on all three nodes when its
// PUBACK arrives: committed on a quorum, then applied by the remaining
// healthy node before the PUBACK (broker.replica_wait). Checked over several
// alarms, each read on every node the moment its publish returns.
func TestBroker_AlarmOnFollowerOnAllThreeBeforePUBACK(t *testing.T) {
	nodes := mustThreeNodes(t)
	var leader *testNode
	var followers []*testNode
	for _, n := range nodes {
		if n.Cluster.IsLeader() {
			leader = n
		} else {
			followers = append(followers, n)
		}
	}
	if leader == nil || len(followers) != 2 {
		t.Fatalf("want one leader and two followers")
	}
	f := mustFixture(t, leader.Service, "a")
	fol := followers[0]
	clustertest.PollUntil(t, 10*time.Second, "the secret on the follower", func() bool {
		return fol.Service.CheckDeviceSecret(f.device, f.secret)
	})
	d := mustDevice(t, fol.BrokerAddr(), f.device, f.secret)
	const rounds = 10
	var slowest time.Duration
	for i := range rounds {
		id := fmt.Sprintf("e%d", i)
		start := time.Now()
		d.publish(f.device, "alarm", map[string]any{"event_id": id, "ts": ts(), "alarm_type": "red_alert",
			"location": map[string]any{"lat": 51.5, "lon": -0.12, "accuracy_m": 8, "source": "gps"}})
		slowest = max(slowest, time.Since(start))
		r, _ := d.reply()
		if !r.OK || r.EventID != id {
			t.Fatalf("reply %+v", r)
		}
		var res broker.AlarmResult
		if err := json.Unmarshal(r.Result, &res); err != nil || res.AlarmID == "" {
			t.Fatalf("reply result %s: %v", r.Result, err)
		}
		for _, n := range nodes {
			if _, err := n.Service.Alarm(res.AlarmID); err != nil {
				t.Fatalf("round %d: node %s right after PUBACK: alarm %s: %v", i, n.ID(), res.AlarmID, err)
			}
		}
	}
	if s := fol.Broker().Stats(); s.ShortOfReplicas != 0 {
		t.Fatalf("%d events PUBACKed short of every replica in a healthy cluster", s.ShortOfReplicas)
	}
	t.Logf("publish to PUBACK through a follower, all three applied: slowest of %d %s", rounds, slowest)
}

// With one node down the gateway does not wait for it: the alarm is PUBACKed
// on the quorum, promptly, and counted as short of a replica.
func TestBroker_ReplicaDownDoesNotHoldPUBACK(t *testing.T) {
	nodes := mustThreeNodes(t)
	var follower, other *testNode
	for _, n := range nodes {
		switch {
		case n.Cluster.IsLeader():
		case follower == nil:
			follower = n
		default:
			other = n
		}
	}
	if follower == nil || other == nil {
		t.Fatalf("want two followers")
	}
	f := mustFixture(t, follower.Service, "down")
	if err := other.Close(); err != nil {
		t.Fatalf("stop %s: %v", other.ID(), err)
	}
	d := mustDevice(t, follower.BrokerAddr(), f.device, f.secret)
	for i := range 5 {
		start := time.Now()
		d.publish(f.device, "alarm", map[string]any{"event_id": fmt.Sprintf("d%d", i), "ts": ts(), "alarm_type": "man_down"})
		// The bound is 250 ms, and a stopped node refuses at once; allow
		// a loaded machine plenty, but not the commit timeout.
		if el := time.Since(start); el > 2*time.Second {
			t.Fatalf("alarm %d took %s to PUBACK with a node down", i, el)
		}
		if r, _ := d.reply(); !r.OK {
			t.Fatalf("reply %+v", r)
		}
	}
	if s := follower.Broker().Stats(); s.ShortOfReplicas != 5 {
		t.Fatalf("ShortOfReplicas %d, want 5", s.ShortOfReplicas)
	}
}

// A retry with the same event ID makes no second alarm.
func TestBroker_RetrySameEventIDOneAlarm(t *testing.T) {
	n := mustNode(t, nil)
	f := mustFixture(t, n.Service, "r")
	d := mustDevice(t, n.BrokerAddr(), f.device, f.secret)
	msg := map[string]any{"event_id": "same-1", "ts": ts(), "alarm_type": "man_down"}
	d.publish(f.device, "alarm", msg)
	r1, _ := d.reply()
	d.publish(f.device, "alarm", msg)
	r2, _ := d.reply()
	if !r1.OK || string(r1.Result) != string(r2.Result) {
		t.Fatalf("replies differ: %s vs %s", r1.Result, r2.Result)
	}
	if open, _ := n.Service.OpenAlarms(); len(open) != 1 {
		t.Fatalf("%d open alarms, want 1", len(open))
	}
}

// Malformed, unknown, incomplete and oversized messages get error replies
// naming the problem, and are PUBACKed.
func TestBroker_ErrorReplies(t *testing.T) {
	n := mustNode(t, nil)
	f := mustFixture(t, n.Service, "e")
	d := mustDevice(t, n.BrokerAddr(), f.device, f.secret)
	big := `{"event_id":"big","ts":"` + ts() + `","update":"` + strings.Repeat("x", broker.MaxPayload) + `"}`
	for _, tc := range []struct {
		name, typ, payload, code, field string
	}{
		{"malformed json", "alarm", `{"event_id": "x1", `, broker.CodeMalformedJSON, ""},
		{"unknown type", "teleport", `{"event_id":"x2","ts":"` + ts() + `"}`, broker.CodeUnknownType, ""},
		{"missing field", "alarm", `{"event_id":"x3","ts":"` + ts() + `"}`, broker.CodeMissingField, "alarm_type"},
		{"missing event id", "alarm", `{"ts":"` + ts() + `","alarm_type":"red_alert"}`, broker.CodeMissingField, "event_id"},
		{"oversized", "session/start", big, broker.CodeTooLarge, ""},
		{"unknown alarm", "alarm/cancel", `{"event_id":"x5","ts":"` + ts() + `","alarm_id":"nope","pin":"1234"}`, "not_found", "alarm_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d.publish(f.device, tc.typ, []byte(tc.payload))
			r, raw := d.reply()
			if r.OK || r.Code != tc.code || r.Field != tc.field || r.Error == "" {
				t.Fatalf("reply %s, want code %q field %q", raw, tc.code, tc.field)
			}
		})
	}
	if s := n.Broker().Stats(); s.ErrorReplies < 6 {
		t.Fatalf("stats %+v", s)
	}
}

// A device may not connect with a wrong secret, publish to another
// device's topics or subscribe outside its own.
func TestBroker_ACLRefusals(t *testing.T) {
	n := mustNode(t, nil)
	f := mustFixture(t, n.Service, "x")
	g := mustFixture(t, n.Service, "y")
	b := n.Broker()
	if _, err := connect(t, n.BrokerAddr(), f.device, "wrong"); err == nil {
		t.Fatal("connected with a wrong secret")
	}
	if _, err := connect(t, n.BrokerAddr(), f.device, g.secret); err == nil {
		t.Fatal("connected with another device's secret")
	}
	if b.Stats().AuthRefused != 2 {
		t.Fatalf("stats %+v", b.Stats())
	}

	d := mustDevice(t, n.BrokerAddr(), f.device, f.secret)
	tok := d.c.Subscribe("vigil/v1/d/+/down/#", 1, nil)
	tok.WaitTimeout(10 * time.Second)
	if res := tok.(interface{ Result() map[string]byte }).Result(); res["vigil/v1/d/+/down/#"] != 0x80 {
		t.Fatalf("subscribe outside own space: %v", res)
	}
	// QoS 1 to another device's topic: MQTT 3.1.1 has no refusal code,
	// so mochi drops the connection.
	d.c.Publish(broker.UpTopic(g.device, "alarm"), 1, false, []byte(`{"event_id":"z","ts":"`+ts()+`","alarm_type":"red_alert"}`))
	select {
	case <-d.lost:
	case <-time.After(10 * time.Second):
		t.Fatal("connection kept after publishing to another device's topic")
	}
	if s := b.Stats(); s.ACLRefused != 2 {
		t.Fatalf("stats %+v", s)
	}
	if open, _ := n.Service.OpenAlarms(); len(open) != 0 {
		t.Fatalf("%d alarms raised through a refused publish", len(open))
	}
}

// Ending a session with the Duress PIN looks the same on the wire as with
// the Safe PIN: two identical nodes, same clock, same messages; audio sent
// to the reply's audio reference then gets the same replies, and only the
// duress alarm holds it.
func TestBroker_DuressEndIdenticalToSafe(t *testing.T) {
	at := time.Now().UTC().Truncate(time.Second)
	var got [2][2][]byte  // [safe, duress][reply, session]
	var audio [2][][]byte // [safe, duress]: the replies to audio sent to the audio reference
	for i, pin := range []string{"1111", "9999"} {
		n := mustNode(t, func(svc *monitoring.Service) {
			svc.Now = func() time.Time { return at }
			id := 0
			svc.NewID = func() string { id++; return "id" + string(rune('a'+id%26)) }
		})
		f := mustFixture(t, n.Service, "s")
		d := mustDevice(t, n.BrokerAddr(), f.device, f.secret)
		d.publish(f.device, "session/start", map[string]any{"event_id": "s1", "ts": ts(), "session_id": "sess-1", "duration": "45m"})
		if r, raw := d.reply(); !r.OK {
			t.Fatalf("start: %s", raw)
		}
		<-d.session
		d.publish(f.device, "session/end", map[string]any{"event_id": "s2", "ts": ts(), "session_id": "sess-1", "pin": pin})
		r, raw := d.reply()
		if !r.OK {
			t.Fatalf("end: %s", raw)
		}
		got[i][0], got[i][1] = raw, <-d.session
		open, _ := n.Service.OpenAlarms()
		if want := i; len(open) != want {
			t.Fatalf("pin %s: %d open alarms, want %d", pin, len(open), want)
		}

		// The device streams audio to the reply's audio reference: three
		// chunks, one of them resent, and one that reuses a seq with other
		// audio.
		var end monitoring.SessionReply
		if err := json.Unmarshal(r.Result, &end); err != nil || end.AudioRef == "" {
			t.Fatalf("pin %s: end reply %s has no audio_ref (%v)", pin, raw, err)
		}
		for k, seq := range []int{0, 1, 1, 2, 2} {
			data := pcmChunk(seq, 1600)
			if k == 4 {
				data = pcmChunk(7, 1600)
			}
			d.publish(f.device, "audio", audioMsg(fmt.Sprint("au-", k), end.AudioRef, seq, "pcm_s16le", data))
			_, raw := d.reply()
			audio[i] = append(audio[i], raw)
		}
		info, err := n.Service.AudioInfo(end.AudioRef)
		switch pin {
		case "1111":
			if err == nil {
				t.Fatalf("the Safe PIN's audio reference holds audio: %+v", info)
			}
		default:
			if err != nil || info.Chunks != 3 || info.Bytes != 3*1600 || open[0].ID != end.AudioRef {
				t.Fatalf("the duress alarm's audio: %+v (%v), open %+v", info, err, open)
			}
		}
	}
	for k, what := range []string{"reply", "session"} {
		if !bytes.Equal(got[0][k], got[1][k]) {
			t.Fatalf("%s differs:\nsafe   %s\nduress %s", what, got[0][k], got[1][k])
		}
	}
	for k := range audio[0] {
		if !bytes.Equal(audio[0][k], audio[1][k]) {
			t.Fatalf("audio reply %d differs:\nsafe   %s\nduress %s", k, audio[0][k], audio[1][k])
		}
	}
	if !strings.Contains(string(audio[0][4]), `"ok":false`) || !strings.Contains(string(audio[0][2]), `"ok":true`) {
		t.Fatalf("audio replies %s", audio[0])
	}
}
