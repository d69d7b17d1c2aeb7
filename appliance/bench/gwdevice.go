package main

// A bench device: a real paho MQTT 3.1.1 client that logs in as one
// provisioned device and subscribes to its down/ topics, as device protocol
// v1 asks (docs/device-protocol.md).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigilarc/vigil/broker"
)

const (
	// deviceConnectTimeout bounds one CONNECT and one SUBSCRIBE. The
	// CONNECT checks the secret with argon2id, and thousands of devices
	// connect at once on two shared CPUs.
	deviceConnectTimeout = 30 * time.Second
	// publishTimeout bounds the wait for one PUBACK; the broker gives up
	// on a commit after 5 s.
	publishTimeout = 30 * time.Second
)

var errNoAnswer = errors.New("no answer in time")

// dialDevice connects to the broker at addr as cred, with a clean session,
// and subscribes to the device's down/#. onMessage receives what Vigil
// sends to the device, in its own goroutine per message.
func dialDevice(cred credential, addr string, keepAlive time.Duration, onMessage paho.MessageHandler, onLost func(error)) (paho.Client, error) {
	opts := paho.NewClientOptions().
		AddBroker("tcp://" + addr).
		SetClientID(cred.ID).
		SetUsername(cred.ID).
		SetPassword(cred.Secret).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(deviceConnectTimeout).
		SetKeepAlive(keepAlive).
		SetOrderMatters(false)
	if onLost != nil {
		opts.SetConnectionLostHandler(func(_ paho.Client, err error) { onLost(err) })
	}
	c := paho.NewClient(opts)
	if err := waitFor(c.Connect(), deviceConnectTimeout); err != nil {
		c.Disconnect(0)
		return nil, fmt.Errorf("cannot connect: %w", err)
	}
	if err := waitFor(c.Subscribe(broker.TopicPrefix+cred.ID+"/down/#", 1, onMessage), deviceConnectTimeout); err != nil {
		c.Disconnect(0)
		return nil, fmt.Errorf("cannot subscribe to down/#: %w", err)
	}
	return c, nil
}

// waitFor waits up to timeout for tok and returns its error.
func waitFor(tok paho.Token, timeout time.Duration) error {
	if !tok.WaitTimeout(timeout) {
		return errNoAnswer
	}
	return tok.Error()
}

// parseReply decodes a message on down/reply; ok is false for any other
// topic or a payload that is not a reply.
func parseReply(m paho.Message) (broker.Reply, bool) {
	var r broker.Reply
	if !strings.HasSuffix(m.Topic(), "/down/reply") || json.Unmarshal(m.Payload(), &r) != nil {
		return r, false
	}
	return r, true
}

// replyCode is "ok" for a reply that says ok, else its error code.
func replyCode(r broker.Reply) string {
	if r.OK {
		return "ok"
	}
	if r.Code == "" {
		return "error"
	}
	return r.Code
}

// message returns a protocol v1 message: event_id, ts and fields.
func message(eventID string, at time.Time, fields map[string]any) []byte {
	m := map[string]any{"event_id": eventID, "ts": at.UTC().Format(time.RFC3339)}
	for k, v := range fields {
		m[k] = v
	}
	b, _ := json.Marshal(m)
	return b
}

// forEach calls fn(i) for every i below n, at most limit at a time, and
// returns the first error; after an error or the end of ctx it starts no
// more calls.
func forEach(ctx context.Context, n, limit int, fn func(i int) error) error {
	next := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	failed := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return first != nil
	}
	for range min(limit, n) {
		wg.Go(func() {
			for i := range next {
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	for i := 0; i < n && !failed() && ctx.Err() == nil; i++ {
		select {
		case next <- i:
		case <-ctx.Done():
		}
	}
	close(next)
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}
