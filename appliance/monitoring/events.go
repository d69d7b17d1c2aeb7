package monitoring

import (
	"sync"
	"time"
)

// EventType says what changed.
type EventType string

// Event types.
const (
	EventOrgUpdated      EventType = "org_updated"
	EventWorkerUpdated   EventType = "worker_updated"
	EventDeviceUpdated   EventType = "device_updated"
	EventSessionStarted  EventType = "session_started"
	EventSessionUpdated  EventType = "session_updated" // check-in, extend, overdue
	EventSessionEnded    EventType = "session_ended"
	EventCheckInReminder EventType = "checkin_reminder" // send the device a reminder
	EventAlarmRaised     EventType = "alarm_raised"
	EventAlarmUpdated    EventType = "alarm_updated" // acknowledged, action logged, reopened
	EventAlarmClosed     EventType = "alarm_closed"
	// EventAlarmCancelled: the worker cancelled the alarm from the device
	// with a PIN. It comes just before the alarm's own event of the same
	// command, and is the same whichever PIN was used: with the Duress PIN
	// the alarm stays open (silent) and a duress alarm is raised.
	EventAlarmCancelled EventType = "alarm_cancelled"
	EventWrongPIN       EventType = "wrong_pin"
	EventAckOverdue     EventType = "ack_overdue" // an alarm missed an acknowledgement target: escalate
	// EventContactDue: the next escalation contact of an alarm is due, or
	// none is left (escalation.go).
	EventContactDue EventType = "contact_due"
	// EventDevicePrompt: an operator prompted a device; EventPromptAnswered:
	// the device answered. Prompt says which (prompt.go).
	EventDevicePrompt   EventType = "device_prompt"
	EventPromptAnswered EventType = "prompt_answered"
	EventAudioChunk     EventType = "audio_chunk" // a chunk of an alarm's audio is stored: Audio names it
	// EventListenRequested: an operator asked the alarm's device to stream
	// its audio (listen.go); Alarm's ListenAt and ListenUntil say when and
	// until when. It follows the alarm's own EventAlarmUpdated.
	EventListenRequested EventType = "listen_requested"
	// EventAudioLinkIssued, EventAudioLinkRevoked, EventAudioDownloaded: an
	// audio link was made, revoked, or used to download an alarm's audio
	// (audiolink.go); AudioLink is the link as it now is.
	EventAudioLinkIssued  EventType = "audio_link_issued"
	EventAudioLinkRevoked EventType = "audio_link_revoked"
	EventAudioDownloaded  EventType = "audio_downloaded"
	// EventReportDue: a genuine alarm closed and its post-incident report
	// is due (Report.DueAt); EventReportUpdated: a draft's recommendations
	// were saved; EventReportSignedOff: a supervisor signed the report off,
	// and it may be sent (postincident.go).
	EventReportDue       EventType = "report_due"
	EventReportUpdated   EventType = "report_updated"
	EventReportSignedOff EventType = "report_signed_off"
	// EventOutbox: a notification was enqueued, or an attempt to deliver
	// it recorded (outbox.go); Outbox is the message, without attachments.
	EventOutbox EventType = "outbox"
)

// Event is one applied change. Every node emits the same events, in commit
// order, once the change is committed to its state.
type Event struct {
	Index   uint64         `json:"index"` // the Raft index of the command
	Type    EventType      `json:"type"`
	At      time.Time      `json:"at"`
	Node    string         `json:"node,omitempty"` // the node that proposed the command
	Alarm   *Alarm         `json:"alarm,omitempty"`
	Session *Session       `json:"session,omitempty"`
	Device  *Device        `json:"device,omitempty"`
	Worker  *Worker        `json:"worker,omitempty"` // without PIN hashes
	Org     *Organisation  `json:"org,omitempty"`
	Entry   *TimelineEntry `json:"entry,omitempty"`
	Audio   *AudioChunkRef `json:"audio,omitempty"` // EventAudioChunk
	// Prompt: EventDevicePrompt, EventPromptAnswered (prompt.go).
	Prompt *DevicePrompt `json:"prompt,omitempty"`
	// AudioLink: EventAudioLinkIssued, EventAudioLinkRevoked,
	// EventAudioDownloaded (audiolink.go).
	AudioLink *AudioLink `json:"audio_link,omitempty"`
	// Report: EventReportDue, EventReportUpdated, EventReportSignedOff
	// (postincident.go).
	Report *Report `json:"report,omitempty"`
	// Outbox: EventOutbox.
	Outbox *OutboxMessage `json:"outbox,omitempty"`
}

// DefaultSubscriptionBuffer is how many events a subscriber may fall behind
// before it is cut off.
const DefaultSubscriptionBuffer = 4096

// Subscription receives events in commit order on C. If the subscriber
// falls more than its buffer behind, C is closed and Lagged reports true:
// the subscriber must re-read the state and subscribe again.
type Subscription struct {
	C      <-chan Event
	c      chan Event
	bus    *Bus
	lagged bool
}

// Lagged reports whether the subscription was cut off for falling behind.
func (s *Subscription) Lagged() bool {
	s.bus.mu.Lock()
	defer s.bus.mu.Unlock()
	return s.lagged
}

// Close ends the subscription. It is safe to call twice.
func (s *Subscription) Close() {
	s.bus.mu.Lock()
	defer s.bus.mu.Unlock()
	if _, ok := s.bus.subs[s]; ok {
		delete(s.bus.subs, s)
		close(s.c)
	}
}

// Bus delivers events to subscribers. Publishing never blocks the state
// machine: a subscriber that cannot keep up is cut off instead.
type Bus struct {
	mu   sync.Mutex
	subs map[*Subscription]struct{}
}

// NewBus returns an empty bus.
func NewBus() *Bus { return &Bus{subs: map[*Subscription]struct{}{}} }

// Subscribe returns a subscription with room for buffer events (at least 1).
func (b *Bus) Subscribe(buffer int) *Subscription {
	c := make(chan Event, max(buffer, 1))
	s := &Subscription{C: c, c: c, bus: b}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s
}

func (b *Bus) publish(events []Event) {
	if len(events) == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		for _, e := range events {
			select {
			case s.c <- e:
				continue
			default:
			}
			s.lagged = true
			delete(b.subs, s)
			close(s.c)
			break
		}
	}
}
