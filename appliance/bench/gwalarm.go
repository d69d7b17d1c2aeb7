package main

// Alarm latency through the gateway: k devices, spread over the three
// nodes' brokers, each publishing a test alarm QoS 1 and the next one as
// soon as the PUBACK arrives. The broker PUBACKs an alarm only once the
// cluster committed it (broker/DESIGN.md), so publish-to-PUBACK is what a
// worker waits for before the device can say "alarm received".
//
// Test alarms, because a device raising alarm after alarm is a repeat: each
// one joins the incident of the device's first open alarm (monitoring's
// incident linking, found by one index seek), and test alarms have no
// acknowledgement deadlines, so the leader's scheduler stays idle. Nor do
// they carry a location, so the nearby-alarm scan is skipped. A PUBACK
// counts only if the alarm's down/reply says ok.

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigilarc/vigil/broker"
)

const (
	// connectsInFlight is how many bench devices connect at once.
	connectsInFlight = 16
	// replyGrace is how long, after the measured time, the bench waits
	// for the replies of the last PUBACKed alarms.
	replyGrace = 5 * time.Second
	// alarmKeepAlive is the MQTT keep-alive of the alarm-raising devices.
	alarmKeepAlive = 60 * time.Second
)

// gwLoad is one level of the alarm latency measurement.
type gwLoad struct {
	loadResult // lat: publish to PUBACK of the alarms answered ok
	tag, where string
	refused    int // PUBACKed, but the reply was an error
	noReply    int // PUBACKed, but no reply arrived
	lost       int // no PUBACK: timed out or the connection dropped
}

// alarmDevice is one device raising alarms.
type alarmDevice struct {
	cred   credential
	broker string
	client paho.Client

	mu      sync.Mutex
	replies map[string]string // event_id -> "ok" or the error code

	// Written by the device's own goroutine only.
	sent []alarmSample
	lost int
}

type alarmSample struct {
	eventID string
	lat     time.Duration
}

func (d *alarmDevice) onMessage(_ paho.Client, m paho.Message) {
	if r, ok := parseReply(m); ok {
		d.mu.Lock()
		d.replies[r.EventID] = replyCode(r)
		d.mu.Unlock()
	}
}

func (d *alarmDevice) reply(eventID string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.replies[eventID]
}

// runAlarmLoad connects one device per credential, device i to
// l.brokers[i mod n], then has each raise alarms back to back for warmup
// plus dur; only alarms whose PUBACK arrives after the warm-up and before
// the end count. pids are the node processes, whose CPU time is measured.
func runAlarmLoad(ctx context.Context, l gwLevel, creds []credential, warmup, dur time.Duration, pids []int) (gwLoad, error) {
	k, brokers := len(creds), l.brokers
	devs := make([]*alarmDevice, k)
	defer func() {
		_ = forEach(context.WithoutCancel(ctx), k, 64, func(i int) error {
			if devs[i] != nil && devs[i].client != nil {
				devs[i].client.Disconnect(0)
			}
			return nil
		})
	}()
	res := gwLoad{tag: l.tag, where: l.where}
	res.name = fmt.Sprintf("test alarm QoS 1, publish to PUBACK, devices on %s, %s", l.where, dur)
	res.conc, res.elapsed = k, dur
	err := forEach(ctx, k, connectsInFlight, func(i int) error {
		d := &alarmDevice{cred: creds[i], broker: brokers[i%len(brokers)], replies: make(map[string]string)}
		c, err := dialDevice(d.cred, d.broker, alarmKeepAlive, d.onMessage, nil)
		if err != nil {
			return fmt.Errorf("device %s on %s: %w", d.cred.ID, d.broker, err)
		}
		d.client, devs[i] = c, d
		return nil
	})
	if err != nil {
		return res, err
	}

	from := time.Now().Add(warmup)
	end := from.Add(dur)
	var wg sync.WaitGroup
	wg.Go(func() { cpuWindow(ctx, pids, from, end, &res.cpu) })
	for _, d := range devs {
		wg.Go(func() { d.raise(ctx, l.tag, from, end) })
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return res, err
	}

	// The reply is published just before the PUBACK, but paho hands it to
	// the subscription in another goroutine: wait for the stragglers.
	answered := func() bool {
		for _, d := range devs {
			for _, s := range d.sent {
				if d.reply(s.eventID) == "" {
					return false
				}
			}
		}
		return true
	}
	if err := pollUntil(ctx, replyGrace, answered); err != nil && ctx.Err() != nil {
		return res, ctx.Err()
	}
	for _, d := range devs {
		res.lost += d.lost
		for _, s := range d.sent {
			switch d.reply(s.eventID) {
			case "ok":
				res.lat = append(res.lat, s.lat)
			case "":
				res.noReply++
			default:
				res.refused++
			}
		}
	}
	slices.Sort(res.lat)
	res.commits = len(res.lat)
	res.errors = res.refused + res.noReply + res.lost
	return res, nil
}

// raise publishes test alarms one after another until end. A publish that
// gets no PUBACK ends the device's run: the broker drops the connection
// when it cannot commit.
func (d *alarmDevice) raise(ctx context.Context, tag string, from, end time.Time) {
	topic := broker.UpTopic(d.cred.ID, "alarm")
	for seq := 1; ctx.Err() == nil; seq++ {
		t0 := time.Now()
		if !t0.Before(end) {
			return
		}
		id := fmt.Sprintf("a-%s-%d", tag, seq) // unique per device and run: a repeat would be de-duplicated
		err := waitFor(d.client.Publish(topic, 1, false, message(id, t0, map[string]any{"alarm_type": "test"})), publishTimeout)
		t1 := time.Now()
		if err != nil {
			if ctx.Err() == nil {
				d.lost++ // counted even in the warm-up: the device stops
			}
			return
		}
		if !t1.Before(from) && !t1.After(end) {
			d.sent = append(d.sent, alarmSample{eventID: id, lat: t1.Sub(t0)})
		}
	}
}
