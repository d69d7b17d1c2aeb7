package monitoring

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// pcmTone returns n frames of a 437 Hz tone as 16-bit little-endian PCM,
// channels interleaved, starting at frame from (so chunks join up).
func pcmTone(rate, channels, from, n int) []byte {
	b := make([]byte, 0, n*channels*2)
	for i := from; i < from+n; i++ {
		v := int16(8000 * math.Sin(2*math.Pi*437*float64(i)/float64(rate)))
		for range channels {
			b = binary.LittleEndian.AppendUint16(b, uint16(v))
		}
	}
	return b
}

// wavHeader returns a 44-byte WAV header for 16-bit PCM with the sizes a
// streaming device sends: unknown (0).
func wavHeader(rate, channels int) []byte {
	b := []byte("RIFF\x00\x00\x00\x00WAVEfmt ")
	b = binary.LittleEndian.AppendUint32(b, 16)
	b = binary.LittleEndian.AppendUint16(b, 1) // PCM
	b = binary.LittleEndian.AppendUint16(b, uint16(channels))
	b = binary.LittleEndian.AppendUint32(b, uint32(rate))
	b = binary.LittleEndian.AppendUint32(b, uint32(rate*channels*2))
	b = binary.LittleEndian.AppendUint16(b, uint16(channels*2))
	b = binary.LittleEndian.AppendUint16(b, 16)
	b = append(b, "data\x00\x00\x00\x00"...)
	return b
}

// oggPage returns one Ogg page holding packet (under 255*255 bytes).
func oggPage(headerType byte, granule int64, seq uint32, packet []byte) []byte {
	b := []byte("OggS\x00")
	b = append(b, headerType)
	b = binary.LittleEndian.AppendUint64(b, uint64(granule))
	b = binary.LittleEndian.AppendUint32(b, 0x5eed) // serial
	b = binary.LittleEndian.AppendUint32(b, seq)
	b = binary.LittleEndian.AppendUint32(b, 0) // checksum: not verified
	var lacing []byte
	n := len(packet)
	for ; n >= 255; n -= 255 {
		lacing = append(lacing, 255)
	}
	lacing = append(lacing, byte(n))
	b = append(b, byte(len(lacing)))
	b = append(b, lacing...)
	return append(b, packet...)
}

// opusHead returns the OpusHead packet: channels, pre-skip 312, input
// rate rate.
func opusHead(channels int, rate uint32) []byte {
	b := []byte("OpusHead\x01")
	b = append(b, byte(channels))
	b = binary.LittleEndian.AppendUint16(b, 312)
	b = binary.LittleEndian.AppendUint32(b, rate)
	return append(b, 0, 0, 0) // output gain, mapping family 0
}

// audioEnv is an alarmEnv with red alert a1 raised from d1.
func audioEnv(t *testing.T) *alarmEnv {
	t.Helper()
	e := mustAlarmEnv(t)
	e.raise("a1", AlarmRedAlert, "d1")
	e.events()
	return e
}

func (e *alarmEnv) chunk(actor string, r AudioChunkRequest) ([]byte, error) {
	e.t.Helper()
	e.tick(time.Second)
	return e.apply(CmdAudioChunk, audioChunkCmd{Header: e.hdr(actor), AudioChunkRequest: r})
}

func (e *alarmEnv) mustChunk(r AudioChunkRequest) AudioChunkResult {
	e.t.Helper()
	resp, err := e.chunk("device:"+r.DeviceID, r)
	if err != nil {
		e.t.Fatalf("chunk %d refused: %v", r.Seq, err)
	}
	var res AudioChunkResult
	if err := json.Unmarshal(resp, &res); err != nil {
		e.t.Fatal(err)
	}
	return res
}

func (e *alarmEnv) audioInfo(alarmID string) *AudioInfo {
	e.t.Helper()
	var i *AudioInfo
	e.view(func(txn *badger.Txn) (err error) { i, err = AlarmAudio(txn, alarmID); return err })
	return i
}

