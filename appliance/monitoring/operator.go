package monitoring

// Operator accounts and console sign-in, replicated so that an account, a
// lockout and a sign-in session hold on every node.
//
// A password is stored only as an argon2id hash (pin.go's format), made by
// the Service before proposing; a sign-in attempt is checked in the Service
// too, and only its outcome is replicated (CmdOperatorLogin), so that the
// state machine counts failed attempts and locks the account on every node
// alike. A console session is a random token that only the browser holds
// (in a cookie); the state keeps its SHA-256, so a copy of the state signs
// nobody in.
//
// Keys (a prefix, once used, keeps its meaning forever):
//
//	operator/<id>                                 Operator
//	opsession/<token hash>                        OperatorSession
//	ix/operator-session/<id>/<created>/<hash>     an operator's sessions, oldest first

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/crypto/argon2"
)

// Key prefixes of operators and their sessions.
const (
	pOperator        = "operator/"
	pOperatorSession = "opsession/"
	pOperatorSessIx  = "ix/operator-session/"
)

// OperatorRole is what an operator may do in the console. Each role may do
// everything the roles before it may.
type OperatorRole string

// Operator roles, least to most.
const (
	RoleOperator   OperatorRole = "operator"   // handles alarms
	RoleSupervisor OperatorRole = "supervisor" // also takes over alarms another operator holds
	RoleAdmin      OperatorRole = "admin"      // also manages accounts and the directory
)

// OperatorRoles lists every role, least to most.
var OperatorRoles = []OperatorRole{RoleOperator, RoleSupervisor, RoleAdmin}

// rank is the role's place in OperatorRoles from 1, or 0 if unknown.
func (r OperatorRole) rank() int { return slices.Index(OperatorRoles, r) + 1 }

// Valid reports whether r is a known role.
func (r OperatorRole) Valid() bool { return r.rank() > 0 }

// AtLeast reports whether r may do what min may. An unknown role may do
// nothing.
func (r OperatorRole) AtLeast(min OperatorRole) bool { return r.Valid() && r.rank() >= min.rank() }

// Sign-in rules. They are part of the state machine's behaviour: changing
// them changes what replaying the log gives, so they change only with a new
// command type.
const (
	// MaxFailedLogins wrong passwords in a row locked an account for
	// LockoutDuration under CmdOperatorLogin, which the Service no longer
	// proposes: a lockout let anyone lock the real user out. The rules
	// stay for replaying older logs; CmdOperatorSignIn slows guessing
	// instead (signin.go).
	MaxFailedLogins = 5
	LockoutDuration = 15 * time.Minute
	// MaxOperatorSessions is how many sessions an operator may hold at
	// once; a new sign-in beyond it ends the oldest.
	MaxOperatorSessions = 16
	// MaxSessionTTL bounds a session's life.
	MaxSessionTTL = 7 * 24 * time.Hour
)

// Limits of a password, in bytes. A long passphrase is better than a
// complicated short one (NIST SP 800-63B).
const (
	MinPasswordLen = 10
	MaxPasswordLen = 256
)

// DefaultPasswordParams are the argon2id parameters of password hashes: the
// same as PINs' (about 19 MiB and two passes, OWASP's minimum).
var DefaultPasswordParams = DefaultPINParams

// passwordParams are the parameters of new password hashes and of the
// dummy check for an unknown operator. Tests lower them.
var passwordParams = DefaultPasswordParams

// Refusal codes of sign-in. Append only, like errors.go's.
const (
	// CodeLoginFailed: no such operator, or the wrong password. The two are
	// not told apart.
	CodeLoginFailed Code = "login_failed"
	// CodeLocked: too many wrong passwords; the account is locked for a
	// while.
	CodeLocked Code = "locked"
	// CodeDisabled: the account is disabled.
	CodeDisabled Code = "disabled"
	// CodeNoSession: the session token is unknown, expired or ended.
	CodeNoSession Code = "no_session"
)

// Sentinels of sign-in, for errors.Is.
var (
	ErrLoginFailed = &RuleError{Code: CodeLoginFailed} // wrong user name or password
	ErrLocked      = &RuleError{Code: CodeLocked}      // locked after too many wrong passwords
	ErrDisabled    = &RuleError{Code: CodeDisabled}    // the account is disabled
	ErrNoSession   = &RuleError{Code: CodeNoSession}   // not signed in
)

