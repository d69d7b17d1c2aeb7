package monitoring

// API tokens: the credentials of tools and integrations that call the REST
// API (docs/api.md) without a console sign-in. They are replicated like
// operator accounts, so that a token made through one node works on every
// node, and a disabled one stops working on every node.
//
// A token is shown to whoever makes it once, as "vgt_<id>_<secret>": the ID
// finds the record, and the secret is 32 random bytes. The state keeps the
// secret's SHA-256 only, so a copy of the state authenticates nobody. A
// fast hash is right here, unlike for passwords and PINs (argon2id): the
// secret is 256 random bits, so there is nothing for a slow hash to protect
// from guessing, and every API request checks one. The secret is made and
// hashed by the Service before proposing; the state machine sees the hash.
//
// A token has a role, as an operator has (operator < supervisor < admin),
// and a name unique among tokens: the audit log records its changes as
// "token:<name>". A disabled token stays disabled (make a new one); its
// record stays, so that the audit log's names keep their meaning.
//
// Keys (a prefix, once used, keeps its meaning forever):
//
//	apitoken/<id>    APIToken

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// pAPIToken is the key prefix of API tokens.
const pAPIToken = "apitoken/"

// Rules of API tokens. They are part of the state machine's behaviour:
// changing them changes what replaying the log gives, so they change only
// with a new command type.
const (
	// MaxAPITokens bounds the tokens kept, disabled ones included.
	MaxAPITokens = 1000
	// MaxAPITokenNameLen bounds a token's name.
	MaxAPITokenNameLen = 64
	// maxAPITokenIDLen bounds a token's ID (the Service makes 16 hex
	// digits).
	maxAPITokenIDLen = 64
)

// apiTokenCatchUp bounds the wait of AuthenticateAPIToken for this node to
// catch up with the leader before it says a token does not exist: a
// request with an unknown token must not hang for a whole election.
const apiTokenCatchUp = 2 * time.Second

// APITokenPrefix begins every API token string.
const APITokenPrefix = "vgt_"

// apiTokenSecretBytes is the length of a token's secret before encoding.
const apiTokenSecretBytes = 32

// apiTokenIDBytes is the length of a token's ID before hex encoding.
const apiTokenIDBytes = 8

// TokenActorPrefix begins the actor of a change made with an API token:
// "token:<name>".
const TokenActorPrefix = "token:"

// CodeBadToken refuses a bearer token that is malformed, unknown, wrong or
// disabled. Append only, like errors.go's codes.
const CodeBadToken Code = "bad_token"

// ErrBadToken matches every refusal of an API token, for errors.Is.
var ErrBadToken = &RuleError{Code: CodeBadToken}

// APIToken is a credential for the REST API. Hash is the hex SHA-256 of
// the secret; replies leave it out.
type APIToken struct {
	ID         string       `json:"id"`
	Name       string       `json:"name"`
	Role       OperatorRole `json:"role"`
	Hash       string       `json:"hash,omitempty"`
	CreatedBy  string       `json:"created_by"`
	CreatedAt  time.Time    `json:"created_at"`
	Disabled   bool         `json:"disabled"`
	DisabledBy string       `json:"disabled_by,omitempty"`
	DisabledAt time.Time    `json:"disabled_at,omitzero"`
}

// Actor is what the audit log records of changes made with the token.
func (t *APIToken) Actor() string { return TokenActorPrefix + t.Name }

// publicAPIToken returns a copy of t without its hash.
func publicAPIToken(t *APIToken) *APIToken {
	p := *t
	p.Hash = ""
	return &p
}

// createAPITokenCmd makes an API token. Only ID, Name, Role and Hash of
// Token are read; the creator and the time come from the header.
type createAPITokenCmd struct {
	Header
	Token APIToken `json:"token"`
}

// disableAPITokenCmd disables an API token for good.
type disableAPITokenCmd struct {
	Header
	TokenID string `json:"token_id"`
}

// validAPITokenID reports why id cannot be a token's ID: 1 to
// maxAPITokenIDLen lowercase letters and digits, so that it cannot contain
// the '_' that ends it in the token string.
func validAPITokenID(field, id string) error {
	switch {
	case id == "":
		return invalid(field, "must not be empty")
	case len(id) > maxAPITokenIDLen:
		return invalid(field, "is %d bytes, longer than %d", len(id), maxAPITokenIDLen)
	case strings.IndexFunc(id, func(r rune) bool { return !('a' <= r && r <= 'z' || '0' <= r && r <= '9') }) >= 0:
		return invalid(field, "%q must be lowercase letters and digits", id)
	}
	return nil
}

