package broker_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/broker"
	"github.com/vigilarc/vigil/cluster/clustertest"
)

// downLog is a device's down/ messages, gathered without ever blocking
// paho's reader (a full channel would stall the connection and make mochi
// drop replies).
type downLog struct {
	mu      sync.Mutex
	replies []broker.Reply
	alarms  []broker.AlarmNotice
	bad     []string
}

// mustFloodDevice connects device id to the broker at addr and gathers its
// down/reply and down/alarm in a downLog.
func mustFloodDevice(t *testing.T, addr, id, secret string) (*device, *downLog) {
	t.Helper()
	d, err := connect(t, addr, id, secret)
	if err != nil {
		t.Fatalf("connect %s: %v", id, err)
	}
	log := &downLog{}
	tok := d.c.Subscribe(broker.DownTopic(id, "#"), 1, func(_ paho.Client, m paho.Message) {
		log.mu.Lock()
		defer log.mu.Unlock()
		switch {
		case strings.HasSuffix(m.Topic(), "/reply"):
			var r broker.Reply
			if err := json.Unmarshal(m.Payload(), &r); err != nil {
				log.bad = append(log.bad, string(m.Payload()))
			}
			log.replies = append(log.replies, r)
		case strings.HasSuffix(m.Topic(), "/"+broker.DownAlarm):
			var n broker.AlarmNotice
			if err := json.Unmarshal(m.Payload(), &n); err != nil {
				log.bad = append(log.bad, string(m.Payload()))
			}
			log.alarms = append(log.alarms, n)
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	return d, log
}

func (l *downLog) replyCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.replies)
}

// flood publishes n alarms QoS 1 with event IDs prefix0..., as fast as paho
// sends them (no waiting between them), and waits for every PUBACK. It
// returns how long that took.
func flood(t *testing.T, d *device, deviceID, prefix string, n int) time.Duration {
	t.Helper()
	start := time.Now()
	toks := make([]paho.Token, n)
	for i := range toks {
		b, _ := json.Marshal(map[string]any{"event_id": fmt.Sprintf("%s%03d", prefix, i), "ts": ts(), "alarm_type": "red_alert"})
		toks[i] = d.c.Publish(broker.UpTopic(deviceID, broker.TypeAlarm), 1, false, b)
	}
	for i, tok := range toks {
		if !tok.WaitTimeout(60*time.Second) || tok.Error() != nil {
			t.Fatalf("alarm %d of the flood: no PUBACK: %v", i, tok.Error())
		}
	}
	return time.Since(start)
}

// maxAlarms is the most alarm messages the default limits let through in
// elapsed from a full bucket.
func maxAlarms(elapsed time.Duration) int {
	return broker.DefaultAlarmBurst + int(elapsed/(time.Minute/broker.DefaultAlarmsPerMinute)) + 1
}

// deviceAlarms returns the open alarms of device on n, by type.
func deviceAlarms(t *testing.T, n *testNode, device string) map[monitoring.AlarmType][]monitoring.Alarm {
	t.Helper()
	q, err := n.Service.OpenAlarms()
	if err != nil {
		t.Fatal(err)
	}
	out := map[monitoring.AlarmType][]monitoring.Alarm{}
	for _, a := range q {
		if a.DeviceID == device {
			out[a.Type] = append(out[a.Type], a)
		}
	}
	return out
}

// One device floods a node with 500 alarms as fast as it can, with the
// default limits (the attack of issue 16: 930 alarms in 7 s). Its first
// alarm gets through, then at most the alarm bucket's worth; every other
// alarm is PUBACKed with a rate_limited reply and recorded nowhere; the
// operators get exactly one device-flooding alarm, after the worker's red
// alerts, and the device hears nothing of it. Another device on the same
// node is not affected. When the device floods another node (the limits
// are per node), that node lets a bucket's worth through again, and its
// report is noted on the same open flooding alarm: still one.
func TestRateLimit_FloodIsRefusedAndReportedOnce(t *testing.T) {
	nodes := mustThreeNodes(t)
	f := mustFixture(t, nodes[0].Service, "flood")
	calm := mustFixture(t, nodes[0].Service, "calm")
	a, b := nodes[0], nodes[1]
	clustertest.PollUntil(t, 10*time.Second, "the fixtures on every node", func() bool {
		return b.Service.CheckDeviceSecret(f.device, f.secret) && a.Service.CheckDeviceSecret(calm.device, calm.secret)
	})
	d, log := mustFloodDevice(t, a.BrokerAddr(), f.device, f.secret)
	other := mustDevice(t, a.BrokerAddr(), calm.device, calm.secret)

	const n = 500
	elapsed := flood(t, d, f.device, "a-", n)
	clustertest.PollUntil(t, 30*time.Second, "a reply to every alarm", func() bool { return log.replyCount() >= n })

	log.mu.Lock()
	if len(log.bad) > 0 || len(log.replies) != n {
		t.Fatalf("%d replies, %d undecodable (%q)", len(log.replies), len(log.bad), log.bad)
	}
	ok := map[string]string{} // event ID -> alarm ID
	limited := 0
	for _, r := range log.replies {
		switch {
		case r.OK:
			var res broker.AlarmResult
			if err := json.Unmarshal(r.Result, &res); err != nil || res.AlarmID == "" {
				t.Fatalf("reply %+v: no alarm ID", r)
			}
			ok[r.EventID] = res.AlarmID
		case r.Code == broker.CodeRateLimited:
			if r.RetryAfter < 1 || !strings.Contains(r.Error, "not recorded") || r.Type != broker.TypeAlarm || r.EventID == "" {
				t.Fatalf("rate_limited reply %+v", r)
			}
			limited++
		default:
			t.Fatalf("reply %+v: want ok or rate_limited", r)
		}
	}
	log.mu.Unlock()
	if _, first := ok["a-000"]; !first {
		t.Fatalf("the device's first alarm did not get through")
	}
	if len(ok) < broker.DefaultAlarmBurst || len(ok) > maxAlarms(elapsed) {
		t.Fatalf("%d alarms got through in %s, want %d to %d", len(ok), elapsed, broker.DefaultAlarmBurst, maxAlarms(elapsed))
	}
	t.Logf("%d alarms published in %s: %d recorded, %d refused", n, elapsed, len(ok), limited)

	// What the operators see, on every node.
	var flooding monitoring.Alarm
	for _, nd := range nodes {
		clustertest.PollUntil(t, 10*time.Second, "the alarms on "+nd.ID(), func() bool {
			byType := deviceAlarms(t, nd, f.device)
			return len(byType[monitoring.AlarmRedAlert]) == len(ok) && len(byType[monitoring.AlarmDeviceFlooding]) == 1
		})
		byType := deviceAlarms(t, nd, f.device)
		if len(byType) != 2 {
			t.Fatalf("node %s: alarms of the device by type %v", nd.ID(), byType)
		}
		flooding = byType[monitoring.AlarmDeviceFlooding][0]
	}
	q, _ := a.Service.OpenAlarms()
	if q[0].ID != ok["a-000"] || q[0].Type != monitoring.AlarmRedAlert || q[len(q)-1].ID != flooding.ID {
		t.Fatalf("queue: first %s %s, last %s; want the first red alert first and the flooding alarm last", q[0].ID, q[0].Type, q[len(q)-1].ID)
	}
	if s := a.Broker().Stats(); s.RateLimited != uint64(limited) || s.RateLimitedDropped != 0 || s.Floods != 1 || s.FloodReports != 1 ||
		s.Flooding != 1 || s.ErrorReplies != 0 {
		t.Fatalf("stats %+v: want %d rate limited, one flood reported", s, limited)
	}
	if fl := a.Broker().Floods(); len(fl) != 1 || fl[0].DeviceID != f.device || fl[0].Refused != limited || !fl[0].Reported ||
		fl[0].Limit != monitoring.FloodLimitAlarms {
		t.Fatalf("floods %+v", fl)
	}

	// Another device on the same node: not limited.
	other.publish(calm.device, broker.TypeAlarm, map[string]any{"event_id": "c-1", "ts": ts(), "alarm_type": "man_down"})
	if r, _ := other.reply(); !r.OK {
		t.Fatalf("the other device's alarm: %+v", r)
	}

	// The same device on another node: its limits there are its own, and
	// the flood is noted on the flooding alarm still open.
	d.c.Disconnect(50)
	d2, log2 := mustFloodDevice(t, b.BrokerAddr(), f.device, f.secret)
	const n2 = 100
	elapsed2 := flood(t, d2, f.device, "b-", n2)
	clustertest.PollUntil(t, 30*time.Second, "a reply to every alarm on the second node", func() bool { return log2.replyCount() >= n2 })
	ok2 := 0
	log2.mu.Lock()
	for _, r := range log2.replies {
		if r.OK {
			ok2++
		}
	}
	log2.mu.Unlock()
	if ok2 < broker.DefaultAlarmBurst || ok2 > maxAlarms(elapsed2) {
		t.Fatalf("second node: %d alarms got through, want %d to %d", ok2, broker.DefaultAlarmBurst, maxAlarms(elapsed2))
	}
	if s := b.Broker().Stats(); s.FloodReports != 1 {
		t.Fatalf("second node stats %+v: want its flood reported", s)
	}
	for _, nd := range nodes {
		clustertest.PollUntil(t, 10*time.Second, "the second flood on the flooding alarm on "+nd.ID(), func() bool {
			tl, _ := nd.Service.Timeline(flooding.ID)
			floods := 0
			for _, e := range tl {
				if e.Kind == monitoring.ActionFlooding {
					floods++
				}
			}
			return floods == 2
		})
		if byType := deviceAlarms(t, nd, f.device); len(byType[monitoring.AlarmDeviceFlooding]) != 1 ||
			len(byType[monitoring.AlarmRedAlert]) != len(ok)+ok2 {
			t.Fatalf("node %s after the second flood: alarms of the device by type %v", nd.ID(), byType)
		}
	}

	// The device was never told of the flooding alarm.
	for _, l := range []*downLog{log, log2} {
		l.mu.Lock()
		for _, notice := range l.alarms {
			if notice.AlarmID == flooding.ID {
				t.Fatalf("the device got a notice of the flooding alarm: %+v", notice)
			}
		}
		l.mu.Unlock()
	}
}

// A resend of an alarm already recorded (as after a failover) is answered
// as before and does not count as a new alarm; a new alarm past the bucket
// is refused, and its resend later, once the bucket has a token, gets
// through.
func TestRateLimit_ResendsAreNotNewAlarms(t *testing.T) {
	const burst = 3
	n := mustNodeWith(t, func(c *broker.Config) { c.AlarmBurst, c.AlarmsPerMinute = burst, 1 }, nil)
	f := mustFixture(t, n.Service, "resend")
	d := mustDevice(t, n.BrokerAddr(), f.device, f.secret)
	start := time.Now()
	alarm := func(id string) broker.Reply {
		t.Helper()
		d.publish(f.device, broker.TypeAlarm, map[string]any{"event_id": id, "ts": ts(), "alarm_type": "red_alert"})
		r, _ := d.reply()
		if r.EventID != id {
			t.Fatalf("reply %+v to %s", r, id)
		}
		return r
	}
	first := map[string]string{}
	for i := range burst {
		id := fmt.Sprintf("e%d", i)
		r := alarm(id)
		if !r.OK {
			t.Fatalf("alarm %s of %d: %+v", id, burst, r)
		}
		first[id] = string(r.Result)
	}
	for round := range 3 {
		for id, res := range first {
			if r := alarm(id); !r.OK || string(r.Result) != res {
				t.Fatalf("resend %d of %s: %+v, want the first result %s", round, id, r, res)
			}
		}
	}
	r := alarm("new")
	if time.Since(start) >= time.Minute {
		t.Skip("a minute passed: the bucket has refilled, so the refusal cannot be checked")
	}
	if r.OK || r.Code != broker.CodeRateLimited || r.RetryAfter < 1 || r.RetryAfter > 60 {
		t.Fatalf("a new alarm past the bucket: %+v, want rate_limited", r)
	}
	if byType := deviceAlarms(t, n, f.device); len(byType[monitoring.AlarmRedAlert]) != burst {
		t.Fatalf("alarms %v, want %d red alerts", byType, burst)
	}
}

// Nonsense rate limits are refused by Validate and Open, naming the field.
func TestRateLimit_ConfigRefused(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(*broker.Config)
		field string
	}{
		{"negative message rate", func(c *broker.Config) { c.MessagesPerMinute = -1 }, "MessagesPerMinute"},
		{"message rate too high", func(c *broker.Config) { c.MessagesPerMinute = broker.MaxMessagesPerMinute + 1 }, "MessagesPerMinute"},
		{"negative message burst", func(c *broker.Config) { c.MessageBurst = -5 }, "MessageBurst"},
		{"negative alarm rate", func(c *broker.Config) { c.AlarmsPerMinute = -1 }, "AlarmsPerMinute"},
		{"alarm rate above the message rate", func(c *broker.Config) { c.MessagesPerMinute, c.AlarmsPerMinute = 10, 11 }, "AlarmsPerMinute"},
		{"alarm burst above the message burst", func(c *broker.Config) { c.AlarmBurst = broker.DefaultMessageBurst + 1 }, "AlarmBurst"},
		{"negative flood quiet", func(c *broker.Config) { c.FloodQuiet = -time.Second }, "FloodQuiet"},
		{"flood quiet too short", func(c *broker.Config) { c.FloodQuiet = time.Millisecond }, "FloodQuiet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := broker.Config{TCPAddr: "127.0.0.1:0"}
			tc.edit(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("Validate: %v, want an error naming %s", err, tc.field)
			}
			b := broker.New(cfg, &fakeService{}, nil)
			if err := b.Open(t.Context()); err == nil || !strings.Contains(err.Error(), tc.field) {
				b.Close()
				t.Fatalf("Open: %v, want an error naming %s", err, tc.field)
			}
		})
	}
	if err := (broker.Config{}).Validate(); err != nil {
		t.Fatalf("the defaults: %v", err)
	}
}
