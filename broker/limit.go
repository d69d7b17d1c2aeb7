package broker

// Per-device rate limits (DESIGN.md, "Rate limits"). Every message a device
// publishes draws a token from its message bucket; a message that can raise
// an alarm draws one more from its alarm bucket, unless it is the resend of
// an event already recorded. A message with no token is refused before any
// Raft command or PIN check: the device gets a rate_limited reply and the
// PUBACK. The first refusal of a flood reports it to the cluster once
// (monitoring.ReportDeviceFlooding); further refusals are only counted here.
// The buckets are per node: a device is connected to one node at a time.

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/vigilarc/vigil/appliance/monitoring"
)

// Defaults of the rate limits.
const (
	// DefaultMessagesPerMinute is the rate at which a device's message
	// bucket refills: 10 a second, 60 times the fastest heartbeat and
	// location an organisation may ask for (one each every 10 s) and ten
	// times the audio chunks of an alarm (one every second or two).
	DefaultMessagesPerMinute = 600
	// DefaultMessageBurst is the size of the message bucket: an outbox of
	// 100 messages resent at once after a failover goes through whole.
	DefaultMessageBurst = 100
	// DefaultAlarmsPerMinute is the rate at which a device's alarm bucket
	// refills: one every 3 s, as fast as a worker can hold the Red Alert
	// button for the seconds it takes, again and again.
	DefaultAlarmsPerMinute = 20
	// DefaultAlarmBurst is the size of the alarm bucket: 20 alarm messages
	// at once (a worker hammering a panic button, a check-in and an alarm
	// resent together) before the first refusal.
	DefaultAlarmBurst = 20
	// DefaultFloodQuiet is how long a device must go without a refusal
	// before its next refusal begins a new flood, reported again.
	DefaultFloodQuiet = 10 * time.Minute
)

// Bounds of the rate limits, checked by Validate.
const (
	MaxMessagesPerMinute = 60000 // 1,000 a second: beyond it the limit limits nothing
	MaxBurst             = 10000
	MinFloodQuiet        = time.Second
	MaxFloodQuiet        = 24 * time.Hour
)

// CodeRateLimited is the code of the reply to a message refused by the
// rate limits: it was not recorded; the device may send it again, with the
// same event_id, once Reply.RetryAfter seconds have passed.
const CodeRateLimited = "rate_limited"

// replyQueueWait bounds the wait for room in a device's outbound queue for
// a rate_limited reply (replyQueued).
const replyQueueWait = time.Second

// floodReportRetry is how long after a report the cluster did not take the
// next refusal may try again.
const floodReportRetry = time.Second

// raisesAlarm are the message types that can raise an alarm: an alarm, a
// session action or a cancel with the Duress PIN, a prompt answered
// "tapped". Each draws from the alarm bucket whatever the PIN, so a refusal
// says nothing about which PIN was entered. The value is the command the
// Service proposes for it, whose ID tells a resend (CommandApplied).
var raisesAlarm = map[string]monitoring.CmdType{
	TypeAlarm:          monitoring.CmdRaiseAlarm,
	TypeAlarmCancel:    monitoring.CmdCancelAlarm,
	TypeSessionCheckIn: monitoring.CmdSessionAction,
	TypeSessionExtend:  monitoring.CmdSessionAction,
	TypeSessionEnd:     monitoring.CmdSessionAction,
	TypePromptAnswer:   monitoring.CmdPromptAnswer,
}

// withLimitDefaults returns c with the defaults of its rate limits filled in.
func (c Config) withLimitDefaults() Config {
	if c.MessagesPerMinute == 0 {
		c.MessagesPerMinute = DefaultMessagesPerMinute
	}
	if c.MessageBurst == 0 {
		c.MessageBurst = DefaultMessageBurst
	}
	if c.AlarmsPerMinute == 0 {
		c.AlarmsPerMinute = DefaultAlarmsPerMinute
	}
	if c.AlarmBurst == 0 {
		c.AlarmBurst = DefaultAlarmBurst
	}
	if c.FloodQuiet == 0 {
		c.FloodQuiet = DefaultFloodQuiet
	}
	return c
}

