package monitoring

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// testTicketHash returns a valid ticket hash made from n.
func testTicketHash(n int) string { return hashSessionToken(fmt.Sprint("ticket-", n)) }

func (e *dirEnv) issue(session string, ticket int, ttl time.Duration) resumeTicket {
	e.t.Helper()
	var t resumeTicket
	resp := e.must(CmdIssueResumeTicket, issueResumeTicketCmd{Header: e.hdr(), SessionHash: session,
		TicketHash: testTicketHash(ticket), ExpiresAt: e.now.Add(ttl)})
	if err := json.Unmarshal(resp, &t); err != nil {
		e.t.Fatal(err)
	}
	return t
}

func (e *dirEnv) ticket(n int) *resumeTicket {
	e.t.Helper()
	var t resumeTicket
	var ok bool
	if err := e.db.View(func(txn *badger.Txn) (err error) {
		ok, err = getJSON(txn, pResumeTicket+testTicketHash(n), &t)
		return err
	}); err != nil {
		e.t.Fatal(err)
	}
	if !ok {
		return nil
	}
	return &t
}

func (e *dirEnv) countKeys(prefix string) int {
	e.t.Helper()
	n := 0
	if err := e.db.View(func(txn *badger.Txn) error {
		return scanPrefix(txn, prefix, false, func(_, _ []byte) (bool, error) { n++; return true, nil })
	}); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func TestResumeTicket_IssueRedeemOnce(t *testing.T) {
	e := mustOperatorEnv(t)
	e.login("olivia", true, 1, testSessionHash(1))
	tk := e.issue(testSessionHash(1), 1, time.Minute)
	if tk.OperatorID != "olivia" || tk.SessionHash != testSessionHash(1) || !tk.ExpiresAt.Equal(e.now.Add(time.Minute)) || tk.Node != "n1" {
		t.Fatalf("ticket %+v", tk)
	}
	e.now = e.now.Add(10 * time.Second)
	redeem := redeemResumeTicketCmd{Header: Header{At: e.now, Actor: "console", Node: "n2"}, TicketHash: testTicketHash(1), NewSessionHash: testSessionHash(2), Remote: "192.0.2.9"}
	var s OperatorSession
	if err := json.Unmarshal(e.must(CmdRedeemResumeTicket, redeem), &s); err != nil {
		t.Fatal(err)
	}
	orig := e.opSession(testSessionHash(1))
	if s.OperatorID != "olivia" || !s.ExpiresAt.Equal(orig.ExpiresAt) || s.Node != "n2" || !s.Valid(e.now) {
		t.Fatalf("new session %+v, original %+v", s, orig)
	}
	if e.ticket(1) != nil || e.countKeys(pResumeOf) != 0 || e.countKeys(pResumeExp) != 0 {
		t.Fatal("the ticket or its index was kept after redemption")
	}
	// A second redemption finds nothing.
	again := redeem
	again.NewSessionHash = testSessionHash(3)
	e.refused(CmdRedeemResumeTicket, again, CodeNoSession, "ticket")

	// Expired, unknown, and of an ended session: refused.
	e.issue(testSessionHash(1), 2, time.Minute)
	e.now = e.now.Add(time.Minute)
	late := redeemResumeTicketCmd{Header: e.hdr(), TicketHash: testTicketHash(2), NewSessionHash: testSessionHash(4)}
	e.refused(CmdRedeemResumeTicket, late, CodeNoSession, "ticket")
	e.issue(testSessionHash(1), 3, time.Minute)
	e.must(CmdOperatorLogout, operatorLogoutCmd{Header: e.hdr(), SessionHash: testSessionHash(1)})
	late.TicketHash = testTicketHash(3)
	e.refused(CmdRedeemResumeTicket, late, CodeNoSession, "ticket")
	// No ticket for an ended session, nor for one that never was.
	e.refused(CmdIssueResumeTicket, issueResumeTicketCmd{Header: e.hdr(), SessionHash: testSessionHash(1),
		TicketHash: testTicketHash(4), ExpiresAt: e.now.Add(time.Minute)}, CodeNoSession, "session_hash")
	e.refused(CmdIssueResumeTicket, issueResumeTicketCmd{Header: e.hdr(), SessionHash: testSessionHash(99),
		TicketHash: testTicketHash(4), ExpiresAt: e.now.Add(time.Minute)}, CodeNoSession, "session_hash")
}

func TestResumeTicket_Refusals(t *testing.T) {
	e := mustOperatorEnv(t)
	e.login("olivia", true, 1, testSessionHash(1))
	e.issue(testSessionHash(1), 1, time.Minute)
	base := issueResumeTicketCmd{Header: e.hdr(), SessionHash: testSessionHash(1), TicketHash: testTicketHash(2), ExpiresAt: e.now.Add(time.Minute)}
	for _, tc := range []struct {
		name  string
		mod   func(*issueResumeTicketCmd)
		code  Code
		field string
	}{
		{"bad session hash", func(c *issueResumeTicketCmd) { c.SessionHash = "x" }, CodeInvalid, "session_hash"},
		{"bad ticket hash", func(c *issueResumeTicketCmd) { c.TicketHash = strings.ToUpper(c.TicketHash) }, CodeInvalid, "ticket_hash"},
		{"expired", func(c *issueResumeTicketCmd) { c.ExpiresAt = e.now }, CodeInvalid, "expires_at"},
		{"too long", func(c *issueResumeTicketCmd) { c.ExpiresAt = e.now.Add(ResumeTicketTTL + time.Second) }, CodeInvalid, "expires_at"},
		{"reused ticket", func(c *issueResumeTicketCmd) { c.TicketHash = testTicketHash(1) }, CodeConflict, "ticket_hash"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.mod(&c)
			e.refused(CmdIssueResumeTicket, c, tc.code, tc.field)
		})
	}
	// A disabled operator's session gets no ticket and redeems none.
	e.must(CmdPutOperator, putOperatorCmd{Header: e.hdr(), Operator: Operator{ID: "olivia", Name: "Olivia", Role: RoleOperator, Disabled: true}})
	e.refused(CmdIssueResumeTicket, base, CodeNoSession, "session_hash")
	e.refused(CmdRedeemResumeTicket, redeemResumeTicketCmd{Header: e.hdr(), TicketHash: testTicketHash(1), NewSessionHash: testSessionHash(5)},
		CodeNoSession, "ticket")
}

