package monitoring

// Audio from a device in alarm. The device streams its audio in chunks, one
// command each; the chunks are stored with the alarm and replicated like
// everything else, so the console can play them near live and afterwards,
// and a link to the alarm's audio stays valid once it is closed.
//
// Codecs are carried as they are: raw PCM (pcm_s16le), a WAV file cut into
// chunks (wav), or Ogg pages of Opus (ogg_opus). Vigil checks only what it
// needs to serve a playable file: whole 16-bit frames for PCM, the RIFF
// header in a WAV stream's chunk 0, whole Ogg pages with the OpusHead page
// first in an Ogg stream's chunk 0. It never decodes audio.
//
// A device may also send audio to an audio reference a PIN action gave it
// (audioref.go), under the same rules; it goes to the duress alarm the
// reference names, if any.
//
// Rules, checked before anything is written: the alarm exists and was
// raised from the sending device; a seq already stored is a duplicate,
// answered as the first time and writing nothing (unless its bytes differ,
// which is refused); the alarm is not closed (an alarm the worker cancelled
// with the Duress PIN is open for operators, and keeps taking audio); the
// first chunk fixes the codec, and the sample rate and channels once known;
// a chunk carries at most MaxAudioChunkBytes, an alarm keeps at most
// MaxAudioBytes in MaxAudioChunks chunks. Chunks may arrive out of order
// or with gaps: they are kept, and served, in seq order.
//
// The first chunk of an alarm adds an entry to its timeline and an audit
// record; later chunks add neither (a stream is thousands of chunks), but
// each emits EventAudioChunk, naming the chunk without its bytes.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// AudioCodec is how a device encodes the audio it streams.
type AudioCodec string

// Audio codecs.
const (
	// CodecPCM is raw little-endian signed 16-bit PCM, channels
	// interleaved. Every chunk gives sample_rate and channels and holds
	// whole frames.
	CodecPCM AudioCodec = "pcm_s16le"
	// CodecWAV is a WAV file cut into chunks: chunk 0 begins with the RIFF
	// header, up to and including the data chunk's header; the other
	// chunks continue the samples. Vigil fixes the sizes in the header when
	// it serves the file, so a streaming device may leave them 0.
	CodecWAV AudioCodec = "wav"
	// CodecOggOpus is an Ogg Opus stream, whole Ogg pages in every chunk;
	// chunk 0 begins with the OpusHead page.
	CodecOggOpus AudioCodec = "ogg_opus"
)

// AudioCodecs lists the codecs Vigil stores.
var AudioCodecs = []AudioCodec{CodecPCM, CodecWAV, CodecOggOpus}

// Limits of audio.
const (
	// MaxAudioChunkBytes is the most audio one chunk carries.
	MaxAudioChunkBytes = 32 << 10
	// MaxAudioBytes is the most audio an alarm keeps: about 35 minutes of
	// 8 kHz mono PCM, 17 minutes at 16 kHz, and hours of Opus.
	MaxAudioBytes = 32 << 20
	// MaxAudioChunks is the most chunks an alarm keeps: seq runs from 0 to
	// MaxAudioChunks-1 (over two hours in 1 s chunks).
	MaxAudioChunks = 8192
	// MinAudioSampleRate and MaxAudioSampleRate bound a sample rate, in Hz.
	MinAudioSampleRate = 8000
	MaxAudioSampleRate = 192000
	// MaxAudioChannels is the most channels a stream may have.
	MaxAudioChannels = 8
	// MaxAudioChunksRead is the most chunks AudioChunks returns at once.
	MaxAudioChunksRead = 256
	// maxOpusGranule bounds an Ogg page's granule position: 24 hours at
	// Opus's 48 kHz.
	maxOpusGranule = 48000 * 24 * 3600
)

// ActionAudioStarted is the timeline entry written when an alarm's first
// chunk of audio arrives.
const ActionAudioStarted ActionKind = "audio_started"

// audioKey is the key of chunk seq of an alarm's audio.
func audioKey(alarmID string, seq uint64) string {
	return pAudio + alarmID + "/" + ikey(seq)
}