// validateLimits returns a problem with c's rate limits, naming the field:
// one out of its bounds, or an alarm limit looser than the message limit
// (every alarm message is a message too, so it would limit nothing).
func (c Config) validateLimits() error {
	c = c.withLimitDefaults()
	switch {
	case c.MessagesPerMinute < 1 || c.MessagesPerMinute > MaxMessagesPerMinute:
		return fmt.Errorf("broker: MessagesPerMinute %d must be from 1 to %d", c.MessagesPerMinute, MaxMessagesPerMinute)
	case c.MessageBurst < 1 || c.MessageBurst > MaxBurst:
		return fmt.Errorf("broker: MessageBurst %d must be from 1 to %d", c.MessageBurst, MaxBurst)
	case c.AlarmsPerMinute < 1 || c.AlarmsPerMinute > c.MessagesPerMinute:
		return fmt.Errorf("broker: AlarmsPerMinute %d must be from 1 to MessagesPerMinute (%d)", c.AlarmsPerMinute, c.MessagesPerMinute)
	case c.AlarmBurst < 1 || c.AlarmBurst > c.MessageBurst:
		return fmt.Errorf("broker: AlarmBurst %d must be from 1 to MessageBurst (%d)", c.AlarmBurst, c.MessageBurst)
	case c.FloodQuiet < MinFloodQuiet || c.FloodQuiet > MaxFloodQuiet:
		return fmt.Errorf("broker: FloodQuiet %s must be from %s to %s", c.FloodQuiet, MinFloodQuiet, MaxFloodQuiet)
	}
	return nil
}

// bucket is a token bucket. A new one is full.
type bucket struct {
	tokens float64
	at     time.Time // when tokens was last brought up to date
}

// refill brings b up to date at now: it gains perSecond tokens a second,
// up to burst.
func (b *bucket) refill(now time.Time, perSecond float64, burst int) {
	if d := now.Sub(b.at).Seconds(); d > 0 {
		b.tokens = math.Min(float64(burst), b.tokens+d*perSecond)
		b.at = now
	}
}

// take takes a token at now if there is one; else it says how long until
// there is.
func (b *bucket) take(now time.Time, perSecond float64, burst int) (bool, time.Duration) {
	b.refill(now, perSecond, burst)
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / perSecond * float64(time.Second))
}

// full reports whether b would be full at now.
func (b *bucket) full(now time.Time, perSecond float64, burst int) bool {
	return b.tokens+now.Sub(b.at).Seconds()*perSecond >= float64(burst)
}

// deviceRate is a device's buckets and its flood in progress, if any.
type deviceRate struct {
	msgs, alarms bucket
	// The flood: from its first refusal until the device has gone
	// DefaultFloodQuiet without one.
	since, last time.Time
	refused     int    // in this flood
	limit       string // the limit of its first refusal: monitoring.FloodLimit*
	reported    bool   // its DeviceFlooding command committed
	reporting   bool   // a report is in flight
	retryAt     time.Time
}

// floodReport is a flood to report to the cluster.
type floodReport struct {
	since   time.Time
	refused int
	limit   string
}

// verdict is the limiter's answer for one message.
type verdict struct {
	ok         bool
	limit      string        // on refusal: which bucket was empty
	retryAfter time.Duration // on refusal: until the bucket has a token
	report     *floodReport  // on refusal: report this flood, then call reported
}

// limiter holds the rate limits of the devices publishing to this node.
type limiter struct {
	msgRate, alarmRate   float64 // tokens a second
	msgBurst, alarmBurst int
	quiet                time.Duration
	logger               *slog.Logger

	mu        sync.Mutex
	devices   map[string]*deviceRate
	nextSweep time.Time

	refused atomic.Uint64 // messages refused
	begun   atomic.Uint64 // floods begun
}

func newLimiter(cfg Config, logger *slog.Logger) *limiter {
	return &limiter{
		msgRate: float64(cfg.MessagesPerMinute) / 60, msgBurst: cfg.MessageBurst,
		alarmRate: float64(cfg.AlarmsPerMinute) / 60, alarmBurst: cfg.AlarmBurst,
		quiet: cfg.FloodQuiet, logger: logger, devices: make(map[string]*deviceRate),
	}
}