func TestResumeTicket_BoundedPerSessionAndSwept(t *testing.T) {
	e := mustOperatorEnv(t)
	e.login("olivia", true, 1, testSessionHash(1))
	for i := range MaxResumeTickets + 3 {
		e.now = e.now.Add(time.Second)
		e.issue(testSessionHash(1), i, time.Minute)
	}
	if n := e.countKeys(pResumeTicket); n != MaxResumeTickets {
		t.Fatalf("%d tickets kept, want %d", n, MaxResumeTickets)
	}
	if e.ticket(0) != nil || e.ticket(2) != nil || e.ticket(3) == nil || e.ticket(MaxResumeTickets+2) == nil {
		t.Fatal("the oldest tickets were not the ones dropped")
	}
	// Once expired, the next issue, by any session, sweeps them away.
	e.login("ada", true, 1, testSessionHash(2))
	e.now = e.now.Add(2 * time.Minute)
	e.issue(testSessionHash(2), 100, time.Minute)
	if n, m, x := e.countKeys(pResumeTicket), e.countKeys(pResumeOf), e.countKeys(pResumeExp); n != 1 || m != 1 || x != 1 {
		t.Fatalf("after the sweep: %d tickets, %d and %d index entries; want 1 each", n, m, x)
	}
}

func TestSessionFamily_SignOutEndsEveryHandOver(t *testing.T) {
	e := mustOperatorEnv(t)
	e.login("olivia", true, 1, testSessionHash(1))
	e.login("olivia", true, 1, testSessionHash(9)) // another browser: not of the family
	// 1 -> 2 -> 3: two hand-overs.
	e.issue(testSessionHash(1), 1, time.Minute)
	e.must(CmdRedeemResumeTicket, redeemResumeTicketCmd{Header: e.hdr(), TicketHash: testTicketHash(1), NewSessionHash: testSessionHash(2)})
	e.issue(testSessionHash(2), 2, time.Minute)
	e.must(CmdRedeemResumeTicket, redeemResumeTicketCmd{Header: e.hdr(), TicketHash: testTicketHash(2), NewSessionHash: testSessionHash(3)})
	e.now = e.now.Add(time.Minute)
	var r endFamilyResult
	if err := json.Unmarshal(e.must(CmdEndSessionFamily, endSessionFamilyCmd{Header: e.hdr(), SessionHash: testSessionHash(2)}), &r); err != nil {
		t.Fatal(err)
	}
	if r.Ended != 3 {
		t.Fatalf("ended %d, want 3", r.Ended)
	}
	for i := 1; i <= 3; i++ {
		if s := e.opSession(testSessionHash(i)); s.Valid(e.now) {
			t.Fatalf("session %d survived the sign-out", i)
		}
	}
	if !e.opSession(testSessionHash(9)).Valid(e.now) {
		t.Fatal("another browser's session was ended")
	}
	// Again: nothing more to end, nothing written.
	before := e.dump()
	e.must(CmdEndSessionFamily, endSessionFamilyCmd{Header: e.hdr(), SessionHash: testSessionHash(3)})
	if e.dump() != before {
		t.Fatal("a second sign-out changed the state")
	}
	e.refused(CmdEndSessionFamily, endSessionFamilyCmd{Header: e.hdr(), SessionHash: testSessionHash(77)}, CodeNotFound, "session_hash")
}