// AudioChunkRequest is one chunk of audio from a device in alarm.
type AudioChunkRequest struct {
	AlarmID    string     `json:"alarm_id"`
	DeviceID   string     `json:"device_id"`
	Seq        uint64     `json:"seq"` // from 0, in the order of the audio
	Codec      AudioCodec `json:"codec"`
	SampleRate int        `json:"sample_rate,omitempty"` // Hz; required for pcm_s16le
	Channels   int        `json:"channels,omitempty"`    // required for pcm_s16le
	DeviceTime time.Time  `json:"device_time,omitzero"`  // the device's clock
	Data       []byte     `json:"data"`                  // the audio as it is (base64 in JSON)
}

// audioChunkCmd stores one chunk of audio with its alarm. The actor is
// "device:<device_id>".
type audioChunkCmd struct {
	Header
	AudioChunkRequest
	// Rules is the version of the rules the command is applied under
	// (older logs replay as they were applied): RulesAudioChunkRef and
	// above take audio sent to an audio reference (audioref.go). The
	// Service sets the newest.
	Rules int `json:"rules,omitempty"`
}

// Versions of audioChunkCmd's rules.
const (
	// RulesAudioChunkRef: alarm_id may be an audio reference a PIN action
	// gave the device (audioref.go).
	RulesAudioChunkRef = 1
)

// AudioChunkResult is the answer to a chunk; a duplicate gets the same.
type AudioChunkResult struct {
	AlarmID string `json:"alarm_id"`
	Seq     uint64 `json:"seq"`
	Bytes   int    `json:"bytes"` // the audio bytes stored for this seq
}

// AudioChunk is one stored chunk: audio/<alarm id>/<seq>.
type AudioChunk struct {
	AlarmID    string    `json:"alarm_id"`
	Seq        uint64    `json:"seq"`
	Index      uint64    `json:"index"` // the Raft index that wrote it
	At         time.Time `json:"at"`    // when Vigil stored it
	DeviceTime time.Time `json:"device_time,omitzero"`
	Data       []byte    `json:"data"`
}

// AudioChunkRef names a stored chunk in an EventAudioChunk, without its
// bytes: a console that follows an alarm live fetches them.
type AudioChunkRef struct {
	AlarmID  string     `json:"alarm_id"`
	DeviceID string     `json:"device_id"`
	Seq      uint64     `json:"seq"`
	Bytes    int        `json:"bytes"`
	Codec    AudioCodec `json:"codec"`
}

// AudioInfo summarises an alarm's audio: audiometa/<alarm id>.
type AudioInfo struct {
	AlarmID  string     `json:"alarm_id"`
	DeviceID string     `json:"device_id"`
	Codec    AudioCodec `json:"codec"`
	// SampleRate and Channels are 0 until known: for wav and ogg_opus they
	// come from the header in chunk 0 (for Opus, the input rate, which may
	// be unknown; Opus always plays at 48 kHz).
	SampleRate    int `json:"sample_rate,omitempty"`
	Channels      int `json:"channels,omitempty"`
	BitsPerSample int `json:"bits_per_sample,omitempty"` // pcm_s16le, wav
	ByteRate      int `json:"byte_rate,omitempty"`       // pcm_s16le, wav: bytes per second of audio
	// HasFirst: chunk 0 is stored (for wav and ogg_opus, the header that
	// makes the stream playable).
	HasFirst    bool   `json:"has_first"`
	HeaderBytes int    `json:"header_bytes,omitempty"` // wav: the bytes of chunk 0 before the samples
	PreSkip     int    `json:"pre_skip,omitempty"`     // ogg_opus: samples at 48 kHz dropped at the start
	Granule     int64  `json:"granule,omitempty"`      // ogg_opus: the highest granule position seen
	Chunks      int    `json:"chunks"`
	Bytes       int64  `json:"bytes"` // audio bytes stored, headers included
	LastSeq     uint64 `json:"last_seq"`
	Missing     uint64 `json:"missing"` // seqs below last_seq not received (yet)
	// Duration is how much audio is held, as far as the codec tells
	// without decoding: from the byte rate for PCM and WAV, from the
	// granule position for Opus; 0 when unknown.
	Duration        time.Duration `json:"duration_ns"`
	FirstAt         time.Time     `json:"first_at"` // when Vigil stored the first chunk to arrive
	LastAt          time.Time     `json:"last_at"`
	FirstDeviceTime time.Time     `json:"first_device_time,omitzero"`
	LastDeviceTime  time.Time     `json:"last_device_time,omitzero"`
	// Index is the Raft index of the newest chunk. Chunks are never
	// changed or removed, so the chunks with an index up to Index are
	// exactly Chunks chunks of Bytes bytes: a reader can serve a file that
	// matches this summary while more audio arrives.
	Index uint64 `json:"index"`
}

