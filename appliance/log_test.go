package appliance

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
)

// On the journal's stream every line begins with its syslog priority, in
// both formats, attributes kept; elsewhere no line does.
func TestLogger_JournalPriorities(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		for _, journal := range []bool{true, false} {
			var b bytes.Buffer
			l := newFormatLogger(&b, "debug", format, journal).With(logKeyNode, "n1")
			l.Debug("d")
			l.Info("i")
			l.Warn("w", "k", "v")
			l.Error("e")
			lines := strings.Split(strings.TrimSpace(b.String()), "\n")
			if len(lines) != 4 {
				t.Fatalf("%s: %d lines:\n%s", format, len(lines), b.String())
			}
			for i, p := range []string{"<7>", "<6>", "<4>", "<3>"} {
				if strings.HasPrefix(lines[i], p) != journal || strings.HasPrefix(lines[i], "<") != journal {
					t.Errorf("%s, journal %v: line %q", format, journal, lines[i])
				}
				if !strings.Contains(lines[i], "n1") {
					t.Errorf("%s: line %q lost the node attribute", format, lines[i])
				}
			}
			if format == "json" && !strings.HasPrefix(strings.TrimPrefix(lines[2], "<4>"), `{"time":`) {
				t.Errorf("json line %q", lines[2])
			}
		}
	}
}

// The journal's stream is told by JOURNAL_STREAM naming standard error's
// device and inode, not by the variable alone.
func TestLogger_JournalStream(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	fi, err := w.Stat()
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	env := func(v string) func(string) (string, bool) {
		return func(k string) (string, bool) { return v, k == "JOURNAL_STREAM" && v != "" }
	}
	if !journalStream(env(fmt.Sprintf("%d:%d", st.Dev, st.Ino)), w) {
		t.Error("the journal's own stream not recognised")
	}
	if journalStream(env(fmt.Sprintf("%d:%d", st.Dev, st.Ino+1)), w) || journalStream(env(""), w) {
		t.Error("another stream taken for the journal's")
	}
	if journalStream(env(fmt.Sprintf("%d:%d", st.Dev, st.Ino)), &bytes.Buffer{}) {
		t.Error("a buffer taken for the journal's stream")
	}
}
