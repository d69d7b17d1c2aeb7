package broker

// Audio from a device in alarm: up/audio carries one chunk, stored with the
// alarm by the monitoring Service (appliance/monitoring/audio.go). A chunk
// is durable like an alarm: PUBACKed only once committed.

import (
	"encoding/base64"
	"slices"
	"strings"

	"github.com/vigilarc/vigil/appliance/monitoring"
)

// audioCodecs are the codec names of protocol v1, and their list for
// error replies.
var (
	audioCodecs    = codecNames()
	audioCodecList = strings.Join(audioCodecs, ", ")
)

func codecNames() []string {
	s := make([]string, len(monitoring.AudioCodecs))
	for i, c := range monitoring.AudioCodecs {
		s[i] = string(c)
	}
	return s
}

// decodeAudio checks the fields of an audio message and the limits a
// device can know (seq range, bytes per chunk), so that they come back as
// the field at fault, and sets m.Audio, whose device and device time are
// the message's. The Service checks them again, with the codec's own
// framing, and refuses with code invalid.
func decodeAudio(m Message, w *wire) (Message, error) {
	r := &m.Audio
	*r = monitoring.AudioChunkRequest{DeviceID: m.DeviceID, DeviceTime: m.TS, SampleRate: w.SampleRate, Channels: w.Channels}
	switch {
	case w.AlarmID == nil || *w.AlarmID == "":
		return m, decodeErr(CodeMissingField, "alarm_id", "the alarm this audio belongs to, as the reply to the alarm gave it")
	case w.Seq == nil:
		return m, decodeErr(CodeMissingField, "seq", "the number of the chunk in the alarm's audio, from 0")
	case *w.Seq < 0 || *w.Seq >= monitoring.MaxAudioChunks:
		return m, decodeErr(CodeInvalidField, "seq", "%d is not from 0 to %d", *w.Seq, monitoring.MaxAudioChunks-1)
	case w.Codec == nil || *w.Codec == "":
		return m, decodeErr(CodeMissingField, "codec", "one of %s", audioCodecList)
	case !slices.Contains(audioCodecs, *w.Codec):
		return m, decodeErr(CodeInvalidField, "codec", "%q is not a codec of protocol v1: one of %s", *w.Codec, audioCodecList)
	case w.Data == nil || *w.Data == "":
		return m, decodeErr(CodeMissingField, "data", "the audio, in base64")
	}
	r.AlarmID, r.Seq, r.Codec = *w.AlarmID, uint64(*w.Seq), monitoring.AudioCodec(*w.Codec)
	data, err := base64.StdEncoding.DecodeString(*w.Data)
	if err != nil {
		return m, decodeErr(CodeInvalidField, "data", "is not base64 (standard alphabet, with padding): %v", err)
	}
	if len(data) == 0 { // base64 skips line breaks: "\r\n" is no audio
		return m, decodeErr(CodeInvalidField, "data", "holds no audio")
	}
	if len(data) > monitoring.MaxAudioChunkBytes {
		return m, decodeErr(CodeInvalidField, "data", "holds %d bytes of audio, more than the %d a chunk may carry", len(data), monitoring.MaxAudioChunkBytes)
	}
	r.Data = data
	if r.Codec == monitoring.CodecPCM {
		switch {
		case r.SampleRate == 0:
			return m, decodeErr(CodeMissingField, "sample_rate", "pcm_s16le needs the sample rate, in Hz")
		case r.Channels == 0:
			return m, decodeErr(CodeMissingField, "channels", "pcm_s16le needs the number of channels")
		}
	}
	return m, nil
}
