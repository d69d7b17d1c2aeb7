package monitoring

// Device credentials: the secret a device gives as its MQTT password. Only
// an argon2id hash is replicated (pin.go's format); the secret is made by
// the Service and shown once.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/crypto/argon2"
)

// DeviceSecretParams are the argon2id parameters of device secret hashes.
// A secret is 256 random bits, so the hash need not be slow against
// guessing; it is checked on every MQTT CONNECT, so it is cheaper than a
// PIN hash (about 4 MiB and one pass).
var DeviceSecretParams = PINParams{Memory: 4 * 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// deviceSecretBytes is the length of a new secret before encoding.
const deviceSecretBytes = 32

// MaxDeviceSecretLen bounds a secret given to CheckDeviceSecret.
const MaxDeviceSecretLen = 256

// deviceSecret is the stored credential of a device (devsecret/<id>).
type deviceSecret struct {
	DeviceID string    `json:"device_id"`
	Hash     string    `json:"hash"`    // argon2id, pin.go's format
	Version  uint64    `json:"version"` // counts the secrets set
	SetAt    time.Time `json:"set_at"`
}

// setDeviceSecretCmd sets the hash of a device's secret.
type setDeviceSecretCmd struct {
	Header
	DeviceID string `json:"device_id"`
	Hash     string `json:"hash"`
}

// setSecretResult is the state machine's response to SetDeviceSecret.
type setSecretResult struct {
	DeviceID string `json:"device_id"`
	Hash     string `json:"hash"`
	Version  uint64 `json:"version"`
}

// applySetDeviceSecret stores the hash of a known device's secret,
// replacing any earlier one.
func applySetDeviceSecret(c *applyCtx, body []byte) ([]byte, error) {
	var cmd setDeviceSecretCmd
	if err := c.decode(body, &cmd); err != nil {
		return nil, err
	}
	if err := validID("device_id", cmd.DeviceID); err != nil {
		return nil, err
	}
	if cmd.Hash == "" {
		return nil, invalid("hash", "must not be empty")
	}
	if _, err := getDevice(c.txn, cmd.DeviceID); err != nil {
		return nil, err
	}
	var rec deviceSecret
	if _, err := getJSON(c.txn, pDeviceSecret+cmd.DeviceID, &rec); err != nil {
		return nil, err
	}
	rec = deviceSecret{DeviceID: cmd.DeviceID, Hash: cmd.Hash, Version: rec.Version + 1, SetAt: c.now()}
	if err := putJSON(c.txn, pDeviceSecret+cmd.DeviceID, &rec); err != nil {
		return nil, err
	}
	if err := c.audit(CmdSetDeviceSecret, "device/"+cmd.DeviceID, fmt.Sprintf("secret set (version %d)", rec.Version)); err != nil {
		return nil, err
	}
	return json.Marshal(setSecretResult{DeviceID: rec.DeviceID, Hash: rec.Hash, Version: rec.Version})
}

// SetDeviceSecret makes a new random secret for a registered device,
// replicates only its hash, and returns the secret: it is shown this once.
// The device's earlier secret stops working. A retry with the same cmdID
// cannot show the first secret again and returns a *RuleError with
// CodeConflict: set a new one with a new command ID.
func (s *Service) SetDeviceSecret(ctx context.Context, cmdID, actor, deviceID string) (string, error) {
	if err := validID("device_id", deviceID); err != nil {
		return "", err
	}
	if actor == "" {
		return "", invalid("actor", "who sets the secret is missing")
	}
	raw := make([]byte, deviceSecretBytes)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("cannot make a device secret: %w", err)
	}
	secret := base64.RawURLEncoding.EncodeToString(raw)
	hash, err := s.hashSecret(ctx, DeviceSecretParams, secret)
	if err != nil {
		return "", err
	}
	res, err := s.propose(ctx, cmdID, CmdSetDeviceSecret, setDeviceSecretCmd{Header: s.header(actor), DeviceID: deviceID, Hash: hash})
	if err != nil {
		return "", err
	}
	r, err := decodeResponse[setSecretResult](res.Response)
	if err != nil {
		return "", err
	}
	if r.Hash != hash {
		return "", ruleErr(CodeConflict, "id", "command %q already set a secret, which was shown once; use a new command ID to set another", cmdID)
	}
	return secret, nil
}

// CheckDeviceSecret reports whether secret is deviceID's current secret
// (AuthenticateDevice, with no deadline but the pool's wait).
func (s *Service) CheckDeviceSecret(deviceID, secret string) bool {
	return s.AuthenticateDevice(context.Background(), deviceID, secret) == nil
}

// AuthenticateDevice checks that secret is deviceID's current secret,
// reading this node's state, and returns nil, ErrBadDeviceSecret (an
// unknown device, one without a secret, or a wrong secret, not told
// apart), or ErrBusy when the node's hash pool has no place for this
// anonymous check in time. A successful check is remembered for the life
// of the process, per device and stored hash, so a device that reconnects
// costs a SHA-256, not an argon2id hash, and never waits for the pool.
func (s *Service) AuthenticateDevice(ctx context.Context, deviceID, secret string) error {
	if deviceID == "" || secret == "" || len(secret) > MaxDeviceSecretLen {
		return ErrBadDeviceSecret
	}
	var rec deviceSecret
	var found bool
	err := s.view(func(txn *badger.Txn) (err error) {
		found, err = getJSON(txn, pDeviceSecret+deviceID, &rec)
		return err
	})
	if err != nil || !found {
		// The same work as a real check, so that timing does not tell
		// which device IDs have secrets.
		p := DeviceSecretParams
		if err := s.hashes.run(ctx, hashAnonymous, func() {
			argon2.IDKey([]byte(secret), dummySalt, p.Time, p.Memory, p.Threads, p.KeyLen)
		}); err != nil {
			return err
		}
		return ErrBadDeviceSecret
	}
	digest := sha256.Sum256([]byte(secret))
	if s.secrets.match(deviceID, rec.Hash, digest) {
		return nil
	}
	var ok bool
	if err := s.hashes.run(ctx, hashAnonymous, func() { ok = checkPIN(rec.Hash, secret) }); err != nil {
		return err
	}
	if !ok {
		return ErrBadDeviceSecret
	}
	s.secrets.remember(deviceID, rec.Hash, digest)
	return nil
}

// secretCache remembers, per device, the stored hash and the SHA-256 of
// the secret that last matched it. Its zero value is ready to use.
type secretCache struct {
	mu sync.Mutex
	m  map[string]secretEntry
}

type secretEntry struct {
	hash   string
	digest [sha256.Size]byte
}

func (c *secretCache) match(deviceID, hash string, digest [sha256.Size]byte) bool {
	c.mu.Lock()
	e, ok := c.m[deviceID]
	c.mu.Unlock()
	return ok && e.hash == hash && subtle.ConstantTimeCompare(e.digest[:], digest[:]) == 1
}

func (c *secretCache) remember(deviceID, hash string, digest [sha256.Size]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]secretEntry)
	}
	c.m[deviceID] = secretEntry{hash: hash, digest: digest}
}
