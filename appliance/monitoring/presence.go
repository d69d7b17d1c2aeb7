package monitoring

// Presence: whether each device is connected, through which node, since
// when, and why its last connection ended.
//
// Every node's gateway reports the connections it holds: a connect, the
// messages that arrive over a connection (each says it is still up), and a
// disconnect, each naming the node and the time the connection was made.
// Reports from different nodes reach the log in any order, and a node only
// learns late that a device it held has gone (a keepalive timeout), so the
// rules are about connections, not about arrival order:
//
//   - the newest connection wins: a report of a connection made before the
//     one recorded is ignored;
//   - a disconnect counts only for the connection recorded: one from a node
//     the device has already left is ignored.
//
// A node that stops answering cannot report its disconnects. The leader
// then proposes NodeDown for it (Scheduler), and a node that starts again
// proposes it for itself: every device still recorded on that node, with a
// connection made before the given time (the sweep's time, or the start),
// is marked disconnected as of the time the node was last heard from. Its
// devices that reconnected elsewhere meanwhile are on another node and are
// left alone.
//
// A device in a session that goes offline gets a device-offline deadline
// (offline.go).

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Why a connection ended (Device.DisconnectReason, DeviceStatus.Reason).
const (
	DisconnectClean    = "disconnect"   // the device sent DISCONNECT
	DisconnectLost     = "lost"         // the connection dropped or timed out; its last will, if any, was published
	DisconnectNodeStop = "node_stopped" // the node holding it was shut down
	DisconnectNodeDown = "node_down"    // the node holding it stopped answering, or restarted
)

// pNodeDevice indexes connected devices by node:
// ix/node-device/<node>/<device>, empty values.
const pNodeDevice = "ix/node-device/"

func nodeDeviceKey(node, device string) []byte {
	return []byte(pNodeDevice + node + "/" + device)
}

// applyPresence applies the presence in s to d and reports whether d's
// presence changed. telemetryApplied says whether s was new enough for its
// telemetry to be recorded, which is the rule for entries without
// ConnectedAt.
func applyPresence(s *DeviceStatus, d *Device, telemetryApplied bool) bool {
	if s.Connected == nil {
		return false
	}
	up := *s.Connected
	if s.ConnectedAt.IsZero() {
		if !telemetryApplied {
			return false
		}
		changed := d.Connected != up || (s.Node != "" && s.Node != d.Node)
		d.Connected = up
		if s.Node != "" {
			d.Node = s.Node
		}
		if changed && !up {
			d.DisconnectedAt, d.DisconnectReason = s.SeenAt, s.Reason
		}
		return changed
	}
	same := d.Node == s.Node && d.ConnectedAt.Equal(s.ConnectedAt)
	if !up {
		if !d.Connected || !same {
			return false // already recorded, or a connection the device has left
		}
		d.Connected, d.DisconnectedAt, d.DisconnectReason = false, s.SeenAt, s.Reason
		return true
	}
	switch {
	case s.ConnectedAt.Before(d.ConnectedAt):
		return false // an older connection
	case same && d.Connected:
		return false // no change
	case same && !s.SeenAt.After(d.DisconnectedAt):
		return false // news from a connection known to have ended
	}
	d.Connected, d.Node, d.ConnectedAt = true, s.Node, s.ConnectedAt
	d.DisconnectedAt, d.DisconnectReason = time.Time{}, ""
	return true
}

// indexPresence keeps ix/node-device/ in step with a change of d's presence
// from (wasConnected, wasNode).
func indexPresence(txn *badger.Txn, d *Device, wasConnected bool, wasNode string) error {
	if wasConnected && wasNode != "" && !(d.Connected && d.Node == wasNode) {
		if err := txn.Delete(nodeDeviceKey(wasNode, d.ID)); err != nil {
			return err
		}
	}
	if d.Connected && d.Node != "" {
		return txn.Set(nodeDeviceKey(d.Node, d.ID), nil)
	}
	return nil
}

