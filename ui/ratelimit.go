package ui

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

// allow takes a token for addr. When there is none it returns false and
// how many seconds until there is, as text for Retry-After.
func (l *rateLimiter) allow(addr string) (bool, string) {
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

// forgetFull drops the buckets that have refilled.
func (l *rateLimiter) forgetFull(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+float64(now.Sub(b.at))/float64(l.refill) >= l.burst {
			delete(l.buckets, k)
		}
	}
}
