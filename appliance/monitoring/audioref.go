package monitoring

// Audio references. A worker who enters the Duress PIN at a session
// check-in, extension or end raises a silent duress alarm, and the device
// must be able to stream audio to it without ever learning that it is an
// alarm. So every PIN action that is not a wrong PIN gives the device an
// audio reference (SessionReply.AudioRef) of one format whichever PIN: for
// the Duress PIN the ID of the duress alarm it raised, for the Safe PIN (or
// a worker without PINs) an ID made the same way that names no alarm.
//
// Audio sent with alarm_id set to a reference gets the same answers for
// both (audioChunkCmd, RulesAudioChunkRef and above): each chunk is one
// Raft command, checked against the reference's own summary (codec, the
// alarm limits of MaxAudioBytes in MaxAudioChunks chunks, a seq sent once),
// so the results and the refusals are the same. What differs is only where
// the audio goes: to the duress alarm, while it is open, where the
// operators hear it; for a reference that names no alarm (or a duress
// alarm already closed) nowhere: only each seq's length and digest are
// kept, which is what answering a resend needs, at most MaxAudioChunks of
// them per reference.
//
// A reference belongs to the device the reply went to; another device's
// audio to it is refused as for another device's alarm. It takes audio for
// AudioRefLife after the action, the time a device is still sent its
// session's alarms when it connects (broker.ResyncWindow); after that both
// kinds are refused as a closed alarm is.

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// AudioRefLife is how long an audio reference takes audio after the PIN
// action that made it.
const AudioRefLife = 24 * time.Hour

// AudioRef is an audio reference a PIN action gave a device:
// audioref/<id>.
type AudioRef struct {
	ID        string    `json:"id"`
	DeviceID  string    `json:"device_id"`
	SessionID string    `json:"session_id"`
	At        time.Time `json:"at"`      // the action's time
	Expires   time.Time `json:"expires"` // audio is refused from then on
	// Audio sums up what the device sent to the reference, stored or not;
	// nil until the first chunk.
	Audio *AudioInfo `json:"audio,omitempty"`
}

// refChunk is what a chunk sent to a reference held:
// audioref-seq/<ref>/<seq>.
type refChunk struct {
	Bytes int    `json:"bytes"`
	Sum   []byte `json:"sum"` // SHA-256 of the audio
}

// getAudioRef returns the reference id, or nil if there is none.
func getAudioRef(txn *badger.Txn, id string) (*AudioRef, error) {
	var ref AudioRef
	ok, err := getJSON(txn, pAudioRef+id, &ref)
	if err != nil || !ok {
		return nil, err
	}
	return &ref, nil
}

// checkNewAudioRef refuses a reference ID already used, by a reference or
// an alarm.
func checkNewAudioRef(txn *badger.Txn, id string) error {
	if err := validID("alarm_id", id); err != nil {
		return err
	}
	for _, key := range []string{pAudioRef + id, pAlarm + id} {
		if ok, err := exists(txn, key); err != nil || ok {
			if err == nil {
				err = ruleErr(CodeConflict, "alarm_id", "%q is taken: make another ID", id)
			}
			return err
		}
	}
	return nil
}

// putAudioRef records reference id for session s's device, made at now.
func putAudioRef(c *applyCtx, id string, s *Session, now time.Time) error {
	return putJSON(c.txn, pAudioRef+id, AudioRef{ID: id, DeviceID: s.DeviceID, SessionID: s.ID,
		At: now, Expires: now.Add(AudioRefLife)})
}

// applyRefChunk takes a chunk sent to reference ref, with the same rules
// and answers as a chunk sent to an alarm, and stores it with the duress
// alarm the reference names, if it names one that is open.
func applyRefChunk(c *applyCtx, r *AudioChunkRequest, f audioFormat, ref *AudioRef) ([]byte, error) {
	if ref.DeviceID != r.DeviceID {
		return nil, ruleErr(CodeConflict, "alarm_id", "alarm %s was not raised from device %s: a device attaches audio only to its own alarms",
			ref.ID, r.DeviceID)
	}
	sum := sha256.Sum256(r.Data)
	key := pAudioRefSeq + ref.ID + "/" + ikey(r.Seq)
	var old refChunk
	if ok, err := getJSON(c.txn, key, &old); err != nil {
		return nil, err
	} else if ok {
		if !bytes.Equal(old.Sum, sum[:]) {
			return nil, ruleErr(CodeConflict, "seq", "chunk %d of alarm %s is already stored, with other audio (%d bytes): a seq is sent once",
				r.Seq, ref.ID, old.Bytes)
		}
		return json.Marshal(AudioChunkResult{AlarmID: ref.ID, Seq: r.Seq, Bytes: old.Bytes}) // a duplicate
	}
	now := c.now()
	if !now.Before(ref.Expires) {
		return nil, ruleErr(CodeAlarmClosed, "alarm_id", "alarm %s is closed: it takes no more audio", ref.ID)
	}
	info := ref.Audio
	if info == nil {
		info = &AudioInfo{AlarmID: ref.ID, DeviceID: r.DeviceID, Codec: r.Codec}
	} else if err := info.admit(r, f); err != nil {
		return nil, err
	}
	// The duress alarm, if the reference names one that is open and takes
	// the chunk; else the audio is not kept.
	var (
		a         *Alarm
		alarmInfo *AudioInfo
		started   bool
	)
	switch got, err := getAlarm(c.txn, ref.ID); {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return nil, err
	case got.DeviceID == r.DeviceID && got.Status != StatusClosed:
		alarmInfo, started, err = alarmAudioInfo(c, got, r, f)
		var re *RuleError
		switch {
		case errors.As(err, &re):
			// Cannot happen while the reference's summary holds the same
			// chunks; the answer stays the reference's.
		case err != nil:
			return nil, err
		default:
			a = got
		}
	}

	// Every rule has been checked: write.
	info.add(r, f, c.entry.Index, now)
	ref.Audio = info
	if err := putJSON(c.txn, pAudioRef+ref.ID, ref); err != nil {
		return nil, err
	}
	if err := putJSON(c.txn, key, refChunk{Bytes: len(r.Data), Sum: sum[:]}); err != nil {
		return nil, err
	}
	if a != nil {
		if err := storeChunk(c, a, r, f, alarmInfo, started); err != nil {
			return nil, err
		}
	}
	return json.Marshal(AudioChunkResult{AlarmID: ref.ID, Seq: r.Seq, Bytes: len(r.Data)})
}