func (e *alarmEnv) audioChunks(alarmID string, from uint64, limit int) []AudioChunk {
	e.t.Helper()
	var out []AudioChunk
	e.view(func(txn *badger.Txn) (err error) { out, err = AlarmAudioChunks(txn, alarmID, from, limit); return err })
	return out
}

func pcm(seq uint64, data []byte) AudioChunkRequest {
	return AudioChunkRequest{AlarmID: "a1", DeviceID: "d1", Seq: seq, Codec: CodecPCM, SampleRate: 8000, Channels: 1, Data: data}
}

// Every refusal names its field and code, and writes nothing (apply checks
// the state hash).
func TestAudioChunk_Refusals(t *testing.T) {
	tone := pcmTone(8000, 1, 0, 800)
	with := func(f func(r *AudioChunkRequest)) AudioChunkRequest {
		r := pcm(0, tone)
		f(&r)
		return r
	}
	ogg := func(seq uint64, data []byte) AudioChunkRequest {
		return AudioChunkRequest{AlarmID: "a1", DeviceID: "d1", Seq: seq, Codec: CodecOggOpus, Data: data}
	}
	wav := func(data []byte) AudioChunkRequest {
		return AudioChunkRequest{AlarmID: "a1", DeviceID: "d1", Codec: CodecWAV, Data: data}
	}
	head := oggPage(2, 0, 0, opusHead(1, 16000))
	for _, tc := range []struct {
		name    string
		actor   string
		req     AudioChunkRequest
		code    Code
		field   string
		mention string
	}{
		{"no codec", "", with(func(r *AudioChunkRequest) { r.Codec = "" }), CodeInvalid, "codec", "pcm_s16le, wav, ogg_opus"},
		{"unknown codec", "", with(func(r *AudioChunkRequest) { r.Codec = "mp3" }), CodeInvalid, "codec", `"mp3" is not a codec Vigil stores: one of pcm_s16le, wav, ogg_opus`},
		{"no alarm id", "", with(func(r *AudioChunkRequest) { r.AlarmID = "" }), CodeInvalid, "alarm_id", "empty"},
		{"no device id", "", with(func(r *AudioChunkRequest) { r.DeviceID = "" }), CodeInvalid, "device_id", "empty"},
		{"no audio", "", with(func(r *AudioChunkRequest) { r.Data = nil }), CodeInvalid, "data", "no audio"},
		{"chunk too large", "", with(func(r *AudioChunkRequest) { r.Data = make([]byte, MaxAudioChunkBytes+2) }), CodeInvalid, "data", "32768"},
		{"seq past the last", "", with(func(r *AudioChunkRequest) { r.Seq = MaxAudioChunks }), CodeInvalid, "seq", "8191"},
		{"pcm without rate", "", with(func(r *AudioChunkRequest) { r.SampleRate = 0 }), CodeInvalid, "sample_rate", "needs sample_rate"},
		{"pcm without channels", "", with(func(r *AudioChunkRequest) { r.Channels = 0 }), CodeInvalid, "channels", "needs channels"},
		{"rate out of range", "", with(func(r *AudioChunkRequest) { r.SampleRate = 4000 }), CodeInvalid, "sample_rate", "4000 Hz"},
		{"negative channels", "", with(func(r *AudioChunkRequest) { r.Channels = -1 }), CodeInvalid, "channels", "-1"},
		{"half a frame", "", with(func(r *AudioChunkRequest) { r.Data = tone[:801] }), CodeInvalid, "data", "whole number"},
		{"half a stereo frame", "", with(func(r *AudioChunkRequest) { r.Channels = 2; r.Data = tone[:802] }), CodeInvalid, "data", "4 bytes each"},
		{"operator", "olivia", pcm(0, tone), CodeInvalid, "actor", `"olivia"`},
		{"actor another device", "device:d2", pcm(0, tone), CodeInvalid, "actor", "device:d1"},
		{"alarm of another device", "device:d2", with(func(r *AudioChunkRequest) { r.DeviceID = "d2" }), CodeConflict, "alarm_id", "only to its own alarms"},
		{"no such alarm", "", with(func(r *AudioChunkRequest) { r.AlarmID = "nope" }), CodeNotFound, "alarm_id", "nope"},
		{"wav without header", "", wav(tone), CodeInvalid, "data", "RIFF"},
		{"wav header cut", "", wav(wavHeader(8000, 1)[:30]), CodeInvalid, "data", "fmt chunk"},
		{"wav header rate differs", "", with(func(r *AudioChunkRequest) { *r = wav(append(wavHeader(16000, 1), tone...)); r.SampleRate = 8000 }),
			CodeInvalid, "sample_rate", "the WAV header says 16000, sample_rate says 8000"},
		{"ogg not pages", "", ogg(1, tone), CodeInvalid, "data", "OggS"},
		{"ogg page cut", "", ogg(1, head[:len(head)-3]), CodeInvalid, "data", "whole pages"},
		{"ogg first chunk without OpusHead", "", ogg(0, oggPage(0, 960, 2, []byte("opus audio"))), CodeInvalid, "data", "OpusHead"},
		{"ogg granule past a day", "", ogg(1, oggPage(0, maxOpusGranule+1, 2, []byte("x"))), CodeInvalid, "data", "24 hours"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := audioEnv(t)
			actor := tc.actor
			if actor == "" {
				actor = "device:" + tc.req.DeviceID
			}
			_, err := e.chunk(actor, tc.req)
			var re *RuleError
			if !errors.As(err, &re) || re.Code != tc.code || re.Field != tc.field || !strings.Contains(re.Msg, tc.mention) {
				t.Fatalf("got %v; want %s (%s) mentioning %q", err, tc.code, tc.field, tc.mention)
			}
			if ev := e.events(); len(ev) != 0 {
				t.Fatalf("a refusal emitted %+v", ev)
			}
		})
	}
}

