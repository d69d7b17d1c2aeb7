package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// topicPrefix is device protocol v1's topic prefix.
const topicPrefix = "vigil/v1/d/"

// event is an outbox entry: its payload is made once, so every resend
// carries the same event_id and ts.
type event struct {
	id, typ  string
	payload  []byte
	attempts int
}

// device is one simulated device. Only its run goroutine touches it, but for
// the paho callbacks, which only use lost and the history.
type device struct {
	sim   *Simulator
	cfg   *Config
	cred  Credential
	rng   *rand.Rand
	start time.Time

	broker  int // index into cfg.Brokers
	client  paho.Client
	gen     int           // connection generation, to ignore stale losses
	lost    chan int      // generations whose connection was lost
	replied chan string   // event IDs whose down/reply arrived
	outbox  []*event      // oldest first; only the head is in flight
	seq     int           // last event number
	loc     location      // current position
	bat     int           // battery percent
	steps   []Step        // this device's scenario steps, in time order
	backoff time.Duration // wait before the next connection attempt

	session     string    // current session, "" when none
	sessions    int       // sessions started
	updates     []string  // this worker's Update messages
	nextSession time.Time // random mode: next session start or end
	sessionEnd  time.Time
	nextCheckIn time.Time
	nextAlarm   time.Time
	nextHB      time.Time
	nextLoc     time.Time
}

func newDevice(s *Simulator, i int, cred Credential, start time.Time) *device {
	rng := rngFor(s.cfg.Seed, i)
	p := places[i%len(places)]
	d := &device{
		sim: s, cfg: &s.cfg, cred: cred, rng: rng, start: start,
		broker:  i % len(s.cfg.Brokers),
		lost:    make(chan int, 4),
		replied: make(chan string, 64),
		loc:     wander(rng, location{Lat: p.lat, Lon: p.lon}),
		bat:     60 + rng.IntN(40),
		updates: roles[i%len(roles)].updates,
	}
	for _, st := range scenarioSteps(s.cfg.Scenario) {
		if st.Device == i+1 {
			d.steps = append(d.steps, st)
		}
	}
	// Spread the first telemetry over one interval.
	d.nextHB = start.Add(time.Duration(rng.Int64N(int64(s.cfg.HeartbeatInterval))))
	d.nextLoc = start.Add(time.Duration(rng.Int64N(int64(s.cfg.LocationInterval))))
	if s.cfg.Scenario == nil {
		d.nextSession = start.Add(d.expRand(s.cfg.SessionGap))
		d.nextAlarm = d.alarmAfter(start)
	}
	return d
}

// expRand returns an exponentially distributed duration with the given mean.
func (d *device) expRand(mean time.Duration) time.Duration {
	return time.Duration(d.rng.ExpFloat64() * float64(mean))
}

// alarmAfter returns when the next random alarm is due, or the zero time.
func (d *device) alarmAfter(t time.Time) time.Time {
	if d.cfg.AlarmRate <= 0 {
		return time.Time{}
	}
	return t.Add(d.expRand(time.Duration(float64(time.Hour) / d.cfg.AlarmRate)))
}

func (d *device) logf(level string, msg string, args ...any) {
	args = append([]any{"device", d.cred.DeviceID}, args...)
	if level == "warn" {
		d.sim.log.Warn(msg, args...)
		return
	}
	d.sim.log.Info(msg, args...)
}

// run is the device's life: act on its timers, keep the outbox flowing,
// and once runCtx ends drain the outbox until stopCtx ends. done is called
// once the scenario steps are all acked (at once without steps).
func (d *device) run(runCtx, stopCtx context.Context, done func()) {
	defer d.disconnect()
	signalled := false
	timer := time.NewTimer(0)
	defer timer.Stop()
	for runCtx.Err() == nil {
		if d.client == nil {
			d.connect(runCtx)
		}
		d.flush(stopCtx)
		if !signalled && len(d.steps) == 0 && len(d.outbox) == 0 {
			signalled = true
			done()
		}
		if d.client == nil {
			continue // the flush failed over: reconnect first
		}
		timer.Reset(time.Until(d.nextWake()))
		select {
		case <-runCtx.Done():
		case g := <-d.lost:
			if g == d.gen && d.client != nil {
				d.logf("warn", "connection lost", "broker", d.cfg.Brokers[d.broker])
				d.dropAndFailover()
			}
		case <-timer.C:
			d.act(time.Now())
		}
	}
	for len(d.outbox) > 0 && stopCtx.Err() == nil {
		if d.client == nil {
			d.connect(stopCtx)
		}
		d.flush(stopCtx)
	}
}

