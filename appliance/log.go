package appliance

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"syscall"
)

// Log attribute keys used by this package.
const (
	logKeySystem   = "system"
	logKeyError    = "error"
	logKeyMethod   = "method"
	logKeyPath     = "path"
	logKeyStatus   = "status"
	logKeyDuration = "duration"
	logKeyRemote   = "remote"
	logKeyActor    = "actor" // who called the API: an operator, "token:<name>" or the setup token
	logKeyHTTP     = "http_addr"
	logKeyCluster  = "cluster_addr"
	logKeyNode     = "node"
)

// newLogger returns a text logger on w at the named level (info when the
// name is not a level; Validate has caught that before).
func newLogger(w io.Writer, level string) *slog.Logger {
	return newFormatLogger(w, level, DefaultLogFormat, false)
}

// newFormatLogger returns a logger on w at the named level in the named
// format (log_format): "json" writes one JSON object a line, anything
// else text. With journal set (standard error is the systemd journal's:
// JOURNAL_STREAM is set) each line begins with its syslog priority, <4>
// for a warning, which the journal takes off and files the line under, so
// that journalctl -p warning shows the warnings and errors.
func newFormatLogger(w io.Writer, level, format string, journal bool) *slog.Logger {
	l, err := parseLevel(level)
	if err != nil {
		l = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: l}
	handler := func(w io.Writer) slog.Handler {
		if format == "json" {
			return slog.NewJSONHandler(w, opts)
		}
		return slog.NewTextHandler(w, opts)
	}
	if !journal {
		return slog.New(handler(w))
	}
	var mu sync.Mutex
	var j journalHandler
	for i, p := range journalPriorities {
		j.hs[i] = handler(&prefixWriter{mu: &mu, w: w, prefix: p.prefix})
	}
	return slog.New(j)
}

// journalPriorities are the syslog priorities of slog's levels, from the
// lowest level up.
var journalPriorities = [4]struct {
	level  slog.Level
	prefix string
}{{slog.LevelDebug, "<7>"}, {slog.LevelInfo, "<6>"}, {slog.LevelWarn, "<4>"}, {slog.LevelError, "<3>"}}

// journalHandler writes each record through the handler of its priority.
type journalHandler struct{ hs [4]slog.Handler }

func (j journalHandler) pick(l slog.Level) slog.Handler {
	h := j.hs[0]
	for i, p := range journalPriorities {
		if l >= p.level {
			h = j.hs[i]
		}
	}
	return h
}

func (j journalHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return j.hs[0].Enabled(ctx, l)
}

func (j journalHandler) Handle(ctx context.Context, r slog.Record) error {
	return j.pick(r.Level).Handle(ctx, r)
}

func (j journalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	var out journalHandler
	for i, h := range j.hs {
		out.hs[i] = h.WithAttrs(as)
	}
	return out
}

func (j journalHandler) WithGroup(g string) slog.Handler {
	var out journalHandler
	for i, h := range j.hs {
		out.hs[i] = h.WithGroup(g)
	}
	return out
}

// prefixWriter writes prefix before each write (slog writes a record in
// one write), under mu so that lines of several priorities do not mix.
type prefixWriter struct {
	mu     *sync.Mutex
	w      io.Writer
	prefix string
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := io.WriteString(p.w, p.prefix); err != nil {
		return 0, err
	}
	return p.w.Write(b)
}

// journalStream reports whether w is the systemd journal's stream: the
// service manager sets JOURNAL_STREAM to the device and inode numbers of
// the stream it connected standard error to, and a child process started
// from a service may inherit the variable with another standard error.
func journalStream(lookupEnv func(string) (string, bool), w io.Writer) bool {
	v, ok := lookupEnv("JOURNAL_STREAM")
	f, isFile := w.(*os.File)
	if !ok || !isFile {
		return false
	}
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && v == fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}