// A PCM stream: the first chunk starts the audio on the timeline, later
// ones only add; a resent seq is answered as the first time and changes
// nothing; chunks out of order are served in order; once the alarm is
// closed new chunks are refused, resends still answered.
func TestAudioChunk_PCMStream(t *testing.T) {
	e := audioEnv(t)
	var sent [][]byte
	for seq := range 3 {
		data := pcmTone(8000, 1, seq*800, 800)
		sent = append(sent, data)
		res := e.mustChunk(pcm(uint64(seq), data))
		if res != (AudioChunkResult{AlarmID: "a1", Seq: uint64(seq), Bytes: 1600}) {
			t.Fatalf("chunk %d: %+v", seq, res)
		}
	}
	evs := e.events()
	var types []EventType
	for _, ev := range evs {
		types = append(types, ev.Type)
		if ev.Type == EventAudioChunk && (ev.Audio == nil || ev.Audio.AlarmID != "a1" || ev.Audio.Bytes != 1600) {
			t.Fatalf("event %+v", ev)
		}
	}
	want := []EventType{EventAlarmUpdated, EventAudioChunk, EventAudioChunk, EventAudioChunk}
	if fmt.Sprint(types) != fmt.Sprint(want) {
		t.Fatalf("events %v, want %v", types, want)
	}
	if evs[0].Entry == nil || evs[0].Entry.Kind != ActionAudioStarted ||
		evs[0].Entry.Text != "audio from the device started, codec pcm_s16le, 8000 Hz, mono" || evs[0].Entry.Actor != "device:d1" {
		t.Fatalf("timeline entry %+v", evs[0].Entry)
	}
	if kinds := e.timelineKinds("a1"); fmt.Sprint(kinds) != fmt.Sprint([]ActionKind{ActionRaised, ActionAudioStarted}) {
		t.Fatalf("timeline %v", kinds)
	}
	if a := e.alarm("a1"); a.Actions != 2 || a.Status != StatusRaised {
		t.Fatalf("alarm %+v", a)
	}

	t.Run("resend", func(t *testing.T) {
		before := e.hash()
		first, _ := json.Marshal(AudioChunkResult{AlarmID: "a1", Seq: 1, Bytes: 1600})
		resp, err := e.chunk("device:d1", pcm(1, sent[1]))
		if err != nil || !bytes.Equal(resp, first) {
			t.Fatalf("resend: %s, %v; want %s", resp, err, first)
		}
		if !bytes.Equal(before, e.hash()) || len(e.events()) != 0 {
			t.Fatal("a resend changed the state or emitted events")
		}
		_, err = e.chunk("device:d1", pcm(1, sent[0]))
		if !isCode(err, CodeConflict) || !strings.Contains(err.Error(), "already stored, with other audio") {
			t.Fatalf("seq 1 with other bytes: %v", err)
		}
	})
	t.Run("fixed by the first chunk", func(t *testing.T) {
		r := pcm(3, sent[0])
		r.Codec, r.SampleRate, r.Channels = CodecOggOpus, 0, 0
		r.Data = oggPage(0, 960, 3, []byte("opus"))
		_, err := e.chunk("device:d1", r)
		if !isCode(err, CodeConflict) || !strings.Contains(err.Error(), "pcm_s16le") || !strings.Contains(err.Error(), "ogg_opus") {
			t.Fatalf("another codec: %v", err)
		}
		r = pcm(3, sent[0])
		r.SampleRate = 16000
		if _, err := e.chunk("device:d1", r); !isCode(err, CodeConflict) || !strings.Contains(err.Error(), "8000 Hz; this chunk is 16000 Hz") {
			t.Fatalf("another rate: %v", err)
		}
		r = pcm(3, sent[0])
		r.Channels = 2
		if _, err := e.chunk("device:d1", r); !isCode(err, CodeConflict) || !strings.Contains(err.Error(), "channels") {
			t.Fatalf("another channel count: %v", err)
		}
	})
	t.Run("out of order", func(t *testing.T) {
		for _, seq := range []uint64{6, 4} {
			data := pcmTone(8000, 1, int(seq)*800, 800)
			e.mustChunk(pcm(seq, data))
		}
		var seqs []uint64
		for _, c := range e.audioChunks("a1", 0, 0) {
			seqs = append(seqs, c.Seq)
		}
		if fmt.Sprint(seqs) != "[0 1 2 4 6]" {
			t.Fatalf("seqs %v", seqs)
		}
		got := e.audioChunks("a1", 2, 2)
		if len(got) != 2 || got[0].Seq != 2 || got[1].Seq != 4 || !bytes.Equal(got[0].Data, sent[2]) {
			t.Fatalf("from 2, at most 2: %+v", got)
		}
		i := e.audioInfo("a1")
		if i.Chunks != 5 || i.Bytes != 8000 || i.LastSeq != 6 || i.Missing != 2 || i.Duration != 500*time.Millisecond ||
			i.SampleRate != 8000 || i.Channels != 1 || i.BitsPerSample != 16 || i.ByteRate != 16000 || !i.HasFirst ||
			!i.FirstAt.Equal(t0.Add(time.Second)) || i.LastAt.Before(i.FirstAt) || i.Index != e.index {
			t.Fatalf("info %+v", i)
		}
	})
	t.Run("closed", func(t *testing.T) {
		e.ack("a1", "olivia")
		e.closeAlarm("a1", "olivia", ResolutionWorkerSafe)
		e.events()
		if _, err := e.chunk("device:d1", pcm(7, sent[0])); !isCode(err, CodeAlarmClosed) {
			t.Fatalf("chunk after close: %v", err)
		}
		if res := e.mustChunk(pcm(6, pcmTone(8000, 1, 6*800, 800))); res.Seq != 6 {
			t.Fatalf("resend after close: %+v", res)
		}
	})
}

