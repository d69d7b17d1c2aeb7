package api_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/ui/api"
)

// audioAlarm raises a red alert from device d1 (registered on first use)
// and streams chunks to it, seq by seq in the order given.
func audioAlarm(t *testing.T, n *apiNode, cmd string, chunks map[uint64][]byte, order []uint64,
	req monitoring.AudioChunkRequest) string {
	t.Helper()
	ctx := context.Background()
	svc := n.svc()
	if _, err := svc.Device("d1"); err != nil {
		if _, err := svc.PutOrganisation(ctx, "org", "admin", monitoring.Organisation{ID: "o1", Name: "Trust"}); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.PutWorker(ctx, "w1", "admin", monitoring.Worker{ID: "w1", Name: "Ann", OrgID: "o1"}); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.PutDevice(ctx, "d1", "admin", monitoring.Device{ID: "d1", Kind: monitoring.DeviceDedicated, OrgID: "o1", WorkerID: "w1"}); err != nil {
			t.Fatal(err)
		}
	}
	a, err := svc.RaiseAlarm(ctx, cmd, "device:d1", monitoring.RaiseAlarmRequest{Type: monitoring.AlarmRedAlert, DeviceID: "d1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, seq := range order {
		r := req
		r.AlarmID, r.DeviceID, r.Seq, r.Data = a.ID, "d1", seq, chunks[seq]
		if _, err := svc.AppendAudio(ctx, fmt.Sprintf("%s-%d", cmd, seq), "device:d1", r); err != nil {
			t.Fatalf("chunk %d: %v", seq, err)
		}
	}
	return a.ID
}

// get fetches path with the node's admin token and returns the status,
// the headers and the body.
func get(t *testing.T, n *apiNode, path string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, n.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken(t, n))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// samples returns n bytes that differ from chunk to chunk, as 16-bit PCM.
func samples(seq, n int) []byte {
	b := make([]byte, 0, n)
	for i := 0; len(b) < n; i++ {
		b = binary.LittleEndian.AppendUint16(b, uint16(seq*4099+i*17))
	}
	return b
}

// wavFile is a parsed WAV file.
type wavFile struct {
	riffSize                           uint32
	format, channels, blockAlign, bits uint16
	rate, byteRate                     uint32
	dataSize                           uint32
	data                               []byte
}

// parseWAV reads a WAV file as a player would: RIFF, then chunks until
// data. It fails the test on anything malformed.
func parseWAV(t *testing.T, b []byte) wavFile {
	t.Helper()
	var w wavFile
	if len(b) < 12 || string(b[:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		t.Fatalf("not a WAV file: % x", b[:min(len(b), 12)])
	}
	w.riffSize = binary.LittleEndian.Uint32(b[4:])
	for off := 12; off+8 <= len(b); {
		id, size := string(b[off:off+4]), binary.LittleEndian.Uint32(b[off+4:])
		body := b[off+8:]
		switch id {
		case "fmt ":
			w.format, w.channels = binary.LittleEndian.Uint16(body), binary.LittleEndian.Uint16(body[2:])
			w.rate, w.byteRate = binary.LittleEndian.Uint32(body[4:]), binary.LittleEndian.Uint32(body[8:])
			w.blockAlign, w.bits = binary.LittleEndian.Uint16(body[12:]), binary.LittleEndian.Uint16(body[14:])
		case "data":
			w.dataSize, w.data = size, body
			return w
		}
		off += 8 + int(size) + int(size&1)
	}
	t.Fatal("no data chunk")
	return w
}

// The .wav of a PCM alarm is a valid WAV file: its header describes the
// stream, its sizes match the file, and its samples are the chunks in seq
// order (they were sent out of order).
func TestAPIAudio_PCMAsWAV(t *testing.T) {
	n := mustServe(t)
	chunks := map[uint64][]byte{0: samples(0, 3200), 1: samples(1, 3200), 2: samples(2, 1600)}
	id := audioAlarm(t, n, "pcm", chunks, []uint64{0, 2, 1},
		monitoring.AudioChunkRequest{Codec: monitoring.CodecPCM, SampleRate: 16000, Channels: 1})
	want := append(append(append([]byte(nil), chunks[0]...), chunks[1]...), chunks[2]...)

	code, hdr, body := get(t, n, "/api/v1/alarms/"+id+"/audio.wav")
	if code != http.StatusOK || hdr.Get("Content-Type") != "audio/wav" || hdr.Get("Content-Length") != fmt.Sprint(44+len(want)) {
		t.Fatalf("GET audio.wav = %d %v (%d bytes)", code, hdr, len(body))
	}
	w := parseWAV(t, body)
	if w.riffSize != uint32(len(body)-8) || w.format != 1 || w.channels != 1 || w.rate != 16000 || w.byteRate != 32000 ||
		w.blockAlign != 2 || w.bits != 16 || w.dataSize != uint32(len(want)) || !bytes.Equal(w.data, want) {
		t.Fatalf("WAV header %+v (data %d bytes); want 16000 Hz mono 16-bit, %d bytes of data as sent",
			w, len(w.data), len(want))
	}

	var info monitoring.AudioInfo
	if code := call(t, n, "GET", "/api/v1/alarms/"+id+"/audio", "", &info); code != http.StatusOK ||
		info.Chunks != 3 || info.Bytes != int64(len(want)) || info.Codec != monitoring.CodecPCM {
		t.Fatalf("GET audio = %d %+v", code, info)
	}
	var page api.AudioChunksResponse
	if code := call(t, n, "GET", "/api/v1/alarms/"+id+"/audio/chunks?from=1&max=1", "", &page); code != http.StatusOK ||
		len(page.Chunks) != 1 || page.Chunks[0].Seq != 1 || !bytes.Equal(page.Chunks[0].Data, chunks[1]) || page.Next != 2 {
		t.Fatalf("GET audio/chunks?from=1&max=1 = %d %+v", code, page)
	}
	if code := call(t, n, "GET", "/api/v1/alarms/"+id+"/audio/chunks?from=3", "", &page); code != http.StatusOK ||
		len(page.Chunks) != 0 || page.Next != 3 {
		t.Fatalf("GET audio/chunks?from=3 = %d %+v", code, page)
	}
	// The chunks reply carries the data in base64, as the docs say.
	_, _, raw := get(t, n, "/api/v1/alarms/"+id+"/audio/chunks?max=1")
	var generic struct {
		Chunks []struct {
			Data string `json:"data"`
		} `json:"chunks"`
	}
	if err := json.Unmarshal(raw, &generic); err != nil || len(generic.Chunks) != 1 || len(generic.Chunks[0].Data) != 4268 {
		t.Fatalf("chunks reply %.200s", raw)
	}
	// The alarm's other routes are still there beside the audio routes.
	if code := call(t, n, "GET", "/api/v1/alarms/"+id, "", nil); code != http.StatusOK {
		t.Fatalf("GET alarm = %d", code)
	}
}

// A wav stream is served as stored, with the sizes in its header set (the
// device sent them as 0).
func TestAPIAudio_WAVStreamSizesFixed(t *testing.T) {
	n := mustServe(t)
	// The header a device sends: 16-bit PCM, 2 channels at 8 kHz, both
	// sizes 0 (it did not know them when it began).
	head := []byte("RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x02\x00")
	head = binary.LittleEndian.AppendUint32(head, 8000)  // sample rate
	head = binary.LittleEndian.AppendUint32(head, 32000) // byte rate
	head = append(head, 4, 0, 16, 0)                     // block align, bits per sample
	head = append(head, "data\x00\x00\x00\x00"...)
	chunks := map[uint64][]byte{0: append(head, samples(0, 4000)...), 1: samples(1, 4000)}
	id := audioAlarm(t, n, "wav", chunks, []uint64{0, 1}, monitoring.AudioChunkRequest{Codec: monitoring.CodecWAV})
	code, hdr, body := get(t, n, "/api/v1/alarms/"+id+"/audio.wav")
	if code != http.StatusOK || hdr.Get("Content-Length") != fmt.Sprint(44+8000) {
		t.Fatalf("GET audio.wav = %d %v", code, hdr)
	}
	w := parseWAV(t, body)
	if w.riffSize != uint32(len(body)-8) || w.channels != 2 || w.rate != 8000 || w.dataSize != 8000 ||
		!bytes.Equal(w.data, append(samples(0, 4000), samples(1, 4000)...)) {
		t.Fatalf("WAV %+v", w)
	}
}

// Ogg Opus audio is served as its pages, concatenated as they came; the
// other format is a 404 that says where to look.
func TestAPIAudio_OggAndWrongFormat(t *testing.T) {
	n := mustServe(t)
	page := func(headerType byte, granule uint64, packet []byte) []byte {
		b := append([]byte("OggS\x00"), headerType)
		b = binary.LittleEndian.AppendUint64(b, granule)
		b = append(b, make([]byte, 12)...) // serial, page seq, checksum
		return append(append(b, 1, byte(len(packet))), packet...)
	}
	opusHead := append([]byte("OpusHead\x01\x01\x38\x01\x80\x3e\x00\x00"), 0, 0, 0)
	chunks := map[uint64][]byte{0: page(2, 0, opusHead), 1: page(0, 48312, make([]byte, 120))}
	id := audioAlarm(t, n, "ogg", chunks, []uint64{1, 0}, monitoring.AudioChunkRequest{Codec: monitoring.CodecOggOpus})
	code, hdr, body := get(t, n, "/api/v1/alarms/"+id+"/audio.ogg")
	if code != http.StatusOK || hdr.Get("Content-Type") != "audio/ogg" || !bytes.Equal(body, append(chunks[0], chunks[1]...)) {
		t.Fatalf("GET audio.ogg = %d %v %q", code, hdr, body)
	}
	var e api.ErrorResponse
	if code := call(t, n, "GET", "/api/v1/alarms/"+id+"/audio.wav", "", &e); code != http.StatusNotFound ||
		e.Field != "audio" || !strings.Contains(e.Error, "audio.ogg") {
		t.Fatalf("GET audio.wav of Opus = %d %+v", code, e)
	}
	// An audio link's path ends in audio.wav, made before the codec is
	// known: it serves the Ogg file.
	made, err := n.svc().IssueAudioLink(t.Context(), "ogg-link", "olivia", id, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(n.URL + made.Path)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "audio/ogg" || !bytes.Equal(got, append(chunks[0], chunks[1]...)) {
		t.Fatalf("GET %s = %d %s, %d bytes", made.Path, resp.StatusCode, resp.Header.Get("Content-Type"), len(got))
	}
}

// Missing things are 404s naming what is missing; bad queries are 400s
// naming the parameter.
func TestAPIAudio_Errors(t *testing.T) {
	n := mustServe(t)
	id := audioAlarm(t, n, "silent", nil, nil, monitoring.AudioChunkRequest{})
	wavOnly := audioAlarm(t, n, "later", map[uint64][]byte{1: samples(1, 100)}, []uint64{1},
		monitoring.AudioChunkRequest{Codec: monitoring.CodecWAV})
	for _, tc := range []struct {
		path, field, mention string
		code                 int
	}{
		{"/api/v1/alarms/" + id + "/audio", "audio", "has no audio", 404},
		{"/api/v1/alarms/" + id + "/audio.wav", "audio", "has no audio", 404},
		{"/api/v1/alarms/nope/audio", "alarm_id", "nope", 404},
		{"/api/v1/alarms/nope/audio/chunks", "alarm_id", "nope", 404},
		{"/api/v1/alarms/nope/audio.ogg", "alarm_id", "nope", 404},
		{"/api/v1/alarms/" + wavOnly + "/audio.wav", "audio", "no chunk 0", 404},
		{"/api/v1/alarms/" + wavOnly + "/audio.ogg", "audio", "get audio.wav", 404},
		{"/api/v1/alarms/" + id + "/audio/chunks?from=-1", "from", "-1", 400},
		{"/api/v1/alarms/" + id + "/audio/chunks?max=0", "max", "1 to 256", 400},
	} {
		var e api.ErrorResponse
		if code := call(t, n, "GET", tc.path, "", &e); code != tc.code || e.Field != tc.field || !strings.Contains(e.Error, tc.mention) {
			t.Errorf("GET %s = %d %+v; want %d naming %q, mentioning %q", tc.path, code, e, tc.code, tc.field, tc.mention)
		}
	}
	var page api.AudioChunksResponse
	if code := call(t, n, "GET", "/api/v1/alarms/"+id+"/audio/chunks", "", &page); code != http.StatusOK || len(page.Chunks) != 0 {
		t.Fatalf("chunks of an alarm without audio = %d %+v", code, page)
	}
}
