package monitoring

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// refEnv is a dirEnv with PINs for w1 and session s1 of w1 on d1, ten
// minutes in.
func refEnv(t *testing.T) *dirEnv {
	t.Helper()
	e := mustDirEnv(t)
	e.seed()
	e.must(CmdSetPINs, setPINsCmd{Header: e.hdr(), WorkerID: "w1", SafePINHash: testSafeHash, DuressPINHash: testDuressHash})
	e.start("s1", "w1", "d1", time.Hour, 0)
	e.now = e.now.Add(10 * time.Minute)
	return e
}

// refAction is a session action under the newest rules with AlarmID ref.
func (e *dirEnv) refAction(a SessionActionKind, pin pinOutcome, ref string) ([]byte, error) {
	e.t.Helper()
	return e.apply(CmdSessionAction, sessionActionCmd{Header: Header{At: e.now, Actor: "device:d1", Node: "n1"}, SessionID: "s1",
		Action: a, PIN: pin, PINVersion: 1, ExtendBy: 30 * time.Minute, AlarmID: ref, Rules: RulesSessionAudioRef})
}

// refChunkAnswer sends one chunk as device (rules: RulesAudioChunkRef) and
// returns the answer, or the refusal's code, field and text.
func (e *dirEnv) refChunkAnswer(device string, r AudioChunkRequest) string {
	e.t.Helper()
	e.now = e.now.Add(time.Second)
	r.DeviceID = device
	resp, err := e.apply(CmdAudioChunk, audioChunkCmd{Header: Header{At: e.now, Actor: "device:" + device, Node: "n1"},
		AudioChunkRequest: r, Rules: RulesAudioChunkRef})
	if err != nil {
		re, ok := err.(*RuleError)
		if !ok {
			e.t.Fatalf("chunk %d: %v", r.Seq, err)
		}
		return fmt.Sprintf("refused %s %s: %s", re.Code, re.Field, re.Msg)
	}
	return string(resp)
}

// Under RulesSessionAudioRef every PIN action's reply carries an audio
// reference, the same for both PINs; audio sent to it gets the same
// answers, refusals included, whichever PIN made it; the duress alarm
// holds the audio, the Safe PIN's reference keeps none, and both stop at
// the reference's end.
func TestAudioRef_SafeAndDuressAnswerAlike(t *testing.T) {
	for _, action := range []SessionActionKind{SessionCheckIn, SessionExtend, SessionEnd} {
		t.Run(string(action), func(t *testing.T) {
			var runs [2][]string
			var envs [2]*dirEnv
			for i, pin := range []pinOutcome{pinSafe, pinDuress} {
				e := refEnv(t)
				envs[i] = e
				resp, err := e.refAction(action, pin, "ref-1")
				if err != nil {
					t.Fatalf("%s: %v", pin, err)
				}
				var reply SessionReply
				if err := json.Unmarshal(resp, &reply); err != nil || reply.AudioRef != "ref-1" {
					t.Fatalf("%s: reply %s (%v), want audio_ref ref-1", pin, resp, err)
				}
				tone := func(seq int) AudioChunkRequest {
					return AudioChunkRequest{AlarmID: "ref-1", Seq: uint64(seq), Codec: CodecPCM, SampleRate: 8000, Channels: 1,
						Data: pcmTone(8000, 1, seq*800, 800)}
				}
				run := []string{string(resp)}
				add := func(device string, r AudioChunkRequest) { run = append(run, e.refChunkAnswer(device, r)) }
				add("d1", tone(0))
				add("d1", tone(1))
				add("d1", tone(1)) // a resend
				other := tone(1)
				other.Data = pcmTone(8000, 1, 0, 400)
				add("d1", other) // another chunk with the same seq
				wrong := tone(2)
				wrong.SampleRate = 16000
				add("d1", wrong)
				add("d2", tone(2)) // a reference belongs to its device
				add("d1", tone(2))
				runs[i] = run
			}
			for j := range runs[0] {
				if runs[0][j] != runs[1][j] {
					t.Fatalf("answer %d differs:\nsafe   %s\nduress %s", j, runs[0][j], runs[1][j])
				}
			}
			if !strings.Contains(runs[0][4], "refused conflict seq") || !strings.Contains(runs[0][5], "refused conflict sample_rate") ||
				!strings.Contains(runs[0][6], "refused conflict alarm_id") {
				t.Fatalf("refusals: %q", runs[0][4:7])
			}
			safe, duress := envs[0], envs[1]
			if n := len(safe.keys(pAudio)) + len(safe.keys(pAudioMeta)) + len(safe.keys(pAlarm)); n != 0 {
				t.Fatalf("the Safe PIN's reference kept audio or raised an alarm: %d keys", n)
			}
			var info *AudioInfo
			if err := duress.db.View(func(txn *badger.Txn) (err error) { info, err = AlarmAudio(txn, "ref-1"); return err }); err != nil {
				t.Fatalf("the duress alarm has no audio: %v", err)
			}
			if info.Chunks != 3 || info.Bytes != 3*1600 || info.DeviceID != "d1" {
				t.Fatalf("duress alarm audio %+v", info)
			}

			// Closed by the operators, the duress alarm keeps what it had;
			// the device's answers do not change.
			duress.must(CmdAcknowledge, AcknowledgeCmd{Header: duress.hdr(), AlarmID: "ref-1"})
			duress.must(CmdCloseAlarmConfirmed, CloseAlarmCmd{Header: duress.hdr(), AlarmID: "ref-1", Resolution: ResolutionFalseAlarm,
				Confirmation: Confirmations[0]})
			safe.now = duress.now
			late := AudioChunkRequest{AlarmID: "ref-1", Seq: 3, Codec: CodecPCM, SampleRate: 8000, Channels: 1, Data: pcmTone(8000, 1, 0, 800)}
			if s, d := safe.refChunkAnswer("d1", late), duress.refChunkAnswer("d1", late); s != d || strings.HasPrefix(s, "refused") {
				t.Fatalf("after the close:\nsafe   %s\nduress %s", s, d)
			}
			if err := duress.db.View(func(txn *badger.Txn) (err error) { info, err = AlarmAudio(txn, "ref-1"); return err }); err != nil || info.Chunks != 3 {
				t.Fatalf("the closed duress alarm took audio: %+v (%v)", info, err)
			}

			// Past its life a reference takes no more audio, either kind.
			safe.now, duress.now = safe.now.Add(AudioRefLife), duress.now.Add(AudioRefLife)
			late.Seq = 4
			s, d := safe.refChunkAnswer("d1", late), duress.refChunkAnswer("d1", late)
			if s != d || !strings.HasPrefix(s, "refused alarm_closed alarm_id") {
				t.Fatalf("past its life:\nsafe   %s\nduress %s", s, d)
			}
		})
	}
}

