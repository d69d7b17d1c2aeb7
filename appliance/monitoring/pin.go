package monitoring

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// PINs are stored only as argon2id hashes in the PHC string format:
//
//	$argon2id$v=19$m=<KiB>,t=<passes>,p=<threads>$<salt>$<hash>
//
// salt and hash in unpadded standard base64. Checking a PIN is slow on
// purpose, so it happens in the Service before a command is proposed; the
// state machine only sees the outcome.

// PINParams are the argon2id cost parameters of new PIN hashes.
type PINParams struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8
	SaltLen uint32 // bytes
	KeyLen  uint32 // bytes
}

// DefaultPINParams are modest for a small appliance: about 19 MiB and two
// passes (OWASP's minimum for argon2id), tens of milliseconds per check.
var DefaultPINParams = PINParams{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// pinParams are the parameters used by hashPIN, and by checkPIN against a
// missing hash. Tests lower them.
var pinParams = DefaultPINParams

// Limits of a PIN's length, in digits.
const (
	MinPINLen = 4
	MaxPINLen = 8
)

// validatePIN reports why pin is not a PIN (4 to 8 digits), naming field.
func validatePIN(field, pin string) error {
	if len(pin) < MinPINLen || len(pin) > MaxPINLen {
		return invalid(field, "a PIN has %d to %d digits", MinPINLen, MaxPINLen)
	}
	for _, r := range pin {
		if r < '0' || r > '9' {
			return invalid(field, "a PIN has only digits")
		}
	}
	return nil
}

// hashPIN returns the argon2id hash of pin with a random salt.
func hashPIN(pin string) (string, error) { return hashWith(pinParams, pin) }

// hashWith returns the argon2id hash of secret with parameters p and a
// random salt.
func hashWith(p PINParams, secret string) (string, error) {
	pin := secret
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("cannot make a salt: %w", err)
	}
	key := argon2.IDKey([]byte(pin), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// pinHash is a decoded PIN hash.
type pinHash struct {
	p    PINParams
	salt []byte
	key  []byte
}

// parsePINHash decodes a hash made by hashPIN.
func parsePINHash(s string) (*pinHash, error) {
	f := strings.Split(s, "$")
	if len(f) != 6 || f[0] != "" || f[1] != "argon2id" {
		return nil, fmt.Errorf("not an argon2id hash")
	}
	var v int
	if _, err := fmt.Sscanf(f[2], "v=%d", &v); err != nil || v != argon2.Version {
		return nil, fmt.Errorf("unsupported argon2 version %q", f[2])
	}
	var h pinHash
	if _, err := fmt.Sscanf(f[3], "m=%d,t=%d,p=%d", &h.p.Memory, &h.p.Time, &h.p.Threads); err != nil {
		return nil, fmt.Errorf("bad parameters %q: %w", f[3], err)
	}
	// Bounds keep a corrupt record from costing a node its memory.
	if h.p.Memory < 8 || h.p.Memory > 1<<20 || h.p.Time < 1 || h.p.Time > 16 || h.p.Threads < 1 {
		return nil, fmt.Errorf("parameters %q out of range", f[3])
	}
	var err error
	b64 := base64.RawStdEncoding
	if h.salt, err = b64.DecodeString(f[4]); err != nil || len(h.salt) < 8 {
		return nil, fmt.Errorf("bad salt")
	}
	if h.key, err = b64.DecodeString(f[5]); err != nil || len(h.key) < 16 || len(h.key) > 64 {
		return nil, fmt.Errorf("bad hash")
	}
	h.p.KeyLen, h.p.SaltLen = uint32(len(h.key)), uint32(len(h.salt))
	return &h, nil
}

// dummySalt is hashed against when there is no hash to check, so that a
// missing PIN costs the same time as a present one.
var dummySalt = make([]byte, 16)

// checkPIN reports whether pin matches hash, in constant time. An empty or
// unreadable hash matches nothing, but costs the same work as a real check
// with the current parameters, so that timing tells nothing.
func checkPIN(hash, pin string) bool {
	h, err := parsePINHash(hash)
	if err != nil {
		p := pinParams
		argon2.IDKey([]byte(pin), dummySalt, p.Time, p.Memory, p.Threads, p.KeyLen)
		return false
	}
	key := argon2.IDKey([]byte(pin), h.salt, h.p.Time, h.p.Memory, h.p.Threads, h.p.KeyLen)
	return subtle.ConstantTimeCompare(key, h.key) == 1
}

// checkPINs checks pin against both of a worker's hashes, always doing both
// checks, so the time taken does not reveal which one matched.
func checkPINs(w *Worker, pin string) pinOutcome {
	safe := checkPIN(w.SafePINHash, pin)
	duress := checkPIN(w.DuressPINHash, pin)
	switch {
	case safe:
		return pinSafe
	case duress:
		return pinDuress
	}
	return pinWrong
}
