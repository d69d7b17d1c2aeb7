package monitoring

// The pool of password hashes. An argon2id check costs memory (19 MiB for
// a password or a PIN, 4 MiB for a device secret) and CPU, and anyone who
// can reach a listener can ask for one: a wrong MQTT password, a console
// sign-in. Every hash a node computes therefore runs inside one pool per
// Service, which runs at most its limit at once (the node's CPUs, so the
// memory is bounded by limit × the largest hash) and lets a bounded queue
// wait. A caller who is not yet authenticated waits at most a short while
// and is then refused with ErrBusy (the broker answers CONNACK "server
// busy", the console 503 with Retry-After); a caller who has proved who it
// is (a signed-in device's PIN, an administrator setting a password, a
// browser that signed in to the account before) goes ahead of every
// anonymous one and waits as long as its context lets it.

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of the hash pool.
const (
	// DefaultHashWait is how long an anonymous check waits for a place
	// before ErrBusy.
	DefaultHashWait = 2 * time.Second
	// hashQueuePerSlot bounds the anonymous checks waiting, per place in
	// the pool; beyond it a check is refused at once, so that a flood
	// costs neither memory nor goroutines held for DefaultHashWait.
	hashQueuePerSlot = 8
)

// hashPriority orders the waiting checks.
type hashPriority int

const (
	// hashAnonymous is a check made for a caller not yet authenticated:
	// it waits at most the pool's wait, in a bounded queue.
	hashAnonymous hashPriority = iota
	// hashTrusted is a check made for a caller who has proved who it is:
	// it goes before every anonymous check and waits as long as its
	// context allows.
	hashTrusted
)

// HashStats counts a node's password hashes, for the diagnostics and the
// tests.
type HashStats struct {
	Limit       int   // hashes that may run at once
	Running     int   // hashes running now
	MaxRunning  int   // the most that ever ran at once
	Waiting     int   // checks waiting for a place now
	Done        int64 // hashes computed
	Refused     int64 // checks refused with ErrBusy
	MaxQueueLen int   // the anonymous checks that may wait
}

// hashPool lets at most limit hashes run at once. Its zero value is not
// usable: see newHashPool.
type hashPool struct {
	limit    int
	maxQueue int
	wait     time.Duration

	mu         sync.Mutex
	running    int
	maxRunning int
	queues     [2][]chan struct{} // by hashPriority; a closed channel is a granted place

	done    atomic.Int64
	refused atomic.Int64
}

// newHashPool returns a pool of limit places (the CPUs when limit <= 0)
// whose anonymous callers wait at most wait.
func newHashPool(limit int, wait time.Duration) *hashPool {
	if limit <= 0 {
		limit = runtime.NumCPU()
	}
	return &hashPool{limit: limit, maxQueue: limit * hashQueuePerSlot, wait: wait}
}

// run computes f (one or two hashes) inside the pool, or returns ErrBusy
// (anonymous, after the pool's wait) or the context's error.
func (p *hashPool) run(ctx context.Context, prio hashPriority, f func()) error {
	if err := p.acquire(ctx, prio); err != nil {
		return err
	}
	defer p.release()
	f()
	p.done.Add(1)
	return nil
}

func (p *hashPool) acquire(ctx context.Context, prio hashPriority) error {
	p.mu.Lock()
	if p.running < p.limit && p.waitingAhead(prio) == 0 {
		p.take()
		p.mu.Unlock()
		return nil
	}
	if prio == hashAnonymous && len(p.queues[hashAnonymous]) >= p.maxQueue {
		p.mu.Unlock()
		p.refused.Add(1)
		return ErrBusy
	}
	ch := make(chan struct{})
	p.queues[prio] = append(p.queues[prio], ch)
	p.mu.Unlock()

	var timeout <-chan time.Time
	if prio == hashAnonymous {
		t := time.NewTimer(p.wait)
		defer t.Stop()
		timeout = t.C
	}
	var err error
	select {
	case <-ch:
		return nil
	case <-timeout:
		err = ErrBusy
	case <-ctx.Done():
		err = ctx.Err()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-ch: // granted meanwhile: hand the place on
		p.running--
		p.grantNext()
	default:
		p.queues[prio] = removeChan(p.queues[prio], ch)
	}
	if err == ErrBusy {
		p.refused.Add(1)
	}
	return err
}

// waitingAhead counts the waiting checks that go before one of prio.
func (p *hashPool) waitingAhead(prio hashPriority) int {
	n := len(p.queues[hashTrusted])
	if prio == hashAnonymous {
		n += len(p.queues[hashAnonymous])
	}
	return n
}

// take counts one more hash running; p.mu is held.
func (p *hashPool) take() {
	p.running++
	p.maxRunning = max(p.maxRunning, p.running)
}

func (p *hashPool) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.running--
	p.grantNext()
}

// grantNext gives a free place to the first waiting check, trusted ones
// first; p.mu is held.
func (p *hashPool) grantNext() {
	if p.running >= p.limit {
		return
	}
	for prio := hashTrusted; prio >= hashAnonymous; prio-- {
		if q := p.queues[prio]; len(q) > 0 {
			p.queues[prio] = q[1:]
			p.take()
			close(q[0])
			return
		}
	}
}

func removeChan(q []chan struct{}, ch chan struct{}) []chan struct{} {
	for i, c := range q {
		if c == ch {
			return append(q[:i:i], q[i+1:]...)
		}
	}
	return q
}

func (p *hashPool) stats() HashStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return HashStats{Limit: p.limit, Running: p.running, MaxRunning: p.maxRunning,
		Waiting: len(p.queues[0]) + len(p.queues[1]), Done: p.done.Load(), Refused: p.refused.Load(),
		MaxQueueLen: p.maxQueue}
}

// hashSecret hashes a new password, PIN or secret with p, for a caller
// who is authenticated (an administrator, a tool with a token).
func (s *Service) hashSecret(ctx context.Context, p PINParams, secret string) (string, error) {
	var h string
	var herr error
	if err := s.hashes.run(ctx, hashTrusted, func() { h, herr = hashWith(p, secret) }); err != nil {
		return "", err
	}
	return h, herr
}

// checkWorkerPINs checks a PIN given by a worker's authenticated device
// against both of the worker's PINs (checkPINs).
func (s *Service) checkWorkerPINs(ctx context.Context, w *Worker, pin string) (pinOutcome, error) {
	var out pinOutcome
	if err := s.hashes.run(ctx, hashTrusted, func() { out = checkPINs(w, pin) }); err != nil {
		return "", err
	}
	return out, nil
}

// HashStats returns the counters of this node's password hash pool.
func (s *Service) HashStats() HashStats { return s.hashes.stats() }

// SetHashLimits changes how many password hashes may run at once on this
// node (the CPUs when limit <= 0) and how long an anonymous check waits
// for a place (DefaultHashWait when wait <= 0). Call it before the Service
// is used.
func (s *Service) SetHashLimits(limit int, wait time.Duration) {
	if wait <= 0 {
		wait = DefaultHashWait
	}
	s.hashes = newHashPool(limit, wait)
}