// admit draws a token for a message of device at now: from the alarm
// bucket when alarm is set, else from the message bucket. A refusal is
// counted in the device's flood.
func (l *limiter) admit(device string, alarm bool, now time.Time) verdict {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	d := l.devices[device]
	if d == nil {
		d = &deviceRate{msgs: bucket{tokens: float64(l.msgBurst), at: now},
			alarms: bucket{tokens: float64(l.alarmBurst), at: now}}
		l.devices[device] = d
	}
	b, perSecond, burst, limit := &d.msgs, l.msgRate, l.msgBurst, monitoring.FloodLimitMessages
	if alarm {
		b, perSecond, burst, limit = &d.alarms, l.alarmRate, l.alarmBurst, monitoring.FloodLimitAlarms
	}
	ok, wait := b.take(now, perSecond, burst)
	if ok {
		return verdict{ok: true}
	}
	l.refused.Add(1)
	if d.since.IsZero() || now.Sub(d.last) >= l.quiet {
		d.since, d.refused, d.limit, d.reported, d.retryAt = now, 0, limit, false, time.Time{}
		l.begun.Add(1)
		l.logger.Warn("device flooding: refusing its messages over the rate limit",
			"device", device, "limit", limit)
	}
	d.refused++
	d.last = now
	v := verdict{limit: limit, retryAfter: wait}
	if !d.reported && !d.reporting && !now.Before(d.retryAt) {
		d.reporting = true
		v.report = &floodReport{since: d.since, refused: d.refused, limit: d.limit}
	}
	return v
}

// reported records the outcome of the report of device's flood that
// began at since: a success ends the reports of that flood, a failure
// lets a refusal a little later try again.
func (l *limiter) reported(device string, since time.Time, err error, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := l.devices[device]
	if d == nil {
		return
	}
	d.reporting = false
	if !d.since.Equal(since) {
		return
	}
	if err == nil {
		d.reported = true
		return
	}
	d.retryAt = now.Add(floodReportRetry)
}

// sweep forgets, once a minute, the devices whose buckets are full and
// whose flood, if any, is over: they are as good as new. A device that
// reconnects keeps its buckets until then. Called with l.mu held.
func (l *limiter) sweep(now time.Time) {
	if now.Before(l.nextSweep) {
		return
	}
	l.nextSweep = now.Add(time.Minute)
	for id, d := range l.devices {
		if d.reporting || !d.msgs.full(now, l.msgRate, l.msgBurst) || !d.alarms.full(now, l.alarmRate, l.alarmBurst) {
			continue
		}
		if !d.since.IsZero() {
			if now.Sub(d.last) < l.quiet {
				continue
			}
			l.logger.Info("device flood over", "device", id, "since", d.since, "until", d.last, "refused", d.refused)
		}
		delete(l.devices, id)
	}
}

// Flood is a device's flood in progress on this node.
type Flood struct {
	DeviceID string
	Limit    string    // the limit that refused first: monitoring.FloodLimitMessages or FloodLimitAlarms
	Since    time.Time // the first refusal
	Last     time.Time // the latest refusal
	Refused  int       // messages refused since Since
	Reported bool      // the operators have been told (a device-flooding alarm)
}

// inProgress returns the floods in progress at now.
func (l *limiter) inProgress(now time.Time) []Flood {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Flood
	for id, d := range l.devices {
		if d.since.IsZero() || now.Sub(d.last) >= l.quiet {
			continue
		}
		out = append(out, Flood{DeviceID: id, Limit: d.limit, Since: d.since, Last: d.last, Refused: d.refused, Reported: d.reported})
	}
	return out
}