// audioFormat is what a chunk tells of its stream.
type audioFormat struct {
	rate, channels, bits, byteRate int
	headerBytes                    int   // wav chunk 0: where the samples begin
	preSkip                        int   // ogg_opus chunk 0
	granule                        int64 // ogg_opus: the chunk's highest granule position, -1 none
}

func codecList() string {
	s := make([]string, len(AudioCodecs))
	for i, c := range AudioCodecs {
		s[i] = string(c)
	}
	return strings.Join(s, ", ")
}

// inspectAudio checks what can be checked of a chunk without the state
// (the IDs, the codec, the bounds of a chunk, the codec's own rules) and
// returns what the chunk tells of its stream. Its errors are *RuleErrors
// naming the field.
func inspectAudio(r *AudioChunkRequest) (audioFormat, error) {
	f := audioFormat{granule: -1}
	if err := validID("alarm_id", r.AlarmID); err != nil {
		return f, err
	}
	if err := validID("device_id", r.DeviceID); err != nil {
		return f, err
	}
	switch {
	case r.Codec == "":
		return f, invalid("codec", "the codec is missing: one of %s", codecList())
	case !slices.Contains(AudioCodecs, r.Codec):
		return f, invalid("codec", "%q is not a codec Vigil stores: one of %s", r.Codec, codecList())
	case r.Seq >= MaxAudioChunks:
		return f, invalid("seq", "%d is past the last chunk an alarm keeps (seq runs from 0 to %d)", r.Seq, MaxAudioChunks-1)
	case len(r.Data) == 0:
		return f, invalid("data", "the chunk holds no audio")
	case len(r.Data) > MaxAudioChunkBytes:
		return f, invalid("data", "the chunk holds %d bytes of audio, more than the %d a chunk may carry", len(r.Data), MaxAudioChunkBytes)
	case r.SampleRate != 0 && (r.SampleRate < MinAudioSampleRate || r.SampleRate > MaxAudioSampleRate):
		return f, invalid("sample_rate", "%d Hz is outside %d to %d", r.SampleRate, MinAudioSampleRate, MaxAudioSampleRate)
	case r.Channels != 0 && (r.Channels < 1 || r.Channels > MaxAudioChannels):
		return f, invalid("channels", "%d is outside 1 to %d", r.Channels, MaxAudioChannels)
	}
	f.rate, f.channels = r.SampleRate, r.Channels
	switch r.Codec {
	case CodecPCM:
		switch {
		case r.SampleRate == 0:
			return f, invalid("sample_rate", "pcm_s16le needs sample_rate, in Hz")
		case r.Channels == 0:
			return f, invalid("channels", "pcm_s16le needs channels")
		case len(r.Data)%(2*r.Channels) != 0:
			return f, invalid("data", "%d bytes is not a whole number of %d-channel 16-bit frames (%d bytes each)",
				len(r.Data), r.Channels, 2*r.Channels)
		}
		f.bits, f.byteRate = 16, r.SampleRate*2*r.Channels
	case CodecWAV:
		if r.Seq != 0 {
			break
		}
		h, err := parseWAVHeader(r.Data)
		if err != nil {
			return f, invalid("data", "chunk 0 of a wav stream must begin with the WAV header: %v", err)
		}
		if err := agree("sample_rate", "the WAV header", h.rate, r.SampleRate); err != nil {
			return f, err
		}
		if err := agree("channels", "the WAV header", h.channels, r.Channels); err != nil {
			return f, err
		}
		f = h
	case CodecOggOpus:
		first, bos, granule, err := walkOgg(r.Data)
		if err != nil {
			return f, invalid("data", "an ogg_opus chunk holds whole Ogg pages: %v", err)
		}
		f.granule = granule
		if r.Seq != 0 {
			break
		}
		if !bos || len(first) < 19 || !bytes.HasPrefix(first, []byte("OpusHead")) {
			return f, invalid("data", "chunk 0 of an ogg_opus stream must begin with the OpusHead page (the first page of the stream)")
		}
		ch, rate := int(first[9]), int(binary.LittleEndian.Uint32(first[12:]))
		if ch < 1 || ch > MaxAudioChannels {
			return f, invalid("data", "the OpusHead gives %d channels, outside 1 to %d", ch, MaxAudioChannels)
		}
		if rate != 0 && (rate < MinAudioSampleRate || rate > MaxAudioSampleRate) {
			rate = 0 // informational only: Opus plays at 48 kHz
		}
		if err := agree("sample_rate", "the OpusHead", rate, r.SampleRate); err != nil {
			return f, err
		}
		if err := agree("channels", "the OpusHead", ch, r.Channels); err != nil {
			return f, err
		}
		f.rate, f.channels = max(rate, r.SampleRate), ch
		f.preSkip = int(binary.LittleEndian.Uint16(first[10:]))
	}
	return f, nil
}

