package broker

// Presence: the gateway reports each device connection it holds (connect,
// disconnect and why), named by this node and the time the connection was
// made; heartbeats and other telemetry carry the same connection. The
// reports go through the telemetry batches; the rules that order them
// across nodes are in appliance/monitoring/presence.go. See DESIGN.md,
// "Presence".

import (
	"context"
	"fmt"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/vigilarc/vigil/appliance/monitoring"
)

// conn is a device's connection on this node.
type conn struct {
	cl *mqtt.Client
	at time.Time // when it was established
}

// conns holds the device connections of this node, by device ID.
type conns struct {
	m sync.Map // string -> conn
}

// since returns when the device's connection here was made, or zero.
func (c *conns) since(device string) time.Time {
	if v, ok := c.m.Load(device); ok {
		return v.(conn).at
	}
	return time.Time{}
}

// presenceHook reports connects and disconnects.
type presenceHook struct {
	mqtt.HookBase
	b *Broker
}

var _ mqtt.Hook = (*presenceHook)(nil)

func (h *presenceHook) ID() string { return "vigil-presence" }

func (h *presenceHook) Provides(b byte) bool {
	return b == mqtt.OnSessionEstablished || b == mqtt.OnDisconnect
}

// OnSessionEstablished runs once the CONNACK is sent. A device that
// connects again to this node replaces its connection here (mochi has
// taken the old one over).
//
// A device whose CONNECT was still being checked when the broker began
// to close is dropped here: mochi's Close disconnects the clients it has
// registered and then waits for every connection, so one that registered
// just after would stay connected, its keepalives answered, and the close
// would wait for it for ever. The broker's context ends before mochi's
// Close begins, and mochi registers the client before this hook runs, so
// each such client is either seen by the Close or stops itself here.
func (h *presenceHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if cl.Net.Inline {
		return
	}
	if h.b.ctx.Err() != nil {
		cl.Stop(packets.ErrServerShuttingDown)
		return
	}
	device := string(cl.Properties.Username)
	now := time.Now().UTC()
	h.b.conns.m.Store(device, conn{cl: cl, at: now})
	up := true
	h.b.tel.add(monitoring.DeviceStatus{DeviceID: device, SeenAt: now, Connected: &up,
		Node: h.b.cfg.NodeID, ConnectedAt: now})
}

// OnDisconnect runs when a connection ends. The end of a connection that
// another connection of the device on this node has replaced is not
// reported: the newer connection speaks for the device.
func (h *presenceHook) OnDisconnect(cl *mqtt.Client, err error, _ bool) {
	if cl.Net.Inline {
		return
	}
	device := string(cl.Properties.Username)
	v, ok := h.b.conns.m.Load(device)
	if !ok || v.(conn).cl != cl || !h.b.conns.m.CompareAndDelete(device, v) {
		return
	}
	reason := monitoring.DisconnectLost
	switch {
	case h.b.ctx.Err() != nil:
		reason = monitoring.DisconnectNodeStop
	case err == nil:
		reason = monitoring.DisconnectClean
	}
	down := false
	h.b.tel.add(monitoring.DeviceStatus{DeviceID: device, SeenAt: time.Now().UTC(), Connected: &down,
		Node: h.b.cfg.NodeID, ConnectedAt: v.(conn).at, Reason: reason})
}

// markStale marks the devices the cluster still records on this node from
// before it opened as disconnected: it holds none of those connections, and
// its previous run, if it was killed, could not say so. It retries until
// the cluster takes the command or the broker closes.
func (b *Broker) markStale(opened time.Time) {
	defer close(b.staleDone)
	node := b.cfg.NodeID
	cmdID := fmt.Sprintf("node-start/%s/%d", node, opened.UnixNano())
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		ctx, cancel := context.WithTimeout(b.ctx, b.cfg.CommitTimeout)
		n, err := b.svc.MarkNodeDown(ctx, cmdID, "node:"+node, node, opened, opened, monitoring.DisconnectNodeDown)
		cancel()
		if err == nil {
			if n > 0 {
				b.logger.Info("devices recorded here before this start marked disconnected", "devices", n)
			}
			return
		}
		if isRefusal(err) {
			b.logger.Error("cannot mark the devices of this node's previous run", "error", err)
			return
		}
		select {
		case <-b.ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}
