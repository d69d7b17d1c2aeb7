package cluster

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"time"

	"github.com/hashicorp/go-hclog"
)

// levelFilter may lower the level of one of Raft's log records: a
// failure to reach a member that said it was stopping is routine, not an
// error (quiet.go). It returns the level to log at.
type levelFilter func(level slog.Level, msg string, args []any) slog.Level

// hcLogger is the hclog.Logger that hashicorp/raft logs through: each
// record goes to slog as a record of its own, at its level, with Raft's
// key/value pairs as attributes (so that a JSON log keeps them apart),
// after the filter.
type hcLogger struct {
	l       *slog.Logger // with system=<name>
	name    string
	implied []any
	level   hclog.Level
	filter  levelFilter // nil: keep every level
}

var _ hclog.Logger = (*hcLogger)(nil)

// newHCLogger gives hashicorp/raft an hclog.Logger that writes to l, with
// system=name, at info level and above; filter, if not nil, may lower a
// record's level.
func newHCLogger(l *slog.Logger, name string, filter levelFilter) hclog.Logger {
	return &hcLogger{l: l.With("system", name), name: name, level: hclog.Info, filter: filter}
}

// slogLevel maps hclog's levels to slog's.
func slogLevel(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace, hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	}
	return slog.LevelInfo
}

// Log logs msg with args (key, value pairs) at level.
func (h *hcLogger) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Off || level < h.level {
		return
	}
	sl := slogLevel(level)
	if h.filter != nil {
		sl = h.filter(sl, msg, args)
	}
	ctx := context.Background()
	if !h.l.Enabled(ctx, sl) {
		return
	}
	all := make([]any, 0, len(h.implied)+len(args))
	all = append(all, h.implied...)
	all = append(all, args...)
	for i := 1; i < len(all); i += 2 {
		all[i] = attrValue(all[i])
	}
	h.l.Log(ctx, sl, msg, all...)
}

// attrValue keeps the values slog writes well as they are and turns the
// rest (Raft's structs, errors) into text, as hclog would print them.
func attrValue(v any) any {
	switch x := v.(type) {
	case string, bool, int, int64, int32, uint, uint64, uint32, float64, time.Duration, time.Time:
		return v
	case error:
		return x.Error()
	case fmt.Stringer:
		return x.String()
	case hclog.Format:
		return fmt.Sprintf(x[0].(string), x[1:]...)
	}
	return fmt.Sprintf("%v", v)
}

func (h *hcLogger) Trace(msg string, args ...any) { h.Log(hclog.Trace, msg, args...) }
func (h *hcLogger) Debug(msg string, args ...any) { h.Log(hclog.Debug, msg, args...) }
func (h *hcLogger) Info(msg string, args ...any)  { h.Log(hclog.Info, msg, args...) }
func (h *hcLogger) Warn(msg string, args ...any)  { h.Log(hclog.Warn, msg, args...) }
func (h *hcLogger) Error(msg string, args ...any) { h.Log(hclog.Error, msg, args...) }

func (h *hcLogger) enabled(l hclog.Level) bool {
	return l >= h.level && h.l.Enabled(context.Background(), slogLevel(l))
}

func (h *hcLogger) IsTrace() bool { return h.enabled(hclog.Trace) }
func (h *hcLogger) IsDebug() bool { return h.enabled(hclog.Debug) }
func (h *hcLogger) IsInfo() bool  { return h.enabled(hclog.Info) }
func (h *hcLogger) IsWarn() bool  { return h.enabled(hclog.Warn) }
func (h *hcLogger) IsError() bool { return h.enabled(hclog.Error) }

func (h *hcLogger) ImpliedArgs() []any { return h.implied }

func (h *hcLogger) With(args ...any) hclog.Logger {
	c := *h
	c.implied = append(append([]any(nil), h.implied...), args...)
	return &c
}

func (h *hcLogger) Name() string { return h.name }

// Named and ResetNamed keep the system attribute: Raft names no logger
// of its own that a reader needs told apart.
func (h *hcLogger) Named(string) hclog.Logger      { c := *h; return &c }
func (h *hcLogger) ResetNamed(string) hclog.Logger { c := *h; return &c }

func (h *hcLogger) SetLevel(l hclog.Level) { h.level = l }
func (h *hcLogger) GetLevel() hclog.Level  { return h.level }

// StandardLogger returns a log.Logger whose lines go to slog at info level
// (or the level the options infer from a line's prefix).
func (h *hcLogger) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(h.StandardWriter(opts), "", 0)
}

// StandardWriter returns a writer whose lines go to slog.
func (h *hcLogger) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return slogWriter{h: h}
}

// slogWriter logs each write as one info record.
type slogWriter struct{ h *hcLogger }

func (w slogWriter) Write(p []byte) (int, error) {
	msg := string(p)
	for len(msg) > 0 && (msg[len(msg)-1] == '\n' || msg[len(msg)-1] == '\r') {
		msg = msg[:len(msg)-1]
	}
	w.h.Log(hclog.Info, msg)
	return len(p), nil
}