// Operator is a console user. Its ID is the name it signs in with.
type Operator struct {
	ID       string       `json:"id"`
	Name     string       `json:"name"` // the full name shown in the console
	Role     OperatorRole `json:"role"`
	Disabled bool         `json:"disabled"`
	// PasswordHash is the argon2id hash of the password; PasswordVersion
	// changes with it, so that a check made against an old hash is refused.
	PasswordHash    string    `json:"password_hash,omitempty"`
	PasswordVersion uint64    `json:"password_version"`
	PasswordSetAt   time.Time `json:"password_set_at,omitzero"`
	// FailedLogins counts wrong passwords since the last sign-in, the
	// last at LastFailedLoginAt: they slow down the next attempts
	// (BackoffUntil). LockedUntil is a lockout made by CmdOperatorLogin
	// before the back-off replaced it.
	FailedLogins      int       `json:"failed_logins"`
	LastFailedLoginAt time.Time `json:"last_failed_login_at,omitzero"`
	LockedUntil       time.Time `json:"locked_until,omitzero"`
	// KnownBrowsers are the browsers that signed in to the account lately
	// (signin.go): they are never slowed down.
	KnownBrowsers []KnownBrowser `json:"known_browsers,omitempty"`
	LastLoginAt   time.Time      `json:"last_login_at,omitzero"`
	CreatedAt     time.Time      `json:"created_at"`
	UpdatedAt     time.Time      `json:"updated_at"`
}

// publicOperator returns a copy of o without its password hash and its
// known browsers.
func publicOperator(o *Operator) *Operator {
	p := *o
	p.PasswordHash = ""
	p.KnownBrowsers = nil
	return &p
}

