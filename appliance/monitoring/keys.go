package monitoring

// The key layout of the state. Records are JSON; secondary indexes are
// empty-valued keys whose order answers a query. Times in keys are Unix
// nanoseconds as 20 decimal digits, so byte order is time order. A prefix,
// once used, keeps its meaning forever.
//
//	org/<id>                                   Organisation
//	worker/<id>                                Worker
//	device/<id>                                Device
//	devsecret/<id>                             deviceSecret: the hash of the device's MQTT secret
//	session/<id>                               Session
//	alarm/<id>                                 Alarm
//	tl/<alarm id>/<index>/<n>                  TimelineEntry, in order
//	audit/<index>/<n>                          AuditRecord, in order
//	ix/open/<priority>/<raised>/<alarm id>     open alarms, by priority then age
//	ix/raised/<raised>/<alarm id>              every alarm by time raised (KPIs)
//	ix/active/<session id>                     sessions not ended
//	ix/worker-session/<worker id>              the worker's session not ended -> session ID
//	ix/device-alarm/<device id>/<raised>/<id>  alarms by device (incident linking)
//	ix/incident/<incident id>/<raised>/<id>    alarms by incident (alarm.go)
//	ix/deadline/<due>/<deadline id>            deadlines the leader acts on -> Deadline
//	ix/deadline-of/<owner>/<kind>              a device's or an alarm's deadline -> its key (deadlines.go)
//	ix/node-device/<node>/<device>             devices connected through a node (presence.go)
//	audio/<alarm id>/<seq>                     AudioChunk, seq as 20 digits: an alarm's audio in order (audio.go)
//	audiometa/<alarm id>                       AudioInfo: the summary of an alarm's audio (audio.go)
//	audioref/<ref>                             AudioRef: an audio reference a PIN action gave a device (audioref.go)
//	audioref-seq/<ref>/<seq>                   refChunk: what a chunk sent to a reference held (audioref.go)
//	prompt/<id>                                DevicePrompt: a prompt to a device and its answer (prompt.go)
//	upd/<worker id>/<index>                    UpdateRecord: a worker's Update messages, the last MaxUpdateHistory (update.go)
//	apitoken/<id>                              APIToken: a token for the REST API (apitoken.go)
//	flood/<device id>                          floodRecord: the device's latest device-flooding alarm (flood.go)
//	linkkey                                    linkKey: the HMAC key of audio links (audiolink.go)
//	audiolink/<link id>                        AudioLink: a signed link to an alarm's audio (audiolink.go)
//	ix/alarm-link/<alarm id>/<link id>         the audio links of an alarm (audiolink.go)
//	report/<alarm id>                          Report: a post-incident report (postincident.go)
//	ix/report-due/<due>/<alarm id>             draft post-incident reports by due time (postincident.go)
//	outbox/<id>                                OutboxMessage: a notification and its delivery (outbox.go)
//	ix/outbox-due/<next at>/<id>               outbox messages still to deliver, by next attempt
//	ix/outbox-alarm/<alarm id>/<id>            outbox messages about an alarm
//	ix/outbox-org/<org id>/<created>/<id>      outbox messages of an organisation
//	hold/<incident id>                         LegalHold: an incident kept from the purge (retention.go)
//	diag/...                                   the diagnostic journal (diag.go)

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Key prefixes.
const (
	pOrg           = "org/"
	pWorker        = "worker/"
	pDevice        = "device/"
	pSession       = "session/"
	pAlarm         = "alarm/"
	pTimeline      = "tl/"
	pAudit         = "audit/"
	pOpen          = "ix/open/"
	pRaised        = "ix/raised/"
	pActive        = "ix/active/"
	pWorkerSession = "ix/worker-session/"
	pDeviceAlarm   = "ix/device-alarm/"
	pDeadline      = "ix/deadline/"
	pDeviceSecret  = "devsecret/"
	pPrompt        = "prompt/"       // prompt.go
	pUpdate        = "upd/"          // update.go
	pAudio         = "audio/"        // audio.go
	pAudioMeta     = "audiometa/"    // audio.go
	pAudioRef      = "audioref/"     // audioref.go
	pAudioRefSeq   = "audioref-seq/" // audioref.go
)

// tkey formats a time for a key: Unix nanoseconds, 20 digits.
func tkey(t time.Time) string { return fmt.Sprintf("%020d", t.UnixNano()) }

// ikey formats a log index for a key.
func ikey(i uint64) string { return fmt.Sprintf("%020d", i) }

func openKey(a *Alarm) []byte {
	return []byte(pOpen + fmt.Sprint(a.Priority) + "/" + tkey(a.RaisedAt) + "/" + a.ID)
}

// getJSON reads the record at key into v. It returns false when there is
// none.
func getJSON(txn *badger.Txn, key string, v any) (bool, error) {
	item, err := txn.Get([]byte(key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	err = item.Value(func(b []byte) error { return json.Unmarshal(b, v) })
	if err != nil {
		return false, fmt.Errorf("cannot decode %s: %w", key, err)
	}
	return true, nil
}

// putJSON writes v at key.
func putJSON(txn *badger.Txn, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("cannot encode %s: %w", key, err)
	}
	return txn.Set([]byte(key), b)
}

// setIndex writes an empty-valued index key.
func setIndex(txn *badger.Txn, key []byte) error { return txn.Set(key, nil) }

// scanPrefix calls fn with each key (and its value) under prefix, in order,
// until fn returns false or an error. Keys and values are valid only during
// the call.
func scanPrefix(txn *badger.Txn, prefix string, values bool, fn func(key, val []byte) (bool, error)) error {
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = values
	opts.Prefix = []byte(prefix)
	it := txn.NewIterator(opts)
	defer it.Close()
	for it.Seek(opts.Prefix); it.ValidForPrefix(opts.Prefix); it.Next() {
		var val []byte
		if values {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			val = v
		}
		more, err := fn(it.Item().Key(), val)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// Getters for the records, returning ErrNotFound (wrapped with what was
// missing) when absent.

func getOrg(txn *badger.Txn, id string) (*Organisation, error) {
	return getRecord[Organisation](txn, pOrg, "organisation", id)
}

func getWorker(txn *badger.Txn, id string) (*Worker, error) {
	return getRecord[Worker](txn, pWorker, "worker", id)
}

func getDevice(txn *badger.Txn, id string) (*Device, error) {
	return getRecord[Device](txn, pDevice, "device", id)
}

func getSession(txn *badger.Txn, id string) (*Session, error) {
	return getRecord[Session](txn, pSession, "session", id)
}

func getAlarm(txn *badger.Txn, id string) (*Alarm, error) {
	return getRecord[Alarm](txn, pAlarm, "alarm", id)
}

func getRecord[T any](txn *badger.Txn, prefix, what, id string) (*T, error) {
	if id == "" {
		return nil, &RuleError{Code: CodeNotFound, Field: what + "_id", Msg: what + " ID is empty"}
	}
	v := new(T)
	ok, err := getJSON(txn, prefix+id, v)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, &RuleError{Code: CodeNotFound, Field: what + "_id", Msg: fmt.Sprintf("no %s %q", what, id)}
	}
	return v, nil
}
