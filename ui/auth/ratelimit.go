package auth

import (
	"math"
	"strconv"
	"sync"
	"time"
)

// Sign-in attempts per address: a burst of loginBurst, then one per
// loginRefill. The replicated lockout (five wrong passwords lock an
// account) protects each account; this slows guessing across accounts.
const (
	loginBurst  = 10
	loginRefill = 6 * time.Second
	// Wrong API bearer tokens per address: a burst of badTokenBurst, then
	// one per badTokenRefill; past that the API answers 429 before it
	// looks the token up. A secret cannot be guessed (32 random bytes);
	// what this bounds is the work a wrong token costs, since a token ID
	// this node does not know makes it catch up with the leader first (a
	// read-index round, up to 2 s) in case the token was just made.
	badTokenBurst  = 20
	badTokenRefill = 3 * time.Second
	// maxLimited bounds the addresses remembered; past it, those with a
	// full bucket are forgotten.
	maxLimited = 10000
)

// rateLimiter is a token bucket per address, in this node's memory.
type rateLimiter struct {
	burst  float64
	refill time.Duration
	now    func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newRateLimiter(burst int, refill time.Duration) *rateLimiter {
	return &rateLimiter{burst: float64(burst), refill: refill, now: time.Now, buckets: map[string]*bucket{}}
}

// allow takes a token for addr (a nil limiter always allows). When there
// is none it returns false and how many seconds until there is, as text
// for Retry-After.
func (l *rateLimiter) allow(addr string) (bool, string) {
	if l == nil {
		return true, "" // no limit
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b, ok := l.buckets[addr]
	if !ok {
		if len(l.buckets) >= maxLimited {
			l.forgetFull(now)
		}
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[addr] = b
	}
	b.tokens = min(l.burst, b.tokens+float64(now.Sub(b.at))/float64(l.refill))
	b.at = now
	if b.tokens < 1 {
		wait := time.Duration((1 - b.tokens) * float64(l.refill))
		return false, strconv.Itoa(max(1, int(math.Ceil(wait.Seconds()))))
	}
	b.tokens--
	return true, ""
}

// blocked reports, without taking a token (a nil limiter never blocks), whether addr has none left,
// and how many seconds until it has one, as text for Retry-After.
func (l *rateLimiter) blocked(addr string) (bool, string) {
	if l == nil {
		return false, ""
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[addr]
	if !ok {
		return false, ""
	}
	tokens := min(l.burst, b.tokens+float64(l.now().Sub(b.at))/float64(l.refill))
	if tokens >= 1 {
		return false, ""
	}
	wait := time.Duration((1 - tokens) * float64(l.refill))
	return true, strconv.Itoa(max(1, int(math.Ceil(wait.Seconds()))))
}

// forgetFull drops the buckets that have refilled.
func (l *rateLimiter) forgetFull(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+float64(now.Sub(b.at))/float64(l.refill) >= l.burst {
			delete(l.buckets, k)
		}
	}
}