func TestConsoleNode_RegisterAndValidate(t *testing.T) {
	e := mustOperatorEnv(t)
	n := ConsoleNode{NodeID: "node-1", Name: "vigil-1", URL: "https://vigil-1.example.org/",
		MQTT: []string{"tcp://10.0.0.5:1883", "wss://vigil-1.example.org:8884", "mqtts://10.0.0.5:8883"}}
	var got ConsoleNode
	if err := json.Unmarshal(e.must(CmdPutConsoleNode, putConsoleNodeCmd{Header: e.hdr(), Node: n}), &got); err != nil {
		t.Fatal(err)
	}
	if got.URL != "https://vigil-1.example.org" || got.Name != "vigil-1" || len(got.MQTT) != 3 || !got.UpdatedAt.Equal(e.now) {
		t.Fatalf("stored %+v", got)
	}
	for _, tc := range []struct {
		name  string
		mod   func(*ConsoleNode)
		field string
	}{
		{"no ID", func(n *ConsoleNode) { n.NodeID = "" }, "node.node_id"},
		{"a path", func(n *ConsoleNode) { n.URL = "https://x.example/ui" }, "node.url"},
		{"javascript", func(n *ConsoleNode) { n.URL = "javascript:alert(1)" }, "node.url"},
		{"user info", func(n *ConsoleNode) { n.URL = "https://a@x.example" }, "node.url"},
		{"no port", func(n *ConsoleNode) { n.MQTT = []string{"tcp://10.0.0.5"} }, "node.mqtt[0]"},
		{"http broker", func(n *ConsoleNode) { n.MQTT = []string{"http://10.0.0.5:80"} }, "node.mqtt[0]"},
		{"a long name", func(n *ConsoleNode) { n.Name = strings.Repeat("v", 64) }, "node.name"},
		{"a name with a newline", func(n *ConsoleNode) { n.Name = "vigil-1\nforged log line" }, "node.name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := n
			tc.mod(&c)
			e.refused(CmdPutConsoleNode, putConsoleNodeCmd{Header: e.hdr(), Node: c}, CodeInvalid, tc.field)
		})
	}
}

// resumeEvery is how often a step of the replicas property also
// generates a hand-over command.
const resumeEvery = 5

