package monitoring

// Update messages: what a worker says before or during a risky visit
// ("visiting 14 Elm Road, client has a history of aggression, call me at
// 15:30"), for the operator who takes their next alarm.
//
// An Update replaces the Update of the worker's session not ended (the
// session named, else the worker's current one); with no session it becomes
// the worker's standing Update (Worker.LastUpdate). Every Update is also
// kept in the worker's history, the last MaxUpdateHistory of them
// (upd/<worker id>/<index>), and goes on the timeline of the worker's open
// alarms. A new alarm gets the latest Update on its timeline, just after
// "raised" (and "linked") (noteLatestUpdate, called by raiseAlarm).

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// MaxUpdateHistory is how many Update messages are kept per worker.
const MaxUpdateHistory = 20

// ActionUpdate is the timeline entry of an Update message: Text is the
// Update, Reference "session/<id>" or "worker/<id>", At when it was left.
// Only Update messages write it.
const ActionUpdate ActionKind = "update"

// postUpdateCmd records an Update message.
type postUpdateCmd struct {
	Header
	DeviceID   string    `json:"device_id,omitempty"`  // the device it came from, if any
	WorkerID   string    `json:"worker_id,omitempty"`  // else the session's or the device's worker
	SessionID  string    `json:"session_id,omitempty"` // else the worker's session not ended, if any
	Text       string    `json:"text"`
	DeviceTime time.Time `json:"device_time,omitzero"`
}

// UpdateRecord is one Update message as the history keeps it, and the
// response to PostUpdate.
type UpdateRecord struct {
	Index      uint64    `json:"index"` // the Raft index that wrote it
	At         time.Time `json:"at"`
	DeviceTime time.Time `json:"device_time,omitzero"`
	Actor      string    `json:"actor"`
	WorkerID   string    `json:"worker_id"`
	SessionID  string    `json:"session_id,omitempty"` // empty: the worker's standing Update
	DeviceID   string    `json:"device_id,omitempty"`
	Text       string    `json:"text"`
}

// checkUpdateText checks the text of an Update message.
func checkUpdateText(text string) error {
	if strings.TrimSpace(text) == "" {
		return invalid("update", "the Update message is empty")
	}
	return validText("update", text)
}

// applyPostUpdate records an Update message. Rules: the text is not empty
// and not too long; a session named exists, has not ended and is the
// device's (when a device is given) and the worker's (when a worker is
// given); without a session, a worker is given or the device has one, and
// a device assigned to a worker speaks only for that worker.
func applyPostUpdate(c *applyCtx, body []byte) ([]byte, error) {
	var cmd postUpdateCmd
	if err := c.decode(body, &cmd); err != nil {
		return nil, err
	}
	if err := checkUpdateText(cmd.Text); err != nil {
		return nil, err
	}
	var d *Device
	if cmd.DeviceID != "" {
		var err error
		if d, err = getDevice(c.txn, cmd.DeviceID); err != nil {
			return nil, err
		}
	}
	var s *Session
	workerID := cmd.WorkerID
	if cmd.SessionID != "" {
		var err error
		if s, err = getSession(c.txn, cmd.SessionID); err != nil {
			return nil, err
		}
		switch {
		case d != nil && s.DeviceID != d.ID:
			// A device acts only on its own sessions; another's looks the
			// same as none, ended or not (as for check-ins).
			return nil, ruleErr(CodeNotFound, "session_id", "no session %q on device %s", s.ID, d.ID)
		case s.Status == SessionEnded:
			return nil, ruleErr(CodeSessionEnded, "session_id", "session %q ended at %s", s.ID, s.EndedAt.Format(time.RFC3339))
		case workerID != "" && s.WorkerID != workerID:
			return nil, ruleErr(CodeConflict, "worker_id", "session %q is worker %s's, not %s's", s.ID, s.WorkerID, workerID)
		}
		workerID = s.WorkerID
	} else {
		if workerID == "" && d != nil {
			workerID = d.WorkerID
		}
		switch {
		case workerID == "" && d != nil:
			return nil, invalid("worker_id", "pooled device %s is not assigned: say which worker leaves the Update", d.ID)
		case workerID == "":
			return nil, invalid("worker_id", "an Update needs a worker, a device or a session")
		case d != nil && d.WorkerID != "" && d.WorkerID != workerID:
			return nil, ruleErr(CodeConflict, "worker_id", "device %s is assigned to worker %s, not %s", d.ID, d.WorkerID, workerID)
		}
	}
	w, err := getWorker(c.txn, workerID)
	if err != nil {
		return nil, err
	}
	if s == nil {
		if s, err = workerSession(c.txn, w.ID); err != nil {
			return nil, err
		}
	}
	open, err := openAlarmsOf(c.txn, "", w.ID)
	if err != nil {
		return nil, err
	}

	// Every rule has been checked: write.
	now := c.now()
	rec := UpdateRecord{Index: c.entry.Index, At: now, DeviceTime: cmd.DeviceTime, Actor: c.hdr.Actor,
		WorkerID: w.ID, DeviceID: cmd.DeviceID, Text: cmd.Text}
	ref := "worker/" + w.ID
	if s != nil {
		rec.SessionID, ref = s.ID, "session/"+s.ID
	}
	if err := keepUpdate(c, &rec); err != nil {
		return nil, err
	}
	if s != nil {
		next := *s
		next.Update = cmd.Text
		// Only the text changes: the timers, deadlines and indexes stay.
		if err := putJSON(c.txn, pSession+next.ID, &next); err != nil {
			return nil, err
		}
		c.emit(Event{Type: EventSessionUpdated, Session: &next})
	} else {
		w.LastUpdate, w.LastUpdateAt, w.UpdatedAt = cmd.Text, now, now
		if err := putJSON(c.txn, pWorker+w.ID, w); err != nil {
			return nil, err
		}
		c.emit(Event{Type: EventWorkerUpdated, Worker: publicWorker(w)})
	}
	for _, a := range open {
		if err := noteOnAlarm(c, a, TimelineEntry{Kind: ActionUpdate, Text: cmd.Text, Reference: ref}); err != nil {
			return nil, err
		}
	}
	if err := c.audit(CmdPostUpdate, ref, fmt.Sprintf("Update message (%d bytes)", len(cmd.Text))); err != nil {
		return nil, err
	}
	return json.Marshal(rec)
}