// agree refuses a declared value that differs from what a header says.
func agree(field, header string, inHeader, declared int) error {
	if inHeader != 0 && declared != 0 && inHeader != declared {
		return invalid(field, "%s says %d, %s says %d", header, inHeader, field, declared)
	}
	return nil
}

// parseWAVHeader reads the RIFF header at the start of a WAV file, up to
// and including the data chunk's header, which must all be in b.
func parseWAVHeader(b []byte) (audioFormat, error) {
	f := audioFormat{granule: -1}
	if len(b) < 12 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return f, errors.New("it does not begin with RIFF....WAVE")
	}
	haveFmt := false
	for off := 12; ; {
		if off+8 > len(b) {
			return f, errors.New("the header does not reach the data chunk within chunk 0")
		}
		id, size := string(b[off:off+4]), int64(binary.LittleEndian.Uint32(b[off+4:]))
		body := off + 8
		switch id {
		case "fmt ":
			if size < 16 || int64(body)+size > int64(len(b)) {
				return f, fmt.Errorf("the fmt chunk is %d bytes; it needs at least 16, all within chunk 0", size)
			}
			f.channels = int(binary.LittleEndian.Uint16(b[body+2:]))
			f.rate = int(binary.LittleEndian.Uint32(b[body+4:]))
			f.byteRate = int(binary.LittleEndian.Uint32(b[body+8:]))
			f.bits = int(binary.LittleEndian.Uint16(b[body+14:]))
			haveFmt = true
		case "data":
			switch {
			case !haveFmt:
				return f, errors.New("the data chunk comes before the fmt chunk")
			case f.channels < 1 || f.channels > MaxAudioChannels:
				return f, fmt.Errorf("the fmt chunk gives %d channels, outside 1 to %d", f.channels, MaxAudioChannels)
			case f.rate < MinAudioSampleRate || f.rate > MaxAudioSampleRate:
				return f, fmt.Errorf("the fmt chunk gives %d Hz, outside %d to %d", f.rate, MinAudioSampleRate, MaxAudioSampleRate)
			case f.byteRate <= 0 || f.bits <= 0:
				return f, fmt.Errorf("the fmt chunk gives %d bytes per second and %d bits per sample", f.byteRate, f.bits)
			}
			f.headerBytes = body
			return f, nil
		}
		next := int64(body) + size + size&1 // chunks are padded to an even length
		if next > int64(len(b)) {
			return f, fmt.Errorf("the %q chunk runs past the end of chunk 0, before the data chunk", id)
		}
		off = int(next)
	}
}