// nodeDownCmd marks the devices recorded as connected through Node, with a
// connection made before Before, as disconnected at GoneAt.
type nodeDownCmd struct {
	Header
	Node   string    `json:"node"`
	Before time.Time `json:"before"`
	GoneAt time.Time `json:"gone_at"`
	Reason string    `json:"reason"` // DisconnectNodeDown or DisconnectNodeStop
}

// nodeDownResult is the response to NodeDown.
type nodeDownResult struct {
	Marked int `json:"marked"`
}

// applyNodeDown marks a node's stale connections as ended.
func applyNodeDown(c *applyCtx, body []byte) ([]byte, error) {
	var cmd nodeDownCmd
	if err := c.decode(body, &cmd); err != nil {
		return nil, err
	}
	if err := validID("node", cmd.Node); err != nil {
		return nil, err
	}
	switch {
	case cmd.Before.IsZero():
		return nil, invalid("before", "must be set")
	case cmd.GoneAt.IsZero():
		return nil, invalid("gone_at", "must be set")
	case cmd.Reason != DisconnectNodeDown && cmd.Reason != DisconnectNodeStop:
		return nil, invalid("reason", "%q is not %s or %s", cmd.Reason, DisconnectNodeDown, DisconnectNodeStop)
	}
	devs, err := staleOnNode(c.txn, cmd.Node, cmd.Before, 0)
	if err != nil {
		return nil, err
	}
	for _, d := range devs {
		d.Connected, d.DisconnectedAt, d.DisconnectReason = false, cmd.GoneAt, cmd.Reason
		d.UpdatedAt = c.now()
		if err := putJSON(c.txn, pDevice+d.ID, d); err != nil {
			return nil, err
		}
		if err := indexPresence(c.txn, d, true, cmd.Node); err != nil {
			return nil, err
		}
		if err := trackOffline(c, d, true); err != nil {
			return nil, err
		}
		c.emit(Event{Type: EventDeviceUpdated, Device: d})
	}
	if len(devs) > 0 {
		detail := fmt.Sprintf("node %s %s: %d devices marked disconnected", cmd.Node, strings.ReplaceAll(cmd.Reason, "_", " "), len(devs))
		if err := c.audit(CmdNodeDown, "node/"+cmd.Node, detail); err != nil {
			return nil, err
		}
	}
	return json.Marshal(nodeDownResult{Marked: len(devs)})
}

// staleOnNode returns the devices recorded as connected through node with
// a connection made before before; at most limit of them if limit > 0.
func staleOnNode(txn *badger.Txn, node string, before time.Time, limit int) ([]*Device, error) {
	var out []*Device
	prefix := []byte(pNodeDevice + node + "/")
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		id := string(it.Item().Key()[len(prefix):])
		d, err := getDevice(txn, id)
		if err != nil {
			return nil, fmt.Errorf("presence index names device %q: %w", id, err)
		}
		if !d.Connected || d.Node != node || !d.ConnectedAt.Before(before) {
			continue
		}
		out = append(out, d)
		if limit > 0 && len(out) >= limit {
			break
		}
	}
	return out, nil
}

// MarkNodeDown proposes NodeDown: the devices recorded as connected through
// node with a connection made before before are marked disconnected at at,
// for reason (DisconnectNodeDown or DisconnectNodeStop). It returns how
// many were marked.
func (s *Service) MarkNodeDown(ctx context.Context, cmdID, actor, node string, before, at time.Time, reason string) (int, error) {
	res, err := s.propose(ctx, cmdID, CmdNodeDown, nodeDownCmd{Header: s.header(actor), Node: node, Before: before, GoneAt: at, Reason: reason})
	if err != nil {
		return 0, err
	}
	r, err := decodeResponse[nodeDownResult](res.Response)
	if err != nil {
		return 0, err
	}
	return r.Marked, nil
}

// HasStaleDevices reports whether this node's state records a device as
// connected through node with a connection made before before.
func (s *Service) HasStaleDevices(node string, before time.Time) (bool, error) {
	var found bool
	err := s.view(func(txn *badger.Txn) error {
		devs, err := staleOnNode(txn, node, before, 1)
		found = len(devs) > 0
		return err
	})
	return found, err
}