// OperatorSession is one console sign-in. Hash is the hex SHA-256 of the
// token in the browser's cookie; the token itself is never stored.
type OperatorSession struct {
	Hash       string    `json:"hash"`
	OperatorID string    `json:"operator_id"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	RevokedAt  time.Time `json:"revoked_at,omitzero"` // signed out, or ended by an account change
	Node       string    `json:"node"`                // the node signed in through
	Remote     string    `json:"remote,omitempty"`    // the browser's IP address
}

// Valid reports whether the session may be used at t.
func (s *OperatorSession) Valid(t time.Time) bool {
	return s.RevokedAt.IsZero() && t.Before(s.ExpiresAt)
}

// putOperatorCmd creates or changes an operator. Only ID, Name, Role and
// Disabled of Operator are read.
type putOperatorCmd struct {
	Header
	Operator Operator `json:"operator"`
	// Create refuses the command if the operator exists.
	Create bool `json:"create,omitempty"`
	// PasswordHash is a new password hash; empty keeps the password (a new
	// operator needs one). A new password ends the operator's sessions.
	PasswordHash string `json:"password_hash,omitempty"`
	// Unlock clears the failed sign-ins and any lockout.
	Unlock bool `json:"unlock,omitempty"`
}

// operatorLoginCmd records a sign-in attempt, with the outcome of the
// password check made before proposing.
type operatorLoginCmd struct {
	Header
	OperatorID      string `json:"operator_id"`
	PasswordOK      bool   `json:"password_ok"`
	PasswordVersion uint64 `json:"password_version"` // the hash checked
	// SessionHash and ExpiresAt make the session when the password is
	// right.
	SessionHash string    `json:"session_hash,omitempty"`
	ExpiresAt   time.Time `json:"expires_at,omitzero"`
	Remote      string    `json:"remote,omitempty"`
}

// operatorLogoutCmd ends a session.
type operatorLogoutCmd struct {
	Header
	SessionHash string `json:"session_hash"`
}

// loginOutcome is what the state machine made of a sign-in attempt.
type loginOutcome string

// Sign-in outcomes.
const (
	loginSignedIn      loginOutcome = "signed_in"
	loginWrongPassword loginOutcome = "wrong_password" // counted
	loginLocked        loginOutcome = "locked"         // locked before, or by this attempt
	loginDisabled      loginOutcome = "disabled"
	loginStale         loginOutcome = "stale" // the password changed since it was checked; not counted
)

// loginResult is the state machine's response to OperatorLogin.
type loginResult struct {
	Outcome      loginOutcome     `json:"outcome"`
	FailedLogins int              `json:"failed_logins"`
	LockedUntil  time.Time        `json:"locked_until,omitzero"`
	Session      *OperatorSession `json:"session,omitempty"`
}

// validSessionHash reports why h is not a hex SHA-256.
func validSessionHash(field, h string) error {
	if len(h) != 2*sha256.Size {
		return invalid(field, "is not a SHA-256 in hex")
	}
	if _, err := hex.DecodeString(h); err != nil || strings.ToLower(h) != h {
		return invalid(field, "is not a SHA-256 in lowercase hex")
	}
	return nil
}

// validateOperator checks an operator's own fields.
func validateOperator(o *Operator) error {
	if err := validID("operator.id", o.ID); err != nil {
		return err
	}
	if err := validName("operator.name", o.Name); err != nil {
		return err
	}
	if !o.Role.Valid() {
		return invalid("operator.role", "%q is not one of %v", o.Role, OperatorRoles)
	}
	return nil
}

func getOperator(txn *badger.Txn, id string) (*Operator, error) {
	return getRecord[Operator](txn, pOperator, "operator", id)
}

func sessionIndexKey(s *OperatorSession) string {
	return pOperatorSessIx + s.OperatorID + "/" + tkey(s.CreatedAt) + "/" + s.Hash
}

// enabledAdmins counts the enabled admins other than except.
func enabledAdmins(txn *badger.Txn, except string) (int, error) {
	n := 0
	err := scanPrefix(txn, pOperator, true, func(_, val []byte) (bool, error) {
		var o Operator
		if err := json.Unmarshal(val, &o); err != nil {
			return false, err
		}
		if o.ID != except && o.Role == RoleAdmin && !o.Disabled {
			n++
		}
		return true, nil
	})
	return n, err
}

// applyPutOperator creates or changes an operator. Rules: the fields are
// valid; a new operator has a password; Create refuses an existing one; the
// last enabled admin may be neither demoted nor disabled. A new password or
// disabling ends the operator's sessions.
func applyPutOperator(c *applyCtx, body []byte) ([]byte, error) {
	var cmd putOperatorCmd
	if err := c.decode(body, &cmd); err != nil {
		return nil, err
	}
	in := cmd.Operator
	if err := validateOperator(&in); err != nil {
		return nil, err
	}
	if cmd.PasswordHash != "" {
		if _, err := parsePINHash(cmd.PasswordHash); err != nil {
			return nil, invalid("password_hash", "%v", err)
		}
	}
	var o Operator
	found, err := getJSON(c.txn, pOperator+in.ID, &o)
	if err != nil {
		return nil, err
	}
	switch {
	case found && cmd.Create:
		return nil, ruleErr(CodeConflict, "operator.id", "operator %q already exists", in.ID)
	case !found && cmd.PasswordHash == "":
		return nil, invalid("password", "a new operator needs a password")
	}
	if found && o.Role == RoleAdmin && !o.Disabled && (in.Role != RoleAdmin || in.Disabled) {
		n, err := enabledAdmins(c.txn, o.ID)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, ruleErr(CodeConflict, "operator.role", "%q is the last enabled admin; make another admin first", o.ID)
		}
	}

	// Every rule has been checked: write.
	var changes []string
	if !found {
		o = Operator{ID: in.ID, CreatedAt: c.now()}
		changes = append(changes, "created")
	}
	if o.Role != in.Role {
		changes = append(changes, "role="+string(in.Role))
	}
	if o.Disabled != in.Disabled {
		changes = append(changes, fmt.Sprintf("disabled=%t", in.Disabled))
	}
	if found && o.Name != in.Name {
		changes = append(changes, "renamed")
	}
	endSessions := in.Disabled && !o.Disabled
	o.Name, o.Role, o.Disabled = in.Name, in.Role, in.Disabled
	if cmd.PasswordHash != "" {
		o.PasswordHash = cmd.PasswordHash
		o.PasswordVersion++
		o.PasswordSetAt = c.now()
		o.FailedLogins, o.LockedUntil, o.LastFailedLoginAt = 0, time.Time{}, time.Time{}
		changes = append(changes, fmt.Sprintf("password set (version %d)", o.PasswordVersion))
		endSessions = endSessions || found
	}
	if cmd.Unlock && (o.FailedLogins != 0 || !o.LockedUntil.IsZero()) {
		o.FailedLogins, o.LockedUntil, o.LastFailedLoginAt = 0, time.Time{}, time.Time{}
		changes = append(changes, "unlocked")
	}
	o.UpdatedAt = c.now()
	if endSessions {
		n, err := endOperatorSessions(c, o.ID)
		if err != nil {
			return nil, err
		}
		if n > 0 {
			changes = append(changes, fmt.Sprintf("%d sessions ended", n))
		}
	}
	if err := putJSON(c.txn, pOperator+o.ID, &o); err != nil {
		return nil, err
	}
	if len(changes) == 0 {
		changes = append(changes, "unchanged")
	}
	if err := c.audit(CmdPutOperator, "operator/"+o.ID, strings.Join(changes, ", ")); err != nil {
		return nil, err
	}
	return json.Marshal(publicOperator(&o))
}

// endOperatorSessions revokes every live session of an operator and
// returns how many it ended.
func endOperatorSessions(c *applyCtx, operatorID string) (int, error) {
	sessions, err := operatorSessions(c.txn, operatorID)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range sessions {
		if !s.RevokedAt.IsZero() {
			continue
		}
		s.RevokedAt = c.now()
		if err := putJSON(c.txn, pOperatorSession+s.Hash, s); err != nil {
			return 0, err
		}
		n++
	}
	return n, nil
}

// operatorSessions returns an operator's sessions, oldest first.
func operatorSessions(txn *badger.Txn, operatorID string) ([]*OperatorSession, error) {
	var out []*OperatorSession
	err := scanPrefix(txn, pOperatorSessIx+operatorID+"/", false, func(key, _ []byte) (bool, error) {
		var s OperatorSession
		ok, err := getJSON(txn, pOperatorSession+lastSegment(key), &s)
		if err != nil {
			return false, err
		}
		if !ok {
			return false, fmt.Errorf("index %s names a missing session", key)
		}
		out = append(out, &s)
		return true, nil
	})
	return out, err
}

// deleteSession removes a session and its index entry.
func deleteSession(txn *badger.Txn, s *OperatorSession) error {
	if err := txn.Delete([]byte(pOperatorSession + s.Hash)); err != nil {
		return err
	}
	return txn.Delete([]byte(sessionIndexKey(s)))
}

// applyOperatorLogin records a sign-in attempt. A disabled or locked account
// changes nothing. A wrong password is counted, and the MaxFailedLogins-th
// in a row locks the account for LockoutDuration. A right one (checked
// against the current hash) clears the count, makes the session, and
// removes the operator's expired and ended sessions and, beyond
// MaxOperatorSessions, its oldest.
func applyOperatorLogin(c *applyCtx, body []byte) ([]byte, error) {
	var cmd operatorLoginCmd
	if err := c.decode(body, &cmd); err != nil {
		return nil, err
	}
	if err := validID("operator_id", cmd.OperatorID); err != nil {
		return nil, err
	}
	if cmd.PasswordOK {
		if err := validSessionHash("session_hash", cmd.SessionHash); err != nil {
			return nil, err
		}
		switch {
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
	res := loginResult{FailedLogins: o.FailedLogins, LockedUntil: o.LockedUntil}
	switch {
	case o.Disabled:
		res.Outcome = loginDisabled
		return json.Marshal(res)
	case c.now().Before(o.LockedUntil):
		res.Outcome = loginLocked
		return json.Marshal(res)
	case cmd.PasswordVersion != o.PasswordVersion:
		res.Outcome = loginStale
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
		detail := fmt.Sprintf("wrong password from %s (%d of %d)", cmd.Remote, o.FailedLogins, MaxFailedLogins)
		res.Outcome = loginWrongPassword
		if o.FailedLogins >= MaxFailedLogins {
			o.FailedLogins, o.LockedUntil = 0, c.now().Add(LockoutDuration)
			detail += ": locked until " + o.LockedUntil.UTC().Format(time.RFC3339)
			res.Outcome = loginLocked
		}
		res.FailedLogins, res.LockedUntil = o.FailedLogins, o.LockedUntil
		o.UpdatedAt = c.now()
		if err := putJSON(c.txn, pOperator+o.ID, o); err != nil {
			return nil, err
		}
		if err := c.audit(CmdOperatorLogin, "operator/"+o.ID, detail); err != nil {
			return nil, err
		}
		return json.Marshal(res)
	}
	sess, err := startOperatorSession(c, CmdOperatorLogin, o, cmd.SessionHash, cmd.ExpiresAt, cmd.Remote)
	if err != nil {
		return nil, err
	}
	res.Outcome, res.FailedLogins, res.LockedUntil, res.Session = loginSignedIn, 0, time.Time{}, sess
	return json.Marshal(res)
}

// startOperatorSession makes the session of a right password: it removes
// the operator's expired and ended sessions and, beyond
// MaxOperatorSessions, its oldest, clears the failed sign-ins, and writes
// the operator (with any other change the caller made to o) and the audit.
func startOperatorSession(c *applyCtx, kind CmdType, o *Operator, sessionHash string, expiresAt time.Time, remote string) (*OperatorSession, error) {
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
	for _, s := range sessions { // oldest first
		if live < MaxOperatorSessions {
			break
		}
		if s.Valid(c.now()) {
			if err := deleteSession(c.txn, s); err != nil {
				return nil, err
			}
			live--
		}
	}
	s := &OperatorSession{Hash: sessionHash, OperatorID: o.ID, CreatedAt: c.now(), ExpiresAt: expiresAt,
		Node: c.hdr.Node, Remote: remote}
	if err := putJSON(c.txn, pOperatorSession+s.Hash, s); err != nil {
		return nil, err
	}
	if err := setIndex(c.txn, []byte(sessionIndexKey(s))); err != nil {
		return nil, err
	}
	o.FailedLogins, o.LockedUntil, o.LastFailedLoginAt, o.LastLoginAt, o.UpdatedAt = 0, time.Time{}, time.Time{}, c.now(), c.now()
	if err := putJSON(c.txn, pOperator+o.ID, o); err != nil {
		return nil, err
	}
	if err := c.audit(kind, "operator/"+o.ID, fmt.Sprintf("signed in from %s through %s", remote, c.hdr.Node)); err != nil {
		return nil, err
	}
	return s, nil
}

// applyOperatorLogout ends a session. Ending an ended session changes
// nothing.
func applyOperatorLogout(c *applyCtx, body []byte) ([]byte, error) {
	var cmd operatorLogoutCmd
	if err := c.decode(body, &cmd); err != nil {
		return nil, err
	}
	if err := validSessionHash("session_hash", cmd.SessionHash); err != nil {
		return nil, err
	}
	var s OperatorSession
	ok, err := getJSON(c.txn, pOperatorSession+cmd.SessionHash, &s)
	switch {
	case err != nil:
		return nil, err
	case !ok:
		return nil, ruleErr(CodeNotFound, "session_hash", "no such session")
	case !s.RevokedAt.IsZero():
		return json.Marshal(&s)
	}
	s.RevokedAt = c.now()
	if err := putJSON(c.txn, pOperatorSession+s.Hash, &s); err != nil {
		return nil, err
	}
	if err := c.audit(CmdOperatorLogout, "operator/"+s.OperatorID, "signed out"); err != nil {
		return nil, err
	}
	return json.Marshal(&s)
}

// --- The Service ---

// PutOperatorRequest creates or changes an operator.
type PutOperatorRequest struct {
	ID       string       // the sign-in name
	Name     string       // the full name
	Role     OperatorRole // operator, supervisor or admin
	Disabled bool
	// Password, if not empty, replaces the password (MinPasswordLen to
	// MaxPasswordLen bytes); a new operator needs one.
	Password string
	Create   bool // refuse if the operator exists
	Unlock   bool // clear failed sign-ins and any lockout
}

// validatePassword reports why pw cannot be a password.
func validatePassword(pw string) error {
	switch {
	case len(pw) < MinPasswordLen:
		return invalid("password", "a password has at least %d characters", MinPasswordLen)
	case len(pw) > MaxPasswordLen:
		return invalid("password", "a password has at most %d bytes", MaxPasswordLen)
	case !utf8.ValidString(pw):
		return invalid("password", "is not valid UTF-8")
	}
	return nil
}

// PutOperator creates or changes an operator and returns it without its
// password hash. The password is hashed here, with a fresh salt; only the
// hash is replicated. A new password or disabling the account ends its
// sessions on every node.
func (s *Service) PutOperator(ctx context.Context, cmdID, actor string, req PutOperatorRequest) (*Operator, error) {
	o := Operator{ID: req.ID, Name: req.Name, Role: req.Role, Disabled: req.Disabled}
	if err := validateOperator(&o); err != nil {
		return nil, err
	}
	if strings.TrimSpace(actor) == "" {
		return nil, invalid("actor", "who changes the operator is missing")
	}
	cmd := putOperatorCmd{Header: s.header(actor), Operator: o, Create: req.Create, Unlock: req.Unlock}
	if req.Password != "" {
		if err := validatePassword(req.Password); err != nil {
			return nil, err
		}
		h, err := s.hashSecret(ctx, passwordParams, req.Password)
		if err != nil {
			return nil, err
		}
		cmd.PasswordHash = h
	}
	res, err := s.propose(ctx, cmdID, CmdPutOperator, cmd)
	if err != nil {
		return nil, err
	}
	return decodeResponse[Operator](res.Response)
}

// LoginRequest is a sign-in attempt.
type LoginRequest struct {
	OperatorID string
	Password   string
	Remote     string        // the browser's IP address, for the audit log
	TTL        time.Duration // how long the session lasts, at most MaxSessionTTL
	// BrowserToken is the browser's known-browser token, if it has one
	// (SignIn.BrowserToken of an earlier sign-in): a browser that signed
	// in to the account lately is never slowed down by wrong passwords.
	BrowserToken string
}

// SignIn is a successful sign-in: the token goes to the browser and is
// never stored or shown again.
type SignIn struct {
	Token    string
	Operator *Operator // without its password hash
	Session  *OperatorSession
	// BrowserToken is the browser's known-browser token, to keep in a
	// long-lived cookie and give back in LoginRequest.BrowserToken: the
	// one it gave if well formed, else a new one.
	BrowserToken string
}

// sessionTokenBytes is the length of a session token before encoding.
const sessionTokenBytes = 32

// hashSessionToken returns the hex SHA-256 of a session token: the key of
// its session in the state.
func hashSessionToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// LoginFailedText is the one answer to a refused sign-in, whether the
// account is unknown, the password wrong, or the account slowed down by
// wrong passwords: they are not told apart.
const LoginFailedText = "wrong user name or password; after several wrong passwords an account makes " +
	"browsers that have not signed in to it wait a while"

// Login checks an operator's password and, if it is right, starts a
// console session valid on every node. Wrong passwords are counted in the
// replicated state; after FreeFailedLogins of them in a row, browsers the
// account does not know wait loginBackoff after each before their
// passwords are accepted again, while a browser that signed in to the
// account within KnownBrowserTTL (req.BrowserToken) never waits. Errors:
// ErrLoginFailed for an unknown operator, a wrong password or a slowed-down
// attempt (not told apart, and taking the same time: one hash each);
// ErrDisabled for a disabled account once the password is right; ErrBusy
// when the node's hash pool has no place for the check in time.
func (s *Service) Login(ctx context.Context, cmdID string, req LoginRequest) (*SignIn, error) {
	if req.TTL <= 0 || req.TTL > MaxSessionTTL {
		return nil, invalid("ttl", "a session lasts more than 0 and at most %s", MaxSessionTTL)
	}
	failed := ruleErr(CodeLoginFailed, "", LoginFailedText)
	if req.OperatorID == "" || req.Password == "" || len(req.Password) > MaxPasswordLen || validID("operator_id", req.OperatorID) != nil {
		return nil, failed
	}
	var o *Operator
	read := func(txn *badger.Txn) (err error) {
		o, err = getOperator(txn, req.OperatorID)
		return err
	}
	err := s.view(read)
	if w, ok := s.cluster.(appliedWaiter); ok && isNotFoundErr(err) && w.WaitApplied(ctx) == nil {
		err = s.view(read) // perhaps created a moment ago through another node
	}
	if isNotFoundErr(err) {
		p := passwordParams // the same work as a real check
		if err := s.hashes.run(ctx, hashAnonymous, func() {
			argon2.IDKey([]byte(req.Password), dummySalt, p.Time, p.Memory, p.Threads, p.KeyLen)
		}); err != nil {
			return nil, err
		}
		return nil, failed
	}
	if err != nil {
		return nil, err
	}
	now := s.Now()
	browser := hashBrowserToken(req.BrowserToken)
	known := o.knowsBrowser(browser, now)
	prio := hashAnonymous
	if known {
		prio = hashTrusted // a browser that signed in before goes first
	}
	var ok bool
	if err := s.hashes.run(ctx, prio, func() { ok = checkPIN(o.PasswordHash, req.Password) }); err != nil {
		return nil, err
	}
	if !known && o.BackedOff(now) {
		// Checked all the same, so that this takes as long as a wrong
		// password; neither counted nor replicated.
		return nil, failed
	}
	if o.Disabled {
		if !ok {
			return nil, failed
		}
		return nil, ruleErr(CodeDisabled, "", "the account %q is disabled: ask a supervisor", o.ID)
	}
	cmd := operatorSignInCmd{Header: s.header(req.OperatorID), OperatorID: o.ID, PasswordOK: ok,
		PasswordVersion: o.PasswordVersion, Remote: req.Remote}
	var token, browserToken string
	if ok {
		browserToken = req.BrowserToken
		if browser == "" {
			browserToken = randomToken(browserTokenBytes)
			browser = hashBrowserToken(browserToken)
		}
		token = randomToken(sessionTokenBytes)
		cmd.SessionHash, cmd.ExpiresAt = hashSessionToken(token), cmd.At.Add(req.TTL)
	}
	if browser != "" {
		cmd.BrowserHash = browser
	}
	res, err := s.propose(ctx, cmdID, CmdOperatorSignIn, cmd)
	if err != nil {
		return nil, err
	}
	r, err := decodeResponse[loginResult](res.Response)
	if err != nil {
		return nil, err
	}
	switch r.Outcome {
	case loginSignedIn:
		if r.Session == nil || r.Session.Hash != cmd.SessionHash {
			return nil, ruleErr(CodeConflict, "id", "command %q signed in before; sign in again with a new command ID", cmdID)
		}
		return &SignIn{Token: token, Operator: publicOperator(o), Session: r.Session, BrowserToken: browserToken}, nil
	case loginDisabled:
		return nil, ruleErr(CodeDisabled, "", "the account %q is disabled: ask a supervisor", o.ID)
	}
	return nil, failed
}

// randomToken returns n random bytes, base64url. crypto/rand does not fail
// on Linux.
func randomToken(n int) string {
	raw := make([]byte, n)
	if _, err := rand.Read(raw); err != nil {
		panic("monitoring: no randomness: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(raw)
}

// appliedWaiter is a Cluster that can catch up with the leader before a
// local read.
type appliedWaiter interface {
	WaitApplied(ctx context.Context) error
}

func isNotFoundErr(err error) bool {
	var re *RuleError
	return errors.As(err, &re) && re.Code == CodeNotFound
}

// Logout ends the session of token on every node. Ending an unknown or
// ended session is not an error.
func (s *Service) Logout(ctx context.Context, cmdID, token string) error {
	if token == "" {
		return nil
	}
	h := hashSessionToken(token)
	var sess OperatorSession
	var found bool
	if err := s.view(func(txn *badger.Txn) (err error) {
		found, err = getJSON(txn, pOperatorSession+h, &sess)
		return err
	}); err != nil {
		return err
	}
	if !found || !sess.RevokedAt.IsZero() {
		return nil
	}
	_, err := s.propose(ctx, cmdID, CmdOperatorLogout, operatorLogoutCmd{Header: s.header(sess.OperatorID), SessionHash: h})
	if isNotFoundErr(err) {
		return nil
	}
	return err
}

// Authenticate returns the operator signed in with token and the session,
// reading this node's state: the session must be neither expired nor ended,
// and the account enabled. Otherwise it returns ErrNoSession.
func (s *Service) Authenticate(token string) (*Operator, *OperatorSession, error) {
	none := ruleErr(CodeNoSession, "", "not signed in, or the session has ended")
	if token == "" || len(token) > 128 {
		return nil, nil, none
	}
	var o *Operator
	var sess OperatorSession
	err := s.view(func(txn *badger.Txn) error {
		ok, err := getJSON(txn, pOperatorSession+hashSessionToken(token), &sess)
		if err != nil || !ok {
			return err
		}
		o, err = getOperator(txn, sess.OperatorID)
		if isNotFoundErr(err) {
			o, err = nil, nil
		}
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	if o == nil || o.Disabled || !sess.Valid(s.Now()) {
		return nil, nil, none
	}
	return publicOperator(o), &sess, nil
}

// Operator returns one operator, without its password hash.
func (s *Service) Operator(id string) (*Operator, error) {
	var o *Operator
	err := s.view(func(txn *badger.Txn) (err error) {
		o, err = getOperator(txn, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	return publicOperator(o), nil
}

// Operators returns every operator, by ID, without password hashes.
func (s *Service) Operators() ([]Operator, error) {
	return listRecords(s, pOperator, func(o *Operator) bool {
		o.PasswordHash, o.KnownBrowsers = "", nil
		return true
	})
}
