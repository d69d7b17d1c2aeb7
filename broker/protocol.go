package broker

// Device protocol v1: topics, payloads and the decoder. docs/device-protocol.md
// is the reference for device makers; keep the two in step.

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/internal/strictjson"
)

// Topic layout of protocol v1.
const (
	// TopicPrefix begins every topic of protocol v1: vigil/v1/d/<device>/...
	TopicPrefix = "vigil/v1/d/"
	// MaxPayload is the largest payload decoded; a larger one gets an
	// error reply with code too_large.
	MaxPayload = 16 * 1024
	// MaxAudioPayload is the largest audio payload decoded: room for
	// monitoring.MaxAudioChunkBytes of audio in base64, under
	// DefaultMaxPacket.
	MaxAudioPayload = 48 * 1024
	// MaxEventIDLen is the longest event ID.
	MaxEventIDLen = 64
)

// Message types: the part of the topic after up/.
const (
	TypeAlarm          = "alarm"
	TypeAlarmCancel    = "alarm/cancel"
	TypeSessionStart   = "session/start"
	TypeSessionCheckIn = "session/checkin"
	TypeSessionExtend  = "session/extend"
	TypeSessionEnd     = "session/end"
	TypeLocation       = "location"
	TypeUpdate         = "update"
	TypeBattery        = "battery"
	TypeHeartbeat      = "heartbeat"
	TypeAudio          = "audio" // a chunk of audio from a device in alarm (audio.go)
	// TypePromptAnswer is the answer to a down/prompt (commands.go).
	TypePromptAnswer = "prompt/answer"
)

// Types lists every message type a device may send, in the order error
// replies list them. Each has its entry in messageTypes.
var Types = []string{TypeAlarm, TypeAlarmCancel, TypeSessionStart, TypeSessionCheckIn, TypeSessionExtend,
	TypeSessionEnd, TypeLocation, TypeUpdate, TypeBattery, TypeHeartbeat, TypeAudio, TypePromptAnswer}

// DeviceAlarmTypes are the alarm types a device may raise. The others are
// raised by Vigil itself (missed check-in, device offline) or only by the
// Duress PIN.
var DeviceAlarmTypes = []monitoring.AlarmType{monitoring.AlarmRedAlert, monitoring.AlarmDiscreetPanic,
	monitoring.AlarmManDown, monitoring.AlarmLowBattery, monitoring.AlarmTest}

// UpTopic returns the topic on which device publishes messages of type t.
func UpTopic(device, t string) string { return TopicPrefix + device + "/up/" + t }

// DownTopic returns the topic on which Vigil publishes to device; sub is
// "reply", "session", DownAlarm or DownReminder.
func DownTopic(device, sub string) string { return TopicPrefix + device + "/down/" + sub }

// Decode error codes, as they appear in error replies.
const (
	CodeBadTopic      = "bad_topic"
	CodeTooLarge      = "too_large"
	CodeMalformedJSON = "malformed_json"
	CodeUnknownType   = "unknown_type"
	CodeMissingField  = "missing_field"
	CodeInvalidField  = "invalid_field"
)

// DecodeError is why a message cannot be decoded. Field names the field at
// fault, when one is.
type DecodeError struct {
	Code  string
	Field string
	Msg   string
}

func (e *DecodeError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s (%s): %s", e.Code, e.Field, e.Msg)
	}
	return e.Code + ": " + e.Msg
}

func decodeErr(code, field, format string, a ...any) *DecodeError {
	return &DecodeError{Code: code, Field: field, Msg: fmt.Sprintf(format, a...)}
}

// Location is a position fix as a device sends it.
type Location struct {
	Lat      *float64 `json:"lat"`
	Lon      *float64 `json:"lon"`
	Accuracy float64  `json:"accuracy_m,omitempty"`
	Source   string   `json:"source,omitempty"` // gps, wifi, cell, manual
	// Address is the visit address as the worker typed it into the app
	// (session/start); the console shows it beside the fix.
	Address string `json:"address,omitempty"`
}

