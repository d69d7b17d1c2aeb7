package broker_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/broker"
)

// fakeService is a broker.Service whose alarm path is set by the test.
// Only CheckDeviceSecret and RaiseAlarm are used; the rest refuse.
type fakeService struct {
	checkDeviceSecret func(deviceID, secret string) bool
	raiseAlarm        func(ctx context.Context, cmdID, actor string, req monitoring.RaiseAlarmRequest) (*monitoring.Alarm, error)
}

var _ broker.Service = (*fakeService)(nil)

var errNotInFake = errors.New("not in this fake")

func (f *fakeService) CheckDeviceSecret(deviceID, secret string) bool {
	return f.checkDeviceSecret(deviceID, secret)
}
func (f *fakeService) Device(string) (*monitoring.Device, error)   { return nil, errNotInFake }
func (f *fakeService) Session(string) (*monitoring.Session, error) { return nil, errNotInFake }
func (f *fakeService) DeviceView(string, time.Time) (*monitoring.DeviceView, error) {
	return nil, errNotInFake
}
func (f *fakeService) RaiseAlarm(ctx context.Context, cmdID, actor string, req monitoring.RaiseAlarmRequest) (*monitoring.Alarm, error) {
	return f.raiseAlarm(ctx, cmdID, actor, req)
}
func (f *fakeService) CancelAlarm(context.Context, string, string, string, string) (monitoring.CancelReply, error) {
	return monitoring.CancelReply{}, errNotInFake
}
func (f *fakeService) StartSession(context.Context, string, string, monitoring.StartSessionRequest) (*monitoring.Session, error) {
	return nil, errNotInFake
}
func (f *fakeService) CheckIn(context.Context, string, string, string, string) (monitoring.SessionReply, error) {
	return monitoring.SessionReply{}, errNotInFake
}
func (f *fakeService) Extend(context.Context, string, string, string, string, time.Duration) (monitoring.SessionReply, error) {
	return monitoring.SessionReply{}, errNotInFake
}
func (f *fakeService) EndSession(context.Context, string, string, string, string) (monitoring.SessionReply, error) {
	return monitoring.SessionReply{}, errNotInFake
}
func (f *fakeService) Subscribe(buffer int) *monitoring.Subscription {
	return monitoring.NewBus().Subscribe(buffer)
}
func (f *fakeService) RecordDeviceStatus(context.Context, string, string, []monitoring.DeviceStatus) (int, error) {
	return 0, errNotInFake
}

func (f *fakeService) MarkNodeDown(context.Context, string, string, string, time.Time, time.Time, string) (int, error) {
	return 0, errNotInFake
}

func (f *fakeService) ReportDeviceFlooding(context.Context, string, string, monitoring.DeviceFloodingRequest) (*monitoring.DeviceFloodingResult, error) {
	return nil, errNotInFake
}

// CommandApplied says no: the fake records nothing, so every alarm is new
// to the rate limits.
func (f *fakeService) CommandApplied(monitoring.CmdType, string) (bool, error) { return false, nil }

func (f *fakeService) OpenAlarms() ([]monitoring.Alarm, error) { return nil, nil }

func (f *fakeService) Organisation(string) (*monitoring.Organisation, error) {
	return nil, errNotInFake
}
func (f *fakeService) AnswerPrompt(context.Context, string, string, monitoring.PromptAnswerRequest) (*monitoring.DevicePrompt, error) {
	return nil, errNotInFake
}
func (f *fakeService) PostUpdate(context.Context, string, string, monitoring.PostUpdateRequest) (*monitoring.UpdateRecord, error) {
	return nil, errNotInFake
}

// Figures of the unavailable tests.
const (
	// fakeCommitTimeout is the broker's commit timeout in these tests:
	// short, so that the blocking case ends quickly.
	fakeCommitTimeout = 500 * time.Millisecond
	// fakeDevice and fakeSecret are the one device the fake knows.
	fakeDevice, fakeSecret = "dev-u", "s3cret"
	// waitTimeout bounds every wait for the broker, generous for a loaded
	// two-core machine.
	waitTimeout = 15 * time.Second
)

// alarmOutcome is what the fake's RaiseAlarm does while it fails.
type alarmOutcome struct {
	name string
	fail func(ctx context.Context) error
}

var failures = []alarmOutcome{
	{"no leader", func(context.Context) error { return fmt.Errorf("cannot apply: %w", monitoring.ErrNoLeader) }},
	{"commit blocks until the deadline", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }},
}