// walkOgg checks that b is whole Ogg pages. It returns the payload of the
// first page, whether that page begins a stream, and the highest granule
// position of the pages (-1: none). Page checksums are not verified.
func walkOgg(b []byte) (first []byte, bos bool, granule int64, err error) {
	granule = -1
	for off, n := 0, 0; off < len(b); n++ {
		if len(b)-off < 27 {
			return nil, false, 0, fmt.Errorf("page %d at byte %d is cut short: an Ogg page header is 27 bytes", n, off)
		}
		if string(b[off:off+4]) != "OggS" {
			return nil, false, 0, fmt.Errorf("no Ogg page at byte %d: a page begins with OggS", off)
		}
		if b[off+4] != 0 {
			return nil, false, 0, fmt.Errorf("page %d at byte %d has Ogg version %d, not 0", n, off, b[off+4])
		}
		segs := int(b[off+26])
		payload := off + 27 + segs
		if payload > len(b) {
			return nil, false, 0, fmt.Errorf("page %d at byte %d is cut short in its segment table", n, off)
		}
		end := payload
		for _, l := range b[off+27 : payload] {
			end += int(l)
		}
		if end > len(b) {
			return nil, false, 0, fmt.Errorf("page %d at byte %d runs past the end of the chunk: send whole pages", n, off)
		}
		g := int64(binary.LittleEndian.Uint64(b[off+6:]))
		if g > maxOpusGranule {
			return nil, false, 0, fmt.Errorf("page %d has granule position %d, past 24 hours of audio", n, g)
		}
		granule = max(granule, g)
		if n == 0 {
			first, bos = b[payload:end], b[off+5]&0x02 != 0
		}
		off = end
	}
	return first, bos, granule, nil
}

// checkAudioActor refuses audio from anyone but the device it names.
func checkAudioActor(actor, deviceID string) error {
	if d := deviceOfActor(actor); d == "" || d != deviceID {
		return invalid("actor", "audio comes from its device: the actor is \"device:%s\", not %q", deviceID, actor)
	}
	return nil
}

// admit checks that a chunk of format f fits the alarm's audio so far.
func (i *AudioInfo) admit(r *AudioChunkRequest, f audioFormat) error {
	switch {
	case r.Codec != i.Codec:
		return ruleErr(CodeConflict, "codec", "alarm %s's audio is %s, fixed by its first chunk; this chunk is %s",
			i.AlarmID, i.Codec, r.Codec)
	case i.SampleRate != 0 && f.rate != 0 && f.rate != i.SampleRate:
		return ruleErr(CodeConflict, "sample_rate", "alarm %s's audio is %d Hz; this chunk is %d Hz", i.AlarmID, i.SampleRate, f.rate)
	case i.Channels != 0 && f.channels != 0 && f.channels != i.Channels:
		return ruleErr(CodeConflict, "channels", "alarm %s's audio has %d channels; this chunk has %d", i.AlarmID, i.Channels, f.channels)
	case i.Bytes+int64(len(r.Data)) > MaxAudioBytes:
		return ruleErr(CodeConflict, "data", "alarm %s holds %d bytes of audio; this chunk would pass the %d an alarm keeps",
			i.AlarmID, i.Bytes, MaxAudioBytes)
	}
	return nil
}

// add counts a chunk of format f, stored at index and time at.
func (i *AudioInfo) add(r *AudioChunkRequest, f audioFormat, index uint64, at time.Time) {
	if i.SampleRate == 0 {
		i.SampleRate = f.rate
	}
	if i.Channels == 0 {
		i.Channels = f.channels
	}
	if i.BitsPerSample == 0 {
		i.BitsPerSample = f.bits
	}
	if i.ByteRate == 0 {
		i.ByteRate = f.byteRate
	}
	if r.Seq == 0 {
		i.HasFirst, i.HeaderBytes, i.PreSkip = true, f.headerBytes, f.preSkip
	}
	i.Granule = max(i.Granule, f.granule)
	if i.Chunks == 0 || r.Seq > i.LastSeq {
		i.LastSeq = r.Seq
	}
	i.Chunks++
	i.Bytes += int64(len(r.Data))
	i.Missing = i.LastSeq + 1 - uint64(i.Chunks)
	if i.FirstAt.IsZero() {
		i.FirstAt, i.FirstDeviceTime = at, r.DeviceTime
	}
	i.LastAt = at
	if !r.DeviceTime.IsZero() {
		i.LastDeviceTime = r.DeviceTime
	}
	i.Index = index
	i.Duration = i.duration()
}

// duration is how much audio the summary counts, as far as the codec tells
// without decoding.
func (i *AudioInfo) duration() time.Duration {
	switch i.Codec {
	case CodecPCM, CodecWAV:
		data := i.Bytes - int64(i.HeaderBytes)
		if i.ByteRate <= 0 || data <= 0 {
			return 0
		}
		return time.Duration(data * int64(time.Second) / int64(i.ByteRate))
	case CodecOggOpus:
		if g := i.Granule - int64(i.PreSkip); g > 0 {
			return time.Duration(g * int64(time.Second) / 48000)
		}
	}
	return 0
}