// Message is one decoded message from a device. Which fields are set
// depends on Type.
type Message struct {
	DeviceID string    // from the topic
	Type     string    // from the topic, one of Types
	EventID  string    // the device's ID of this event; the command ID
	TS       time.Time // the device's clock; zero when ClockOff
	// ClockOff says why the device's ts was dropped: it is outside the
	// bounds of monitoring.CheckDeviceTime (a clock not set, or far ahead).
	// The message is taken all the same, as if it had no device time.
	ClockOff string

	AlarmType       monitoring.AlarmType // alarm
	Location        *monitoring.Location // alarm, session/start, location, heartbeat
	WorkerID        string               // session/start, update (optional: else the device's worker)
	SessionID       string               // session/start (optional), checkin, extend, end, update (optional)
	Duration        time.Duration        // session/start (optional: else the organisation's default)
	CheckInInterval time.Duration        // session/start (optional)
	Update          string               // session/start (optional), update
	ExtendBy        time.Duration        // session/extend
	AlarmID         string               // alarm/cancel
	PIN             string               // checkin, extend, end, alarm/cancel
	Battery         *int                 // battery, heartbeat (optional)
	Firmware        string               // heartbeat (optional)

	Audio monitoring.AudioChunkRequest // audio: device_id and device_time come from the topic and ts

	PromptID string                  // prompt/answer
	Answer   monitoring.PromptAnswer // prompt/answer
}

// wire is a payload as sent; Decode checks it field by field.
type wire struct {
	EventID         *string   `json:"event_id"`
	TS              *string   `json:"ts"`
	AlarmType       *string   `json:"alarm_type"`
	Location        *Location `json:"location"`
	WorkerID        string    `json:"worker_id"`
	SessionID       *string   `json:"session_id"`
	Duration        string    `json:"duration"`
	CheckInInterval string    `json:"checkin_interval"`
	Update          *string   `json:"update"`
	ExtendBy        *string   `json:"extend_by"`
	AlarmID         *string   `json:"alarm_id"`
	PIN             string    `json:"pin"`
	Battery         *int      `json:"battery"`
	Firmware        string    `json:"firmware"`
	Seq             *int64    `json:"seq"`         // audio
	Codec           *string   `json:"codec"`       // audio
	SampleRate      int       `json:"sample_rate"` // audio
	Channels        int       `json:"channels"`    // audio
	Data            *string   `json:"data"`        // audio, base64
	PromptID        *string   `json:"prompt_id"`   // prompt/answer
	Answer          *string   `json:"answer"`      // prompt/answer
}

// ParseTopic splits an up topic into the device ID and the message type.
// The type is not checked against Types.
func ParseTopic(topic string) (device, typ string, err error) {
	rest, ok := strings.CutPrefix(topic, TopicPrefix)
	if !ok {
		return "", "", decodeErr(CodeBadTopic, "", "topic %q does not begin with %s", topic, TopicPrefix)
	}
	device, typ, ok = strings.Cut(rest, "/up/")
	if !ok || device == "" || strings.Contains(device, "/") || typ == "" {
		return "", "", decodeErr(CodeBadTopic, "", "topic %q is not %s<device>/up/<type>", topic, TopicPrefix)
	}
	return device, typ, nil
}

// Decode decodes a message published on topic, received now. The error, a
// *DecodeError, names the problem: a bad topic, an oversized payload,
// malformed JSON (a key twice, or in the wrong case, is invalid_field naming
// it), an unknown type, or a missing or invalid field. Unknown JSON fields
// are ignored, whatever they hold, so that devices may send more than v1
// knows. A ts out of monitoring.CheckDeviceTime's bounds is dropped, not
// refused (Message.ClockOff): an alarm from a device whose clock is wrong
// must still be raised.
//
// The checks run in a fixed order, which the error replies show: the topic,
// the size, the JSON, event_id (so that the reply can carry it), the type,
// the fields any message may carry (decodeCommon), and last the type's own
// fields (messageTypes). On an error the Message holds what was decoded
// before it: the device, the type and, once checked, the event_id.
func Decode(topic string, payload []byte) (Message, error) {
	return decodeAt(topic, payload, time.Now())
}