// stepResume generates a hand-over or console node command for the
// replicas property (determinism_test.go): tickets issued for live, ended
// and unknown sessions, redeemed once, twice, late or never, sign-outs of
// whole families, and console nodes registered, some refused. It draws
// from its own random source.
func (g *gen) stepResume() {
	if g.rr == nil {
		g.rr = rand.New(rand.NewPCG(uint64(len(g.cmds)), 0x5eed))
	}
	r := g.rr
	pick := func(xs []string) string { return xs[r.IntN(len(xs))] }
	var valid, ended, tickets []string // in replica A's state
	var ops []*Operator                // who may sign in
	if err := g.a.db.View(func(txn *badger.Txn) error {
		if err := scanPrefix(txn, pOperator, true, func(key, val []byte) (bool, error) {
			var o Operator
			if err := json.Unmarshal(val, &o); err != nil {
				return false, err
			}
			if !o.Disabled && !g.now.Before(o.LockedUntil) {
				ops = append(ops, &o)
			}
			return true, nil
		}); err != nil {
			return err
		}
		if err := scanPrefix(txn, pOperatorSession, true, func(key, val []byte) (bool, error) {
			var s OperatorSession
			if err := json.Unmarshal(val, &s); err != nil {
				return false, err
			}
			if s.Valid(g.now) {
				valid = append(valid, s.Hash)
			} else {
				ended = append(ended, s.Hash)
			}
			return true, nil
		}); err != nil {
			return err
		}
		return scanPrefix(txn, pResumeTicket, false, func(key, _ []byte) (bool, error) {
			tickets = append(tickets, lastSegment(key))
			return true, nil
		})
	}); err != nil {
		g.t.Fatal(err)
	}
	id := func(what string) string {
		g.resumeID++
		return hashSessionToken(fmt.Sprintf("%s-%d", what, g.resumeID))
	}
	if len(ops) > 0 && (len(valid) == 0 || r.IntN(8) == 0) {
		// A sign-in, so that there are sessions to hand over.
		o := ops[r.IntN(len(ops))]
		g.add(CmdOperatorLogin, operatorLoginCmd{Header: Header{At: g.now, Actor: o.ID, Node: "n1"}, OperatorID: o.ID,
			PasswordOK: true, PasswordVersion: o.PasswordVersion, SessionHash: id("login"), ExpiresAt: g.now.Add(time.Hour)})
		return
	}
	session := id("nosession")
	switch n := r.IntN(10); {
	case len(valid) > 0 && n < 8:
		session = pick(valid)
	case len(ended) > 0 && n < 9:
		session = pick(ended)
	}
	hdr := Header{At: g.now, Actor: "console", Node: fmt.Sprintf("n%d", 1+r.IntN(3))}
	switch n := r.IntN(10); {
	case n < 4:
		ticket := id("ticket")
		g.add(CmdIssueResumeTicket, issueResumeTicketCmd{Header: hdr, SessionHash: session,
			TicketHash: ticket, ExpiresAt: g.now.Add(time.Duration(r.IntN(130)) * time.Second)})
		for range r.IntN(3) { // the page moves to another node at once, perhaps twice
			hdr.Node = fmt.Sprintf("n%d", 1+r.IntN(3))
			g.add(CmdRedeemResumeTicket, redeemResumeTicketCmd{Header: hdr, TicketHash: ticket,
				NewSessionHash: id("resumed"), Remote: "192.0.2.3"})
		}
	case n < 7:
		ticket := id("noticket")
		if len(tickets) > 0 && r.IntN(5) != 0 {
			ticket = pick(tickets)
		}
		g.add(CmdRedeemResumeTicket, redeemResumeTicketCmd{Header: hdr, TicketHash: ticket,
			NewSessionHash: id("resumed"), Remote: "192.0.2.2"})
	case n < 9:
		g.add(CmdEndSessionFamily, endSessionFamilyCmd{Header: hdr, SessionHash: session})
	default:
		url := []string{"http://127.0.0.2:8080", "https://vigil.example.org", "ftp://nope", "https://x.example/path"}[r.IntN(4)]
		g.add(CmdPutConsoleNode, putConsoleNodeCmd{Header: hdr, Node: ConsoleNode{
			NodeID: fmt.Sprintf("n%d", 1+r.IntN(3)), URL: url, MQTT: []string{"tcp://10.0.0.1:1883"}}})
	}
}