// validateAPIToken checks a new token's own fields.
func validateAPIToken(t *APIToken) error {
	if err := validAPITokenID("token.id", t.ID); err != nil {
		return err
	}
	if err := validID("token.name", t.Name); err != nil {
		return err
	}
	if len(t.Name) > MaxAPITokenNameLen {
		return invalid("token.name", "is %d bytes, longer than %d", len(t.Name), MaxAPITokenNameLen)
	}
	if !t.Role.Valid() {
		return invalid("token.role", "%q is not one of %v", t.Role, OperatorRoles)
	}
	return nil
}

// applyCreateAPIToken makes a token. Rules: the fields are valid; neither
// the ID nor the name is taken, by any token, disabled ones included; there
// are fewer than MaxAPITokens.
func applyCreateAPIToken(c *applyCtx, body []byte) ([]byte, error) {
	var cmd createAPITokenCmd
	if err := c.decode(body, &cmd); err != nil {
		return nil, err
	}
	in := cmd.Token
	if err := validateAPIToken(&in); err != nil {
		return nil, err
	}
	if err := validSessionHash("token.hash", in.Hash); err != nil {
		return nil, err
	}
	n := 0
	var clash string
	err := scanPrefix(c.txn, pAPIToken, true, func(_, val []byte) (bool, error) {
		var t APIToken
		if err := json.Unmarshal(val, &t); err != nil {
			return false, err
		}
		n++
		switch {
		case t.ID == in.ID:
			clash = "token.id"
		case t.Name == in.Name && clash == "":
			clash = "token.name"
		}
		return true, nil
	})
	switch {
	case err != nil:
		return nil, err
	case clash == "token.id":
		return nil, ruleErr(CodeConflict, clash, "API token %q exists already", in.ID)
	case clash == "token.name":
		return nil, ruleErr(CodeConflict, clash, "an API token named %q exists already (perhaps disabled): choose another name", in.Name)
	case n >= MaxAPITokens:
		return nil, ruleErr(CodeConflict, "token", "there are %d API tokens already, the most kept", n)
	}

	// Every rule has been checked: write.
	t := APIToken{ID: in.ID, Name: in.Name, Role: in.Role, Hash: in.Hash, CreatedBy: c.hdr.Actor, CreatedAt: c.now()}
	if err := putJSON(c.txn, pAPIToken+t.ID, &t); err != nil {
		return nil, err
	}
	if err := c.audit(CmdCreateAPIToken, "apitoken/"+t.ID, fmt.Sprintf("created %q with role %s", t.Name, t.Role)); err != nil {
		return nil, err
	}
	return json.Marshal(publicAPIToken(&t))
}

// applyDisableAPIToken disables a token. Disabling a disabled token
// changes nothing.
func applyDisableAPIToken(c *applyCtx, body []byte) ([]byte, error) {
	var cmd disableAPITokenCmd
	if err := c.decode(body, &cmd); err != nil {
		return nil, err
	}
	if err := validAPITokenID("token_id", cmd.TokenID); err != nil {
		return nil, err
	}
	var t APIToken
	found, err := getJSON(c.txn, pAPIToken+cmd.TokenID, &t)
	switch {
	case err != nil:
		return nil, err
	case !found:
		return nil, ruleErr(CodeNotFound, "token_id", "no API token %q", cmd.TokenID)
	case t.Disabled:
		return json.Marshal(publicAPIToken(&t))
	}
	t.Disabled, t.DisabledBy, t.DisabledAt = true, c.hdr.Actor, c.now()
	if err := putJSON(c.txn, pAPIToken+t.ID, &t); err != nil {
		return nil, err
	}
	if err := c.audit(CmdDisableAPIToken, "apitoken/"+t.ID, fmt.Sprintf("disabled %q", t.Name)); err != nil {
		return nil, err
	}
	return json.Marshal(publicAPIToken(&t))
}

// --- The Service ---

// NewAPIToken is a token just made. Secret is the whole token string,
// "vgt_<id>_<secret>": it is shown this once and never stored.
type NewAPIToken struct {
	Token  *APIToken `json:"token"` // without its hash
	Secret string    `json:"secret"`
}

// HashAPITokenSecret returns the hex SHA-256 of a token's secret, as the
// state keeps it.
func HashAPITokenSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// IsAPIToken reports whether s has the form of an API token string, so
// that a caller can tell it from other bearer tokens.
func IsAPIToken(s string) bool { return strings.HasPrefix(s, APITokenPrefix) }

// ParseAPIToken splits "vgt_<id>_<secret>" into the ID and the secret.
func ParseAPIToken(s string) (id, secret string, err error) {
	rest, ok := strings.CutPrefix(s, APITokenPrefix)
	if !ok {
		return "", "", ruleErr(CodeBadToken, "", "the bearer token is not an API token: one looks like %s<id>_<secret>", APITokenPrefix)
	}
	id, secret, ok = strings.Cut(rest, "_")
	if !ok || secret == "" || len(secret) > 128 || validAPITokenID("id", id) != nil {
		return "", "", ruleErr(CodeBadToken, "", "the API token is malformed: one looks like %s<id>_<secret>", APITokenPrefix)
	}
	return id, secret, nil
}

