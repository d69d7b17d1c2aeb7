package monitoring

// Hand-over of a console sign-in from one node to another.
//
// A browser's cookies belong to one origin, so a console page that moves
// to another node (because its node died) arrives there signed out. The
// page therefore holds a resume ticket: a random token, issued on request
// to a signed-in page, valid for at most ResumeTicketTTL and once. Only its
// SHA-256 is replicated, so a copy of the state redeems nothing. Redeeming
// it on another node (CmdRedeemResumeTicket) makes a new console session
// for the same operator, ending when the original does; the ticket is
// deleted by the same command, so a second redemption finds nothing.
//
// Sessions made by hand-overs form a family with the session the first
// ticket came from: signing out of any of them ends them all
// (CmdEndSessionFamily), so that no tab left on another node stays signed
// in.
//
// Keys (a prefix, once used, keeps its meaning forever):
//
//	resume/<ticket hash>                                  resumeTicket
//	ix/resume-of/<session hash>/<expires>/<ticket hash>   a session's tickets, oldest first
//	ix/resume-exp/<expires>/<ticket hash>                 every ticket by expiry, for clean-up
//	sessfamily/<session hash>                             sessionFamily: the root of a handed-over session
//	ix/session-family/<root hash>/<session hash>          the sessions handed over from a root

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/dgraph-io/badger/v4"
)

// Key prefixes of resume tickets and session families.
const (
	pResumeTicket  = "resume/"
	pResumeOf      = "ix/resume-of/"
	pResumeExp     = "ix/resume-exp/"
	pSessionFamily = "sessfamily/"
	pFamilyIx      = "ix/session-family/"
)

// Rules of resume tickets. They are part of the state machine's behaviour:
// changing them changes what replaying the log gives, so they change only
// with a new command type.
const (
	// ResumeTicketTTL is the longest a ticket is valid.
	ResumeTicketTTL = 2 * time.Minute
	// MaxResumeTickets is how many unexpired tickets one session may hold
	// (one per open tab, roughly); issuing more drops the oldest.
	MaxResumeTickets = 8
	// resumeSweep bounds the expired tickets one command deletes.
	resumeSweep = 64
)

// resumeTicket is a hand-over ticket as the state keeps it: never the
// token itself.
type resumeTicket struct {
	Hash        string    `json:"hash"`         // hex SHA-256 of the token
	SessionHash string    `json:"session_hash"` // the session it hands over
	OperatorID  string    `json:"operator_id"`
	Node        string    `json:"node"` // the node it was issued through
	CreatedAt   time.Time `json:"created_at"`
	ExpiresAt   time.Time `json:"expires_at"`
}

// sessionFamily names the session a handed-over session descends from.
type sessionFamily struct {
	Root string `json:"root"` // the hash of the session signed in with a password
	From string `json:"from"` // the hash of the session the ticket came from
}

// issueResumeTicketCmd records a new ticket for a live session.
type issueResumeTicketCmd struct {
	Header
	SessionHash string    `json:"session_hash"`
	TicketHash  string    `json:"ticket_hash"`
	ExpiresAt   time.Time `json:"expires_at"`
}

// redeemResumeTicketCmd spends a ticket and makes a new session for its
// operator, ending when the ticket's session does.
type redeemResumeTicketCmd struct {
	Header
	TicketHash     string `json:"ticket_hash"`
	NewSessionHash string `json:"new_session_hash"`
	Remote         string `json:"remote,omitempty"` // the browser's IP address
}

// endSessionFamilyCmd ends a session and every session of its family.
type endSessionFamilyCmd struct {
	Header
	SessionHash string `json:"session_hash"`
}

// endFamilyResult is the state machine's response to EndSessionFamily.
type endFamilyResult struct {
	Ended int `json:"ended"`
}

func resumeOfKey(t *resumeTicket) string {
	return pResumeOf + t.SessionHash + "/" + tkey(t.ExpiresAt) + "/" + t.Hash
}

func resumeExpKey(t *resumeTicket) string { return pResumeExp + tkey(t.ExpiresAt) + "/" + t.Hash }

// deleteTicket removes a ticket and its index entries.
func deleteTicket(txn *badger.Txn, t *resumeTicket) error {
	for _, k := range []string{pResumeTicket + t.Hash, resumeOfKey(t), resumeExpKey(t)} {
		if err := txn.Delete([]byte(k)); err != nil {
			return err
		}
	}
	return nil
}