// decodeAt is Decode with the receiving node's clock reading now.
func decodeAt(topic string, payload []byte, now time.Time) (Message, error) {
	var m Message
	var err error
	if m.DeviceID, m.Type, err = ParseTopic(topic); err != nil {
		return m, err
	}
	mt, known := messageTypes[m.Type]
	if limit := mt.payloadLimit(); len(payload) > limit {
		return m, decodeErr(CodeTooLarge, "", "the payload is %d bytes, more than the limit of %d", len(payload), limit)
	}
	var w wire
	if err := readWire(payload, &w); err != nil {
		return m, err
	}
	if err := checkEventID(w.EventID); err != nil {
		return m, err
	}
	m.EventID = *w.EventID
	if !known {
		return m, decodeErr(CodeUnknownType, "", "%q is not a message type of protocol v1; known types: %s", m.Type, strings.Join(Types, ", "))
	}
	if err := decodeCommon(&m, &w, now); err != nil {
		return m, err
	}
	if m, err = mt.decode(m, &w); err != nil {
		return m, err
	}
	return m, nil
}

// messageType is how Decode takes one message type.
type messageType struct {
	// maxPayload is the largest payload decoded; 0 means MaxPayload.
	maxPayload int
	// decode checks the type's own fields in w, after decodeCommon, and
	// returns m with them set; on an error, m as far as it got. It takes
	// and returns m by value: a pointer passed through the table would move
	// every Message to the heap.
	decode func(m Message, w *wire) (Message, error)
}

// payloadLimit is the largest payload decoded for t; MaxPayload for the
// zero messageType of an unknown type, refused once its event_id is read.
func (t messageType) payloadLimit() int {
	if t.maxPayload == 0 {
		return MaxPayload
	}
	return t.maxPayload
}

// messageTypes has a messageType for every one of Types, and no other.
var messageTypes = map[string]messageType{
	TypeAlarm:          {decode: decodeAlarm},
	TypeAlarmCancel:    {decode: decodeAlarmCancel},
	TypeSessionStart:   {decode: decodeSessionStart},
	TypeSessionCheckIn: {decode: decodeSessionRef},
	TypeSessionExtend:  {decode: decodeSessionExtend},
	TypeSessionEnd:     {decode: decodeSessionRef},
	TypeLocation:       {decode: decodeLocation},
	TypeUpdate:         {decode: decodeUpdate},
	TypeBattery:        {decode: decodeBattery},
	TypeHeartbeat:      {decode: decodeHeartbeat},
	TypeAudio:          {maxPayload: MaxAudioPayload, decode: decodeAudio}, // audio needs more room than the rest
	TypePromptAnswer:   {decode: decodePromptAnswer},
}

// readWire reads payload, one JSON object, into w, with strictjson: a key
// twice in one object, or a key that matches a field only when case is
// ignored, is invalid_field naming it; so is a field of the wrong JSON type
// (the first one, if several are). Keys that are no field are skipped
// unchecked. Anything else that is not one JSON object, or is followed by
// more data, is malformed_json.
func readWire(payload []byte, w *wire) error {
	err := strictjson.Unmarshal(payload, w, strictjson.Options{SkipUnknownFields: true})
	if err == nil {
		return nil
	}
	var se *strictjson.Error
	if errors.As(err, &se) {
		if se.Key == "" {
			return decodeErr(CodeMalformedJSON, "", "the payload has data after the JSON object")
		}
		return decodeErr(CodeInvalidField, se.Key, "%s", se.Msg)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return decodeErr(CodeInvalidField, te.Field, "must be a JSON %s, not %s", jsonKind(te.Type.String()), te.Value)
	}
	return decodeErr(CodeMalformedJSON, "", "the payload is not a JSON object: %v", err)
}

// checkEventID checks the event_id every message needs: present, at most
// MaxEventIDLen bytes, and only letters, digits and - _ . :
func checkEventID(id *string) error {
	if id == nil || *id == "" {
		return decodeErr(CodeMissingField, "event_id", "every message needs an event_id, reused when retrying")
	}
	if len(*id) > MaxEventIDLen {
		return decodeErr(CodeInvalidField, "event_id", "is %d bytes, longer than %d", len(*id), MaxEventIDLen)
	}
	for _, r := range *id {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.:", r)
		if !ok {
			return decodeErr(CodeInvalidField, "event_id", "may hold only letters, digits and - _ . :")
		}
	}
	return nil
}

