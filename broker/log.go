package broker

import (
	"context"
	"log/slog"
)

// mochiHandler is the handler mochi logs through. Its listeners log every
// connection that ends in an error as a warning with no message
// (listeners/tcp.go: Warn("", "error", err)): for a device that drops its
// connection or is refused, which is routine and which the access hook
// logs already, that was an empty WARN line beside the real one. Such
// records are logged at debug level, with a message that says what they
// are. Its info records (hooks added and stopped, listeners attached,
// the server started and stopped) are debug records: the broker logs one
// line when it opens and one when it stops. Everything else passes as it
// is.
type mochiHandler struct{ h slog.Handler }

func (m mochiHandler) Enabled(ctx context.Context, l slog.Level) bool { return m.h.Enabled(ctx, l) }

func (m mochiHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "" && r.Level >= slog.LevelWarn {
		if !m.h.Enabled(ctx, slog.LevelDebug) {
			return nil
		}
		d := slog.NewRecord(r.Time, slog.LevelDebug, "MQTT connection ended with an error", r.PC)
		r.Attrs(func(a slog.Attr) bool { d.AddAttrs(a); return true })
		return m.h.Handle(ctx, d)
	}
	if r.Level == slog.LevelInfo {
		// Hooks added and stopped, listeners attached, the server started
		// and stopped: the broker says once that it opened and stopped.
		if !m.h.Enabled(ctx, slog.LevelDebug) {
			return nil
		}
		d := slog.NewRecord(r.Time, slog.LevelDebug, r.Message, r.PC)
		r.Attrs(func(a slog.Attr) bool { d.AddAttrs(a); return true })
		return m.h.Handle(ctx, d)
	}
	return m.h.Handle(ctx, r)
}

func (m mochiHandler) WithAttrs(as []slog.Attr) slog.Handler { return mochiHandler{m.h.WithAttrs(as)} }
func (m mochiHandler) WithGroup(g string) slog.Handler       { return mochiHandler{m.h.WithGroup(g)} }