// sweepTickets deletes up to resumeSweep tickets expired at now.
func sweepTickets(c *applyCtx) error {
	var old []*resumeTicket
	end := pResumeExp + tkey(c.now())
	err := scanPrefix(c.txn, pResumeExp, false, func(key, _ []byte) (bool, error) {
		if string(key) > end || len(old) >= resumeSweep {
			return false, nil
		}
		var t resumeTicket
		ok, err := getJSON(c.txn, pResumeTicket+lastSegment(key), &t)
		if err != nil {
			return false, err
		}
		if !ok {
			return false, fmt.Errorf("index %s names a missing ticket", key)
		}
		old = append(old, &t)
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, t := range old {
		if err := deleteTicket(c.txn, t); err != nil {
			return err
		}
	}
	return nil
}

// liveSession returns the session with hash h and its operator if the
// session may be used at c's time and the operator is enabled, else a
// refusal with CodeNoSession.
func liveSession(c *applyCtx, field, h string) (*OperatorSession, *Operator, error) {
	var s OperatorSession
	ok, err := getJSON(c.txn, pOperatorSession+h, &s)
	if err != nil {
		return nil, nil, err
	}
	none := ruleErr(CodeNoSession, field, "the session has ended or expired: sign in again")
	if !ok || !s.Valid(c.now()) {
		return nil, nil, none
	}
	var o Operator
	ok, err = getJSON(c.txn, pOperator+s.OperatorID, &o)
	if err != nil {
		return nil, nil, err
	}
	if !ok || o.Disabled {
		return nil, nil, none
	}
	return &s, &o, nil
}

// applyIssueResumeTicket records a ticket for a live session. Expired
// tickets go, and beyond MaxResumeTickets the session's oldest.
func applyIssueResumeTicket(c *applyCtx, body []byte) ([]byte, error) {
	var cmd issueResumeTicketCmd
	if err := c.decode(body, &cmd); err != nil {
		return nil, err
	}
	if err := validSessionHash("session_hash", cmd.SessionHash); err != nil {
		return nil, err
	}
	if err := validSessionHash("ticket_hash", cmd.TicketHash); err != nil {
		return nil, err
	}
	switch {
	case !cmd.ExpiresAt.After(c.now()):
		return nil, invalid("expires_at", "the ticket would have expired already")
	case cmd.ExpiresAt.Sub(c.now()) > ResumeTicketTTL:
		return nil, invalid("expires_at", "a ticket lasts at most %s", ResumeTicketTTL)
	}
	s, o, err := liveSession(c, "session_hash", cmd.SessionHash)
	if err != nil {
		return nil, err
	}
	if ok, err := exists(c.txn, pResumeTicket+cmd.TicketHash); err != nil {
		return nil, err
	} else if ok {
		return nil, ruleErr(CodeConflict, "ticket_hash", "the ticket exists already")
	}

	// Every rule has been checked: write.
	if err := sweepTickets(c); err != nil {
		return nil, err
	}
	var mine []*resumeTicket // the session's tickets, oldest first
	err = scanPrefix(c.txn, pResumeOf+s.Hash+"/", false, func(key, _ []byte) (bool, error) {
		var t resumeTicket
		ok, err := getJSON(c.txn, pResumeTicket+lastSegment(key), &t)
		if err != nil {
			return false, err
		}
		if !ok {
			return false, fmt.Errorf("index %s names a missing ticket", key)
		}
		mine = append(mine, &t)
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	for i := 0; i+MaxResumeTickets-1 < len(mine); i++ {
		if err := deleteTicket(c.txn, mine[i]); err != nil {
			return nil, err
		}
	}
	t := &resumeTicket{Hash: cmd.TicketHash, SessionHash: s.Hash, OperatorID: o.ID, Node: c.hdr.Node,
		CreatedAt: c.now(), ExpiresAt: cmd.ExpiresAt}
	if err := putJSON(c.txn, pResumeTicket+t.Hash, t); err != nil {
		return nil, err
	}
	for _, k := range []string{resumeOfKey(t), resumeExpKey(t)} {
		if err := setIndex(c.txn, []byte(k)); err != nil {
			return nil, err
		}
	}
	return json.Marshal(t)
}

// familyRoot returns the root of the family of the session with hash h:
// h itself when it was signed in with a password.
func familyRoot(txn *badger.Txn, h string) (string, error) {
	var f sessionFamily
	ok, err := getJSON(txn, pSessionFamily+h, &f)
	if err != nil || !ok {
		return h, err
	}
	return f.Root, nil
}

// applyRedeemResumeTicket spends a ticket: the ticket goes, and a new
// session of the ticket's operator, ending when the ticket's session does,
// joins that session's family. The operator's ended sessions go, and
// beyond MaxOperatorSessions its oldest, as at a sign-in.
func applyRedeemResumeTicket(c *applyCtx, body []byte) ([]byte, error) {
	var cmd redeemResumeTicketCmd
	if err := c.decode(body, &cmd); err != nil {
		return nil, err
	}
	if err := validSessionHash("ticket_hash", cmd.TicketHash); err != nil {
		return nil, err
	}
	if err := validSessionHash("new_session_hash", cmd.NewSessionHash); err != nil {
		return nil, err
	}
	if len(cmd.Remote) > MaxNameLen || !utf8.ValidString(cmd.Remote) {
		return nil, invalid("remote", "is not an address")
	}
	var t resumeTicket
	ok, err := getJSON(c.txn, pResumeTicket+cmd.TicketHash, &t)
	if err != nil {
		return nil, err
	}
	if !ok || !c.now().Before(t.ExpiresAt) {
		return nil, ruleErr(CodeNoSession, "ticket", "the hand-over ticket is unknown, used or expired: sign in again")
	}
	src, o, err := liveSession(c, "ticket", t.SessionHash)
	if err != nil {
		return nil, err
	}
	if ok, err := exists(c.txn, pOperatorSession+cmd.NewSessionHash); err != nil {
		return nil, err
	} else if ok {
		return nil, ruleErr(CodeConflict, "new_session_hash", "the session exists already")
	}
	root, err := familyRoot(c.txn, src.Hash)
	if err != nil {
		return nil, err
	}

	// Every rule has been checked: write.
	if err := deleteTicket(c.txn, &t); err != nil {
		return nil, err
	}
	sessions, err := operatorSessions(c.txn, o.ID)
	if err != nil {
		return nil, err
	}
	live := 0
	for _, s := range sessions {
		if !s.Valid(c.now()) {
			if err := deleteSession(c.txn, s); err != nil {
				return nil, err
			}
			continue
		}
		live++
	}
	for _, s := range sessions { // oldest first; never the one handed over
		if live < MaxOperatorSessions {
			break
		}
		if s.Valid(c.now()) && s.Hash != src.Hash {
			if err := deleteSession(c.txn, s); err != nil {
				return nil, err
			}
			live--
		}
	}
	s := &OperatorSession{Hash: cmd.NewSessionHash, OperatorID: o.ID, CreatedAt: c.now(), ExpiresAt: src.ExpiresAt,
		Node: c.hdr.Node, Remote: cmd.Remote}
	if err := putJSON(c.txn, pOperatorSession+s.Hash, s); err != nil {
		return nil, err
	}
	if err := setIndex(c.txn, []byte(sessionIndexKey(s))); err != nil {
		return nil, err
	}
	if err := putJSON(c.txn, pSessionFamily+s.Hash, sessionFamily{Root: root, From: src.Hash}); err != nil {
		return nil, err
	}
	if err := setIndex(c.txn, []byte(pFamilyIx+root+"/"+s.Hash)); err != nil {
		return nil, err
	}
	detail := fmt.Sprintf("signed in through %s by a hand-over from %s, from %s", c.hdr.Node, t.Node, cmd.Remote)
	if err := c.audit(CmdRedeemResumeTicket, "operator/"+o.ID, detail); err != nil {
		return nil, err
	}
	return json.Marshal(s)
}

// applyEndSessionFamily ends a session, the session its family started
// from, and every session handed over within the family. Sessions already
// ended stay as they are; index entries of sessions gone are removed.
func applyEndSessionFamily(c *applyCtx, body []byte) ([]byte, error) {
	var cmd endSessionFamilyCmd
	if err := c.decode(body, &cmd); err != nil {
		return nil, err
	}
	if err := validSessionHash("session_hash", cmd.SessionHash); err != nil {
		return nil, err
	}
	if ok, err := exists(c.txn, pOperatorSession+cmd.SessionHash); err != nil {
		return nil, err
	} else if !ok {
		return nil, ruleErr(CodeNotFound, "session_hash", "no such session")
	}
	root, err := familyRoot(c.txn, cmd.SessionHash)
	if err != nil {
		return nil, err
	}
	members := []string{root}
	err = scanPrefix(c.txn, pFamilyIx+root+"/", false, func(key, _ []byte) (bool, error) {
		members = append(members, lastSegment(key))
		return true, nil
	})
	if err != nil {
		return nil, err
	}

	// Every rule has been checked: write.
	ended, operator := 0, ""
	for _, h := range members {
		var s OperatorSession
		ok, err := getJSON(c.txn, pOperatorSession+h, &s)
		if err != nil {
			return nil, err
		}
		if !ok {
			if h != root {
				if err := c.txn.Delete([]byte(pFamilyIx + root + "/" + h)); err != nil {
					return nil, err
				}
				if err := c.txn.Delete([]byte(pSessionFamily + h)); err != nil {
					return nil, err
				}
			}
			continue
		}
		operator = s.OperatorID
		if !s.RevokedAt.IsZero() {
			continue
		}
		s.RevokedAt = c.now()
		if err := putJSON(c.txn, pOperatorSession+s.Hash, &s); err != nil {
			return nil, err
		}
		ended++
	}
	if ended > 0 {
		if err := c.audit(CmdEndSessionFamily, "operator/"+operator, fmt.Sprintf("signed out (%d sessions ended)", ended)); err != nil {
			return nil, err
		}
	}
	return json.Marshal(endFamilyResult{Ended: ended})
}

// --- The Service ---

// ResumeGrant is a new hand-over ticket: the token goes to the page and is
// never stored or shown again.
type ResumeGrant struct {
	Ticket    string
	ExpiresAt time.Time
}

// IssueResumeTicket issues a hand-over ticket for the console session of
// sessionToken, valid for ttl (at most ResumeTicketTTL) and once.
func (s *Service) IssueResumeTicket(ctx context.Context, cmdID, sessionToken string, ttl time.Duration) (*ResumeGrant, error) {
	if ttl <= 0 || ttl > ResumeTicketTTL {
		return nil, invalid("ttl", "a ticket lasts more than 0 and at most %s", ResumeTicketTTL)
	}
	if sessionToken == "" || len(sessionToken) > 128 {
		return nil, ruleErr(CodeNoSession, "", "not signed in, or the session has ended")
	}
	raw := make([]byte, sessionTokenBytes)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("cannot make a ticket: %w", err)
	}
	ticket := base64.RawURLEncoding.EncodeToString(raw)
	h := s.header("console")
	cmd := issueResumeTicketCmd{Header: h, SessionHash: hashSessionToken(sessionToken), TicketHash: hashSessionToken(ticket),
		ExpiresAt: h.At.Add(ttl)}
	res, err := s.propose(ctx, cmdID, CmdIssueResumeTicket, cmd)
	if err != nil {
		return nil, err
	}
	t, err := decodeResponse[resumeTicket](res.Response)
	if err != nil {
		return nil, err
	}
	if t.Hash != cmd.TicketHash {
		return nil, ruleErr(CodeConflict, "id", "command %q issued a ticket before; ask again with a new command ID", cmdID)
	}
	return &ResumeGrant{Ticket: ticket, ExpiresAt: t.ExpiresAt}, nil
}

// RedeemResumeTicket spends a hand-over ticket and signs its operator in
// on this node with a new session, valid on every node until the session
// the ticket came from would end. An unknown, used or expired ticket, or
// one whose session has ended, is ErrNoSession.
func (s *Service) RedeemResumeTicket(ctx context.Context, cmdID, ticket, remote string) (*SignIn, error) {
	if ticket == "" || len(ticket) > 128 {
		return nil, ruleErr(CodeNoSession, "ticket", "the hand-over ticket is unknown, used or expired: sign in again")
	}
	raw := make([]byte, sessionTokenBytes)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("cannot make a session token: %w", err)
	}
	token := base64.RawURLEncoding.EncodeToString(raw)
	cmd := redeemResumeTicketCmd{Header: s.header("console"), TicketHash: hashSessionToken(ticket),
		NewSessionHash: hashSessionToken(token), Remote: remote}
	res, err := s.propose(ctx, cmdID, CmdRedeemResumeTicket, cmd)
	if err != nil {
		return nil, err
	}
	sess, err := decodeResponse[OperatorSession](res.Response)
	if err != nil {
		return nil, err
	}
	if sess.Hash != cmd.NewSessionHash {
		return nil, ruleErr(CodeConflict, "id", "command %q redeemed a ticket before; sign in again", cmdID)
	}
	o, err := s.Operator(sess.OperatorID)
	if err != nil {
		return nil, err
	}
	return &SignIn{Token: token, Operator: o, Session: sess}, nil
}

// EndSessions signs the session of token out on every node, with every
// session handed over from it or to it, and returns how many ended. An
// unknown or ended session is not an error.
func (s *Service) EndSessions(ctx context.Context, cmdID, token string) (int, error) {
	if token == "" || len(token) > 128 {
		return 0, nil
	}
	h := hashSessionToken(token)
	var sess OperatorSession
	var found bool
	if err := s.view(func(txn *badger.Txn) (err error) {
		found, err = getJSON(txn, pOperatorSession+h, &sess)
		return err
	}); err != nil {
		return 0, err
	}
	if !found {
		return 0, nil
	}
	res, err := s.propose(ctx, cmdID, CmdEndSessionFamily, endSessionFamilyCmd{Header: s.header(sess.OperatorID), SessionHash: h})
	if isNotFoundErr(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	r, err := decodeResponse[endFamilyResult](res.Response)
	if err != nil {
		return 0, err
	}
	return r.Ended, nil
}