// flakyAlarms is a fake whose RaiseAlarm fails (as fail says) until
// succeed is set, and records the command IDs it was called with.
type flakyAlarms struct {
	svc     *fakeService
	succeed atomic.Bool
	mu      sync.Mutex
	cmdIDs  []string
}

func newFlakyAlarms(fail func(context.Context) error) *flakyAlarms {
	fa := &flakyAlarms{}
	fa.svc = &fakeService{
		checkDeviceSecret: func(id, secret string) bool { return id == fakeDevice && secret == fakeSecret },
		raiseAlarm: func(ctx context.Context, cmdID, _ string, req monitoring.RaiseAlarmRequest) (*monitoring.Alarm, error) {
			fa.mu.Lock()
			fa.cmdIDs = append(fa.cmdIDs, cmdID)
			fa.mu.Unlock()
			if !fa.succeed.Load() {
				return nil, fail(ctx)
			}
			return &monitoring.Alarm{ID: "alarm-1", DeviceID: req.DeviceID, Type: req.Type}, nil
		},
	}
	return fa
}

func (fa *flakyAlarms) calls() []string {
	fa.mu.Lock()
	defer fa.mu.Unlock()
	return append([]string(nil), fa.cmdIDs...)
}

// mustFakeBroker opens a gateway over svc on a free port.
func mustFakeBroker(t *testing.T, svc broker.Service) *broker.Broker {
	t.Helper()
	b := broker.New(broker.Config{TCPAddr: "127.0.0.1:0", NodeID: "n1", CommitTimeout: fakeCommitTimeout}, svc, nil)
	if err := b.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// An MQTT 3.1.1 alarm that the cluster does not commit gets no PUBACK and
// loses its connection; the device reconnects, resends the same event and
// gets its PUBACK, and the Service saw the same command ID both times.
func TestBroker_UnavailableNoPUBACKThenRetry(t *testing.T) {
	for _, tc := range failures {
		t.Run(tc.name, func(t *testing.T) {
			fa := newFlakyAlarms(tc.fail)
			b := mustFakeBroker(t, fa.svc)
			d := mustDevice(t, b.TCPAddr(), fakeDevice, fakeSecret)
			payload, _ := json.Marshal(map[string]any{"event_id": "ev-1", "ts": ts(), "alarm_type": "red_alert"})

			start := time.Now()
			tok := d.c.Publish(broker.UpTopic(fakeDevice, "alarm"), 1, false, payload)
			select {
			case err := <-d.lost:
				t.Logf("connection lost %s after the publish: %v", time.Since(start).Round(time.Millisecond), err)
			case <-time.After(waitTimeout):
				t.Fatal("the connection was kept after a failed commit")
			}
			// Clean session and no auto-reconnect: paho completes the
			// in-flight token with an error once the connection is lost.
			if !tok.WaitTimeout(waitTimeout) {
				t.Fatal("the publish token did not complete after the connection was lost")
			}
			if tok.Error() == nil {
				t.Fatal("the publish completed without error: the broker PUBACKed an uncommitted alarm")
			}
			select {
			case r := <-d.replies:
				t.Fatalf("a reply to an uncommitted alarm: %s", r)
			default:
			}
			if s := b.Stats(); s.Unavailable != 1 || s.Committed != 0 || s.ErrorReplies != 0 {
				t.Fatalf("stats after the failure: %+v", s)
			}

			fa.succeed.Store(true)
			d2 := mustDevice(t, b.TCPAddr(), fakeDevice, fakeSecret)
			d2.publish(fakeDevice, "alarm", payload)
			if r, raw := d2.reply(); !r.OK || r.EventID != "ev-1" || string(r.Result) != `{"alarm_id":"alarm-1"}` {
				t.Fatalf("reply to the resend: %s", raw)
			}
			want := "dev/" + fakeDevice + "/ev-1"
			if got := fa.calls(); len(got) != 2 || got[0] != want || got[1] != want {
				t.Fatalf("RaiseAlarm command IDs %q, want %q twice", got, want)
			}
			if s := b.Stats(); s.Unavailable != 1 || s.Committed != 1 {
				t.Fatalf("stats after the resend: %+v", s)
			}
		})
	}
}

// An MQTT 5 client (paho.mqtt.golang speaks only 3.1.1, so this one is
// raw packets) gets a DISCONNECT with 0x88 server unavailable and no
// PUBACK, as broker/DESIGN.md says; the resend is PUBACKed with success.
func TestBroker_UnavailableMQTT5Disconnect(t *testing.T) {
	for _, tc := range failures {
		t.Run(tc.name, func(t *testing.T) {
			fa := newFlakyAlarms(tc.fail)
			b := mustFakeBroker(t, fa.svc)
			payload, _ := json.Marshal(map[string]any{"event_id": "ev-5", "ts": ts(), "alarm_type": "man_down"})

			c := mustConnect5(t, b.TCPAddr())
			c.publish(t, 7, broker.UpTopic(fakeDevice, "alarm"), payload)
			var got []string
			for {
				fh, body, err := c.read()
				if err != nil {
					if !errors.Is(err, io.EOF) {
						t.Logf("read ended: %v", err)
					}
					break
				}
				switch fh.Type {
				case packets.Puback:
					t.Fatalf("PUBACK for an uncommitted alarm: % x", body)
				case packets.Disconnect:
					if len(body) == 0 || body[0] != packets.ErrServerUnavailable.Code {
						t.Fatalf("DISCONNECT % x, want reason 0x%02x", body, packets.ErrServerUnavailable.Code)
					}
				}
				got = append(got, packets.PacketNames[fh.Type])
			}
			if len(got) != 1 || got[0] != packets.PacketNames[packets.Disconnect] {
				t.Fatalf("after the publish the broker sent %v, want one DISCONNECT, then closed", got)
			}

			fa.succeed.Store(true)
			c = mustConnect5(t, b.TCPAddr())
			c.publish(t, 8, broker.UpTopic(fakeDevice, "alarm"), payload)
			fh, body, err := c.read()
			if err != nil || fh.Type != packets.Puback || len(body) < 2 || body[0] != 0 || body[1] != 8 ||
				(len(body) > 2 && body[2] != packets.CodeSuccess.Code) {
				t.Fatalf("reply to the resend: %s % x %v, want a successful PUBACK of packet 8", packets.PacketNames[fh.Type], body, err)
			}
			want := "dev/" + fakeDevice + "/ev-5"
			if got := fa.calls(); len(got) != 2 || got[0] != want || got[1] != want {
				t.Fatalf("RaiseAlarm command IDs %q, want %q twice", got, want)
			}
		})
	}
}

// conn5 is a bare MQTT 5 connection.
type conn5 struct {
	c net.Conn
	r *bufio.Reader
}

// mustConnect5 connects as the fake's device with MQTT 5, clean start.
func mustConnect5(t *testing.T, addr string) *conn5 {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &conn5{c: nc, r: bufio.NewReader(nc)}
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 5,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), ClientIdentifier: fakeDevice, Clean: true, Keepalive: 60,
			UsernameFlag: true, Username: []byte(fakeDevice), PasswordFlag: true, Password: []byte(fakeSecret)}}
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		t.Fatal(err)
	}
	c.write(t, buf.Bytes())
	fh, body, err := c.read()
	if err != nil || fh.Type != packets.Connack || len(body) < 2 || body[1] != packets.CodeSuccess.Code {
		t.Fatalf("CONNACK: %s % x %v", packets.PacketNames[fh.Type], body, err)
	}
	return c
}

