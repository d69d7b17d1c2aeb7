package console_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigilarc/vigil/cluster/clustertest"
	"github.com/vigilarc/vigil/ui/uitest"
)

// ticketOf asks the node for a hand-over ticket as a page does.
func ticketOf(t *testing.T, s *uitest.Session) (ticket string, peers []string) {
	t.Helper()
	resp, body := s.Do(http.MethodPost, "/ui/resume/ticket", url.Values{}, map[string]string{"X-CSRF-Token": s.CSRF, "Accept": "application/json"})
	var r struct {
		Ticket string
		Peers  []struct{ Node, URL string }
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &r) != nil || r.Ticket == "" {
		t.Fatalf("ticket: %d %s", resp.StatusCode, body)
	}
	for _, p := range r.Peers {
		peers = append(peers, p.URL)
	}
	return r.Ticket, peers
}

var dataNextRE = regexp.MustCompile(`data-next="([^"]*)"`)

// TestHandover_TicketMovesTheSessionOnce: a page on node 1 takes its
// ticket to node 2, which signs the operator in; the ticket works once,
// only from a console of the cluster, and signing out on node 2 signs out
// node 1's page too.
func TestHandover_TicketMovesTheSessionOnce(t *testing.T) {
	_, consoles := mustConsoles(t, 3)
	uitest.MustSeed(t, consoles[0].Node.Service)
	a := uitest.NewSession(t, consoles[0].URL)
	if code := a.SignIn("olivia", uitest.OliviaPassword); code != http.StatusOK {
		t.Fatalf("sign in: %d", code)
	}
	var ticket string
	var peers []string
	clustertest.PollUntil(t, 30*time.Second, "the other consoles registered", func() bool {
		ticket, peers = ticketOf(t, a)
		return len(peers) == 2
	})
	for _, p := range peers {
		if p == consoles[0].URL {
			t.Fatalf("a page's peers include its own node: %v", peers)
		}
	}
	if strings.Contains(ticket, a.Cookies["__Host-vigil_session"]) {
		t.Fatal("the ticket is the session token")
	}

	// Node 2 answers GET /ui/alive to node 1's pages (CORS), not to others;
	// its CSP lets pages post to node 1.
	b := uitest.NewSession(t, consoles[1].URL)
	resp, body := b.Do(http.MethodGet, "/ui/alive", nil, map[string]string{"Origin": consoles[0].URL})
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != consoles[0].URL || !strings.Contains(body, `"ok":true`) {
		t.Fatalf("alive for a peer: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	if resp, _ := b.Do(http.MethodGet, "/ui/alive", nil, map[string]string{"Origin": "https://evil.example"}); resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("alive allows evil.example")
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self' ") || !strings.Contains(csp, consoles[0].URL) {
		t.Fatalf("CSP %q does not let pages move", csp)
	}

	// The hand-over: a top-level post from node 1's page.
	next := "/ui/sessions?q=eccles"
	drafts := `{"vigil.draft:/ui/sessions#x":"half a note","vigil.handover":"not a draft"}`
	form := url.Values{"ticket": {ticket}, "next": {next}, "drafts": {drafts}, "from": {"node-1"}, "lost_at": {"1700000000000"}}
	resp, body = b.Do(http.MethodPost, "/ui/resume", form, map[string]string{"Origin": consoles[0].URL})
	if resp.StatusCode != http.StatusOK || b.Cookies["__Host-vigil_session"] == "" {
		t.Fatalf("resume: %d %s", resp.StatusCode, body)
	}
	if m := dataNextRE.FindStringSubmatch(body); m == nil || m[1] != "/ui/sessions?q=eccles" {
		t.Fatalf("resume page next: %v\n%s", m, body)
	}
	if strings.Contains(body, "not a draft") || !strings.Contains(body, "half a note") {
		t.Fatalf("resume page drafts:\n%s", body)
	}
	if resp, _ := b.Do(http.MethodGet, "/ui/queue.json", nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("signed in on node 2: %d", resp.StatusCode)
	}
	// Once only, and never from elsewhere.
	c := uitest.NewSession(t, consoles[2].URL)
	if resp, body := c.Do(http.MethodPost, "/ui/resume", form, map[string]string{"Origin": consoles[0].URL}); resp.StatusCode != http.StatusUnauthorized ||
		len(c.Cookies) != 0 || !strings.Contains(body, "expired or was used") {
		t.Fatalf("a spent ticket: %d %v %s", resp.StatusCode, c.Cookies, body)
	}
	ticket2, _ := ticketOf(t, a)
	form.Set("ticket", ticket2)
	if resp, _ := c.Do(http.MethodPost, "/ui/resume", form, map[string]string{"Origin": "https://evil.example"}); resp.StatusCode != http.StatusForbidden || len(c.Cookies) != 0 {
		t.Fatalf("a hand-over posted from evil.example: %d", resp.StatusCode)
	}
	form.Set("next", "https://evil.example/")
	if _, body := c.Do(http.MethodPost, "/ui/resume", form, map[string]string{"Origin": consoles[0].URL}); !strings.Contains(body, `data-next="/ui/"`) {
		t.Fatalf("a hand-over to a foreign next:\n%s", body)
	}
	// Signing out on node 2 ends the page's session on node 1 too.
	_, page := b.Do(http.MethodGet, "/ui/", nil, nil)
	b.CSRF = uitest.PageCSRF(page)
	if resp, _ := b.Do(http.MethodPost, "/ui/logout", url.Values{"csrf": {b.CSRF}}, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign out: %d", resp.StatusCode)
	}
	clustertest.PollUntil(t, 10*time.Second, "node 1's session to end", func() bool {
		resp, _ := a.Do(http.MethodGet, "/ui/queue.json", nil, nil)
		return resp.StatusCode == http.StatusUnauthorized
	})
}