// rateLimit applies device's rate limits to msg, the decoding of a
// message from cl (decErr: the decoder's error, if any). It returns
// refused false when the message may go on. Else it has reported the flood
// to the cluster if it begins here, and answered with a rate_limited
// reply; told says whether the reply was queued to the device.
func (b *Broker) rateLimit(cl *mqtt.Client, device string, msg Message, decErr error) (refused, told bool) {
	now := time.Now()
	v := b.limits.admit(device, false, now)
	if t, ok := raisesAlarm[msg.Type]; ok && v.ok && decErr == nil && !b.resent(t, device, msg.EventID) {
		v = b.limits.admit(device, true, now)
	}
	if v.ok {
		return false, false
	}
	if v.report != nil {
		b.reportFlood(device, v.report)
	}
	secs := int(math.Ceil(v.retryAfter.Seconds()))
	if secs < 1 {
		secs = 1
	}
	r := Reply{EventID: msg.EventID, Type: msg.Type, Code: CodeRateLimited, RetryAfter: secs,
		Error: fmt.Sprintf("this device sent %s faster than its limit: this one was not recorded; send it again, with the same event_id, in %d s", b.limitText(v.limit), secs)}
	return true, b.replyQueued(cl, device, r)
}

// replyQueued publishes r on the device's down/reply and reports whether
// mochi queued it. A device that publishes faster than its replies are
// written finds its outbound queue (DefaultWritesPending) full: the reply
// is published again, after a pause doubling from 1 ms, for up to
// replyQueueWait. The pauses hold the device's own read loop, and no
// other: a flooding device is slowed to the pace at which it takes its
// replies.
func (b *Broker) replyQueued(cl *mqtt.Client, device string, r Reply) bool {
	out, err := json.Marshal(r)
	if err != nil {
		b.logger.Error("cannot encode reply", "error", err)
		return false
	}
	dropped := new(atomic.Bool)
	b.replyWatch.Store(cl, dropped)
	defer b.replyWatch.Delete(cl)
	deadline := time.Now().Add(replyQueueWait)
	for pause := time.Millisecond; ; pause *= 2 {
		dropped.Store(false)
		b.publish(device, "reply", out)
		if !dropped.Load() {
			return true
		}
		if time.Now().Add(pause).After(deadline) {
			return false
		}
		select {
		case <-b.ctx.Done():
			return false
		case <-time.After(pause):
		}
	}
}

// limitText describes a rate limit for people.
func (b *Broker) limitText(limit string) string {
	if limit == monitoring.FloodLimitAlarms {
		return fmt.Sprintf("messages that can raise an alarm (%d a minute after %d at once)", b.cfg.AlarmsPerMinute, b.cfg.AlarmBurst)
	}
	return fmt.Sprintf("messages (%d a minute after %d at once)", b.cfg.MessagesPerMinute, b.cfg.MessageBurst)
}

// resent reports whether this node has recorded the device's event
// eventID already, as a command of type t: a resend, which raises no new
// alarm. In doubt it says no.
func (b *Broker) resent(t monitoring.CmdType, device, eventID string) bool {
	applied, err := b.svc.CommandApplied(t, "dev/"+device+"/"+eventID)
	return err == nil && applied
}

// reportFlood tells the cluster that device is flooding (one
// DeviceFlooding command per flood, named by the node and the time of its
// first refusal so that a retry records it once), and the limiter how it
// went. It runs in the device's read loop: the flooding device waits for
// the commit, no other does.
func (b *Broker) reportFlood(device string, f *floodReport) {
	ctx, cancel := context.WithTimeout(b.ctx, b.cfg.CommitTimeout)
	defer cancel()
	cmdID := fmt.Sprintf("flood/%s/%s/%d", device, b.cfg.NodeID, f.since.UnixNano())
	res, err := b.svc.ReportDeviceFlooding(ctx, cmdID, "system", monitoring.DeviceFloodingRequest{
		DeviceID: device, Limit: f.limit, Since: f.since, Refused: f.refused})
	b.limits.reported(device, f.since, err, time.Now())
	if err != nil {
		b.logger.Warn("cannot report a device flood to the cluster; trying again at a later refusal", "device", device, "error", err)
		return
	}
	b.stats.floodReports.Add(1)
	b.logger.Warn("device flooding reported to the operators", "device", device, "alarm_id", res.AlarmID, "raised", res.Raised)
}
