package cluster

import (
	"bytes"
	"context"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// newHCLogger gives hashicorp/raft an hclog.Logger that writes to slog.
func newHCLogger(l *slog.Logger, name string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:            name,
		Level:           hclog.Info,
		Output:          slogWriter{l: l.With("system", name)},
		DisableTime:     true,
		IncludeLocation: false,
	})
}

// slogWriter turns hclog's text lines into slog records, keeping the level.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	line := bytes.TrimSpace(p)
	level := slog.LevelInfo
	switch {
	case bytes.HasPrefix(line, []byte("[ERROR]")):
		level = slog.LevelError
	case bytes.HasPrefix(line, []byte("[WARN]")):
		level = slog.LevelWarn
	case bytes.HasPrefix(line, []byte("[DEBUG]")), bytes.HasPrefix(line, []byte("[TRACE]")):
		level = slog.LevelDebug
	}
	if i := bytes.IndexByte(line, ']'); i >= 0 && i < 8 {
		line = bytes.TrimSpace(line[i+1:])
	}
	w.l.Log(context.Background(), level, string(line))
	return len(p), nil
}
