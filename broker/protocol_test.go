package broker

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
)

// decodeCase is one message and what Decode makes of it: the message
// (accepted), or the refusal and the DeviceID, Type and EventID it still
// returns for the error reply (refused).
type decodeCase struct {
	name    string
	topic   string
	payload string
	want    Message      // accepted; or, when refused, only DeviceID, Type and EventID
	err     *DecodeError // nil: accepted
}

// decodeTS is the ts of payload, as Decode parses it.
var decodeTS = time.Date(2025, 1, 2, 15, 4, 5, 0, time.UTC)

// decodeNow is the receiving node's clock in the table's decodes, a minute
// after decodeTS.
var decodeNow = decodeTS.Add(time.Minute)

// payload returns a message with event_id e1, ts decodeTS and the fields
// given, as JSON members ("" for none).
func payload(fields string) string {
	if fields == "" {
		return `{"event_id":"e1","ts":"2025-01-02T15:04:05Z"}`
	}
	return `{"event_id":"e1","ts":"2025-01-02T15:04:05Z",` + fields + `}`
}

// sizedPayload returns payload(fields) padded to n bytes with an unknown
// field.
func sizedPayload(n int, fields string) string {
	if fields != "" {
		fields += ","
	}
	pad := n - len(payload(fields+`"pad":""`))
	return payload(fields + `"pad":"` + strings.Repeat("x", pad) + `"`)
}

// accepted returns the message Decode makes of a message of type typ from
// d1 with event_id e1 and ts decodeTS, and the fields set by set.
func accepted(typ string, set func(m *Message)) Message {
	m := Message{DeviceID: "d1", Type: typ, EventID: "e1", TS: decodeTS}
	if set != nil {
		set(&m)
	}
	return m
}

// refused returns the part of a refused message that the error reply uses.
func refused(device, typ, eventID string) Message {
	return Message{DeviceID: device, Type: typ, EventID: eventID}
}

func ptr[T any](v T) *T { return &v }

func missing(field, msg string) *DecodeError {
	return &DecodeError{Code: CodeMissingField, Field: field, Msg: msg}
}

func invalid(field, msg string) *DecodeError {
	return &DecodeError{Code: CodeInvalidField, Field: field, Msg: msg}
}

func malformed(msg string) *DecodeError {
	return &DecodeError{Code: CodeMalformedJSON, Msg: msg}
}

const (
	alarmTypesText = "red_alert, discreet_panic, man_down, low_battery, test"
	typesText      = "alarm, alarm/cancel, session/start, session/checkin, session/extend, session/end, " +
		"location, update, battery, heartbeat, audio, prompt/answer"
	durationText = ` is not a positive Go duration such as "45m" or "1h30m"`
)

// Audio payloads: four PCM samples, and the most audio a chunk may carry
// and one byte more.
var (
	pcmData     = base64.StdEncoding.EncodeToString([]byte{0, 0, 0xe8, 3, 0xd0, 7, 0xe8, 3})
	fullChunk   = make([]byte, monitoring.MaxAudioChunkBytes)
	fullData    = base64.StdEncoding.EncodeToString(fullChunk)
	overData    = base64.StdEncoding.EncodeToString(make([]byte, monitoring.MaxAudioChunkBytes+1))
	longAddress = strings.Repeat("a", monitoring.MaxAddressLen)
)