// decodeCommon checks the fields any message may carry, whatever its type,
// and sets them in m: ts, required and RFC 3339, and dropped (ClockOff) when
// monitoring.CheckDeviceTime refuses it at now; location, when present
// (checkLocation); battery, when present, a percentage. worker_id, pin and
// firmware are taken as they are.
//
// A ts out of bounds is dropped rather than refused because a device's
// clock goes wrong in the field (a battery run flat starts it in 1970),
// where refusing would leave the worker's alarm unraised; a ts that is not
// RFC 3339 at all is the firmware's fault, the same on every message, and
// is found when the device is first tested.
func decodeCommon(m *Message, w *wire, now time.Time) error {
	var err error
	if w.TS == nil || *w.TS == "" {
		return decodeErr(CodeMissingField, "ts", "every message needs ts, the device's time in RFC 3339")
	}
	if m.TS, err = time.Parse(time.RFC3339Nano, *w.TS); err != nil {
		return decodeErr(CodeInvalidField, "ts", "%q is not an RFC 3339 time such as 2025-01-02T15:04:05Z", *w.TS)
	}
	if err := monitoring.CheckDeviceTime("ts", m.TS, now); err != nil {
		m.TS, m.ClockOff = time.Time{}, err.Error()
	}
	if w.Location != nil {
		if m.Location, err = checkLocation(w.Location); err != nil {
			return err
		}
	}
	m.WorkerID, m.PIN, m.Battery, m.Firmware = w.WorkerID, w.PIN, w.Battery, w.Firmware
	if w.Battery != nil && (*w.Battery < 0 || *w.Battery > 100) {
		return decodeErr(CodeInvalidField, "battery", "%d is not a percentage from 0 to 100", *w.Battery)
	}
	return nil
}

// decodeAlarm checks an alarm's alarm_type: present, and one of
// DeviceAlarmTypes.
func decodeAlarm(m Message, w *wire) (Message, error) {
	if w.AlarmType == nil || *w.AlarmType == "" {
		return m, decodeErr(CodeMissingField, "alarm_type", "one of %s", alarmTypeList())
	}
	m.AlarmType = monitoring.AlarmType(*w.AlarmType)
	if !slices.Contains(DeviceAlarmTypes, m.AlarmType) {
		return m, decodeErr(CodeInvalidField, "alarm_type", "%q is not an alarm type a device may raise: one of %s", *w.AlarmType, alarmTypeList())
	}
	return m, nil
}

// decodeAlarmCancel checks that an alarm/cancel names the alarm, alarm_id.
func decodeAlarmCancel(m Message, w *wire) (Message, error) {
	if w.AlarmID == nil || *w.AlarmID == "" {
		return m, decodeErr(CodeMissingField, "alarm_id", "the alarm to cancel")
	}
	m.AlarmID = *w.AlarmID
	return m, nil
}

// decodeSessionStart checks a session/start's duration and checkin_interval,
// when present, as Go durations above zero; session_id and update are
// optional and taken as they are.
func decodeSessionStart(m Message, w *wire) (Message, error) {
	var err error
	if w.SessionID != nil {
		m.SessionID = *w.SessionID
	}
	if w.Update != nil {
		m.Update = *w.Update
	}
	if m.Duration, err = parseDuration("duration", w.Duration); err != nil {
		return m, err
	}
	if m.CheckInInterval, err = parseDuration("checkin_interval", w.CheckInInterval); err != nil {
		return m, err
	}
	return m, nil
}

// decodeSessionRef checks that a session/checkin or session/end names its
// session, session_id.
func decodeSessionRef(m Message, w *wire) (Message, error) {
	if w.SessionID == nil || *w.SessionID == "" {
		return m, decodeErr(CodeMissingField, "session_id", "the session this message is about")
	}
	m.SessionID = *w.SessionID
	return m, nil
}

// decodeSessionExtend checks that a session/extend names its session, as
// decodeSessionRef does, and then extend_by: present, and a Go duration
// above zero.
func decodeSessionExtend(m Message, w *wire) (Message, error) {
	m, err := decodeSessionRef(m, w)
	if err != nil {
		return m, err
	}
	if w.ExtendBy == nil || *w.ExtendBy == "" {
		return m, decodeErr(CodeMissingField, "extend_by", "how much longer, as a Go duration such as \"30m\"")
	}
	if m.ExtendBy, err = parseDuration("extend_by", *w.ExtendBy); err != nil {
		return m, err
	}
	return m, nil
}

// decodeLocation checks that a location message has its location, which
// decodeCommon has checked.
func decodeLocation(m Message, _ *wire) (Message, error) {
	if m.Location == nil {
		return m, decodeErr(CodeMissingField, "location", "{lat, lon, accuracy_m, source}")
	}
	return m, nil
}

