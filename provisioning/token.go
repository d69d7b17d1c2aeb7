package provisioning

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Join tokens. `vigil init` prints one; `vigil join <token>` on a new
// appliance uses it. The token carries what the joiner needs to find and
// trust the cluster (its ID, the CA's fingerprint, the members'
// addresses), and a secret that the cluster checks before it signs the
// joiner's certificate.
//
// The secret is an HMAC, under a key derived from the CA's private key, of
// everything else the token says (its ID, cluster, expiry and uses). So
// any appliance that holds the CA key checks a token with no record of it,
// `vigil init` can print one before the cluster runs, and nobody can
// change a token's expiry or uses without the CA key. What needs a record
// is how often a token was used: the cluster counts uses in its
// replicated state and refuses one past the token's limit (DESIGN.md).

// Join token limits.
const (
	// JoinTokenPrefix begins every join token (version 1).
	JoinTokenPrefix = "vjt1_"
	// DefaultJoinTokenTTL is how long a join token lasts unless told
	// otherwise: long enough to carry it to the next appliance.
	DefaultJoinTokenTTL = time.Hour
	// MaxJoinTokenTTL bounds a join token's life.
	MaxJoinTokenTTL = 7 * 24 * time.Hour
	// DefaultJoinTokenUses is how many appliances a token lets join unless
	// told otherwise: one.
	DefaultJoinTokenUses = 1
	// MaxJoinTokenUses bounds the appliances one token lets join.
	MaxJoinTokenUses = 16
	// MaxJoinTokenLen bounds the text a node will try to parse.
	MaxJoinTokenLen = 2048
	// maxJoinAddrs bounds the addresses a token carries.
	maxJoinAddrs = 16
)

// ErrBadJoinToken refuses text that is not a join token; the error's
// message says what is wrong with it.
var ErrBadJoinToken = errors.New("not a valid join token")

// JoinToken is a join token's content.
type JoinToken struct {
	ClusterID string
	// CAFingerprint is the SHA-256 of the cluster CA's certificate, hex:
	// the joiner trusts the cluster only if it presents this CA.
	CAFingerprint string
	// Addrs are the members' addresses (host:port of their HTTPS API) at
	// the time the token was made; discovery may find others.
	Addrs []string
	// ID names the token in the cluster's records; Secret proves it.
	ID, Secret string
	Expires    time.Time
	// Uses is how many appliances may join with the token.
	Uses int
}

// wireToken is the token's JSON inside its text form.
type wireToken struct {
	C string   `json:"c"`
	F string   `json:"f"`
	A []string `json:"a"`
	I string   `json:"i"`
	S string   `json:"s"`
	E int64    `json:"e"`
	N int      `json:"n"`
}

// NewJoinToken makes a join token of ca's cluster, for the member
// addresses addrs, lasting ttl (DefaultJoinTokenTTL when 0) and letting
// uses appliances join (DefaultJoinTokenUses when 0). It needs the CA key.
func NewJoinToken(ca *CA, addrs []string, ttl time.Duration, uses int, now time.Time) (*JoinToken, error) {
	if ca.key == nil {
		return nil, errors.New("this appliance does not hold the CA key, so it cannot make a join token")
	}
	if ttl == 0 {
		ttl = DefaultJoinTokenTTL
	}
	if uses == 0 {
		uses = DefaultJoinTokenUses
	}
	if ttl < 0 || ttl > MaxJoinTokenTTL {
		return nil, fmt.Errorf("a join token's lifetime %s is outside 0..%s", ttl, MaxJoinTokenTTL)
	}
	if uses < 0 || uses > MaxJoinTokenUses {
		return nil, fmt.Errorf("a join token's uses %d are outside 1..%d", uses, MaxJoinTokenUses)
	}
	t := &JoinToken{ClusterID: ca.ClusterID, CAFingerprint: ca.Fingerprint(), Addrs: addrs,
		ID: randomText(8), Expires: now.Add(ttl).UTC().Truncate(time.Second), Uses: uses}
	t.Secret = ca.tokenMAC(t)
	if err := t.validate(); err != nil {
		return nil, err
	}
	return t, nil
}

