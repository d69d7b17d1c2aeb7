package broker

// Conformance: where mochi's answers to a client differ from what the
// MQTT specifications require, a hook corrects them (DESIGN.md, "MQTT
// details").

import (
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// conformanceHook rewrites the packets mochi sends, and answers a QoS 2
// resend that mochi would refuse.
type conformanceHook struct {
	mqtt.HookBase
	maxPacket uint32 // Capabilities.MaximumPacketSize, the packet size enforced
}

var _ mqtt.Hook = (*conformanceHook)(nil)

func (h *conformanceHook) ID() string { return "vigil-conformance" }

func (h *conformanceHook) Provides(b byte) bool {
	return b == mqtt.OnPacketEncode || b == mqtt.OnPacketRead
}

// v3MaxConnackCode is the highest CONNACK return code MQTT 3.1.1 defines
// (5, not authorized).
const v3MaxConnackCode = 0x05

// OnPacketEncode corrects a packet before it is written:
//   - an MQTT 5 CONNACK that accepts the client says the Maximum Packet
//     Size mochi enforces, which mochi does not: a client that knew nothing
//     of it sent a larger PUBLISH and had its connection reset; it also
//     says that nothing is retained (Retain Available 0);
//   - to an MQTT 3.1.1 client, an MQTT 5 CONNACK refusal code that mochi
//     does not translate (0x9A retain not supported, for a retained will)
//     becomes return code 5, not authorized: 3.1.1 defines nothing above 5;
//   - no DISCONNECT goes to an MQTT 3.1.1 client, which 3.1.1 forbids from
//     a server: mochi sends one when it drops a client (a refused publish,
//     a session taken over, shutdown) and then closes the connection. The
//     packet is given a maximum size it exceeds, so that mochi's
//     WritePacket refuses to write it; mochi closes the connection as
//     before.
func (h *conformanceHook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	v5 := cl.Properties.ProtocolVersion >= 5
	switch {
	case pk.FixedHeader.Type == packets.Connack && v5 && pk.ReasonCode == packets.CodeSuccess.Code:
		pk.Properties.MaximumPacketSize = h.maxPacket
		pk.Properties.RetainAvailable, pk.Properties.RetainAvailableFlag = 0, true
	case pk.FixedHeader.Type == packets.Connack && !v5 && pk.ReasonCode > v3MaxConnackCode:
		pk.ReasonCode = packets.Err3NotAuthorized.Code
	case pk.FixedHeader.Type == packets.Disconnect && !v5:
		pk.Mods.MaxSize = 1 // an MQTT 3.1.1 DISCONNECT is 2 bytes
	}
	return pk
}

// dupTopic is what a QoS 2 resend's topic becomes once answered: mochi
// drops a publish to $SYS from a client without processing it.
const dupTopic = "$SYS/vigil/qos2-resend"

// OnPacketRead answers a QoS 2 PUBLISH sent again (DUP) before its PUBREL
// with PUBREC 0x00, as the first time (MQTT 5 section 4.3.3: until the
// PUBREL the receiver acknowledges the same packet identifier with a
// PUBREC and does not process the message again). mochi answers 0x91
// packet identifier in use. The resend is then handed to mochi with a
// topic that mochi drops unprocessed.
func (h *conformanceHook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type != packets.Publish || pk.FixedHeader.Qos != 2 || !pk.FixedHeader.Dup || cl.Net.Inline {
		return pk, nil
	}
	if got, ok := cl.State.Inflight.Get(pk.PacketID); !ok || got.FixedHeader.Type != packets.Pubrec {
		return pk, nil
	}
	ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrec}, PacketID: pk.PacketID,
		ReasonCode: packets.CodeSuccess.Code}
	if err := cl.WritePacket(ack); err != nil {
		return pk, err // mochi ignores it and processes pk: 0x91, as before
	}
	pk.TopicName = dupTopic
	pk.Properties.TopicAlias, pk.Properties.TopicAliasFlag = 0, false
	return pk, nil
}
