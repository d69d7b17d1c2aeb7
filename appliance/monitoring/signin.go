package monitoring

// Sign-in back-off (CmdOperatorSignIn). A lockout lets anyone who knows a
// user name lock its owner out, on every node; instead, wrong passwords
// slow down the next attempts on the account, and a browser that signed in
// to the account lately is never slowed down. Such a browser holds a
// random token in a cookie (the console's "known browser" cookie); the
// account keeps the token's SHA-256 in the replicated state, so it works
// on every node. One token serves every account signed in from that
// browser, as on a shared control-room PC.
//
// To a guesser nothing tells an unknown account from a wrong password or a
// slowed-down one: the Service answers ErrLoginFailed to each, after the
// same hash.

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/dgraph-io/badger/v4"
)

// Back-off rules of CmdOperatorSignIn: part of the state machine's
// behaviour, so they change only with a new command type.
const (
	// FreeFailedLogins wrong passwords in a row are not slowed down (a
	// typo or two)...
	FreeFailedLogins = 3
	// ...then each further attempt from a browser the account does not
	// know waits MinLoginBackoff after the last wrong password, twice as
	// long after each further one, up to MaxLoginBackoff.
	MinLoginBackoff = time.Second
	MaxLoginBackoff = 15 * time.Minute
	// KnownBrowserTTL is how long after its last sign-in a browser stays
	// known to an account...
	KnownBrowserTTL = 90 * 24 * time.Hour
	// ...and MaxKnownBrowsers how many an account remembers (the most
	// recent).
	MaxKnownBrowsers = 16
)

// KnownBrowser is a browser that signed in to an account: the SHA-256 of
// its token (hex) and when it last signed in.
type KnownBrowser struct {
	Hash       string    `json:"hash"`
	LastSignIn time.Time `json:"last_sign_in"`
}

// loginBackoff is how long after the last wrong password an account with
// failed wrong passwords in a row makes unknown browsers wait.
func loginBackoff(failed int) time.Duration {
	if failed < FreeFailedLogins {
		return 0
	}
	n := min(failed-FreeFailedLogins, 20)
	return min(MinLoginBackoff<<n, MaxLoginBackoff)
}

// BackoffUntil is when a browser the account does not know may try a
// password again: the back-off of its wrong passwords, or a lockout left
// by CmdOperatorLogin, whichever ends later. Zero when there is none.
func (o *Operator) BackoffUntil() time.Time {
	var t time.Time
	if d := loginBackoff(o.FailedLogins); d > 0 {
		t = o.LastFailedLoginAt.Add(d)
	}
	if o.LockedUntil.After(t) {
		t = o.LockedUntil
	}
	return t
}

// BackedOff reports whether attempts from unknown browsers wait at t.
func (o *Operator) BackedOff(t time.Time) bool { return t.Before(o.BackoffUntil()) }

// knowsBrowser reports whether the browser whose token hashes to hash
// signed in to the account within KnownBrowserTTL before t.
func (o *Operator) knowsBrowser(hash string, t time.Time) bool {
	if hash == "" {
		return false
	}
	for _, b := range o.KnownBrowsers {
		if b.Hash == hash {
			return t.Sub(b.LastSignIn) < KnownBrowserTTL
		}
	}
	return false
}

// rememberBrowser records a sign-in of the browser hash at t, forgetting
// browsers past KnownBrowserTTL and, beyond MaxKnownBrowsers, the least
// recent.
func (o *Operator) rememberBrowser(hash string, t time.Time) {
	kept := []KnownBrowser{{Hash: hash, LastSignIn: t}}
	for _, b := range o.KnownBrowsers {
		if b.Hash != hash && t.Sub(b.LastSignIn) < KnownBrowserTTL {
			kept = append(kept, b)
		}
	}
	slices.SortStableFunc(kept, func(a, b KnownBrowser) int { return b.LastSignIn.Compare(a.LastSignIn) })
	o.KnownBrowsers = kept[:min(len(kept), MaxKnownBrowsers)]
}

// browserTokenBytes is the length of a known-browser token before
// encoding.
const browserTokenBytes = 32