// The per-alarm limit: a chunk that would take the alarm past MaxAudioBytes
// is refused; one that reaches it exactly is kept.
func TestAudioChunk_PerAlarmLimit(t *testing.T) {
	e := audioEnv(t)
	e.mustChunk(pcm(0, pcmTone(8000, 1, 0, 50)))
	i := e.audioInfo("a1")
	i.Bytes = MaxAudioBytes - 100 // as if the alarm had streamed that much
	e.put(pAudioMeta+"a1", i)
	_, err := e.chunk("device:d1", pcm(1, pcmTone(8000, 1, 0, 51)))
	if !isCode(err, CodeConflict) || !strings.Contains(err.Error(), "would pass the 33554432 an alarm keeps") {
		t.Fatalf("past the limit: %v", err)
	}
	e.mustChunk(pcm(1, pcmTone(8000, 1, 0, 50)))
	if got := e.audioInfo("a1").Bytes; got != MaxAudioBytes {
		t.Fatalf("bytes %d", got)
	}
}

// A WAV stream takes its format from the header in chunk 0, which may come
// after other chunks; declared values must agree with it.
func TestAudioChunk_WAVHeaderFromChunkZero(t *testing.T) {
	e := audioEnv(t)
	body := pcmTone(16000, 2, 0, 4000) // 16000 bytes
	w := func(seq uint64, data []byte) AudioChunkRequest {
		return AudioChunkRequest{AlarmID: "a1", DeviceID: "d1", Seq: seq, Codec: CodecWAV, Data: data}
	}
	e.mustChunk(w(1, body[8000:]))
	if i := e.audioInfo("a1"); i.HasFirst || i.SampleRate != 0 || i.Duration != 0 {
		t.Fatalf("before the header: %+v", i)
	}
	e.mustChunk(w(0, append(wavHeader(16000, 2), body[:8000]...)))
	i := e.audioInfo("a1")
	if !i.HasFirst || i.SampleRate != 16000 || i.Channels != 2 || i.BitsPerSample != 16 || i.HeaderBytes != 44 ||
		i.Bytes != 16044 || i.Duration != 250*time.Millisecond {
		t.Fatalf("after the header: %+v", i)
	}
	r := w(2, body[:400])
	r.Channels = 1
	if _, err := e.chunk("device:d1", r); !isCode(err, CodeConflict) || !strings.Contains(err.Error(), "2 channels") {
		t.Fatalf("mono chunk in a stereo stream: %v", err)
	}
}