// describe says what the stream is, for the timeline.
func (i *AudioInfo) describe() string {
	s := "codec " + string(i.Codec)
	if i.SampleRate != 0 {
		s += fmt.Sprintf(", %d Hz", i.SampleRate)
	}
	switch i.Channels {
	case 0:
	case 1:
		s += ", mono"
	default:
		s += fmt.Sprintf(", %d channels", i.Channels)
	}
	return s
}

func applyAudioChunk(c *applyCtx, body []byte) ([]byte, error) {
	var r audioChunkCmd
	if err := c.decode(body, &r); err != nil {
		return nil, err
	}
	f, err := inspectAudio(&r.AudioChunkRequest)
	if err != nil {
		return nil, err
	}
	if err := checkAudioActor(c.hdr.Actor, r.DeviceID); err != nil {
		return nil, err
	}
	if r.Rules >= RulesAudioChunkRef {
		ref, err := getAudioRef(c.txn, r.AlarmID)
		if err != nil {
			return nil, err
		}
		if ref != nil {
			return applyRefChunk(c, &r.AudioChunkRequest, f, ref)
		}
	}
	a, err := loadAlarm(c.txn, r.AlarmID)
	if err != nil {
		return nil, err
	}
	if a.DeviceID != r.DeviceID {
		return nil, ruleErr(CodeConflict, "alarm_id", "alarm %s was not raised from device %s: a device attaches audio only to its own alarms",
			a.ID, r.DeviceID)
	}
	key := audioKey(a.ID, r.Seq)
	var old AudioChunk
	if ok, err := getJSON(c.txn, key, &old); err != nil {
		return nil, err
	} else if ok {
		if !bytes.Equal(old.Data, r.Data) {
			return nil, ruleErr(CodeConflict, "seq", "chunk %d of alarm %s is already stored, with other audio (%d bytes): a seq is sent once",
				r.Seq, a.ID, len(old.Data))
		}
		return json.Marshal(AudioChunkResult{AlarmID: a.ID, Seq: r.Seq, Bytes: len(old.Data)}) // a duplicate
	}
	if a.Status == StatusClosed {
		return nil, ruleErr(CodeAlarmClosed, "alarm_id", "alarm %s is closed: it takes no more audio", a.ID)
	}
	info, started, err := alarmAudioInfo(c, a, &r.AudioChunkRequest, f)
	if err != nil {
		return nil, err
	}

	// Every rule has been checked: write.
	if err := storeChunk(c, a, &r.AudioChunkRequest, f, info, started); err != nil {
		return nil, err
	}
	return json.Marshal(AudioChunkResult{AlarmID: a.ID, Seq: r.Seq, Bytes: len(r.Data)})
}

// alarmAudioInfo returns the summary of alarm a's audio so far and
// whether it has any, refusing a chunk that does not fit it.
func alarmAudioInfo(c *applyCtx, a *Alarm, r *AudioChunkRequest, f audioFormat) (*AudioInfo, bool, error) {
	var info AudioInfo
	started, err := getJSON(c.txn, pAudioMeta+a.ID, &info)
	if err != nil {
		return nil, false, err
	}
	if !started {
		return &AudioInfo{AlarmID: a.ID, DeviceID: r.DeviceID, Codec: r.Codec}, false, nil
	}
	if err := info.admit(r, f); err != nil {
		return nil, false, err
	}
	return &info, true, nil
}