// decodeBattery checks that a battery message has its battery, which
// decodeCommon has checked.
func decodeBattery(m Message, _ *wire) (Message, error) {
	if m.Battery == nil {
		return m, decodeErr(CodeMissingField, "battery", "the charge in percent, 0 to 100")
	}
	return m, nil
}

// decodeHeartbeat checks nothing more: a heartbeat's battery, firmware and
// location are optional, and decodeCommon has checked them.
func decodeHeartbeat(m Message, _ *wire) (Message, error) { return m, nil }

// decodeUpdate checks that an update has its text, update, not blank; it
// keeps the text as sent. session_id is optional and taken as it is.
func decodeUpdate(m Message, w *wire) (Message, error) {
	if w.Update == nil || strings.TrimSpace(*w.Update) == "" {
		return m, decodeErr(CodeMissingField, "update", "the Update message text")
	}
	m.Update = *w.Update
	if w.SessionID != nil {
		m.SessionID = *w.SessionID
	}
	return m, nil
}

// decodePromptAnswer checks that a prompt/answer names the prompt,
// prompt_id, and has an answer, one of monitoring.PromptAnswers.
func decodePromptAnswer(m Message, w *wire) (Message, error) {
	if w.PromptID == nil || *w.PromptID == "" {
		return m, decodeErr(CodeMissingField, "prompt_id", "the prompt answered, as down/prompt gave it")
	}
	m.PromptID = *w.PromptID
	if w.Answer == nil || *w.Answer == "" {
		return m, decodeErr(CodeMissingField, "answer", "one of %s", answerList())
	}
	m.Answer = monitoring.PromptAnswer(*w.Answer)
	if !slices.Contains(monitoring.PromptAnswers, m.Answer) {
		return m, decodeErr(CodeInvalidField, "answer", "%q is not one of %s", *w.Answer, answerList())
	}
	return m, nil
}

// checkLocation checks a location, on any message: lat and lon present and
// in range, accuracy_m not negative, source and address not too long.
func checkLocation(l *Location) (*monitoring.Location, error) {
	switch {
	case l.Lat == nil:
		return nil, decodeErr(CodeMissingField, "location.lat", "the latitude in degrees")
	case l.Lon == nil:
		return nil, decodeErr(CodeMissingField, "location.lon", "the longitude in degrees")
	case *l.Lat < -90 || *l.Lat > 90:
		return nil, decodeErr(CodeInvalidField, "location.lat", "%v is not a latitude", *l.Lat)
	case *l.Lon < -180 || *l.Lon > 180:
		return nil, decodeErr(CodeInvalidField, "location.lon", "%v is not a longitude", *l.Lon)
	case l.Accuracy < 0:
		return nil, decodeErr(CodeInvalidField, "location.accuracy_m", "%v is negative", l.Accuracy)
	case len(l.Source) > 32:
		return nil, decodeErr(CodeInvalidField, "location.source", "is longer than 32 bytes")
	case len(l.Address) > monitoring.MaxAddressLen:
		return nil, decodeErr(CodeInvalidField, "location.address", "is %d bytes, longer than %d", len(l.Address), monitoring.MaxAddressLen)
	}
	return &monitoring.Location{Lat: *l.Lat, Lon: *l.Lon, Accuracy: l.Accuracy, Source: l.Source, Address: l.Address}, nil
}

// parseDuration parses an optional Go duration ("45m", "1h30m"); absent
// ("") is 0, the default, but a duration given must be above zero: "0s"
// does not mean the default, as in the API.
func parseDuration(field, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, decodeErr(CodeInvalidField, field, "%q is not a positive Go duration such as \"45m\" or \"1h30m\"", s)
	}
	return d, nil
}

func answerList() string {
	s := make([]string, len(monitoring.PromptAnswers))
	for i, a := range monitoring.PromptAnswers {
		s[i] = string(a)
	}
	return strings.Join(s, ", ")
}

func alarmTypeList() string {
	s := make([]string, len(DeviceAlarmTypes))
	for i, t := range DeviceAlarmTypes {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}

func jsonKind(goType string) string {
	switch {
	case goType == "string" || strings.HasSuffix(goType, "string"):
		return "string"
	case strings.Contains(goType, "int") || strings.Contains(goType, "float"):
		return "number"
	}
	return "object"
}