// hashBrowserToken returns the hex SHA-256 of a well-formed known-browser
// token, or "" for anything else.
func hashBrowserToken(token string) string {
	if raw, err := base64.RawURLEncoding.DecodeString(token); err != nil || len(raw) != browserTokenBytes {
		return ""
	}
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// KnowsBrowser reports whether the browser holding browserToken signed in
// to operatorID within KnownBrowserTTL, reading this node's state: such a
// browser is not slowed down by wrong passwords, nor by the console's
// per-address limit. It costs a read, no hash.
func (s *Service) KnowsBrowser(operatorID, browserToken string) bool {
	h := hashBrowserToken(browserToken)
	if h == "" || validID("operator_id", operatorID) != nil {
		return false
	}
	var o *Operator
	if err := s.view(func(txn *badger.Txn) (err error) {
		o, err = getOperator(txn, operatorID)
		return err
	}); err != nil {
		return false
	}
	return o.knowsBrowser(h, s.Now())
}

// operatorSignInCmd records a sign-in attempt, with the outcome of the
// password check made before proposing, under the back-off rules.
type operatorSignInCmd struct {
	Header
	OperatorID      string `json:"operator_id"`
	PasswordOK      bool   `json:"password_ok"`
	PasswordVersion uint64 `json:"password_version"` // the hash checked
	// BrowserHash is the SHA-256 of the browser's known-browser token: a
	// browser the account knows is not slowed down, and a sign-in makes
	// the account know it.
	BrowserHash string `json:"browser_hash,omitempty"`
	// SessionHash and ExpiresAt make the session when the password is
	// right.
	SessionHash string    `json:"session_hash,omitempty"`
	ExpiresAt   time.Time `json:"expires_at,omitzero"`
	Remote      string    `json:"remote,omitempty"`
}

// loginBackedOff: the attempt came from a browser the account does not
// know while its wrong passwords slow such browsers down; not counted.
const loginBackedOff loginOutcome = "backed_off"

// applyOperatorSignIn records a sign-in attempt. A disabled account, or a
// password checked against an older hash, changes nothing; neither does an
// attempt from a browser the account does not know while the account is
// backed off. A wrong password is counted. A right one clears the count,
// makes the session (startOperatorSession) and remembers the browser.
func applyOperatorSignIn(c *applyCtx, body []byte) ([]byte, error) {
	var cmd operatorSignInCmd
	if err := c.decode(body, &cmd); err != nil {
		return nil, err
	}
	if err := validID("operator_id", cmd.OperatorID); err != nil {
		return nil, err
	}
	if cmd.BrowserHash != "" {
		if err := validSessionHash("browser_hash", cmd.BrowserHash); err != nil {
			return nil, err
		}
	}
	if cmd.PasswordOK {
		if err := validSessionHash("session_hash", cmd.SessionHash); err != nil {
			return nil, err
		}
		switch {
		case cmd.BrowserHash == "":
			return nil, invalid("browser_hash", "a sign-in needs the browser's token")
		case !cmd.ExpiresAt.After(c.now()):
			return nil, invalid("expires_at", "the session would have expired already")
		case cmd.ExpiresAt.Sub(c.now()) > MaxSessionTTL:
			return nil, invalid("expires_at", "a session lasts at most %s", MaxSessionTTL)
		}
	}
	if len(cmd.Remote) > MaxNameLen || !utf8.ValidString(cmd.Remote) {
		return nil, invalid("remote", "is not an address")
	}
	o, err := getOperator(c.txn, cmd.OperatorID)
	if err != nil {
		return nil, err
	}
	res := loginResult{FailedLogins: o.FailedLogins}
	switch {
	case o.Disabled:
		res.Outcome = loginDisabled
		return json.Marshal(res)
	case cmd.PasswordVersion != o.PasswordVersion:
		res.Outcome = loginStale
		return json.Marshal(res)
	case o.BackedOff(c.now()) && !o.knowsBrowser(cmd.BrowserHash, c.now()):
		res.Outcome = loginBackedOff
		return json.Marshal(res)
	}
	if cmd.PasswordOK {
		if ok, err := exists(c.txn, pOperatorSession+cmd.SessionHash); err != nil {
			return nil, err
		} else if ok {
			return nil, ruleErr(CodeConflict, "session_hash", "the session exists already")
		}
	}

	// Every rule has been checked: write.
	if !cmd.PasswordOK {
		o.FailedLogins++
		o.LastFailedLoginAt, o.UpdatedAt = c.now(), c.now()
		detail := fmt.Sprintf("wrong password from %s (%d in a row)", cmd.Remote, o.FailedLogins)
		if o.BackedOff(c.now()) {
			detail += ": browsers that have not signed in to it wait until " + o.BackoffUntil().UTC().Format(time.RFC3339)
		}
		res.FailedLogins = o.FailedLogins
		res.Outcome = loginWrongPassword
		if err := putJSON(c.txn, pOperator+o.ID, o); err != nil {
			return nil, err
		}
		if err := c.audit(CmdOperatorSignIn, "operator/"+o.ID, detail); err != nil {
			return nil, err
		}
		return json.Marshal(res)
	}
	o.rememberBrowser(cmd.BrowserHash, c.now())
	sess, err := startOperatorSession(c, CmdOperatorSignIn, o, cmd.SessionHash, cmd.ExpiresAt, cmd.Remote)
	if err != nil {
		return nil, err
	}
	res.Outcome, res.FailedLogins, res.Session = loginSignedIn, 0, sess
	return json.Marshal(res)
}