// decodeCases pins what Decode accepts, and how it refuses the rest: every
// message type, and every refusal with its code, field and text.
var decodeCases = []decodeCase{
	// Every message type, accepted.
	{name: "alarm", topic: UpTopic("d1", TypeAlarm),
		payload: payload(`"alarm_type":"red_alert","location":{"lat":51.5,"lon":-0.12,"accuracy_m":8,"source":"gps"}`),
		want: accepted(TypeAlarm, func(m *Message) {
			m.AlarmType = monitoring.AlarmRedAlert
			m.Location = &monitoring.Location{Lat: 51.5, Lon: -0.12, Accuracy: 8, Source: "gps"}
		})},
	{name: "alarm discreet_panic", topic: UpTopic("d1", TypeAlarm), payload: payload(`"alarm_type":"discreet_panic"`),
		want: accepted(TypeAlarm, func(m *Message) { m.AlarmType = monitoring.AlarmDiscreetPanic })},
	{name: "alarm man_down", topic: UpTopic("d1", TypeAlarm), payload: payload(`"alarm_type":"man_down"`),
		want: accepted(TypeAlarm, func(m *Message) { m.AlarmType = monitoring.AlarmManDown })},
	{name: "alarm low_battery", topic: UpTopic("d1", TypeAlarm), payload: payload(`"alarm_type":"low_battery"`),
		want: accepted(TypeAlarm, func(m *Message) { m.AlarmType = monitoring.AlarmLowBattery })},
	{name: "alarm test", topic: UpTopic("d1", TypeAlarm), payload: payload(`"alarm_type":"test"`),
		want: accepted(TypeAlarm, func(m *Message) { m.AlarmType = monitoring.AlarmTest })},
	{name: "alarm keeps the fields every type takes", topic: UpTopic("d1", TypeAlarm),
		payload: payload(`"alarm_type":"test","worker_id":"w1","pin":"1111","battery":7,"firmware":"2.1.0","session_id":"s1","update":"u","alarm_id":"a1"`),
		want: accepted(TypeAlarm, func(m *Message) {
			m.AlarmType = monitoring.AlarmTest
			m.WorkerID, m.PIN, m.Battery, m.Firmware = "w1", "1111", ptr(7), "2.1.0"
		})},
	{name: "alarm/cancel", topic: UpTopic("d1", TypeAlarmCancel), payload: payload(`"alarm_id":"7d4c","pin":"1111"`),
		want: accepted(TypeAlarmCancel, func(m *Message) { m.AlarmID, m.PIN = "7d4c", "1111" })},
	{name: "session/start bare", topic: UpTopic("d1", TypeSessionStart), payload: payload(""),
		want: accepted(TypeSessionStart, nil)},
	{name: "session/start full", topic: UpTopic("d1", TypeSessionStart),
		payload: payload(`"session_id":"visit-42","worker_id":"w1","duration":"45m","checkin_interval":"15m",` +
			`"location":{"lat":51.5,"lon":-0.12,"source":"manual","address":"Flat 3"},"update":"dog in the garden"`),
		want: accepted(TypeSessionStart, func(m *Message) {
			m.SessionID, m.WorkerID, m.Update = "visit-42", "w1", "dog in the garden"
			m.Duration, m.CheckInInterval = 45*time.Minute, 15*time.Minute
			m.Location = &monitoring.Location{Lat: 51.5, Lon: -0.12, Source: "manual", Address: "Flat 3"}
		})},
	{name: "session/start empty strings", topic: UpTopic("d1", TypeSessionStart),
		payload: payload(`"session_id":"","update":"","duration":"","checkin_interval":""`),
		want:    accepted(TypeSessionStart, nil)},
	{name: "session/start compound durations", topic: UpTopic("d1", TypeSessionStart),
		payload: payload(`"duration":"1h30m","checkin_interval":"1m30s"`),
		want:    accepted(TypeSessionStart, func(m *Message) { m.Duration, m.CheckInInterval = 90*time.Minute, 90*time.Second })},
	{name: "session/start longest address", topic: UpTopic("d1", TypeSessionStart),
		payload: payload(`"location":{"lat":0,"lon":0,"address":"` + longAddress + `"}`),
		want: accepted(TypeSessionStart, func(m *Message) {
			m.Location = &monitoring.Location{Address: longAddress}
		})},
	{name: "session/checkin", topic: UpTopic("d1", TypeSessionCheckIn), payload: payload(`"session_id":"visit-42","pin":"1111"`),
		want: accepted(TypeSessionCheckIn, func(m *Message) { m.SessionID, m.PIN = "visit-42", "1111" })},
	{name: "session/checkin ignores extend_by", topic: UpTopic("d1", TypeSessionCheckIn),
		payload: payload(`"session_id":"visit-42","extend_by":"nonsense","duration":"1h"`),
		want:    accepted(TypeSessionCheckIn, func(m *Message) { m.SessionID = "visit-42" })},
	{name: "session/extend", topic: UpTopic("d1", TypeSessionExtend), payload: payload(`"session_id":"visit-42","pin":"1111","extend_by":"30m"`),
		want: accepted(TypeSessionExtend, func(m *Message) {
			m.SessionID, m.PIN, m.ExtendBy = "visit-42", "1111", 30*time.Minute
		})},
	{name: "session/end", topic: UpTopic("d1", TypeSessionEnd), payload: payload(`"session_id":"visit-42","pin":"1111"`),
		want: accepted(TypeSessionEnd, func(m *Message) { m.SessionID, m.PIN = "visit-42", "1111" })},
	{name: "location", topic: UpTopic("d1", TypeLocation),
		payload: payload(`"location":{"lat":51.5,"lon":-0.12,"accuracy_m":20,"source":"wifi"}`),
		want: accepted(TypeLocation, func(m *Message) {
			m.Location = &monitoring.Location{Lat: 51.5, Lon: -0.12, Accuracy: 20, Source: "wifi"}
		})},
	{name: "location at the limits", topic: UpTopic("d1", TypeLocation),
		payload: payload(`"location":{"lat":-90,"lon":180,"accuracy_m":0,"source":"` + strings.Repeat("s", 32) + `"}`),
		want: accepted(TypeLocation, func(m *Message) {
			m.Location = &monitoring.Location{Lat: -90, Lon: 180, Source: strings.Repeat("s", 32)}
		})},
	{name: "battery empty", topic: UpTopic("d1", TypeBattery), payload: payload(`"battery":0`),
		want: accepted(TypeBattery, func(m *Message) { m.Battery = ptr(0) })},
	{name: "battery full", topic: UpTopic("d1", TypeBattery), payload: payload(`"battery":100`),
		want: accepted(TypeBattery, func(m *Message) { m.Battery = ptr(100) })},
	{name: "heartbeat bare", topic: UpTopic("d1", TypeHeartbeat), payload: payload(""),
		want: accepted(TypeHeartbeat, nil)},
	{name: "heartbeat full", topic: UpTopic("d1", TypeHeartbeat),
		payload: payload(`"battery":64,"firmware":"2.1.0","location":{"lat":1,"lon":2}`),
		want: accepted(TypeHeartbeat, func(m *Message) {
			m.Battery, m.Firmware = ptr(64), "2.1.0"
			m.Location = &monitoring.Location{Lat: 1, Lon: 2}
		})},
	{name: "heartbeat nulls", topic: UpTopic("d1", TypeHeartbeat), payload: payload(`"battery":null,"location":null,"session_id":null`),
		want: accepted(TypeHeartbeat, nil)},
	{name: "update", topic: UpTopic("d1", TypeUpdate), payload: payload(`"update":"tenant agitated","session_id":"s9","worker_id":"w2"`),
		want: accepted(TypeUpdate, func(m *Message) { m.Update, m.SessionID, m.WorkerID = "tenant agitated", "s9", "w2" })},
	{name: "update keeps its spaces", topic: UpTopic("d1", TypeUpdate), payload: payload(`"update":" hi\n"`),
		want: accepted(TypeUpdate, func(m *Message) { m.Update = " hi\n" })},
	{name: "prompt/answer acknowledged", topic: UpTopic("d1", TypePromptAnswer), payload: payload(`"prompt_id":"c81e","answer":"acknowledged"`),
		want: accepted(TypePromptAnswer, func(m *Message) { m.PromptID, m.Answer = "c81e", monitoring.AnswerAcknowledged })},
	{name: "prompt/answer tapped", topic: UpTopic("d1", TypePromptAnswer), payload: payload(`"prompt_id":"c81e","answer":"tapped"`),
		want: accepted(TypePromptAnswer, func(m *Message) { m.PromptID, m.Answer = "c81e", monitoring.AnswerTapped })},
	{name: "prompt/answer declined", topic: UpTopic("d1", TypePromptAnswer), payload: payload(`"prompt_id":"c81e","answer":"declined"`),
		want: accepted(TypePromptAnswer, func(m *Message) { m.PromptID, m.Answer = "c81e", monitoring.AnswerDeclined })},
	{name: "audio pcm", topic: UpTopic("d1", TypeAudio),
		payload: payload(`"alarm_id":"7d4c","seq":0,"codec":"pcm_s16le","sample_rate":8000,"channels":1,"data":"` + pcmData + `"`),
		want: accepted(TypeAudio, func(m *Message) {
			m.Audio = monitoring.AudioChunkRequest{AlarmID: "7d4c", DeviceID: "d1", Seq: 0, Codec: monitoring.CodecPCM,
				SampleRate: 8000, Channels: 1, DeviceTime: decodeTS, Data: []byte{0, 0, 0xe8, 3, 0xd0, 7, 0xe8, 3}}
		})},
	{name: "audio wav last seq", topic: UpTopic("d1", TypeAudio),
		payload: payload(`"alarm_id":"7d4c","seq":8191,"codec":"wav","data":"AAAA"`),
		want: accepted(TypeAudio, func(m *Message) {
			m.Audio = monitoring.AudioChunkRequest{AlarmID: "7d4c", DeviceID: "d1", Seq: 8191, Codec: monitoring.CodecWAV,
				DeviceTime: decodeTS, Data: []byte{0, 0, 0}}
		})},
	{name: "audio fullest chunk", topic: UpTopic("d1", TypeAudio),
		payload: payload(`"alarm_id":"7d4c","seq":3,"codec":"ogg_opus","data":"` + fullData + `"`),
		want: accepted(TypeAudio, func(m *Message) {
			m.Audio = monitoring.AudioChunkRequest{AlarmID: "7d4c", DeviceID: "d1", Seq: 3, Codec: monitoring.CodecOggOpus,
				DeviceTime: decodeTS, Data: fullChunk}
		})},

	// What every message may be.
	{name: "longest event_id, every allowed character", topic: UpTopic("d1", TypeHeartbeat),
		payload: `{"event_id":"` + strings.Repeat("aZ09-_.:", 8) + `","ts":"2025-01-02T15:04:05Z"}`,
		want:    Message{DeviceID: "d1", Type: TypeHeartbeat, EventID: strings.Repeat("aZ09-_.:", 8), TS: decodeTS}},
	{name: "ts with fraction and offset", topic: UpTopic("d1", TypeHeartbeat),
		payload: `{"event_id":"e1","ts":"2025-01-02T16:04:05.125+01:00"}`,
		want:    accepted(TypeHeartbeat, func(m *Message) { m.TS = decodeTS.Add(125 * time.Millisecond).In(time.FixedZone("", 3600)) })},
	{name: "unknown fields ignored", topic: UpTopic("d1", TypeBattery),
		payload: payload(`"battery":5,"v2":{"x":[1,2,{"y":null}]},"location_extra":"z"`),
		want:    accepted(TypeBattery, func(m *Message) { m.Battery = ptr(5) })},
	{name: "unknown location fields ignored", topic: UpTopic("d1", TypeLocation),
		payload: payload(`"location":{"lat":1,"lon":2,"alt":"high"}`),
		want:    accepted(TypeLocation, func(m *Message) { m.Location = &monitoring.Location{Lat: 1, Lon: 2} })},
	{name: "unknown fields ignored whatever they hold", topic: UpTopic("d1", TypeAlarm),
		payload: payload(`"alarm_type":"test","diag":{"x":1,"x":2},"pad":1,"pad":2,"location":{"lat":1,"lon":2,"alt":{"m":1,"m":1}}`),
		want: accepted(TypeAlarm, func(m *Message) {
			m.AlarmType, m.Location = monitoring.AlarmTest, &monitoring.Location{Lat: 1, Lon: 2}
		})},
	{name: "white space around the object", topic: UpTopic("d1", TypeHeartbeat), payload: " \n\t" + payload("") + "\r\n ",
		want: accepted(TypeHeartbeat, nil)},
	{name: "payload at the limit", topic: UpTopic("d1", TypeHeartbeat), payload: sizedPayload(MaxPayload, ""),
		want: accepted(TypeHeartbeat, nil)},
	{name: "device with odd characters", topic: "vigil/v1/d/dev-1.x y/up/heartbeat", payload: payload(""),
		want: Message{DeviceID: "dev-1.x y", Type: TypeHeartbeat, EventID: "e1", TS: decodeTS}},

	// Topic.
	{name: "topic elsewhere", topic: "elsewhere", payload: payload(""), want: refused("", "", ""),
		err: &DecodeError{Code: CodeBadTopic, Msg: `topic "elsewhere" does not begin with vigil/v1/d/`}},
	{name: "topic of another version", topic: "vigil/v2/d/d1/up/alarm", payload: payload(""), want: refused("", "", ""),
		err: &DecodeError{Code: CodeBadTopic, Msg: `topic "vigil/v2/d/d1/up/alarm" does not begin with vigil/v1/d/`}},
	{name: "topic down", topic: "vigil/v1/d/d1/down/reply", payload: payload(""), want: refused("", "", ""),
		err: &DecodeError{Code: CodeBadTopic, Msg: `topic "vigil/v1/d/d1/down/reply" is not vigil/v1/d/<device>/up/<type>`}},
	{name: "topic without device", topic: "vigil/v1/d//up/alarm", payload: payload(""), want: refused("", "", ""),
		err: &DecodeError{Code: CodeBadTopic, Msg: `topic "vigil/v1/d//up/alarm" is not vigil/v1/d/<device>/up/<type>`}},
	{name: "topic with a slash in the device", topic: "vigil/v1/d/a/b/up/alarm", payload: payload(""), want: refused("", "", ""),
		err: &DecodeError{Code: CodeBadTopic, Msg: `topic "vigil/v1/d/a/b/up/alarm" is not vigil/v1/d/<device>/up/<type>`}},
	{name: "topic without type", topic: "vigil/v1/d/d1/up/", payload: payload(""), want: refused("", "", ""),
		err: &DecodeError{Code: CodeBadTopic, Msg: `topic "vigil/v1/d/d1/up/" is not vigil/v1/d/<device>/up/<type>`}},

	// Size: audio may be larger, an unknown type may not.
	{name: "too large", topic: UpTopic("d1", TypeAlarm), payload: sizedPayload(MaxPayload+1, `"alarm_type":"test"`),
		want: refused("d1", TypeAlarm, ""),
		err:  &DecodeError{Code: CodeTooLarge, Msg: "the payload is 16385 bytes, more than the limit of 16384"}},
	{name: "too large unknown type", topic: UpTopic("d1", "nope"), payload: sizedPayload(MaxPayload+1, ""),
		want: refused("d1", "nope", ""),
		err:  &DecodeError{Code: CodeTooLarge, Msg: "the payload is 16385 bytes, more than the limit of 16384"}},
	{name: "too large audio", topic: UpTopic("d1", TypeAudio), payload: sizedPayload(MaxAudioPayload+1, ""),
		want: refused("d1", TypeAudio, ""),
		err:  &DecodeError{Code: CodeTooLarge, Msg: "the payload is 49153 bytes, more than the limit of 49152"}},
	{name: "too large not checked as JSON", topic: UpTopic("d1", TypeHeartbeat), payload: strings.Repeat("{", MaxPayload+1),
		want: refused("d1", TypeHeartbeat, ""),
		err:  &DecodeError{Code: CodeTooLarge, Msg: "the payload is 16385 bytes, more than the limit of 16384"}},

	// JSON.
	{name: "empty payload", topic: UpTopic("d1", TypeAlarm), payload: "", want: refused("d1", TypeAlarm, ""),
		err: malformed("the payload is not a JSON object: EOF")},
	{name: "cut short", topic: UpTopic("d1", TypeAlarm), payload: `{"event_id":"e1"`, want: refused("d1", TypeAlarm, ""),
		err: malformed("the payload is not a JSON object: unexpected EOF")},
	{name: "syntax error", topic: UpTopic("d1", TypeAlarm), payload: `{"event_id":}`, want: refused("d1", TypeAlarm, ""),
		err: malformed("the payload is not a JSON object: invalid character '}' looking for beginning of value")},
	{name: "syntax error wins over a wrong type", topic: UpTopic("d1", TypeBattery), payload: `{"battery":"x",}`,
		want: refused("d1", TypeBattery, ""),
		err:  malformed("the payload is not a JSON object: invalid character '}' looking for beginning of object key string")},
	{name: "an array", topic: UpTopic("d1", TypeAlarm), payload: `[1]`, want: refused("d1", TypeAlarm, ""),
		err: malformed("the payload is not a JSON object: json: cannot unmarshal array into Go value of type broker.wire")},
	{name: "a string", topic: UpTopic("d1", TypeAlarm), payload: `"alarm"`, want: refused("d1", TypeAlarm, ""),
		err: malformed("the payload is not a JSON object: json: cannot unmarshal string into Go value of type broker.wire")},
	{name: "data after the object", topic: UpTopic("d1", TypeHeartbeat), payload: payload("") + `{}`,
		want: refused("d1", TypeHeartbeat, ""), err: malformed("the payload has data after the JSON object")},
	{name: "a word after the object", topic: UpTopic("d1", TypeHeartbeat), payload: payload("") + ` x`,
		want: refused("d1", TypeHeartbeat, ""), err: malformed("the payload has data after the JSON object")},
	{name: "a stray closing bracket after the object", topic: UpTopic("d1", TypeHeartbeat), payload: payload("") + "]",
		want: refused("d1", TypeHeartbeat, ""), err: malformed("the payload has data after the JSON object")},

	// A key twice, or in the wrong case: the sender and Vigil could read
	// the message differently (encoding/json took the last, or matched
	// without case).
	{name: "alarm_type twice", topic: UpTopic("d1", TypeAlarm), payload: payload(`"alarm_type":"test","alarm_type":"red_alert"`),
		want: refused("d1", TypeAlarm, ""), err: invalid("alarm_type", "appears twice in one object")},
	{name: "event_id twice", topic: UpTopic("d1", TypeAlarm), payload: `{"event_id":"e1","event_id":"e2","ts":"2025-01-02T15:04:05Z"}`,
		want: refused("d1", TypeAlarm, ""), err: invalid("event_id", "appears twice in one object")},
	{name: "location.lat twice", topic: UpTopic("d1", TypeLocation), payload: payload(`"location":{"lat":1,"lon":2,"lat":3}`),
		want: refused("d1", TypeLocation, ""), err: invalid("location.lat", "appears twice in one object")},
	{name: "a field in capitals", topic: UpTopic("d1", TypeBattery),
		payload: `{"EVENT_ID":"e1","ts":"2025-01-02T15:04:05Z","battery":9}`,
		want:    refused("d1", TypeBattery, ""), err: invalid("EVENT_ID", `is not a field; keys are case-sensitive: write "event_id"`)},
	{name: "a field in another case beside it", topic: UpTopic("d1", TypeAlarm), payload: payload(`"alarm_type":"test","Alarm_Type":"red_alert"`),
		want: refused("d1", TypeAlarm, ""), err: invalid("Alarm_Type", `is not a field; keys are case-sensitive: write "alarm_type"`)},
	{name: "null payload", topic: UpTopic("d1", TypeHeartbeat), payload: `null`,
		want: refused("d1", TypeHeartbeat, ""),
		err:  missing("event_id", "every message needs an event_id, reused when retrying")},

	// A field of the wrong JSON type.
	{name: "event_id a number", topic: UpTopic("d1", TypeAlarm), payload: `{"event_id":7}`, want: refused("d1", TypeAlarm, ""),
		err: invalid("event_id", "must be a JSON string, not number")},
	{name: "ts an object", topic: UpTopic("d1", TypeAlarm), payload: `{"event_id":"e1","ts":{}}`, want: refused("d1", TypeAlarm, ""),
		err: invalid("ts", "must be a JSON string, not object")},
	{name: "worker_id an array", topic: UpTopic("d1", TypeSessionStart), payload: payload(`"worker_id":["w"]`),
		want: refused("d1", TypeSessionStart, ""), err: invalid("worker_id", "must be a JSON string, not array")},
	{name: "battery a string", topic: UpTopic("d1", TypeBattery), payload: payload(`"battery":"full"`),
		want: refused("d1", TypeBattery, ""), err: invalid("battery", "must be a JSON number, not string")},
	{name: "battery a fraction", topic: UpTopic("d1", TypeBattery), payload: payload(`"battery":64.5`),
		want: refused("d1", TypeBattery, ""), err: invalid("battery", "must be a JSON number, not number 64.5")},
	{name: "battery too big for an int", topic: UpTopic("d1", TypeBattery), payload: payload(`"battery":99999999999999999999`),
		want: refused("d1", TypeBattery, ""), err: invalid("battery", "must be a JSON number, not number 99999999999999999999")},
	{name: "location a string", topic: UpTopic("d1", TypeLocation), payload: payload(`"location":"home"`),
		want: refused("d1", TypeLocation, ""), err: invalid("location", "must be a JSON object, not string")},
	{name: "location.lat a string", topic: UpTopic("d1", TypeLocation), payload: payload(`"location":{"lat":"51.5","lon":0}`),
		want: refused("d1", TypeLocation, ""), err: invalid("location.lat", "must be a JSON number, not string")},
	{name: "duration a number", topic: UpTopic("d1", TypeSessionStart), payload: payload(`"duration":45`),
		want: refused("d1", TypeSessionStart, ""), err: invalid("duration", "must be a JSON string, not number")},
	{name: "seq a string", topic: UpTopic("d1", TypeAudio), payload: payload(`"seq":"0"`),
		want: refused("d1", TypeAudio, ""), err: invalid("seq", "must be a JSON number, not string")},
	{name: "the first wrong type is named", topic: UpTopic("d1", TypeHeartbeat), payload: payload(`"firmware":2,"battery":"x"`),
		want: refused("d1", TypeHeartbeat, ""), err: invalid("firmware", "must be a JSON string, not number")},
	{name: "a wrong type before a missing event_id", topic: UpTopic("d1", TypeHeartbeat), payload: `{"battery":true}`,
		want: refused("d1", TypeHeartbeat, ""), err: invalid("battery", "must be a JSON number, not bool")},
	{name: "a wrong type in an unknown type", topic: UpTopic("d1", "nope"), payload: `{"event_id":"e1","pin":1}`,
		want: refused("d1", "nope", ""), err: invalid("pin", "must be a JSON string, not number")},

	// event_id.
	{name: "event_id missing", topic: UpTopic("d1", TypeAlarm), payload: `{"ts":"2025-01-02T15:04:05Z","alarm_type":"test"}`,
		want: refused("d1", TypeAlarm, ""), err: missing("event_id", "every message needs an event_id, reused when retrying")},
	{name: "event_id empty", topic: UpTopic("d1", TypeAlarm), payload: `{"event_id":"","ts":"2025-01-02T15:04:05Z"}`,
		want: refused("d1", TypeAlarm, ""), err: missing("event_id", "every message needs an event_id, reused when retrying")},
	{name: "event_id null", topic: UpTopic("d1", TypeAlarm), payload: `{"event_id":null}`,
		want: refused("d1", TypeAlarm, ""), err: missing("event_id", "every message needs an event_id, reused when retrying")},
	{name: "event_id too long", topic: UpTopic("d1", TypeAlarm), payload: `{"event_id":"` + strings.Repeat("e", 65) + `"}`,
		want: refused("d1", TypeAlarm, ""), err: invalid("event_id", "is 65 bytes, longer than 64")},
	{name: "event_id too long in bytes", topic: UpTopic("d1", TypeAlarm), payload: `{"event_id":"` + strings.Repeat("é", 33) + `"}`,
		want: refused("d1", TypeAlarm, ""), err: invalid("event_id", "is 66 bytes, longer than 64")},
	{name: "event_id with a space", topic: UpTopic("d1", TypeAlarm), payload: `{"event_id":"a b"}`,
		want: refused("d1", TypeAlarm, ""), err: invalid("event_id", "may hold only letters, digits and - _ . :")},
	{name: "event_id with a slash", topic: UpTopic("d1", TypeAlarm), payload: `{"event_id":"a/b"}`,
		want: refused("d1", TypeAlarm, ""), err: invalid("event_id", "may hold only letters, digits and - _ . :")},
	{name: "event_id with a letter not ASCII", topic: UpTopic("d1", TypeAlarm), payload: `{"event_id":"caf\u00e9"}`,
		want: refused("d1", TypeAlarm, ""), err: invalid("event_id", "may hold only letters, digits and - _ . :")},
	{name: "unknown type without event_id", topic: UpTopic("d1", "nope"), payload: `{}`,
		want: refused("d1", "nope", ""), err: missing("event_id", "every message needs an event_id, reused when retrying")},

	// Unknown type: after event_id, before ts.
	{name: "unknown type", topic: UpTopic("d1", "nope"), payload: payload(""), want: refused("d1", "nope", "e1"),
		err: &DecodeError{Code: CodeUnknownType, Msg: `"nope" is not a message type of protocol v1; known types: ` + typesText}},
	{name: "unknown type without ts", topic: UpTopic("d1", "Alarm"), payload: `{"event_id":"e1"}`, want: refused("d1", "Alarm", "e1"),
		err: &DecodeError{Code: CodeUnknownType, Msg: `"Alarm" is not a message type of protocol v1; known types: ` + typesText}},
	{name: "unknown type with a trailing slash", topic: UpTopic("d1", "alarm/"), payload: payload(`"alarm_type":"test"`),
		want: refused("d1", "alarm/", "e1"),
		err:  &DecodeError{Code: CodeUnknownType, Msg: `"alarm/" is not a message type of protocol v1; known types: ` + typesText}},
	{name: "unknown type under up/", topic: UpTopic("d1", "session"), payload: payload(""), want: refused("d1", "session", "e1"),
		err: &DecodeError{Code: CodeUnknownType, Msg: `"session" is not a message type of protocol v1; known types: ` + typesText}},

	// ts.
	{name: "ts missing", topic: UpTopic("d1", TypeAlarm), payload: `{"event_id":"e1","alarm_type":"test"}`,
		want: refused("d1", TypeAlarm, "e1"), err: missing("ts", "every message needs ts, the device's time in RFC 3339")},
	{name: "ts empty", topic: UpTopic("d1", TypeHeartbeat), payload: `{"event_id":"e1","ts":""}`,
		want: refused("d1", TypeHeartbeat, "e1"), err: missing("ts", "every message needs ts, the device's time in RFC 3339")},
	{name: "ts null", topic: UpTopic("d1", TypeHeartbeat), payload: `{"event_id":"e1","ts":null}`,
		want: refused("d1", TypeHeartbeat, "e1"), err: missing("ts", "every message needs ts, the device's time in RFC 3339")},
	{name: "ts not a time", topic: UpTopic("d1", TypeHeartbeat), payload: `{"event_id":"e1","ts":"yesterday"}`,
		want: refused("d1", TypeHeartbeat, "e1"),
		err:  invalid("ts", `"yesterday" is not an RFC 3339 time such as 2025-01-02T15:04:05Z`)},
	{name: "ts without a zone", topic: UpTopic("d1", TypeHeartbeat), payload: `{"event_id":"e1","ts":"2025-01-02T15:04:05"}`,
		want: refused("d1", TypeHeartbeat, "e1"),
		err:  invalid("ts", `"2025-01-02T15:04:05" is not an RFC 3339 time such as 2025-01-02T15:04:05Z`)},
	{name: "ts 1970 dropped, the alarm taken", topic: UpTopic("d1", TypeAlarm),
		payload: `{"event_id":"e1","ts":"1970-01-01T00:00:07Z","alarm_type":"red_alert"}`,
		want: accepted(TypeAlarm, func(m *Message) {
			m.TS, m.AlarmType = time.Time{}, monitoring.AlarmRedAlert
			m.ClockOff = "ts 1970-01-01T00:00:07Z is before 2000-01-01T00:00:00Z: the device's clock is not set"
		})},
	{name: "ts 9999 dropped, the alarm taken", topic: UpTopic("d1", TypeAlarm),
		payload: `{"event_id":"e1","ts":"9999-12-31T23:59:59Z","alarm_type":"man_down"}`,
		want: accepted(TypeAlarm, func(m *Message) {
			m.TS, m.AlarmType = time.Time{}, monitoring.AlarmManDown
			m.ClockOff = "ts 9999-12-31T23:59:59Z is more than 24 hours ahead of this node's clock (2025-01-02T15:05:05Z): the device's clock is wrong"
		})},
	{name: "ts a day ahead taken", topic: UpTopic("d1", TypeHeartbeat), payload: `{"event_id":"e1","ts":"2025-01-03T15:05:05Z"}`,
		want: accepted(TypeHeartbeat, func(m *Message) { m.TS = decodeNow.Add(monitoring.MaxDeviceClockAhead) })},
	{name: "ts 1999 dropped from audio", topic: UpTopic("d1", TypeAudio),
		payload: `{"event_id":"e1","ts":"1999-12-31T23:59:59Z","alarm_id":"7d4c","seq":1,"codec":"wav","data":"AAAA"}`,
		want: accepted(TypeAudio, func(m *Message) {
			m.TS, m.ClockOff = time.Time{}, "ts 1999-12-31T23:59:59Z is before 2000-01-01T00:00:00Z: the device's clock is not set"
			m.Audio = monitoring.AudioChunkRequest{AlarmID: "7d4c", DeviceID: "d1", Seq: 1, Codec: monitoring.CodecWAV, Data: []byte{0, 0, 0}}
		})},
	{name: "ts checked before the type's fields", topic: UpTopic("d1", TypeAlarm), payload: `{"event_id":"e1","ts":"x"}`,
		want: refused("d1", TypeAlarm, "e1"), err: invalid("ts", `"x" is not an RFC 3339 time such as 2025-01-02T15:04:05Z`)},

	// location, on any type.
	{name: "location without lat", topic: UpTopic("d1", TypeAlarm), payload: payload(`"alarm_type":"test","location":{"lon":1}`),
		want: refused("d1", TypeAlarm, "e1"), err: missing("location.lat", "the latitude in degrees")},
	{name: "location empty", topic: UpTopic("d1", TypeHeartbeat), payload: payload(`"location":{}`),
		want: refused("d1", TypeHeartbeat, "e1"), err: missing("location.lat", "the latitude in degrees")},
	{name: "location without lon", topic: UpTopic("d1", TypeLocation), payload: payload(`"location":{"lat":100}`),
		want: refused("d1", TypeLocation, "e1"), err: missing("location.lon", "the longitude in degrees")},
	{name: "location lat too far north", topic: UpTopic("d1", TypeLocation), payload: payload(`"location":{"lat":90.5,"lon":0}`),
		want: refused("d1", TypeLocation, "e1"), err: invalid("location.lat", "90.5 is not a latitude")},
	{name: "location lat too far south", topic: UpTopic("d1", TypeLocation), payload: payload(`"location":{"lat":-91,"lon":500}`),
		want: refused("d1", TypeLocation, "e1"), err: invalid("location.lat", "-91 is not a latitude")},
	{name: "location lon out of range", topic: UpTopic("d1", TypeSessionStart), payload: payload(`"location":{"lat":0,"lon":-180.25}`),
		want: refused("d1", TypeSessionStart, "e1"), err: invalid("location.lon", "-180.25 is not a longitude")},
	{name: "location accuracy negative", topic: UpTopic("d1", TypeLocation), payload: payload(`"location":{"lat":0,"lon":0,"accuracy_m":-1.5}`),
		want: refused("d1", TypeLocation, "e1"), err: invalid("location.accuracy_m", "-1.5 is negative")},
	{name: "location source too long", topic: UpTopic("d1", TypeLocation),
		payload: payload(`"location":{"lat":0,"lon":0,"source":"` + strings.Repeat("s", 33) + `"}`),
		want:    refused("d1", TypeLocation, "e1"), err: invalid("location.source", "is longer than 32 bytes")},
	{name: "location address too long", topic: UpTopic("d1", TypeSessionStart),
		payload: payload(`"location":{"lat":0,"lon":0,"address":"` + longAddress + `x"}`),
		want:    refused("d1", TypeSessionStart, "e1"), err: invalid("location.address", "is 301 bytes, longer than 300")},
	{name: "location checked before battery", topic: UpTopic("d1", TypeHeartbeat), payload: payload(`"battery":101,"location":{"lat":0}`),
		want: refused("d1", TypeHeartbeat, "e1"), err: missing("location.lon", "the longitude in degrees")},
	{name: "location checked on an unrelated type", topic: UpTopic("d1", TypePromptAnswer), payload: payload(`"location":{"lon":0}`),
		want: refused("d1", TypePromptAnswer, "e1"), err: missing("location.lat", "the latitude in degrees")},

	// battery, on any type.
	{name: "battery negative", topic: UpTopic("d1", TypeBattery), payload: payload(`"battery":-1`),
		want: refused("d1", TypeBattery, "e1"), err: invalid("battery", "-1 is not a percentage from 0 to 100")},
	{name: "battery over 100 in a heartbeat", topic: UpTopic("d1", TypeHeartbeat), payload: payload(`"battery":101`),
		want: refused("d1", TypeHeartbeat, "e1"), err: invalid("battery", "101 is not a percentage from 0 to 100")},
	{name: "battery checked before the type's fields", topic: UpTopic("d1", TypeAlarm), payload: payload(`"battery":200`),
		want: refused("d1", TypeAlarm, "e1"), err: invalid("battery", "200 is not a percentage from 0 to 100")},

	// alarm.
	{name: "alarm_type missing", topic: UpTopic("d1", TypeAlarm), payload: payload(""),
		want: refused("d1", TypeAlarm, "e1"), err: missing("alarm_type", "one of "+alarmTypesText)},
	{name: "alarm_type empty", topic: UpTopic("d1", TypeAlarm), payload: payload(`"alarm_type":""`),
		want: refused("d1", TypeAlarm, "e1"), err: missing("alarm_type", "one of "+alarmTypesText)},
	{name: "alarm_type duress", topic: UpTopic("d1", TypeAlarm), payload: payload(`"alarm_type":"duress"`),
		want: refused("d1", TypeAlarm, "e1"),
		err:  invalid("alarm_type", `"duress" is not an alarm type a device may raise: one of `+alarmTypesText)},
	{name: "alarm_type missed_checkin", topic: UpTopic("d1", TypeAlarm), payload: payload(`"alarm_type":"missed_checkin"`),
		want: refused("d1", TypeAlarm, "e1"),
		err:  invalid("alarm_type", `"missed_checkin" is not an alarm type a device may raise: one of `+alarmTypesText)},
	{name: "alarm_type in capitals", topic: UpTopic("d1", TypeAlarm), payload: payload(`"alarm_type":"RED_ALERT"`),
		want: refused("d1", TypeAlarm, "e1"),
		err:  invalid("alarm_type", `"RED_ALERT" is not an alarm type a device may raise: one of `+alarmTypesText)},

	// alarm/cancel.
	{name: "alarm/cancel without alarm_id", topic: UpTopic("d1", TypeAlarmCancel), payload: payload(`"pin":"1111"`),
		want: refused("d1", TypeAlarmCancel, "e1"), err: missing("alarm_id", "the alarm to cancel")},
	{name: "alarm/cancel alarm_id empty", topic: UpTopic("d1", TypeAlarmCancel), payload: payload(`"alarm_id":""`),
		want: refused("d1", TypeAlarmCancel, "e1"), err: missing("alarm_id", "the alarm to cancel")},

	// session/start.
	{name: "duration not a duration", topic: UpTopic("d1", TypeSessionStart), payload: payload(`"duration":"soon"`),
		want: refused("d1", TypeSessionStart, "e1"), err: invalid("duration", `"soon"`+durationText)},
	{name: "duration negative", topic: UpTopic("d1", TypeSessionStart), payload: payload(`"duration":"-5m"`),
		want: refused("d1", TypeSessionStart, "e1"), err: invalid("duration", `"-5m"`+durationText)},
	{name: "duration without unit", topic: UpTopic("d1", TypeSessionStart), payload: payload(`"duration":"45"`),
		want: refused("d1", TypeSessionStart, "e1"), err: invalid("duration", `"45"`+durationText)},
	{name: "checkin_interval not a duration", topic: UpTopic("d1", TypeSessionStart), payload: payload(`"duration":"1h","checkin_interval":"often"`),
		want: refused("d1", TypeSessionStart, "e1"), err: invalid("checkin_interval", `"often"`+durationText)},
	{name: "duration zero", topic: UpTopic("d1", TypeSessionStart), payload: payload(`"duration":"0s"`),
		want: refused("d1", TypeSessionStart, "e1"), err: invalid("duration", `"0s"`+durationText)},
	{name: "checkin_interval zero", topic: UpTopic("d1", TypeSessionStart), payload: payload(`"checkin_interval":"0m"`),
		want: refused("d1", TypeSessionStart, "e1"), err: invalid("checkin_interval", `"0m"`+durationText)},
	{name: "checkin_interval negative", topic: UpTopic("d1", TypeSessionStart), payload: payload(`"checkin_interval":"-15m"`),
		want: refused("d1", TypeSessionStart, "e1"), err: invalid("checkin_interval", `"-15m"`+durationText)},
	{name: "duration checked before checkin_interval", topic: UpTopic("d1", TypeSessionStart),
		payload: payload(`"checkin_interval":"often","duration":"soon"`),
		want:    refused("d1", TypeSessionStart, "e1"), err: invalid("duration", `"soon"`+durationText)},

	// session/checkin, session/extend, session/end.
	{name: "session/checkin without session_id", topic: UpTopic("d1", TypeSessionCheckIn), payload: payload(`"pin":"1111"`),
		want: refused("d1", TypeSessionCheckIn, "e1"), err: missing("session_id", "the session this message is about")},
	{name: "session/end session_id empty", topic: UpTopic("d1", TypeSessionEnd), payload: payload(`"session_id":""`),
		want: refused("d1", TypeSessionEnd, "e1"), err: missing("session_id", "the session this message is about")},
	{name: "session/extend without session_id", topic: UpTopic("d1", TypeSessionExtend), payload: payload(`"extend_by":"x"`),
		want: refused("d1", TypeSessionExtend, "e1"), err: missing("session_id", "the session this message is about")},
	{name: "session/extend without extend_by", topic: UpTopic("d1", TypeSessionExtend), payload: payload(`"session_id":"s"`),
		want: refused("d1", TypeSessionExtend, "e1"), err: missing("extend_by", `how much longer, as a Go duration such as "30m"`)},
	{name: "session/extend extend_by empty", topic: UpTopic("d1", TypeSessionExtend), payload: payload(`"session_id":"s","extend_by":""`),
		want: refused("d1", TypeSessionExtend, "e1"), err: missing("extend_by", `how much longer, as a Go duration such as "30m"`)},
	{name: "session/extend extend_by negative", topic: UpTopic("d1", TypeSessionExtend), payload: payload(`"session_id":"s","extend_by":"-1h"`),
		want: refused("d1", TypeSessionExtend, "e1"), err: invalid("extend_by", `"-1h"`+durationText)},
	{name: "session/extend extend_by zero", topic: UpTopic("d1", TypeSessionExtend), payload: payload(`"session_id":"s","extend_by":"0s"`),
		want: refused("d1", TypeSessionExtend, "e1"), err: invalid("extend_by", `"0s"`+durationText)},
	{name: "session/extend extend_by not a duration", topic: UpTopic("d1", TypeSessionExtend), payload: payload(`"session_id":"s","extend_by":"30"`),
		want: refused("d1", TypeSessionExtend, "e1"), err: invalid("extend_by", `"30"`+durationText)},

	// location, battery: their one field.
	{name: "location without location", topic: UpTopic("d1", TypeLocation), payload: payload(""),
		want: refused("d1", TypeLocation, "e1"), err: missing("location", "{lat, lon, accuracy_m, source}")},
	{name: "location null", topic: UpTopic("d1", TypeLocation), payload: payload(`"location":null`),
		want: refused("d1", TypeLocation, "e1"), err: missing("location", "{lat, lon, accuracy_m, source}")},
	{name: "battery without battery", topic: UpTopic("d1", TypeBattery), payload: payload(`"firmware":"1"`),
		want: refused("d1", TypeBattery, "e1"), err: missing("battery", "the charge in percent, 0 to 100")},

	// update.
	{name: "update missing", topic: UpTopic("d1", TypeUpdate), payload: payload(`"session_id":"s"`),
		want: refused("d1", TypeUpdate, "e1"), err: missing("update", "the Update message text")},
	{name: "update blank", topic: UpTopic("d1", TypeUpdate), payload: payload(`"update":" \t\n"`),
		want: refused("d1", TypeUpdate, "e1"), err: missing("update", "the Update message text")},

	// prompt/answer.
	{name: "prompt/answer without prompt_id", topic: UpTopic("d1", TypePromptAnswer), payload: payload(""),
		want: refused("d1", TypePromptAnswer, "e1"), err: missing("prompt_id", "the prompt answered, as down/prompt gave it")},
	{name: "prompt/answer without answer", topic: UpTopic("d1", TypePromptAnswer), payload: payload(`"prompt_id":"p"`),
		want: refused("d1", TypePromptAnswer, "e1"), err: missing("answer", "one of acknowledged, tapped, declined")},
	{name: "prompt/answer answer empty", topic: UpTopic("d1", TypePromptAnswer), payload: payload(`"prompt_id":"p","answer":""`),
		want: refused("d1", TypePromptAnswer, "e1"), err: missing("answer", "one of acknowledged, tapped, declined")},
	{name: "prompt/answer answer unknown", topic: UpTopic("d1", TypePromptAnswer), payload: payload(`"prompt_id":"p","answer":"maybe"`),
		want: refused("d1", TypePromptAnswer, "e1"), err: invalid("answer", `"maybe" is not one of acknowledged, tapped, declined`)},

	// audio.
	{name: "audio without alarm_id", topic: UpTopic("d1", TypeAudio), payload: payload(`"seq":0,"codec":"wav","data":"AAAA"`),
		want: refused("d1", TypeAudio, "e1"),
		err:  missing("alarm_id", "the alarm this audio belongs to, as the reply to the alarm gave it")},
	{name: "audio without seq", topic: UpTopic("d1", TypeAudio), payload: payload(`"alarm_id":"a","codec":"wav","data":"AAAA"`),
		want: refused("d1", TypeAudio, "e1"), err: missing("seq", "the number of the chunk in the alarm's audio, from 0")},
	{name: "audio seq negative", topic: UpTopic("d1", TypeAudio), payload: payload(`"alarm_id":"a","seq":-1,"codec":"wav","data":"AAAA"`),
		want: refused("d1", TypeAudio, "e1"), err: invalid("seq", "-1 is not from 0 to 8191")},
	{name: "audio seq past the last", topic: UpTopic("d1", TypeAudio), payload: payload(`"alarm_id":"a","seq":8192,"codec":"wav","data":"AAAA"`),
		want: refused("d1", TypeAudio, "e1"), err: invalid("seq", "8192 is not from 0 to 8191")},
	{name: "audio without codec", topic: UpTopic("d1", TypeAudio), payload: payload(`"alarm_id":"a","seq":0,"data":"AAAA"`),
		want: refused("d1", TypeAudio, "e1"), err: missing("codec", "one of pcm_s16le, wav, ogg_opus")},
	{name: "audio codec unknown", topic: UpTopic("d1", TypeAudio), payload: payload(`"alarm_id":"a","seq":0,"codec":"mp3","data":"AAAA"`),
		want: refused("d1", TypeAudio, "e1"),
		err:  invalid("codec", `"mp3" is not a codec of protocol v1: one of pcm_s16le, wav, ogg_opus`)},
	{name: "audio without data", topic: UpTopic("d1", TypeAudio), payload: payload(`"alarm_id":"a","seq":0,"codec":"wav"`),
		want: refused("d1", TypeAudio, "e1"), err: missing("data", "the audio, in base64")},
	{name: "audio data not base64", topic: UpTopic("d1", TypeAudio), payload: payload(`"alarm_id":"a","seq":0,"codec":"wav","data":"!!!!"`),
		want: refused("d1", TypeAudio, "e1"),
		err:  invalid("data", "is not base64 (standard alphabet, with padding): illegal base64 data at input byte 0")},
	{name: "audio data unpadded", topic: UpTopic("d1", TypeAudio), payload: payload(`"alarm_id":"a","seq":0,"codec":"wav","data":"AAA"`),
		want: refused("d1", TypeAudio, "e1"),
		err:  invalid("data", "is not base64 (standard alphabet, with padding): illegal base64 data at input byte 0")},
	{name: "audio data only line breaks", topic: UpTopic("d1", TypeAudio), payload: payload(`"alarm_id":"a","seq":0,"codec":"wav","data":"\r\n"`),
		want: refused("d1", TypeAudio, "e1"), err: invalid("data", "holds no audio")},
	{name: "audio data too much", topic: UpTopic("d1", TypeAudio), payload: payload(`"alarm_id":"a","seq":0,"codec":"wav","data":"` + overData + `"`),
		want: refused("d1", TypeAudio, "e1"),
		err:  invalid("data", "holds 32769 bytes of audio, more than the 32768 a chunk may carry")},
	{name: "audio pcm without sample_rate", topic: UpTopic("d1", TypeAudio),
		payload: payload(`"alarm_id":"a","seq":0,"codec":"pcm_s16le","channels":1,"data":"AAAA"`),
		want:    refused("d1", TypeAudio, "e1"), err: missing("sample_rate", "pcm_s16le needs the sample rate, in Hz")},
	{name: "audio pcm without channels", topic: UpTopic("d1", TypeAudio),
		payload: payload(`"alarm_id":"a","seq":0,"codec":"pcm_s16le","sample_rate":8000,"data":"AAAA"`),
		want:    refused("d1", TypeAudio, "e1"), err: missing("channels", "pcm_s16le needs the number of channels")},
}

