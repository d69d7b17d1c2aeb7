package broker

import (
	"bytes"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// accessHook authenticates devices and keeps each inside its own topics.
type accessHook struct {
	mqtt.HookBase
	b *Broker
}

var _ mqtt.Hook = (*accessHook)(nil)

func (h *accessHook) ID() string { return "vigil-access" }

func (h *accessHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck}, []byte{b})
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
	own := TopicPrefix + string(cl.Properties.Username) + "/down/"
	if write {
		own = TopicPrefix + string(cl.Properties.Username) + "/up/"
	}
	if len(cl.Properties.Username) > 0 && strings.HasPrefix(topic, own) {
		return true
	}
	h.b.stats.aclRefused.Add(1)
	h.b.logger.Info("topic refused", "device", string(cl.Properties.Username), "topic", topic, "publish", write)
	return false
}
