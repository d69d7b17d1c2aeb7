package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/vigilarc/vigil/appliance/monitoring"
)

// accessHook authenticates devices and keeps each inside its own topics.
//
// The secret is checked in OnConnect, not OnConnectAuthenticate, so that a
// node whose password checks are all taken (monitoring.ErrBusy: a flood of
// wrong secrets) can answer CONNACK "server busy" (MQTT 5) or "server
// unavailable" (3.1.1), which tells a device to come back, rather than
// "bad user name or password", which tells it its secret is wrong.
// OnConnectAuthenticate then gives the outcome mochi asks for.
type accessHook struct {
	mqtt.HookBase
	b *Broker
	s *mqtt.Server // to refuse a CONNECT from OnConnect

	checked sync.Map // *mqtt.Client -> bool, from OnConnect to OnConnectAuthenticate
}

// deviceAuthenticator is the Service's check that tells a busy node from a
// wrong secret (monitoring.Service.AuthenticateDevice).
type deviceAuthenticator interface {
	AuthenticateDevice(ctx context.Context, deviceID, secret string) error
}

var _ mqtt.Hook = (*accessHook)(nil)

func (h *accessHook) ID() string { return "vigil-access" }

func (h *accessHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck}, []byte{b})
}

// OnConnect first refuses a CONNECT whose last will is not on one of the
// device's own up/ topics: mochi publishes a will without asking
// OnACLCheck, so a device could otherwise make the broker send anything
// to any other device by dropping its connection. A retained will is
// refused before this, by mochi, since nothing is retained
// (Capabilities.RetainAvailable is 0). That runs before the password is
// checked, so a refusal tells nothing about the device. The connection
// has sent its CONNECT: it no longer counts as pending (listen.go).
//
// Then it checks the device's credentials (for OnConnectAuthenticate),
// and refuses the connection with "server busy" when the node has no
// place for the check in time.
func (h *accessHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	connected(cl) // no longer pending (listen.go)
	if atomic.LoadUint32(&cl.Properties.Will.Flag) == 0 || ownTopic(cl, cl.Properties.Will.TopicName, true) {
		return h.checkCredentials(cl, pk)
	}
	h.b.stats.aclRefused.Add(1)
	h.b.logger.Info("last will refused", "device", string(cl.Properties.Username),
		"topic", cl.Properties.Will.TopicName, "remote", cl.Net.Remote)
	code := packets.ErrNotAuthorized
	if cl.Properties.ProtocolVersion < 5 {
		code = packets.Err3NotAuthorized
	}
	if err := h.s.SendConnack(cl, code, false, nil); err != nil {
		return fmt.Errorf("cannot refuse a last will: %w", err)
	}
	return code
}

// checkCredentials checks the device's credentials for
// OnConnectAuthenticate, and refuses the connection with "server busy"
// when the node has no place for the check in time.
func (h *accessHook) checkCredentials(cl *mqtt.Client, pk packets.Packet) error {
	ok, err := h.check(cl, pk)
	if errors.Is(err, monitoring.ErrBusy) {
		h.b.stats.authRefused.Add(1)
		h.b.logger.Info("device refused: too many password checks at once", "device", string(pk.Connect.Username), "remote", cl.Net.Remote)
		code := packets.ErrServerBusy
		if cl.Properties.ProtocolVersion < 5 {
			code = packets.ErrServerUnavailable
		}
		_ = h.s.SendConnack(cl, code, false, nil)
		return code
	}
	h.checked.Store(cl, ok)
	return nil
}

// check reports whether a device's username is its device ID, its client
// ID the same (so that no device can take over another's MQTT session),
// and its password its current secret.
func (h *accessHook) check(cl *mqtt.Client, pk packets.Packet) (bool, error) {
	id := string(pk.Connect.Username)
	if id == "" || cl.ID != id || strings.ContainsAny(id, "/+#") {
		return false, nil
	}
	secret := string(pk.Connect.Password)
	if a, ok := h.b.svc.(deviceAuthenticator); ok {
		err := a.AuthenticateDevice(context.Background(), id, secret)
		if errors.Is(err, monitoring.ErrBusy) {
			return false, err
		}
		return err == nil, nil
	}
	return h.b.svc.CheckDeviceSecret(id, secret), nil
}

// OnConnectAuthenticate accepts a device whose credentials OnConnect
// found right.
func (h *accessHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	id := string(pk.Connect.Username)
	v, found := h.checked.LoadAndDelete(cl)
	ok, _ := v.(bool)
	if !found {
		ok, _ = h.check(cl, pk)
	}
	if !ok {
		h.b.stats.authRefused.Add(1)
		h.b.logger.Info("device refused", "device", id, "client_id", cl.ID, "remote", cl.Net.Remote)
	}
	return ok
}

// OnACLCheck lets a device publish only under vigil/v1/d/<id>/up/ and
// subscribe only under vigil/v1/d/<id>/down/. Anything else is counted.
func (h *accessHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if ownTopic(cl, topic, write) {
		return true
	}
	h.b.stats.aclRefused.Add(1)
	h.b.logger.Info("topic refused", "device", string(cl.Properties.Username), "topic", topic, "publish", write)
	return false
}

// ownTopic says whether topic is under the device's own up/ (publish) or
// down/ (subscribe) tree.
func ownTopic(cl *mqtt.Client, topic string, publish bool) bool {
	own := TopicPrefix + string(cl.Properties.Username) + "/down/"
	if publish {
		own = TopicPrefix + string(cl.Properties.Username) + "/up/"
	}
	return len(cl.Properties.Username) > 0 && strings.HasPrefix(topic, own)
}
