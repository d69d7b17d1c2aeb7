package main

// The bench's own MQTT devices, for the two measurements the simulator's
// loops do not make: an alarm followed to the operator console (console.go)
// and alarms at a set rate, open loop (grow.go). They speak device protocol
// v1 as the simulator does: client ID and user name the device ID, the
// secret as password, alarms QoS 1 on up/alarm, replies on down/reply.

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigilarc/vigil/appliance/sim"
)

// topicPrefix is device protocol v1's.
const topicPrefix = "vigil/v1/d/"

// deviceReply is the part of a down/reply the bench reads.
type deviceReply struct {
	EventID string `json:"event_id"`
	OK      bool   `json:"ok"`
	Code    string `json:"code"`
	Result  struct {
		AlarmID string `json:"alarm_id"`
	} `json:"result"`
}

// benchDevice is one connected device.
type benchDevice struct {
	id     string
	client paho.Client
	lost   *atomic.Int64 // connections lost, shared by a fleet
}

// connectDevice connects cred's device to the broker at addr, over TLS
// with tlsCfg unless it is nil, and subscribes to its down/reply, handing
// each reply to onReply (which paho calls from its own goroutines); with
// onReply nil it subscribes to nothing. With reconnect set, paho
// reconnects a lost connection by itself.
func connectDevice(ctx context.Context, addr string, tlsCfg *tls.Config, cred sim.Credential, reconnect bool, lost *atomic.Int64, onReply func(deviceReply)) (*benchDevice, error) {
	scheme := "tcp://"
	if tlsCfg != nil {
		scheme = "ssl://"
	}
	opts := paho.NewClientOptions().
		AddBroker(scheme + addr).
		SetTLSConfig(tlsCfg).
		SetClientID(cred.DeviceID).
		SetUsername(cred.DeviceID).
		SetPassword(cred.Secret).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetAutoReconnect(reconnect).
		SetMaxReconnectInterval(5 * time.Second).
		SetConnectTimeout(deviceConnectTimeout).
		SetKeepAlive(alarmKeepAlive).
		SetOrderMatters(false).
		SetConnectionLostHandler(func(paho.Client, error) {
			if lost != nil {
				lost.Add(1)
			}
		})
	c := paho.NewClient(opts)
	if err := waitToken(ctx, c.Connect(), deviceConnectTimeout); err != nil {
		c.Disconnect(0)
		return nil, fmt.Errorf("device %s cannot connect to %s: %w", cred.DeviceID, addr, err)
	}
	d := &benchDevice{id: cred.DeviceID, client: c, lost: lost}
	if onReply != nil {
		sub := c.Subscribe(topicPrefix+cred.DeviceID+"/down/reply", 1, func(_ paho.Client, m paho.Message) {
			var r deviceReply
			if json.Unmarshal(m.Payload(), &r) == nil {
				onReply(r)
			}
		})
		if err := waitToken(ctx, sub, deviceConnectTimeout); err != nil {
			c.Disconnect(0)
			return nil, fmt.Errorf("device %s cannot subscribe on %s: %w", cred.DeviceID, addr, err)
		}
	}
	return d, nil
}

// publishAlarm publishes a test alarm QoS 1; the token completes with the
// PUBACK.
func (d *benchDevice) publishAlarm(eventID string) paho.Token {
	b, _ := json.Marshal(map[string]string{
		"event_id": eventID, "ts": time.Now().UTC().Format(time.RFC3339), "alarm_type": "test",
	})
	return d.client.Publish(topicPrefix+d.id+"/up/alarm", 1, false, b)
}

func (d *benchDevice) disconnect() { d.client.Disconnect(0) }

// waitToken waits for tok, at most timeout.
func waitToken(ctx context.Context, tok paho.Token, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-t.C:
		return fmt.Errorf("no answer within %s", timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}
