package provisioning

import (
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
// joiner's certificate. The cluster keeps only the secret's hash, with the
// token's expiry and how many uses are left (DESIGN.md).

// Join token limits.
const (
	// JoinTokenPrefix begins every join token (version 1).
	JoinTokenPrefix = "vjt1_"
	// DefaultJoinTokenTTL is how long a join token lasts unless told
	// otherwise: long enough to carry it to the next appliance.
	DefaultJoinTokenTTL = time.Hour
	// MaxJoinTokenTTL bounds a join token's life.
	MaxJoinTokenTTL = 7 * 24 * time.Hour
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
}

// wireToken is the token's JSON inside its text form.
type wireToken struct {
	C string   `json:"c"`
	F string   `json:"f"`
	A []string `json:"a"`
	I string   `json:"i"`
	S string   `json:"s"`
	E int64    `json:"e"`
}

// NewJoinToken makes a join token of ca's cluster, for the member
// addresses addrs, lasting ttl (DefaultJoinTokenTTL when 0).
func NewJoinToken(ca *CA, addrs []string, ttl time.Duration, now time.Time) (*JoinToken, error) {
	if ttl == 0 {
		ttl = DefaultJoinTokenTTL
	}
	if ttl < 0 || ttl > MaxJoinTokenTTL {
		return nil, fmt.Errorf("a join token's lifetime %s is outside 0..%s", ttl, MaxJoinTokenTTL)
	}
	t := &JoinToken{ClusterID: ca.ClusterID, CAFingerprint: ca.Fingerprint(), Addrs: addrs,
		ID: randomText(8), Secret: randomText(32), Expires: now.Add(ttl).UTC().Truncate(time.Second)}
	if err := t.validate(); err != nil {
		return nil, err
	}
	return t, nil
}

// String is the token's text form: JoinTokenPrefix and base64url JSON.
func (t *JoinToken) String() string {
	b, _ := json.Marshal(wireToken{C: t.ClusterID, F: t.CAFingerprint, A: t.Addrs, I: t.ID, S: t.Secret, E: t.Expires.Unix()})
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
	t := &JoinToken{ClusterID: w.C, CAFingerprint: w.F, Addrs: w.A, ID: w.I, Secret: w.S, Expires: time.Unix(w.E, 0).UTC()}
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
	return nil
}

// Expired reports whether the token has run out at now.
func (t *JoinToken) Expired(now time.Time) bool { return !now.Before(t.Expires) }

// SecretHash is what the cluster keeps of the token's secret: SHA-256
// (the secret is 256 random bits, so a fast hash is enough).
func (t *JoinToken) SecretHash() []byte { return hashSecret(t.Secret) }

// CheckSecret reports, in constant time, whether secret is the one whose
// hash the cluster kept.
func CheckSecret(hash []byte, secret string) bool {
	return len(hash) == sha256.Size && subtle.ConstantTimeCompare(hash, hashSecret(secret)) == 1
}

func hashSecret(s string) []byte {
	sum := sha256.Sum256([]byte("vigil join token v1\x00" + s))
	return sum[:]
}

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
