package appliance

import (
	"io"
	"log/slog"
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
	return newFormatLogger(w, level, DefaultLogFormat)
}

// newFormatLogger returns a logger on w at the named level in the named
// format (log_format): "json" writes one JSON object a line, anything
// else text.
func newFormatLogger(w io.Writer, level, format string) *slog.Logger {
	l, err := parseLevel(level)
	if err != nil {
		l = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: l}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