// nextWake is the earliest of the device's timers.
func (d *device) nextWake() time.Time {
	next := d.nextHB
	for _, t := range []time.Time{d.nextLoc, d.nextSession, d.nextCheckIn, d.sessionEnd, d.nextAlarm} {
		if !t.IsZero() && t.Before(next) {
			next = t
		}
	}
	if len(d.steps) > 0 {
		if t := d.start.Add(d.steps[0].At); t.Before(next) {
			next = t
		}
	}
	return next
}

// act does what is due at now.
func (d *device) act(now time.Time) {
	for len(d.steps) > 0 && !d.start.Add(d.steps[0].At).After(now) {
		d.step(d.steps[0])
		d.steps = d.steps[1:]
	}
	if !now.Before(d.nextHB) {
		d.heartbeat()
		d.nextHB = now.Add(d.cfg.HeartbeatInterval)
	}
	if !now.Before(d.nextLoc) {
		d.location()
		d.nextLoc = now.Add(d.cfg.LocationInterval)
	}
	if !d.nextAlarm.IsZero() && !now.Before(d.nextAlarm) {
		d.alarm(randomAlarmType(d.rng))
		d.nextAlarm = d.alarmAfter(now)
	}
	switch {
	case d.session == "" && !d.nextSession.IsZero() && !now.Before(d.nextSession):
		d.sessionStart(fmt.Sprintf("%dm", 30+15*d.rng.IntN(5)), "15m", d.updates[d.rng.IntN(len(d.updates))], "")
		d.nextSession = time.Time{}
		d.sessionEnd = now.Add(d.cfg.SessionLength/2 + d.expRand(d.cfg.SessionLength/2))
		d.nextCheckIn = now.Add(d.cfg.CheckInEvery)
	case d.session != "" && !d.sessionEnd.IsZero() && !now.Before(d.sessionEnd):
		d.sessionAction("session/end", d.cred.SafePIN, "", "")
		d.session, d.sessionEnd, d.nextCheckIn = "", time.Time{}, time.Time{}
		d.nextSession = now.Add(d.expRand(d.cfg.SessionGap))
	case d.session != "" && !d.nextCheckIn.IsZero() && !now.Before(d.nextCheckIn):
		d.sessionAction("session/checkin", d.cred.SafePIN, "", "")
		d.nextCheckIn = now.Add(d.cfg.CheckInEvery)
	}
}

// step runs one scenario step.
func (d *device) step(s Step) {
	switch s.Do {
	case DoSessionStart:
		d.sessionStart(s.Duration, s.CheckInInterval, s.Update, s.Session)
	case DoCheckIn:
		d.sessionAction("session/checkin", d.pin(s.PIN), s.Session, "")
	case DoExtend:
		d.sessionAction("session/extend", d.pin(s.PIN), s.Session, s.ExtendBy)
	case DoSessionEnd:
		d.sessionAction("session/end", d.pin(s.PIN), s.Session, "")
		if s.Session == "" || s.Session == d.session {
			d.session = ""
		}
	case DoAlarm:
		d.alarm(s.Type)
	case DoHeartbeat:
		d.heartbeat()
	case DoLocation:
		d.location()
	}
}

// pin turns a scenario pin (safe, duress, wrong or digits) into digits.
func (d *device) pin(p string) string {
	switch p {
	case "", "safe":
		return d.cred.SafePIN
	case "duress":
		return d.cred.DuressPIN
	case "wrong":
		for i := 0; ; i++ {
			w := fmt.Sprintf("%04d", i)
			if w != d.cred.SafePIN && w != d.cred.DuressPIN {
				return w
			}
		}
	}
	return p
}

