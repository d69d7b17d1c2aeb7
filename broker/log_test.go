package broker

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

// mochi's empty warnings about connections that ended become debug
// records with a message; other records pass unchanged.
func TestMochiHandler_EmptyWarningsBecomeDebug(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
		var buf bytes.Buffer
		log := slog.New(mochiHandler{slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: level})}).With("listener", "tcp")
		log.Warn("", "error", errors.New("EOF"))
		log.Warn("a real warning", "n", 1)
		out := buf.String()
		if strings.Contains(out, `level=WARN msg=""`) {
			t.Fatalf("an empty warning was logged: %s", out)
		}
		if !strings.Contains(out, `level=WARN msg="a real warning" listener=tcp n=1`) {
			t.Fatalf("a real warning was changed or dropped: %s", out)
		}
		debug := strings.Contains(out, `level=DEBUG msg="MQTT connection ended with an error" listener=tcp error=EOF`)
		if debug != (level == slog.LevelDebug) {
			t.Fatalf("at level %v, the connection's end logged at debug: %v: %s", level, debug, out)
		}
	}
}