func (c *conn5) write(t *testing.T, b []byte) {
	t.Helper()
	_ = c.c.SetWriteDeadline(time.Now().Add(waitTimeout))
	if _, err := c.c.Write(b); err != nil {
		t.Fatal(err)
	}
}

// publish sends a QoS 1 PUBLISH.
func (c *conn5) publish(t *testing.T, id uint16, topic string, payload []byte) {
	t.Helper()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, ProtocolVersion: 5,
		TopicName: topic, PacketID: id, Payload: payload}
	var buf bytes.Buffer
	if err := pk.PublishEncode(&buf); err != nil {
		t.Fatal(err)
	}
	c.write(t, buf.Bytes())
}

// read returns the next packet's fixed header and body, waiting at most
// waitTimeout.
func (c *conn5) read() (packets.FixedHeader, []byte, error) {
	var fh packets.FixedHeader
	_ = c.c.SetReadDeadline(time.Now().Add(waitTimeout))
	hb, err := c.r.ReadByte()
	if err != nil {
		return fh, nil, err
	}
	if err := fh.Decode(hb); err != nil {
		return fh, nil, err
	}
	n, shift := 0, 0
	for {
		b, err := c.r.ReadByte()
		if err != nil {
			return fh, nil, err
		}
		n |= int(b&0x7f) << shift
		if b&0x80 == 0 {
			break
		}
		shift += 7
	}
	body := make([]byte, n)
	_, err = io.ReadFull(c.r, body)
	return fh, body, err
}