// nextID returns a new event_id: o for outbox events, t for telemetry.
func (d *device) nextID(kind string) string {
	d.seq++
	return fmt.Sprintf("%s-%s-%06d", kind, d.sim.cfg.Run, d.seq)
}

func (d *device) sessionStart(duration, checkin, update, id string) {
	if id == "" {
		d.sessions++
		id = fmt.Sprintf("%s-%s-v%d", d.cred.DeviceID, d.sim.cfg.Run, d.sessions)
	}
	d.session = id
	loc := d.loc
	d.enqueue("session/start", map[string]any{"session_id": id, "duration": duration,
		"checkin_interval": checkin, "update": update, "location": loc})
}

func (d *device) sessionAction(typ, pin, session, extendBy string) {
	if session == "" {
		session = d.session
	}
	m := map[string]any{"session_id": session, "pin": pin}
	if extendBy != "" {
		m["extend_by"] = extendBy
	}
	d.enqueue(typ, m)
}

func (d *device) alarm(typ string) {
	d.loc = wander(d.rng, d.loc)
	d.enqueue("alarm", map[string]any{"alarm_type": typ, "location": d.loc})
}

// enqueue adds an event to the outbox. Empty strings are left out.
func (d *device) enqueue(typ string, fields map[string]any) {
	m := map[string]any{"event_id": d.nextID("o"), "ts": time.Now().UTC().Format(time.RFC3339)}
	for k, v := range fields {
		if s, ok := v.(string); ok && s == "" {
			continue
		}
		m[k] = v
	}
	b, _ := json.Marshal(m)
	d.outbox = append(d.outbox, &event{id: m["event_id"].(string), typ: typ, payload: b})
}

// heartbeat and location are telemetry: sent QoS 0 when connected, never
// queued behind the outbox.
func (d *device) heartbeat() {
	if d.rng.IntN(4) == 0 && d.bat > 5 {
		d.bat--
	}
	d.telemetry("heartbeat", map[string]any{"battery": d.bat, "firmware": "sim-1.0"})
}

func (d *device) location() {
	d.loc = wander(d.rng, d.loc)
	d.telemetry("location", map[string]any{"location": d.loc})
}

func (d *device) telemetry(typ string, m map[string]any) {
	if d.client == nil {
		return
	}
	m["event_id"], m["ts"] = d.nextID("t"), time.Now().UTC().Format(time.RFC3339)
	b, _ := json.Marshal(m)
	d.client.Publish(topicPrefix+d.cred.DeviceID+"/up/"+typ, 0, false, b)
	d.sim.telemetry.Add(1)
}

// flush sends the outbox, head first, each event once acked before the
// next. An event that is not PUBACKed within PublishTimeout, or whose
// connection drops, stays at the head: the device drops the connection and
// fails over, and the event is resent with the same event_id.
func (d *device) flush(ctx context.Context) {
	for len(d.outbox) > 0 && d.client != nil && ctx.Err() == nil {
		ev := d.outbox[0]
		ev.attempts++
		a := &Attempt{Device: d.cred.DeviceID, EventID: ev.id, Type: ev.typ, Attempt: ev.attempts,
			Broker: d.cfg.Brokers[d.broker], Sent: time.Now().UTC()}
		d.sim.history.begin(a)
		tok := d.client.Publish(topicPrefix+d.cred.DeviceID+"/up/"+ev.typ, 1, false, ev.payload)
		err := waitToken(ctx, tok, d.cfg.PublishTimeout)
		d.sim.history.end(a, time.Now().UTC(), errText(err))
		if err != nil {
			d.logf("warn", "event not acked; failing over", "event_id", ev.id, "type", ev.typ,
				"broker", a.Broker, "error", err)
			d.dropAndFailover()
			return
		}
		d.outbox = d.outbox[1:]
		d.awaitReply(ctx, ev.id)
	}
}