// sameMessage reports whether got and want are the same message, times
// compared as instants in the same zone offset.
func sameMessage(got, want Message) bool {
	sameTime := func(a, b time.Time) bool {
		_, ao := a.Zone()
		_, bo := b.Zone()
		return a.Equal(b) && ao == bo
	}
	if !sameTime(got.TS, want.TS) || !sameTime(got.Audio.DeviceTime, want.Audio.DeviceTime) {
		return false
	}
	got.TS, want.TS, got.Audio.DeviceTime, want.Audio.DeviceTime = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	return reflect.DeepEqual(got, want)
}

// Decode accepts every message type, and refuses each fault with its own
// code, field and text, naming the device, type and event_id it could read.
func TestDecode_Table(t *testing.T) {
	for _, tc := range decodeCases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := decodeAt(tc.topic, []byte(tc.payload), decodeNow)
			if tc.err == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if !sameMessage(m, tc.want) {
					t.Fatalf("decoded\n %+v\nwant\n %+v", m, tc.want)
				}
				return
			}
			de, ok := err.(*DecodeError)
			if !ok {
				t.Fatalf("error %T %v, want a *DecodeError", err, err)
			}
			if *de != *tc.err {
				t.Fatalf("refused with\n %#v\nwant\n %#v", *de, *tc.err)
			}
			if m.DeviceID != tc.want.DeviceID || m.Type != tc.want.Type || m.EventID != tc.want.EventID {
				t.Fatalf("refused message has device %q, type %q, event_id %q; want %q, %q, %q",
					m.DeviceID, m.Type, m.EventID, tc.want.DeviceID, tc.want.Type, tc.want.EventID)
			}
		})
	}
}