// A reference is bounded as an alarm is: MaxAudioBytes of audio in at most
// MaxAudioChunks chunks.
func TestAudioRef_Limits(t *testing.T) {
	e := refEnv(t)
	if _, err := e.refAction(SessionCheckIn, pinSafe, "ref-1"); err != nil {
		t.Fatal(err)
	}
	r := AudioChunkRequest{AlarmID: "ref-1", Seq: 0, Codec: CodecPCM, SampleRate: 8000, Channels: 1, Data: pcmTone(8000, 1, 0, 50)}
	if got := e.refChunkAnswer("d1", r); strings.HasPrefix(got, "refused") {
		t.Fatal(got)
	}
	if err := e.db.Update(func(txn *badger.Txn) error {
		ref, err := getAudioRef(txn, "ref-1")
		if err != nil {
			return err
		}
		ref.Audio.Bytes = MaxAudioBytes - 100 // as if the device had streamed that much
		return putJSON(txn, pAudioRef+"ref-1", ref)
	}); err != nil {
		t.Fatal(err)
	}
	r.Seq, r.Data = 1, pcmTone(8000, 1, 0, 51)
	if got := e.refChunkAnswer("d1", r); !strings.Contains(got, "would pass the 33554432 an alarm keeps") {
		t.Fatalf("past the limit: %s", got)
	}
	r.Seq = MaxAudioChunks
	if got := e.refChunkAnswer("d1", r); !strings.HasPrefix(got, "refused invalid seq") {
		t.Fatalf("past the last seq: %s", got)
	}
}

// The rules of a reference at a session action: an ID that is taken or
// malformed is refused and writes nothing; under older rules no reference
// is made and the reply has none; a wrong PIN makes none.
func TestAudioRef_SessionActionRules(t *testing.T) {
	e := refEnv(t)
	e.must(CmdRaiseAlarm, RaiseAlarmCmd{Header: Header{At: e.now, Actor: "device:d1", Node: "n1"}, AlarmID: "taken", Type: AlarmRedAlert, DeviceID: "d1"})
	for _, pin := range []pinOutcome{pinSafe, pinDuress} {
		e.refused(CmdSessionAction, sessionActionCmd{Header: e.hdr(), SessionID: "s1", Action: SessionCheckIn, PIN: pin, PINVersion: 1,
			AlarmID: "taken", Rules: RulesSessionAudioRef}, CodeConflict, "alarm_id")
		e.refused(CmdSessionAction, sessionActionCmd{Header: e.hdr(), SessionID: "s1", Action: SessionCheckIn, PIN: pin, PINVersion: 1,
			AlarmID: "", Rules: RulesSessionAudioRef}, CodeInvalid, "alarm_id")
	}
	if _, err := e.refAction(SessionCheckIn, pinSafe, "ref-1"); err != nil {
		t.Fatal(err)
	}
	e.refused(CmdSessionAction, sessionActionCmd{Header: e.hdr(), SessionID: "s1", Action: SessionCheckIn, PIN: pinDuress, PINVersion: 1,
		AlarmID: "ref-1", Rules: RulesSessionAudioRef}, CodeConflict, "alarm_id")
	resp, err := e.refAction(SessionCheckIn, pinWrong, "ref-2")
	if err != nil || strings.Contains(string(resp), "audio_ref") || len(e.keys(pAudioRef)) != 1 {
		t.Fatalf("a wrong PIN: %s (%v), %d references", resp, err, len(e.keys(pAudioRef)))
	}
	resp = e.must(CmdSessionAction, sessionActionCmd{Header: e.hdr(), SessionID: "s1", Action: SessionCheckIn, PIN: pinSafe, PINVersion: 1,
		AlarmID: "ref-3", Rules: RulesReleasePooled})
	if strings.Contains(string(resp), "audio_ref") || len(e.keys(pAudioRef)) != 1 {
		t.Fatalf("older rules: %s, %d references", resp, len(e.keys(pAudioRef)))
	}
	// Under older rules audio to a reference is audio to an unknown alarm.
	e.now = e.now.Add(time.Second)
	_, err = e.apply(CmdAudioChunk, audioChunkCmd{Header: Header{At: e.now, Actor: "device:d1", Node: "n1"},
		AudioChunkRequest: AudioChunkRequest{AlarmID: "ref-1", DeviceID: "d1", Codec: CodecPCM, SampleRate: 8000, Channels: 1,
			Data: pcmTone(8000, 1, 0, 80)}})
	if !isCode(err, CodeNotFound) {
		t.Fatalf("older rules: %v, want not found", err)
	}
}