// An Ogg Opus stream: whole pages; the OpusHead gives channels and
// pre-skip; the granule position gives the duration.
func TestAudioChunk_OggOpus(t *testing.T) {
	e := audioEnv(t)
	o := func(seq uint64, data []byte) AudioChunkRequest {
		return AudioChunkRequest{AlarmID: "a1", DeviceID: "d1", Seq: seq, Codec: CodecOggOpus, Data: data}
	}
	chunk0 := append(oggPage(2, 0, 0, opusHead(1, 16000)), oggPage(0, 0, 1, []byte("OpusTags\x00\x00\x00\x00\x00\x00\x00\x00"))...)
	e.mustChunk(o(0, chunk0))
	e.mustChunk(o(1, append(oggPage(0, 48312, 2, make([]byte, 300)), oggPage(0, 96312, 3, make([]byte, 600))...)))
	i := e.audioInfo("a1")
	if i.Codec != CodecOggOpus || i.Channels != 1 || i.SampleRate != 16000 || i.PreSkip != 312 || i.Granule != 96312 ||
		i.Duration != 2*time.Second || i.Chunks != 2 {
		t.Fatalf("info %+v", i)
	}
	if kinds := e.timelineKinds("a1"); len(kinds) != 2 || kinds[1] != ActionAudioStarted {
		t.Fatalf("timeline %v", kinds)
	}
}

// A cancel with the Duress PIN leaves the alarm open for operators: its
// audio keeps coming.
func TestAudioChunk_DuressCancelledAlarmKeepsAudio(t *testing.T) {
	e := mustDirEnv(t)
	e.seed()
	e.must(CmdSetPINs, setPINsCmd{Header: e.hdr(), WorkerID: "w1", SafePINHash: testSafeHash, DuressPINHash: testDuressHash})
	dev := Header{At: e.now, Actor: "device:d1", Node: "n1"}
	e.must(CmdRaiseAlarm, RaiseAlarmCmd{Header: dev, AlarmID: "a1", Type: AlarmRedAlert, DeviceID: "d1"})
	e.must(CmdCancelAlarm, cancelAlarmCmd{Header: dev, AlarmID: "a1", PIN: pinDuress, PINVersion: 1, DuressAlarmID: "dx"})
	e.must(CmdAudioChunk, audioChunkCmd{Header: dev, AudioChunkRequest: pcm(0, pcmTone(8000, 1, 0, 80))})
}

