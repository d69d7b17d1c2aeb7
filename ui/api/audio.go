package api

// The audio routes of the HTTP API: an alarm's audio, streamed by its
// device (appliance/monitoring/audio.go), as a summary, as chunks for a
// console that follows the alarm near live, and as one playable file for
// afterwards (the link in a summary notification).
//
//	GET /api/v1/alarms/:id/audio               the summary (monitoring.AudioInfo)
//	GET /api/v1/alarms/:id/audio/chunks?from=&max=  chunks from seq from on, data in base64
//	GET /api/v1/alarms/:id/audio.wav           pcm_s16le and wav audio as one WAV file
//	GET /api/v1/alarms/:id/audio.ogg           ogg_opus audio as one Ogg file
//
// A file holds exactly the audio the summary counted when the request
// began (monitoring.AudioInfo.Index), even while more arrives.

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/vigilarc/vigil/appliance/monitoring"
)

// audioFilePage is how many chunks a file download reads at a time (at
// most 32 x 32 KiB in memory).
const audioFilePage = 32

// audioService is what the audio routes need from the monitoring Service.
type audioService interface {
	AudioInfo(alarmID string) (*monitoring.AudioInfo, error)
	AudioChunks(alarmID string, from uint64, limit int) ([]monitoring.AudioChunk, error)
}

var _ audioService = (*monitoring.Service)(nil)

// AudioChunksResponse is the reply to GET /api/v1/alarms/:id/audio/chunks.
type AudioChunksResponse struct {
	AlarmID string                  `json:"alarm_id"`
	Chunks  []monitoring.AudioChunk `json:"chunks"` // in seq order; data in base64
	// Next is the from of the next request: one past the last chunk
	// returned, or from again when there was none.
	Next uint64 `json:"next"`
}

// audioRoutes adds the audio routes to v1.
func (a *api) audioRoutes(v1 *gin.RouterGroup) {
	svc := a.svc
	h := &audioAPI{svc: svc, logger: a.logger}
	v1.GET("/alarms/:id/audio", h.info)
	v1.GET("/alarms/:id/audio/chunks", h.chunks)
	v1.GET("/alarms/:id/audio.wav", h.wav)
	v1.GET("/alarms/:id/audio.ogg", h.ogg)
}

// audioAPI serves the audio routes.
type audioAPI struct {
	svc    audioService
	logger *slog.Logger
}

// GET /api/v1/alarms/:id/audio: the summary of the alarm's audio.
func (h *audioAPI) info(c *gin.Context) {
	out, err := h.svc.AudioInfo(c.Param("id"))
	reply(c, http.StatusOK, out, err)
}

// GET /api/v1/alarms/:id/audio/chunks?from=&max=: up to max chunks (at most
// monitoring.MaxAudioChunksRead, the default) from seq from (default 0)
// on. An alarm without audio yet has none.
func (h *audioAPI) chunks(c *gin.Context) {
	from, limit := uint64(0), monitoring.MaxAudioChunksRead
	if s := c.Query("from"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			badRequest(c, "from", fmt.Sprintf("from %q is not a chunk seq: a whole number from 0", s))
			return
		}
		from = v
	}
	if s := c.Query("max"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > monitoring.MaxAudioChunksRead {
			badRequest(c, "max", fmt.Sprintf("max %q is not a number from 1 to %d", s, monitoring.MaxAudioChunksRead))
			return
		}
		limit = v
	}
	id := c.Param("id")
	chunks, err := h.svc.AudioChunks(id, from, limit)
	if err != nil {
		writeServiceError(c, err)
		return
	}
	next := from
	if len(chunks) > 0 {
		next = chunks[len(chunks)-1].Seq + 1
	}
	c.JSON(http.StatusOK, AudioChunksResponse{AlarmID: id, Chunks: nonNil(chunks), Next: next})
}

// GET /api/v1/alarms/:id/audio.wav: the audio as a WAV file. For
// pcm_s16le the header is made from the rate and channels; for wav the
// stored file is served with the sizes in its header set.
func (h *audioAPI) wav(c *gin.Context) {
	info, ok := h.audio(c, monitoring.CodecPCM, monitoring.CodecWAV)
	if !ok {
		return
	}
	var head []byte
	size := info.Bytes
	if info.Codec == monitoring.CodecPCM {
		head = pcmWAVHeader(info.SampleRate, info.Channels, uint32(info.Bytes))
		size += int64(len(head))
	}
	fix := func(seq uint64, data []byte) []byte {
		if info.Codec != monitoring.CodecWAV || seq != 0 {
			return data
		}
		// The device could not know the sizes when it sent chunk 0.
		d := append([]byte(nil), data...)
		binary.LittleEndian.PutUint32(d[4:], uint32(size-8))
		binary.LittleEndian.PutUint32(d[info.HeaderBytes-4:], uint32(size-int64(info.HeaderBytes)))
		return d
	}
	h.serveFile(c, info, "audio/wav", "wav", size, head, fix)
}