// storeChunk stores a chunk with alarm a, whose audio so far is info
// (started: it has some), once every rule has been checked. The first
// chunk adds an entry to the alarm's timeline.
func storeChunk(c *applyCtx, a *Alarm, r *AudioChunkRequest, f audioFormat, info *AudioInfo, started bool) error {
	now := c.now()
	info.add(r, f, c.entry.Index, now)
	chunk := AudioChunk{AlarmID: a.ID, Seq: r.Seq, Index: c.entry.Index, At: now, DeviceTime: r.DeviceTime, Data: r.Data}
	if err := putJSON(c.txn, audioKey(a.ID, r.Seq), chunk); err != nil {
		return err
	}
	if err := putJSON(c.txn, pAudioMeta+a.ID, info); err != nil {
		return err
	}
	if !started {
		text := "audio from the device started, " + info.describe()
		entry, err := c.addTimeline(a, TimelineEntry{Kind: ActionAudioStarted, Text: text})
		if err != nil {
			return err
		}
		if _, err := saveAlarm(c, a, CmdAudioChunk, EventAlarmUpdated, entry, text); err != nil {
			return err
		}
	}
	c.emit(Event{Type: EventAudioChunk, Audio: &AudioChunkRef{AlarmID: a.ID, DeviceID: r.DeviceID, Seq: r.Seq,
		Bytes: len(r.Data), Codec: r.Codec}})
	return nil
}

// AlarmAudio returns the summary of an alarm's audio. It is a *RuleError
// with CodeNotFound naming alarm_id when there is no such alarm, and
// naming audio when the alarm has no audio.
func AlarmAudio(txn *badger.Txn, alarmID string) (*AudioInfo, error) {
	if _, err := getAlarm(txn, alarmID); err != nil {
		return nil, err
	}
	var i AudioInfo
	ok, err := getJSON(txn, pAudioMeta+alarmID, &i)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ruleErr(CodeNotFound, "audio", "alarm %s has no audio", alarmID)
	}
	return &i, nil
}

// AlarmAudioChunks returns the chunks of an alarm's audio from seq from on,
// in seq order, at most limit of them (MaxAudioChunksRead when limit is 0
// or more than that). An alarm without audio has no chunks.
func AlarmAudioChunks(txn *badger.Txn, alarmID string, from uint64, limit int) ([]AudioChunk, error) {
	if _, err := getAlarm(txn, alarmID); err != nil {
		return nil, err
	}
	if limit <= 0 || limit > MaxAudioChunksRead {
		limit = MaxAudioChunksRead
	}
	out := []AudioChunk{}
	opts := badger.DefaultIteratorOptions
	opts.Prefix = []byte(pAudio + alarmID + "/")
	opts.PrefetchSize = min(limit, opts.PrefetchSize)
	it := txn.NewIterator(opts)
	defer it.Close()
	for it.Seek([]byte(audioKey(alarmID, from))); it.ValidForPrefix(opts.Prefix) && len(out) < limit; it.Next() {
		var ch AudioChunk
		err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &ch) })
		if err != nil {
			return nil, fmt.Errorf("cannot decode %s: %w", it.Item().Key(), err)
		}
		out = append(out, ch)
	}
	return out, nil
}

// AppendAudio stores one chunk of audio from a device in alarm (actor
// "device:<id>", the alarm's own device); cmdID is the device's event ID.
// A chunk whose seq is already stored, with the same bytes, gets the first
// answer and changes nothing.
func (s *Service) AppendAudio(ctx context.Context, cmdID, actor string, req AudioChunkRequest) (*AudioChunkResult, error) {
	if _, err := inspectAudio(&req); err != nil {
		return nil, err
	}
	if err := checkAudioActor(actor, req.DeviceID); err != nil {
		return nil, err
	}
	res, err := s.propose(ctx, cmdID, CmdAudioChunk, audioChunkCmd{Header: s.header(actor), AudioChunkRequest: req,
		Rules: RulesAudioChunkRef})
	if err != nil {
		return nil, err
	}
	return decodeResponse[AudioChunkResult](res.Response)
}

// AudioInfo returns the summary of an alarm's audio (see AlarmAudio).
func (s *Service) AudioInfo(alarmID string) (*AudioInfo, error) {
	var out *AudioInfo
	err := s.view(func(txn *badger.Txn) (err error) {
		out, err = AlarmAudio(txn, alarmID)
		return err
	})
	return out, err
}

// AudioChunks returns up to limit chunks of an alarm's audio from seq from
// on, in seq order (see AlarmAudioChunks).
func (s *Service) AudioChunks(alarmID string, from uint64, limit int) ([]AudioChunk, error) {
	var out []AudioChunk
	err := s.view(func(txn *badger.Txn) (err error) {
		out, err = AlarmAudioChunks(txn, alarmID, from, limit)
		return err
	})
	return out, err
}