// CreateAPIToken makes a token with a new random ID and secret, and returns
// it with the token string, which is shown this once. actor is who makes
// it, for the audit log. A retry with the same cmdID cannot show the secret
// again: it is refused with CodeConflict.
func (s *Service) CreateAPIToken(ctx context.Context, cmdID, actor, name string, role OperatorRole) (*NewAPIToken, error) {
	if strings.TrimSpace(actor) == "" {
		return nil, invalid("actor", "who makes the API token is missing")
	}
	idb := make([]byte, apiTokenIDBytes)
	raw := make([]byte, apiTokenSecretBytes)
	if _, err := rand.Read(idb); err != nil {
		return nil, fmt.Errorf("cannot make an API token: %w", err)
	}
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("cannot make an API token: %w", err)
	}
	secret := base64.RawURLEncoding.EncodeToString(raw)
	t := APIToken{ID: hex.EncodeToString(idb), Name: name, Role: role, Hash: HashAPITokenSecret(secret)}
	if err := validateAPIToken(&t); err != nil {
		return nil, err
	}
	res, err := s.propose(ctx, cmdID, CmdCreateAPIToken, createAPITokenCmd{Header: s.header(actor), Token: t})
	if err != nil {
		return nil, err
	}
	out, err := decodeResponse[APIToken](res.Response)
	if err != nil {
		return nil, err
	}
	if out.ID != t.ID {
		return nil, ruleErr(CodeConflict, "id", "command %q made API token %s before, whose secret was shown then; "+
			"make another with a new command ID", cmdID, out.ID)
	}
	return &NewAPIToken{Token: out, Secret: APITokenPrefix + t.ID + "_" + secret}, nil
}

// DisableAPIToken disables a token on every node, for good, and returns
// it. Disabling a disabled token changes nothing.
func (s *Service) DisableAPIToken(ctx context.Context, cmdID, actor, id string) (*APIToken, error) {
	if strings.TrimSpace(actor) == "" {
		return nil, invalid("actor", "who disables the API token is missing")
	}
	if err := validAPITokenID("token_id", id); err != nil {
		return nil, err
	}
	res, err := s.propose(ctx, cmdID, CmdDisableAPIToken, disableAPITokenCmd{Header: s.header(actor), TokenID: id})
	if err != nil {
		return nil, err
	}
	return decodeResponse[APIToken](res.Response)
}

// APITokens returns every token, disabled ones included, by ID, without
// their hashes.
func (s *Service) APITokens() ([]APIToken, error) {
	return listRecords(s, pAPIToken, func(t *APIToken) bool {
		t.Hash = ""
		return true
	})
}

// AuthenticateAPIToken returns the token whose string is token, without
// its hash, reading this node's state: the token must exist, its secret
// match, and it must not be disabled. A token not found is looked for once
// more after this node has caught up with the leader (waiting at most
// apiTokenCatchUp), in case it was made a moment ago through another node;
// when this node cannot catch up (no leader, or too far behind) that is an
// error, not a refusal: the token may well be good. Every refusal is a
// *RuleError with CodeBadToken whose message says what is wrong.
func (s *Service) AuthenticateAPIToken(ctx context.Context, token string) (*APIToken, error) {
	id, secret, err := ParseAPIToken(token)
	if err != nil {
		return nil, err
	}
	var t APIToken
	var found bool
	read := func(txn *badger.Txn) (err error) {
		found, err = getJSON(txn, pAPIToken+id, &t)
		return err
	}
	err = s.view(read)
	if w, ok := s.cluster.(appliedWaiter); ok && err == nil && !found {
		wctx, cancel := context.WithTimeout(ctx, apiTokenCatchUp)
		werr := w.WaitApplied(wctx)
		cancel()
		if werr != nil {
			return nil, fmt.Errorf("API token %s is not in this node's state, and the node cannot catch up with the leader to look again: %w", id, werr)
		}
		err = s.view(read)
	}
	switch {
	case err != nil:
		return nil, err
	case !found:
		return nil, ruleErr(CodeBadToken, "", "no API token %s: it was never made here", id)
	case subtle.ConstantTimeCompare([]byte(HashAPITokenSecret(secret)), []byte(t.Hash)) != 1:
		return nil, ruleErr(CodeBadToken, "", "the secret of API token %s is wrong", id)
	case t.Disabled:
		return nil, ruleErr(CodeBadToken, "", "API token %s (%s) was disabled by %s at %s UTC", id, t.Name, t.DisabledBy,
			t.DisabledAt.UTC().Format("2006-01-02 15:04"))
	}
	return publicAPIToken(&t), nil
}