// awaitReply waits up to ReplyWait for the down/reply to event id. The
// broker sends it just before the PUBACK, but paho hands it to the
// subscription in another goroutine; waiting keeps the history's replies
// complete without making the reply part of the ack.
func (d *device) awaitReply(ctx context.Context, id string) {
	t := time.NewTimer(d.cfg.ReplyWait)
	defer t.Stop()
	for {
		select {
		case got := <-d.replied:
			if got == id {
				return
			}
		case <-t.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

var errPubackTimeout = errors.New("no PUBACK in time")

// waitToken waits for tok, at most timeout.
func waitToken(ctx context.Context, tok paho.Token, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-t.C:
		return errPubackTimeout
	case <-ctx.Done():
		return ctx.Err()
	}
}

// connect connects to the current broker, failing over to the next one
// after each failed attempt, until it succeeds or ctx ends.
func (d *device) connect(ctx context.Context) {
	for ctx.Err() == nil {
		if d.backoff > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(d.backoff):
			}
		}
		addr := d.cfg.Brokers[d.broker]
		err := d.dial(ctx, addr)
		if err == nil {
			d.backoff = 0
			d.logf("info", "connected", "broker", addr)
			return
		}
		d.logf("warn", "cannot connect", "broker", addr, "error", err)
		d.failover()
	}
}

// dial makes one connection attempt and subscribes to down/#.
func (d *device) dial(ctx context.Context, addr string) error {
	d.gen++
	gen, lost := d.gen, d.lost
	opts := paho.NewClientOptions().
		AddBroker("tcp://" + addr).
		SetClientID(d.cred.DeviceID).
		SetUsername(d.cred.DeviceID).
		SetPassword(d.cred.Secret).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(d.cfg.ConnectTimeout).
		SetKeepAlive(30 * time.Second).
		SetOrderMatters(false).
		SetConnectionLostHandler(func(paho.Client, error) {
			select {
			case lost <- gen:
			default:
			}
		})
	c := paho.NewClient(opts)
	if err := waitToken(ctx, c.Connect(), d.cfg.ConnectTimeout+time.Second); err != nil {
		c.Disconnect(0)
		return err
	}
	hist, dev, replied := d.sim.history, d.cred.DeviceID, d.replied
	sub := c.Subscribe(topicPrefix+dev+"/down/#", 1, func(_ paho.Client, m paho.Message) {
		if !strings.HasSuffix(m.Topic(), "/down/reply") {
			return
		}
		var r struct {
			EventID string `json:"event_id"`
			OK      bool   `json:"ok"`
			Code    string `json:"code"`
		}
		if json.Unmarshal(m.Payload(), &r) != nil || !strings.HasPrefix(r.EventID, "o-") {
			return // telemetry replies are not recorded
		}
		code := "ok"
		if !r.OK {
			code = r.Code
		}
		hist.reply(dev, r.EventID, code)
		select {
		case replied <- r.EventID:
		default:
		}
	})
	if err := waitToken(ctx, sub, d.cfg.ConnectTimeout); err != nil {
		c.Disconnect(0)
		return fmt.Errorf("cannot subscribe: %w", err)
	}
	d.client = c
	return nil
}

// dropAndFailover closes the connection and moves to the next broker.
func (d *device) dropAndFailover() {
	d.disconnect()
	d.failover()
}

// failover moves to the next broker and backs off, 100 ms doubling to 5 s,
// until the next successful connection.
func (d *device) failover() {
	if len(d.cfg.Brokers) > 1 {
		d.sim.failovers.Add(1)
	}
	d.broker = (d.broker + 1) % len(d.cfg.Brokers)
	switch {
	case d.backoff == 0:
		d.backoff = 100 * time.Millisecond
	default:
		d.backoff = time.Duration(math.Min(float64(2*d.backoff), float64(5*time.Second)))
	}
}

func (d *device) disconnect() {
	if d.client != nil {
		d.client.Disconnect(0)
		d.client = nil
	}
}