// CheckJoinToken reports why t is not a good token of this CA at now: of
// another cluster or CA, run out, or with a secret that this CA's key did
// not make (a forged or changed token). It needs the CA key. How often the
// token was used is the cluster's to count.
func (ca *CA) CheckJoinToken(t *JoinToken, now time.Time) error {
	switch {
	case ca.key == nil:
		return errors.New("this appliance does not hold the CA key, so it cannot check a join token")
	case t.ClusterID != ca.ClusterID:
		return fmt.Errorf("%w: it is for cluster %q, this is %q", ErrBadJoinToken, t.ClusterID, ca.ClusterID)
	case t.CAFingerprint != ca.Fingerprint():
		return fmt.Errorf("%w: it pins another CA", ErrBadJoinToken)
	case subtle.ConstantTimeCompare([]byte(ca.tokenMAC(t)), []byte(t.Secret)) != 1:
		return fmt.Errorf("%w: its secret is wrong (the token was changed, or made by another cluster)", ErrBadJoinToken)
	case t.Expired(now):
		return fmt.Errorf("%w: it expired at %s; make a new one with vigil token join", ErrBadJoinToken, t.Expires.Format(time.RFC3339))
	}
	return nil
}

// tokenMAC is the secret of t: an HMAC-SHA256, under a key derived from
// the CA's private key, of the fields that the secret vouches for.
func (ca *CA) tokenMAC(t *JoinToken) string {
	m := hmac.New(sha256.New, ca.derivedKey("vigil join token v1"))
	fmt.Fprintf(m, "%s\x00%s\x00%s\x00%d\x00%d", t.ID, t.ClusterID, t.CAFingerprint, t.Expires.Unix(), t.Uses)
	return hex.EncodeToString(m.Sum(nil))
}

// String is the token's text form: JoinTokenPrefix and base64url JSON.
func (t *JoinToken) String() string {
	b, _ := json.Marshal(wireToken{C: t.ClusterID, F: t.CAFingerprint, A: t.Addrs, I: t.ID, S: t.Secret, E: t.Expires.Unix(), N: t.Uses})
	return JoinTokenPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// ParseJoinToken reads a join token's text form. It checks the form only:
// whether the token is still good is the cluster's to say (CheckSecret,
// and the record of uses).
func ParseJoinToken(s string) (*JoinToken, error) {
	s = strings.TrimSpace(s)
	if len(s) > MaxJoinTokenLen {
		return nil, fmt.Errorf("%w: it is %d bytes, longer than %d", ErrBadJoinToken, len(s), MaxJoinTokenLen)
	}
	body, ok := strings.CutPrefix(s, JoinTokenPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: it does not begin with %q (copy the whole token vigil init printed)", ErrBadJoinToken, JoinTokenPrefix)
	}
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return nil, fmt.Errorf("%w: it is cut short or changed (%v)", ErrBadJoinToken, err)
	}
	var w wireToken
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadJoinToken, err)
	}
	t := &JoinToken{ClusterID: w.C, CAFingerprint: w.F, Addrs: w.A, ID: w.I, Secret: w.S, Expires: time.Unix(w.E, 0).UTC(), Uses: w.N}
	if err := t.validate(); err != nil {
		return nil, err
	}
	return t, nil
}

// validate checks each field, naming the one at fault.
func (t *JoinToken) validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrBadJoinToken, fmt.Sprintf(format, a...))
	}
	if err := checkID("cluster ID", t.ClusterID); err != nil {
		return bad("%v", err)
	}
	if b, err := hex.DecodeString(t.CAFingerprint); err != nil || len(b) != sha256.Size {
		return bad("the CA fingerprint %q is not 64 hex digits", t.CAFingerprint)
	}
	if len(t.Addrs) > maxJoinAddrs {
		return bad("%d addresses, more than %d", len(t.Addrs), maxJoinAddrs)
	}
	for _, a := range t.Addrs {
		host, port, err := net.SplitHostPort(a)
		if p, perr := strconv.ParseUint(port, 10, 16); err != nil || host == "" || perr != nil || p == 0 {
			return bad("address %q is not host:port", a)
		}
	}
	if len(t.ID) != 16 || !isHex(t.ID) {
		return bad("the token ID %q is not 16 hex digits", t.ID)
	}
	if len(t.Secret) != 64 || !isHex(t.Secret) {
		return bad("the secret is not 64 hex digits")
	}
	if t.Expires.IsZero() || t.Expires.Unix() <= 0 {
		return bad("it has no expiry")
	}
	if t.Uses < 1 || t.Uses > MaxJoinTokenUses {
		return bad("its uses %d are outside 1..%d", t.Uses, MaxJoinTokenUses)
	}
	return nil
}

// Expired reports whether the token has run out at now.
func (t *JoinToken) Expired(now time.Time) bool { return !now.Before(t.Expires) }

// randomText returns n random bytes in hex.
func randomText(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("provisioning: no randomness: " + err.Error())
	}
	return hex.EncodeToString(b)
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}