// The replicas property of determinism_test.go, with audio chunks mixed
// into the generated commands: mostly valid, from the alarm's device, some
// resent, some from another device, some with another codec, some for
// closed alarms. The chunks come from their own random source, so the
// generator's other choices stay as they are.
func TestReplicas_AudioSameStateWhateverTheBatching(t *testing.T) {
	accepted, refused := 0, 0
	for seed := uint64(1); seed <= 4; seed++ {
		g := &gen{t: t, r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), now: t0, a: newReplica(t)}
		ra := rand.New(rand.NewPCG(seed, 0xa0d10))
		g.setup()
		seqs := map[string]uint64{}
		var kept []AudioChunkRequest // accepted or not, for resends
		for range 200 {
			g.step()
			if ra.IntN(3) != 0 {
				continue
			}
			var open []Alarm
			if err := g.a.db.View(func(txn *badger.Txn) (err error) { open, err = OpenAlarms(txn); return err }); err != nil {
				t.Fatal(err)
			}
			var r AudioChunkRequest
			switch {
			case len(kept) > 0 && ra.IntN(8) == 0:
				r = kept[ra.IntN(len(kept))] // a resend
			case len(open) == 0 && len(g.alarms) == 0:
				continue
			default:
				id := g.alarms[ra.IntN(len(g.alarms))]
				dev := "d1"
				if len(open) > 0 && ra.IntN(5) != 0 {
					o := open[ra.IntN(len(open))]
					id, dev = o.ID, o.DeviceID
				}
				if ra.IntN(6) == 0 {
					dev = genDevices[ra.IntN(len(genDevices))].ID
				}
				r = AudioChunkRequest{AlarmID: id, DeviceID: dev, Seq: seqs[id], Codec: CodecPCM, SampleRate: 8000,
					Channels: 1, DeviceTime: g.now, Data: pcmTone(8000, 1, ra.IntN(8000), 2+ra.IntN(500))}
				if ra.IntN(10) == 0 {
					r.SampleRate = 16000
				}
				seqs[id] += 1 + uint64(ra.IntN(2)) // sometimes a gap
			}
			kept = append(kept, r)
			g.add(CmdAudioChunk, audioChunkCmd{Header: g.hdr("device:" + r.DeviceID), AudioChunkRequest: r})
		}
		b, c := newReplica(t), newReplica(t)
		applyBatched(t, b, g.cmds, 7)
		applyBatched(t, c, g.cmds, 0)
		for i, cmd := range g.cmds {
			if g.a.outcomes[i] != b.outcomes[i] || g.a.outcomes[i] != c.outcomes[i] {
				t.Fatalf("seed %d: command %d (%s) answered differently:\nA %s\nB %s\nC %s",
					seed, i+1, cmd.t, g.a.outcomes[i], b.outcomes[i], c.outcomes[i])
			}
			if cmd.t == CmdAudioChunk {
				if strings.HasPrefix(g.a.outcomes[i], "refused: ") {
					refused++
				} else {
					accepted++
				}
			}
		}
		ha, da := g.a.hash(t)
		hb, db := b.hash(t)
		hc, dc := c.hash(t)
		if !bytes.Equal(ha, hb) || !bytes.Equal(ha, hc) {
			t.Fatalf("seed %d: state hashes differ\n%s", seed, firstDiff(da, db, dc))
		}
		if err := g.a.db.View(checkAlarmInvariants); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if !strings.Contains(da, pAudioMeta) {
			t.Fatalf("seed %d: no audio stored", seed)
		}
	}
	if accepted == 0 || refused == 0 {
		t.Fatalf("audio chunks: %d accepted, %d refused; want both", accepted, refused)
	}
	t.Logf("audio chunks: %d accepted, %d refused", accepted, refused)
}
