package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
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

// device is one simulated device. Only its goroutine touches it, but for
// the paho callbacks, which only use lost, replied, the history and the
// counters. An idle device holds little beyond its paho client: thousands
// run in one process.
type device struct {
	sim   *Simulator
	cfg   *Config
	cred  Credential
	rng   *rand.Rand
	start time.Time

	broker     int // index into cfg.Brokers
	client     paho.Client
	connBroker int         // the broker client is connected to
	gen        int         // connection generation, to ignore stale losses
	conns      int         // connections made
	lost       chan int    // generations whose connection was lost
	replied    chan string // event IDs whose down/reply arrived; nil when never awaited
	// alarmIDs maps the event IDs of alarms to the alarm IDs their
	// replies gave, for the resets (ResetShare); the paho callback fills
	// it, under mu.
	mu       sync.Mutex
	alarmIDs map[string]string
	resets   []reset       // alarms the worker will reset, soonest first
	outbox   []*event      // oldest first; only the head is in flight
	seq      int           // last event number
	loc      location      // current position
	bat      int           // battery percent
	steps    []Step        // this device's scenario steps, in time order
	backoff  time.Duration // wait before the next connection attempt

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

// reset is an alarm the simulated worker resets with the Safe PIN at at:
// an accidental press noticed, or a situation that calmed down.
type reset struct {
	event string // the alarm's event_id
	at    time.Time
	tries int
}

// resetRetry is how long a reset waits for its alarm's reply to come, and
// resetTries how many times.
const (
	resetRetry = 5 * time.Second
	resetTries = 6
)

func newDevice(s *Simulator, i int, cred Credential, start time.Time) *device {
	rng := rngFor(s.cfg.Seed, i)
	p := places[i%len(places)]
	d := &device{
		sim: s, cfg: &s.cfg, cred: cred, rng: rng, start: start,
		broker:  i % len(s.cfg.Brokers),
		lost:    make(chan int, 4),
		loc:     wander(rng, location{Lat: p.lat, Lon: p.lon}),
		bat:     60 + rng.IntN(40),
		updates: roles[i%len(roles)].updates,
	}
	mode := s.cfg.mode()
	if mode == ModeRandom && s.cfg.ReplyWait > 0 {
		d.replied = make(chan string, 8)
	}
	for _, st := range scenarioSteps(s.cfg.Scenario) {
		if st.Device == i+1 {
			d.steps = append(d.steps, st)
		}
	}
	// The first heartbeat goes on connecting; spread the first location
	// fix over one interval.
	if s.cfg.LocationInterval > 0 {
		d.nextLoc = start.Add(time.Duration(rng.Int64N(int64(s.cfg.LocationInterval))))
	}
	if mode == ModeRandom && s.cfg.Scenario == nil {
		d.nextSession = start.Add(d.expRand(s.cfg.SessionGap))
		d.nextAlarm = d.alarmAfter(start)
	}
	return d
}

// positioned reports whether the device knows where it is: only if it
// sends location fixes.
func (d *device) positioned() bool { return d.cfg.LocationInterval > 0 }

// due reports whether timer t is set and has passed at now.
func due(t, now time.Time) bool { return !t.IsZero() && !now.Before(t) }

// heartbeatGap returns the time to the next heartbeat.
func (d *device) heartbeatGap() time.Duration {
	gap := d.cfg.HeartbeatInterval
	if j := d.cfg.HeartbeatJitter; j > 0 {
		gap += time.Duration(d.rng.Int64N(int64(j) + 1))
	}
	return gap
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

// run is the device's life until runCtx ends: act on its timers and keep
// the outbox flowing, or, in ModeAlarms, loop. Then it drains the outbox
// until stopCtx ends. done is called once the scenario steps are all acked
// (at once without steps). The device is still connected when run returns.
func (d *device) run(runCtx, stopCtx context.Context, done func()) {
	if d.cfg.mode() == ModeAlarms {
		d.loop(runCtx, stopCtx)
	} else {
		d.live(runCtx, stopCtx, done)
	}
	for len(d.outbox) > 0 && stopCtx.Err() == nil {
		if d.client == nil {
			d.connect(stopCtx)
		}
		d.flush(stopCtx)
	}
}

// live runs the device's timers (ModeRandom and ModeIdle).
func (d *device) live(runCtx, stopCtx context.Context, done func()) {
	signalled := false
	timer := time.NewTimer(time.Hour)
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
		var wake <-chan time.Time // none: an idle device with no telemetry
		if next := d.nextWake(); !next.IsZero() {
			timer.Reset(time.Until(next))
			wake = timer.C
		}
		select {
		case <-runCtx.Done():
		case g := <-d.lost:
			d.lostConnection(g)
		case <-wake:
			d.act(time.Now())
		}
	}
}

// loop is ModeAlarms: once every device has connected, raise an alarm,
// wait for its PUBACK, raise the next. A device that fails over resends
// its alarm first. It does not wait for replies, so that a missing one
// cannot stall it; they are recorded as they arrive.
func (d *device) loop(runCtx, stopCtx context.Context) {
	for runCtx.Err() == nil {
		if d.client == nil {
			d.connect(runCtx)
			continue
		}
		select {
		case <-d.sim.allConnected:
		case <-runCtx.Done():
			return
		case g := <-d.lost:
			d.lostConnection(g)
			continue
		}
		if len(d.outbox) == 0 {
			d.alarm(d.cfg.alarmType(d.rng))
		}
		d.flush(stopCtx)
		d.act(time.Now()) // telemetry, if any is due
	}
}

// lostConnection handles paho's notice that connection generation g
// dropped: a stale notice, of a connection already replaced, is ignored.
func (d *device) lostConnection(g int) {
	if g == d.gen && d.client != nil {
		d.logf("warn", "connection lost", "broker", d.cfg.Brokers[d.connBroker])
		d.dropAndFailover()
	}
}

// nextWake is the earliest of the device's timers, or the zero time if
// none is set.
func (d *device) nextWake() time.Time {
	var next time.Time
	var nextReset time.Time
	if len(d.resets) > 0 {
		nextReset = d.resets[0].at
	}
	for _, t := range []time.Time{d.nextHB, d.nextLoc, d.nextSession, d.nextCheckIn, d.sessionEnd, d.nextAlarm, nextReset} {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if len(d.steps) > 0 {
		if t := d.start.Add(d.steps[0].At); next.IsZero() || t.Before(next) {
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
	if due(d.nextHB, now) {
		d.heartbeat()
		d.nextHB = now.Add(d.heartbeatGap())
	}
	if due(d.nextLoc, now) {
		d.location()
		d.nextLoc = now.Add(d.cfg.LocationInterval)
	}
	if due(d.nextAlarm, now) {
		typ := d.cfg.alarmType(d.rng)
		id := d.alarm(typ)
		d.nextAlarm = d.alarmAfter(now)
		if (typ == "red_alert" || typ == "man_down") && d.cfg.ResetShare > 0 && d.rng.Float64() < d.cfg.ResetShare {
			d.mu.Lock()
			if d.alarmIDs == nil {
				d.alarmIDs = map[string]string{}
			}
			d.alarmIDs[id] = "" // the reply fills it in
			d.mu.Unlock()
			d.addReset(reset{event: id, at: now.Add(d.cfg.ResetAfter/2 + d.expRand(d.cfg.ResetAfter/2))})
		}
	}
	for len(d.resets) > 0 && due(d.resets[0].at, now) {
		r := d.resets[0]
		d.resets = d.resets[1:]
		d.mu.Lock()
		alarm := d.alarmIDs[r.event]
		if alarm != "" || r.tries >= resetTries {
			delete(d.alarmIDs, r.event)
		}
		d.mu.Unlock()
		switch {
		case alarm != "":
			d.enqueue("alarm/cancel", map[string]any{"alarm_id": alarm, "pin": d.cred.SafePIN})
		case r.tries < resetTries: // no reply yet: the alarm is still in the outbox
			r.tries++
			r.at = now.Add(resetRetry)
			d.addReset(r)
		}
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
	m := map[string]any{"session_id": id, "duration": duration, "checkin_interval": checkin, "update": update}
	if d.positioned() {
		m["location"] = d.loc
	}
	d.enqueue("session/start", m)
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

// alarm raises an alarm of type typ and returns its event_id.
func (d *device) alarm(typ string) string {
	m := map[string]any{"alarm_type": typ}
	if d.positioned() {
		d.loc = wander(d.rng, d.loc)
		m["location"] = d.loc
	}
	return d.enqueue("alarm", m)
}

// addReset schedules r, keeping the resets soonest first.
func (d *device) addReset(r reset) {
	i := sort.Search(len(d.resets), func(i int) bool { return d.resets[i].at.After(r.at) })
	d.resets = slices.Insert(d.resets, i, r)
}

// enqueue adds an event to the outbox and returns its event_id. Empty
// strings are left out.
func (d *device) enqueue(typ string, fields map[string]any) string {
	m := map[string]any{"event_id": d.nextID("o"), "ts": time.Now().UTC().Format(time.RFC3339)}
	for k, v := range fields {
		if s, ok := v.(string); ok && s == "" {
			continue
		}
		m[k] = v
	}
	b, _ := json.Marshal(m)
	d.outbox = append(d.outbox, &event{id: m["event_id"].(string), typ: typ, payload: b})
	return m["event_id"].(string)
}

// heartbeat and location are telemetry: sent at TelemetryQoS when
// connected, never queued behind the outbox.
func (d *device) heartbeat() {
	if d.rng.IntN(4) == 0 && d.bat > 5 {
		d.bat--
	}
	if d.telemetry("heartbeat", map[string]any{"battery": d.bat, "firmware": "sim-1.0"}) {
		d.sim.ctr.heartbeats.Add(1)
	}
}

func (d *device) location() {
	d.loc = wander(d.rng, d.loc)
	if d.telemetry("location", map[string]any{"location": d.loc}) {
		d.sim.ctr.locations.Add(1)
	}
}

// telemetry publishes m and reports whether it did (not when offline). At
// QoS 1 a short-lived goroutine counts the PUBACK, so the device never
// waits for it.
func (d *device) telemetry(typ string, m map[string]any) bool {
	if d.client == nil {
		return false
	}
	m["event_id"], m["ts"] = d.nextID("t"), time.Now().UTC().Format(time.RFC3339)
	b, _ := json.Marshal(m)
	tok := d.client.Publish(topicPrefix+d.cred.DeviceID+"/up/"+typ, d.cfg.TelemetryQoS, false, b)
	if d.cfg.TelemetryQoS > 0 {
		ctr, timeout := &d.sim.ctr, d.cfg.PublishTimeout
		d.sim.pubacks.Go(func() {
			if waitToken(context.Background(), tok, timeout) == nil {
				ctr.telemetryAcked.Add(1)
			} else {
				ctr.telemetryUnacked.Add(1)
			}
		})
	}
	return true
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
		d.sim.ctr.sent.Add(1)
		tok := d.client.Publish(topicPrefix+d.cred.DeviceID+"/up/"+ev.typ, 1, false, ev.payload)
		err := waitToken(ctx, tok, d.cfg.PublishTimeout)
		d.sim.history.end(a, time.Now().UTC(), errText(err))
		if err != nil {
			d.logf("warn", "event not acked; failing over", "event_id", ev.id, "type", ev.typ,
				"broker", a.Broker, "error", err)
			d.dropAndFailover()
			return
		}
		d.sim.ctr.acked.Add(1)
		d.outbox = d.outbox[1:]
		d.awaitReply(ctx, ev.id)
	}
}

// awaitReply waits up to ReplyWait for the down/reply to event id. The
// broker sends it just before the PUBACK, but paho hands it to the
// subscription in another goroutine; waiting keeps the history's replies
// complete without making the reply part of the ack.
func (d *device) awaitReply(ctx context.Context, id string) {
	if d.replied == nil {
		return
	}
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
// after each failed attempt, until it succeeds or ctx ends. A heartbeat
// follows each connection at once.
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
		err := d.dialInTurn(ctx, addr)
		if err == nil {
			d.backoff = 0
			d.connBroker = d.broker
			d.sim.noteConnect(d.broker, d.conns == 0)
			d.conns++
			if d.cfg.HeartbeatInterval > 0 {
				d.nextHB = time.Now()
			}
			d.logf("info", "connected", "broker", addr)
			return
		}
		if ctx.Err() != nil {
			return
		}
		d.sim.ctr.connectErrors.Add(1)
		d.logf("warn", "cannot connect", "broker", addr, "error", err)
		d.failover()
	}
}

// dialInTurn dials once a connection slot is free (ConnectsInFlight).
func (d *device) dialInTurn(ctx context.Context, addr string) error {
	if slots := d.sim.connectSlots; slots != nil {
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return d.dial(ctx, addr)
}

// dial makes one connection attempt and subscribes to down/#.
func (d *device) dial(ctx context.Context, addr string) error {
	d.gen++
	gen, lost, ctr := d.gen, d.lost, &d.sim.ctr
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
		SetKeepAlive(d.cfg.KeepAlive).
		SetOrderMatters(false).
		SetConnectionLostHandler(func(paho.Client, error) {
			ctr.lost.Add(1)
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
			Type    string `json:"type"`
			OK      bool   `json:"ok"`
			Code    string `json:"code"`
			Result  struct {
				AlarmID string `json:"alarm_id"`
			} `json:"result"`
		}
		if json.Unmarshal(m.Payload(), &r) != nil {
			return
		}
		if strings.HasPrefix(r.EventID, "t-") { // telemetry: counted, not recorded
			if r.OK {
				ctr.telemetryOK.Add(1)
			} else {
				ctr.telemetryRefused.Add(1)
			}
			return
		}
		if !strings.HasPrefix(r.EventID, "o-") {
			return
		}
		code := "ok"
		if !r.OK {
			code = r.Code
		}
		hist.reply(dev, r.EventID, code)
		if r.OK && r.Type == "alarm" && r.Result.AlarmID != "" {
			d.mu.Lock()
			if _, wanted := d.alarmIDs[r.EventID]; wanted { // an alarm to reset
				d.alarmIDs[r.EventID] = r.Result.AlarmID
			}
			d.mu.Unlock()
		}
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
		d.sim.ctr.failovers.Add(1)
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
		d.sim.ctr.connected[d.connBroker].Add(-1)
	}
}