// Every message type has an accepted case in the table, and the table
// refuses with every decode error code.
func TestDecode_TableCoversEveryTypeAndCode(t *testing.T) {
	types := map[string]bool{}
	codes := map[string]bool{}
	for _, tc := range decodeCases {
		if tc.err == nil {
			types[tc.want.Type] = true
		} else {
			codes[tc.err.Code] = true
		}
	}
	for _, typ := range Types {
		if !types[typ] {
			t.Errorf("no accepted %s in decodeCases", typ)
		}
	}
	for _, code := range []string{CodeBadTopic, CodeTooLarge, CodeMalformedJSON, CodeUnknownType, CodeMissingField, CodeInvalidField} {
		if !codes[code] {
			t.Errorf("no refusal with code %s in decodeCases", code)
		}
	}
}

// messageTypes has a decoder for each of Types, and for nothing else: a
// type Types does not list would be accepted while the unknown_type reply
// leaves it out.
func TestDecode_MessageTypesAreTypes(t *testing.T) {
	if len(messageTypes) != len(Types) {
		t.Errorf("%d messageTypes for %d Types", len(messageTypes), len(Types))
	}
	for _, typ := range Types {
		if mt, ok := messageTypes[typ]; !ok || mt.decode == nil {
			t.Errorf("no decoder for %s", typ)
		}
	}
}

