package broker

// Conformance: where mochi's answers to a client differ from what the
// MQTT specifications require, a hook corrects them (DESIGN.md, "MQTT
// details").

import (
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// conformanceHook rewrites the packets mochi sends.
type conformanceHook struct {
	mqtt.HookBase
}

var _ mqtt.Hook = (*conformanceHook)(nil)

func (h *conformanceHook) ID() string { return "vigil-conformance" }

func (h *conformanceHook) Provides(b byte) bool { return b == mqtt.OnPacketEncode }

// v3MaxConnackCode is the highest CONNACK return code MQTT 3.1.1 defines
// (5, not authorized).
const v3MaxConnackCode = 0x05

// OnPacketEncode corrects a CONNACK before it is written:
//   - to an MQTT 5 client it accepts, it says that nothing is retained
//     (Retain Available 0), which mochi does not;
//   - to an MQTT 3.1.1 client, an MQTT 5 refusal code that mochi does not
//     translate (0x9A retain not supported, for a retained will) becomes
//     return code 5, not authorized: 3.1.1 defines nothing above 5.
func (h *conformanceHook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type != packets.Connack {
		return pk
	}
	switch {
	case cl.Properties.ProtocolVersion >= 5 && pk.ReasonCode == packets.CodeSuccess.Code:
		pk.Properties.RetainAvailable, pk.Properties.RetainAvailableFlag = 0, true
	case cl.Properties.ProtocolVersion < 5 && pk.ReasonCode > v3MaxConnackCode:
		pk.ReasonCode = packets.Err3NotAuthorized.Code
	}
	return pk
}
