package sim

import (
	"context"
	"encoding/json"
	"io"
	"slices"
	"sync"
	"time"
)

// Attempt is one send of an outbox event: its JSON form is one line of the
// history file.
type Attempt struct {
	// Device is the device ID.
	Device string `json:"device"`
	// EventID is the event's event_id, the same on every attempt.
	EventID string `json:"event_id"`
	// Type is the message type, the topic after up/: alarm, session/start...
	Type string `json:"type"`
	// Attempt counts the sends of this event, 1 for the first.
	Attempt int `json:"attempt"`
	// Broker is the address the event was sent to.
	Broker string `json:"broker"`
	// Sent is when the PUBLISH was handed to the client.
	Sent time.Time `json:"sent"`
	// Acked is when the PUBACK arrived; nil if it did not.
	Acked *time.Time `json:"acked,omitzero"`
	// Error says why the attempt was not acked.
	Error string `json:"error,omitempty"`
	// Reply is "ok" or the error code of the event's down/reply, if one
	// arrived; the last one wins.
	Reply string `json:"reply,omitempty"`
}

// History records the attempts of every outbox event. It is safe for
// concurrent use.
type History struct {
	mu       sync.Mutex
	attempts []*Attempt
	replies  map[string]string   // device + "/" + event_id -> "ok" or the error code
	awaiting map[string]struct{} // acked events whose reply has not arrived
}

func newHistory() *History {
	return &History{replies: map[string]string{}, awaiting: map[string]struct{}{}}
}

func (h *History) begin(a *Attempt) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.attempts = append(h.attempts, a)
}

func (h *History) end(a *Attempt, acked time.Time, errText string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if errText == "" {
		a.Acked = &acked
		k := a.Device + "/" + a.EventID
		if _, ok := h.replies[k]; !ok {
			h.awaiting[k] = struct{}{}
		}
	} else {
		a.Error = errText
	}
}

func (h *History) reply(device, eventID, code string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.replies[device+"/"+eventID] = code
	delete(h.awaiting, device+"/"+eventID)
}

// awaitReplies waits until every acked event's reply has arrived, or ctx
// ends.
func (h *History) awaitReplies(ctx context.Context) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		h.mu.Lock()
		n := len(h.awaiting)
		h.mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Attempts returns a copy of the attempts so far, in the order they were
// sent.
func (h *History) Attempts() []Attempt {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Attempt, len(h.attempts))
	for i, a := range h.attempts {
		out[i] = *a
		out[i].Reply = h.replies[a.Device+"/"+a.EventID]
	}
	return out
}

// WriteJSONLines writes one JSON object per attempt.
func (h *History) WriteJSONLines(w io.Writer) error {
	enc := json.NewEncoder(w)
	for _, a := range h.Attempts() {
		if err := enc.Encode(a); err != nil {
			return err
		}
	}
	return nil
}

// Summary sums up a run.
type Summary struct {
	Devices   int // devices simulated
	Events    int // distinct outbox events sent at least once
	Acked     int // distinct events PUBACKed
	Pending   int // events never PUBACKed
	Retries   int // sends beyond the first of an event
	Failovers int // moves to the next broker after a failure
	Rejected  int // events whose reply was an error
	Telemetry int // heartbeats and location fixes sent
	P50, P99  time.Duration
}

// summarise computes a Summary from the attempts.
func summarise(attempts []Attempt) Summary {
	var s Summary
	seen := map[string]bool{}
	acked := map[string]bool{}
	var lat []time.Duration
	for _, a := range attempts {
		k := a.Device + "/" + a.EventID
		if seen[k] {
			s.Retries++
		} else {
			seen[k] = true
			if a.Reply != "" && a.Reply != "ok" {
				s.Rejected++
			}
		}
		if a.Acked != nil {
			acked[k] = true
			lat = append(lat, a.Acked.Sub(a.Sent))
		}
	}
	s.Events, s.Acked, s.Pending = len(seen), len(acked), len(seen)-len(acked)
	slices.Sort(lat)
	s.P50, s.P99 = percentile(lat, 50), percentile(lat, 99)
	return s
}

// percentile returns the p-th percentile (nearest rank) of sorted.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[max(i-1, 0)]
}