// keepUpdate appends rec to its worker's history and drops the oldest
// beyond MaxUpdateHistory.
func keepUpdate(c *applyCtx, rec *UpdateRecord) error {
	prefix := pUpdate + rec.WorkerID + "/"
	var keys [][]byte
	err := scanPrefix(c.txn, prefix, false, func(key, _ []byte) (bool, error) {
		keys = append(keys, append([]byte(nil), key...))
		return true, nil
	})
	if err != nil {
		return err
	}
	for len(keys) >= MaxUpdateHistory {
		if err := c.txn.Delete(keys[0]); err != nil {
			return err
		}
		keys = keys[1:]
	}
	return putJSON(c.txn, prefix+ikey(rec.Index), rec)
}

// noteLatestUpdate puts the latest Update of a new alarm's worker on the
// alarm's timeline: the Update of the worker's session not ended, else the
// worker's standing Update. It refuses nothing: raiseAlarm calls it once
// every rule has been checked.
func noteLatestUpdate(c *applyCtx, a *Alarm) error {
	if a.WorkerID == "" {
		return nil
	}
	s, err := workerSession(c.txn, a.WorkerID)
	if err != nil {
		return err
	}
	te := TimelineEntry{Kind: ActionUpdate, Actor: "system"}
	switch {
	case s != nil && s.Update != "":
		te.Text, te.Reference, te.At = s.Update, "session/"+s.ID, s.StartedAt
		// When an Update message replaced the one given at the start, the
		// history says when.
		last, err := lastUpdate(c.txn, a.WorkerID)
		if err != nil {
			return err
		}
		if last != nil && last.SessionID == s.ID {
			te.At = last.At
		}
	default:
		var w Worker
		ok, err := getJSON(c.txn, pWorker+a.WorkerID, &w)
		if err != nil || !ok || w.LastUpdate == "" {
			return err
		}
		te.Text, te.Reference, te.At = w.LastUpdate, "worker/"+w.ID, w.LastUpdateAt
	}
	_, err = c.addTimeline(a, te)
	return err
}

// lastUpdate returns the worker's latest Update message, or nil.
func lastUpdate(txn *badger.Txn, workerID string) (*UpdateRecord, error) {
	var last *UpdateRecord
	err := scanPrefix(txn, pUpdate+workerID+"/", true, func(_, val []byte) (bool, error) {
		var r UpdateRecord
		if err := json.Unmarshal(val, &r); err != nil {
			return false, err
		}
		last = &r
		return true, nil
	})
	return last, err
}

// PostUpdateRequest is an Update message from a worker's device or app.
type PostUpdateRequest struct {
	DeviceID   string // the device it came from; empty from the console or the app's REST path
	WorkerID   string // optional: else the session's or the device's worker
	SessionID  string // optional: else the worker's session not ended, if any
	Text       string
	DeviceTime time.Time // the device's clock, if known
}

// PostUpdate records an Update message: it replaces the Update of the
// session (the one named, else the worker's session not ended), or, with
// none, becomes the worker's standing Update. It returns the record kept in
// the worker's history.
func (s *Service) PostUpdate(ctx context.Context, cmdID, actor string, req PostUpdateRequest) (*UpdateRecord, error) {
	if strings.TrimSpace(actor) == "" {
		return nil, invalid("actor", "who leaves the Update is missing")
	}
	if err := checkUpdateText(req.Text); err != nil {
		return nil, err
	}
	for _, f := range []struct{ field, v string }{
		{"device_id", req.DeviceID}, {"worker_id", req.WorkerID}, {"session_id", req.SessionID},
	} {
		if f.v == "" {
			continue
		}
		if err := validID(f.field, f.v); err != nil {
			return nil, err
		}
	}
	if req.DeviceID == "" && req.WorkerID == "" && req.SessionID == "" {
		return nil, invalid("worker_id", "an Update needs a worker, a device or a session")
	}
	cmd := postUpdateCmd{Header: s.header(actor), DeviceID: req.DeviceID, WorkerID: req.WorkerID,
		SessionID: req.SessionID, Text: req.Text, DeviceTime: req.DeviceTime}
	res, err := s.propose(ctx, cmdID, CmdPostUpdate, cmd)
	if err != nil {
		return nil, err
	}
	return decodeResponse[UpdateRecord](res.Response)
}

// Updates returns a worker's Update messages, oldest first (the last
// MaxUpdateHistory).
func (s *Service) Updates(workerID string) ([]UpdateRecord, error) {
	if err := validID("worker_id", workerID); err != nil {
		return nil, err
	}
	var out []UpdateRecord
	err := s.view(func(txn *badger.Txn) (err error) {
		out, err = listJSON[UpdateRecord](txn, pUpdate+workerID+"/", 0)
		return err
	})
	return out, err
}
