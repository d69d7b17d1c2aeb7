// Package notifytest tests the delivery of notifications (appliance/notify)
// against a real SMTP server, mailpit (github.com/axllent/mailpit, built
// from its module at the version in this module's go.mod), and a real HTTP
// receiver, on real in-process cluster nodes. Mailpit runs the server for
// other tests too (the system tests). It lives in the tools module so that
// the product's go.mod does not carry mailpit.
package notifytest

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/vigilarc/vigil/cluster/clustertest"
)

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// mailpitBinary builds mailpit once per test run, from the module this
// module requires.
func mailpitBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mailpit")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "mailpit")
		out, err := exec.Command("go", "build", "-o", binary, "github.com/axllent/mailpit").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build mailpit: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

// freePort returns a TCP port free on 127.0.0.1 a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Mailpit is a mailpit process: SMTP with STARTTLS required (a certificate
// it makes itself) and any user name and password accepted, and its HTTP
// API, on ports chosen once, so that a stop and a start keep them.
type Mailpit struct {
	t        testing.TB
	SMTPPort int
	httpPort int
	db       string
	cmd      *exec.Cmd
}

// NewMailpit returns a Mailpit, not started.
func NewMailpit(t testing.TB) *Mailpit {
	t.Helper()
	return &Mailpit{t: t, SMTPPort: freePort(t), httpPort: freePort(t), db: filepath.Join(t.TempDir(), "mailpit.db")}
}

// Start starts mailpit on its ports and waits until its API answers. It
// is killed when the test ends.
func (m *Mailpit) Start() {
	m.t.Helper()
	m.cmd = exec.Command(mailpitBinary(m.t),
		"--smtp", fmt.Sprintf("127.0.0.1:%d", m.SMTPPort), "--listen", fmt.Sprintf("127.0.0.1:%d", m.httpPort),
		"--database", m.db, "--smtp-tls-cert", "sans:localhost", "--smtp-tls-key", "sans:localhost",
		"--smtp-require-starttls", "--smtp-auth-accept-any", "--disable-version-check", "--quiet")
	m.cmd.Stdout, m.cmd.Stderr = os.Stderr, os.Stderr
	if err := m.cmd.Start(); err != nil {
		m.t.Fatal(err)
	}
	m.t.Cleanup(m.Stop)
	clustertest.PollUntil(m.t, 20*time.Second, "mailpit answers", func() bool {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", m.SMTPPort), time.Second)
		if err != nil {
			return false
		}
		c.Close()
		resp, err := http.Get(m.api("/api/v1/info"))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// Stop kills mailpit, if it runs.
func (m *Mailpit) Stop() {
	if m.cmd != nil && m.cmd.Process != nil {
		_ = m.cmd.Process.Kill()
		_ = m.cmd.Wait()
	}
	m.cmd = nil
}

func (m *Mailpit) api(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", m.httpPort, path)
}

func (m *Mailpit) get(path string, v any) error {
	resp, err := http.Get(m.api(path))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// Received is a message as mailpit shows it.
type Received struct {
	ID          string
	MessageID   string
	Subject     string
	To          []struct{ Address string }
	Text        string
	HTML        string
	Attachments []struct {
		FileName    string
		ContentType string
		Size        int
	}
	Headers map[string][]string
}

// Messages returns every message mailpit holds, with its bodies and
// headers.
func (m *Mailpit) Messages() []Received {
	m.t.Helper()
	var list struct {
		Messages []struct{ ID string }
	}
	if err := m.get("/api/v1/messages?limit=500", &list); err != nil {
		m.t.Fatal(err)
	}
	var out []Received
	for _, s := range list.Messages {
		var r Received
		if err := m.get("/api/v1/message/"+s.ID, &r); err != nil {
			m.t.Fatal(err)
		}
		if err := m.get("/api/v1/message/"+s.ID+"/headers", &r.Headers); err != nil {
			m.t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}
