package broker

import (
	"bytes"
	"fmt"
	"strings"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// accessHook authenticates devices and keeps each inside its own topics.
type accessHook struct {
	mqtt.HookBase
	b *Broker
	s *mqtt.Server // to refuse a CONNECT from OnConnect
}

var _ mqtt.Hook = (*accessHook)(nil)

func (h *accessHook) ID() string { return "vigil-access" }

func (h *accessHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck}, []byte{b})
}

// OnConnect refuses a CONNECT whose last will is not on one of the
// device's own up/ topics: mochi publishes a will without asking
// OnACLCheck, so a device could otherwise make the broker send anything
// to any other device by dropping its connection. A retained will is
// refused before this, by mochi, since nothing is retained
// (Capabilities.RetainAvailable is 0). It runs before the password is
// checked, so a refusal tells nothing about the device. The connection
// has sent its CONNECT: it no longer counts as pending (listen.go).
func (h *accessHook) OnConnect(cl *mqtt.Client, _ packets.Packet) error {
	connected(cl) // no longer pending (listen.go)
	if atomic.LoadUint32(&cl.Properties.Will.Flag) == 0 || ownTopic(cl, cl.Properties.Will.TopicName, true) {
		return nil
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

// OnConnectAuthenticate accepts a device whose username is its device ID,
// whose client ID is the same (so that no device can take over another's
// MQTT session), and whose password is its current secret.
func (h *accessHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	id := string(pk.Connect.Username)
	ok := id != "" && cl.ID == id && !strings.ContainsAny(id, "/+#") &&
		h.b.svc.CheckDeviceSecret(id, string(pk.Connect.Password))
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