// An error reply's text names the field when there is one.
func TestDecodeError_Error(t *testing.T) {
	if got := invalid("battery", "101 is not a percentage").Error(); got != "invalid_field (battery): 101 is not a percentage" {
		t.Errorf("with a field: %q", got)
	}
	if got := malformed("EOF").Error(); got != "malformed_json: EOF" {
		t.Errorf("without a field: %q", got)
	}
}

// Decode never panics, refuses only with a complete *DecodeError (one that
// names its field when the fault is a field's), and accepts only complete
// messages of a known type, which read the same when encoded again. The
// seeds are the table's messages; testdata/fuzz/FuzzDecode holds what the
// fuzzer found.
func FuzzDecode(f *testing.F) {
	for _, tc := range decodeCases {
		f.Add(tc.topic, []byte(tc.payload))
	}
	codes := []string{CodeBadTopic, CodeTooLarge, CodeMalformedJSON, CodeUnknownType, CodeMissingField, CodeInvalidField}
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		m, err := decodeAt(topic, payload, decodeNow)
		if err != nil {
			de, ok := err.(*DecodeError)
			if !ok || !slices.Contains(codes, de.Code) || de.Msg == "" {
				t.Fatalf("error %#v is not a complete DecodeError", err)
			}
			if de.Code == CodeMissingField && de.Field == "" {
				t.Fatalf("missing_field without its field: %v", de)
			}
			if len(m.EventID) > MaxEventIDLen {
				t.Fatalf("refused message keeps an event_id of %d bytes", len(m.EventID))
			}
			return
		}
		if m.EventID == "" || len(m.EventID) > MaxEventIDLen || m.TS.IsZero() != (m.ClockOff != "") || m.DeviceID == "" {
			t.Fatalf("accepted an incomplete message %+v", m)
		}
		if !m.TS.IsZero() && monitoring.CheckDeviceTime("ts", m.TS, decodeNow) != nil {
			t.Fatalf("accepted ts %v, out of bounds", m.TS)
		}
		if !slices.Contains(Types, m.Type) {
			t.Fatalf("accepted a message of unknown type %q", m.Type)
		}
		if m.Type == TypeAlarm && !slices.Contains(DeviceAlarmTypes, m.AlarmType) {
			t.Fatalf("alarm of type %q", m.AlarmType)
		}
		if m.Battery != nil && (*m.Battery < 0 || *m.Battery > 100) {
			t.Fatalf("battery %d", *m.Battery)
		}
		if m.Duration < 0 || m.CheckInInterval < 0 || m.ExtendBy < 0 || m.Type == TypeSessionExtend && m.ExtendBy == 0 {
			t.Fatalf("durations %v, %v, %v", m.Duration, m.CheckInInterval, m.ExtendBy)
		}
		if len(payload) > MaxPayload && (m.Type != TypeAudio || len(payload) > MaxAudioPayload) {
			t.Fatalf("accepted %d bytes of %s", len(payload), m.Type)
		}
		again, err := decodeAt(topic, encodeMessage(t, m), decodeNow)
		if err != nil {
			t.Fatalf("%+v, encoded again, is refused: %v", m, err)
		}
		if m.ClockOff != "" && again.ClockOff != "" {
			m.ClockOff, again.ClockOff = "off", "off"
		}
		if !sameMessage(again, m) {
			t.Fatalf("%+v, encoded again, reads as %+v", m, again)
		}
	})
}