// GET /api/v1/alarms/:id/audio.ogg: ogg_opus audio, its pages as they
// came.
func (h *audioAPI) ogg(c *gin.Context) {
	info, ok := h.audio(c, monitoring.CodecOggOpus)
	if !ok {
		return
	}
	h.serveFile(c, info, "audio/ogg", "ogg", info.Bytes, nil, nil)
}

// audio returns the summary of the alarm's audio if its codec is one of
// codecs and chunk 0 (which holds the header a player needs) is stored;
// else it replies 404 naming what is missing.
func (h *audioAPI) audio(c *gin.Context, codecs ...monitoring.AudioCodec) (*monitoring.AudioInfo, bool) {
	info, err := h.svc.AudioInfo(c.Param("id"))
	if err != nil {
		writeServiceError(c, err)
		return nil, false
	}
	notFound := func(msg string) {
		writeServiceError(c, &monitoring.RuleError{Code: monitoring.CodeNotFound, Field: "audio", Msg: msg})
	}
	want := slices.Contains(codecs, info.Codec)
	switch {
	case !want && info.Codec == monitoring.CodecOggOpus:
		notFound(fmt.Sprintf("alarm %s's audio is ogg_opus: get audio.ogg", info.AlarmID))
	case !want:
		notFound(fmt.Sprintf("alarm %s's audio is %s: get audio.wav", info.AlarmID, info.Codec))
	case info.Codec != monitoring.CodecPCM && !info.HasFirst:
		notFound(fmt.Sprintf("alarm %s's %s audio has no chunk 0 yet, which holds the header a player needs", info.AlarmID, info.Codec))
	default:
		return info, true
	}
	return nil, false
}

// serveFile writes head, then the alarm's chunks up to the summary's index
// (each through fix, if set), as one file of size bytes.
func (h *audioAPI) serveFile(c *gin.Context, info *monitoring.AudioInfo, contentType, ext string, size int64,
	head []byte, fix func(seq uint64, data []byte) []byte) {
	c.Header("Content-Type", contentType)
	c.Header("Content-Length", strconv.FormatInt(size, 10))
	c.Header("Content-Disposition", fmt.Sprintf(`inline; filename="alarm-%s.%s"`, info.AlarmID, ext))
	c.Status(http.StatusOK)
	if _, err := c.Writer.Write(head); err != nil {
		return
	}
	written := int64(len(head))
	for from := uint64(0); ; {
		chunks, err := h.svc.AudioChunks(info.AlarmID, from, audioFilePage)
		if err != nil {
			h.logger.Warn(fmt.Sprintf("audio file cut short after %d of %d bytes", written, size),
				logKeyPath, c.Request.URL.Path, logKeyError, err)
			return
		}
		for _, ch := range chunks {
			if ch.Index > info.Index {
				continue // arrived after the summary was read
			}
			data := ch.Data
			if fix != nil {
				data = fix(ch.Seq, data)
			}
			n, err := c.Writer.Write(data)
			written += int64(n)
			if err != nil {
				return // the client went away
			}
		}
		if len(chunks) < audioFilePage {
			return
		}
		from = chunks[len(chunks)-1].Seq + 1
	}
}

// pcmWAVHeader returns the 44-byte header of a WAV file of dataLen bytes
// of 16-bit PCM.
func pcmWAVHeader(rate, channels int, dataLen uint32) []byte {
	b := make([]byte, 0, 44)
	b = append(b, "RIFF"...)
	b = binary.LittleEndian.AppendUint32(b, 36+dataLen)
	b = append(b, "WAVEfmt "...)
	b = binary.LittleEndian.AppendUint32(b, 16)
	b = binary.LittleEndian.AppendUint16(b, 1) // PCM
	b = binary.LittleEndian.AppendUint16(b, uint16(channels))
	b = binary.LittleEndian.AppendUint32(b, uint32(rate))
	b = binary.LittleEndian.AppendUint32(b, uint32(rate*channels*2))
	b = binary.LittleEndian.AppendUint16(b, uint16(channels*2))
	b = binary.LittleEndian.AppendUint16(b, 16)
	b = append(b, "data"...)
	return binary.LittleEndian.AppendUint32(b, dataLen)
}