// encodeMessage is the payload of m as a device would send it: every field
// m holds, under its name in protocol v1. A ts that was dropped is sent as
// 1970.
func encodeMessage(t *testing.T, m Message) []byte {
	t.Helper()
	out := map[string]any{"event_id": m.EventID, "ts": m.TS.Format(time.RFC3339Nano)}
	if m.ClockOff != "" {
		out["ts"] = "1970-01-01T00:00:00Z"
	}
	set := func(k string, v any, ok bool) {
		if ok {
			out[k] = v
		}
	}
	set("alarm_type", m.AlarmType, m.AlarmType != "")
	set("location", m.Location, m.Location != nil)
	set("worker_id", m.WorkerID, m.WorkerID != "")
	set("session_id", m.SessionID, m.SessionID != "")
	set("duration", m.Duration.String(), m.Duration != 0)
	set("checkin_interval", m.CheckInInterval.String(), m.CheckInInterval != 0)
	set("update", m.Update, m.Update != "")
	set("extend_by", m.ExtendBy.String(), m.ExtendBy != 0)
	set("alarm_id", m.AlarmID, m.AlarmID != "")
	set("pin", m.PIN, m.PIN != "")
	set("battery", m.Battery, m.Battery != nil)
	set("firmware", m.Firmware, m.Firmware != "")
	set("prompt_id", m.PromptID, m.PromptID != "")
	set("answer", m.Answer, m.Answer != "")
	if a := m.Audio; m.Type == TypeAudio {
		out["alarm_id"], out["seq"], out["codec"] = a.AlarmID, a.Seq, a.Codec
		out["data"] = base64.StdEncoding.EncodeToString(a.Data)
		set("sample_rate", a.SampleRate, a.SampleRate != 0)
		set("channels", a.Channels, a.Channels != 0)
	}
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The visit address a worker typed comes through with a session's start
// location; one past the limit is refused naming the field.
func TestDecode_LocationAddress(t *testing.T) {
	const topic = "vigil/v1/d/d1/up/session/start"
	m, err := Decode(topic, []byte(`{"event_id":"e1","ts":"2025-01-02T15:04:05Z","duration":"45m",`+
		`"location":{"lat":53.48,"lon":-2.29,"source":"manual","address":"Flat 3, 12 Mill Lane, Salford"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if m.Location == nil || m.Location.Address != "Flat 3, 12 Mill Lane, Salford" || m.Location.Source != "manual" {
		t.Fatalf("location %+v", m.Location)
	}
	long := strings.Repeat("x", monitoring.MaxAddressLen+1)
	_, err = Decode(topic, []byte(`{"event_id":"e2","ts":"2025-01-02T15:04:05Z","duration":"45m","location":{"lat":53.48,"lon":-2.29,"address":"`+long+`"}}`))
	var de *DecodeError
	if !errors.As(err, &de) || de.Code != CodeInvalidField || de.Field != "location.address" {
		t.Fatalf("a %d-byte address: %v; want invalid_field location.address", len(long), err)
	}
}

// benchmarkMessages are messages as devices send them most: telemetry,
// alarms and sessions, a 1 s chunk of 8 kHz PCM, and a refusal.
var benchmarkMessages = []struct{ name, topic, payload string }{
	{"heartbeat", UpTopic("d1", TypeHeartbeat), payload(`"battery":64,"firmware":"2.1.0"`)},
	{"location", UpTopic("d1", TypeLocation), payload(`"location":{"lat":51.5,"lon":-0.12,"accuracy_m":20,"source":"wifi"}`)},
	{"alarm", UpTopic("d1", TypeAlarm),
		payload(`"alarm_type":"red_alert","location":{"lat":51.5,"lon":-0.12,"accuracy_m":8,"source":"gps"}`)},
	{"session_start", UpTopic("d1", TypeSessionStart),
		payload(`"session_id":"visit-42","duration":"45m","checkin_interval":"15m","location":{"lat":51.5,"lon":-0.12},"update":"Flat 3, dog in the garden"`)},
	{"session_extend", UpTopic("d1", TypeSessionExtend), payload(`"session_id":"visit-42","pin":"1111","extend_by":"30m"`)},
	{"audio", UpTopic("d1", TypeAudio),
		payload(`"alarm_id":"7d4c","seq":12,"codec":"pcm_s16le","sample_rate":8000,"channels":1,"data":"` +
			base64.StdEncoding.EncodeToString(make([]byte, 16000)) + `"`)},
	{"refused", UpTopic("d1", TypeAlarm), payload(`"alarm_type":"duress"`)},
}

func BenchmarkDecode(b *testing.B) {
	for _, bm := range benchmarkMessages {
		b.Run(bm.name, func(b *testing.B) {
			p := []byte(bm.payload)
			b.SetBytes(int64(len(p)))
			for b.Loop() {
				_, _ = Decode(bm.topic, p)
			}
		})
	}
}
