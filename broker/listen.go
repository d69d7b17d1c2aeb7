package broker

// Listening: the MQTT and MQTT over TLS listeners accept through a guard
// that keeps accepting after an accept error, bounds the connections that
// have not sent CONNECT yet (per node and per remote address) and the time
// they may take to send it. See DESIGN.md, "Limits".

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// Defaults of the limits before CONNECT.
const (
	// DefaultConnectTimeout is how long a new connection may take to send
	// its CONNECT (the TLS handshake included) before it is closed.
	DefaultConnectTimeout = 10 * time.Second
	// DefaultMaxPending bounds the connections of a node that have not
	// sent CONNECT yet; more are closed as soon as they are accepted.
	DefaultMaxPending = 2048
	// DefaultMaxPendingPerAddr bounds them per remote IP address.
	DefaultMaxPendingPerAddr = 64
)

// Bounds of the pause after a failed accept: it doubles from the first to
// the last, as net/http's does.
const (
	acceptRetryFirst = 5 * time.Millisecond
	acceptRetryMax   = time.Second
)

// gate counts the connections that have not sent CONNECT yet. One gate
// serves all the listeners of a broker.
type gate struct {
	max, perAddr int
	timeout      time.Duration

	mu      sync.Mutex
	pending int
	byAddr  map[string]int

	refused     atomic.Uint64 // connections closed at once: a bound was reached
	lastRefused atomic.Int64  // when the last was, Unix nanoseconds
}

func newGate(max, perAddr int, timeout time.Duration) *gate {
	return &gate{max: max, perAddr: perAddr, timeout: timeout, byAddr: make(map[string]int)}
}

// admit counts c as pending and gives it until the connect timeout to
// send CONNECT, or refuses it (false) when a bound is reached.
func (g *gate) admit(c net.Conn) (*pendingConn, bool) {
	addr := c.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(addr); err == nil {
		addr = host
	}
	g.mu.Lock()
	if g.pending >= g.max || g.byAddr[addr] >= g.perAddr {
		g.mu.Unlock()
		g.refused.Add(1)
		g.lastRefused.Store(time.Now().UnixNano())
		return nil, false
	}
	g.pending++
	g.byAddr[addr]++
	g.mu.Unlock()
	// mochi sets its keepalive deadline once it has the CONNECT; until
	// then it sets none.
	_ = c.SetDeadline(time.Now().Add(g.timeout))
	return &pendingConn{Conn: c, g: g, addr: addr}, true
}

func (g *gate) release(addr string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pending--
	if g.byAddr[addr]--; g.byAddr[addr] <= 0 {
		delete(g.byAddr, addr)
	}
}

// count returns the connections pending now.
func (g *gate) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.pending
}

// pendingConn is an accepted connection, counted by its gate until it
// sends CONNECT or closes.
type pendingConn struct {
	net.Conn
	g    *gate
	addr string
	once sync.Once
}

// connected stops counting c as pending.
func (c *pendingConn) connected() { c.once.Do(func() { c.g.release(c.addr) }) }

func (c *pendingConn) Close() error {
	c.connected()
	return c.Conn.Close()
}

// connected tells the gate that the connection of cl sent its CONNECT.
func connected(cl *mqtt.Client) {
	c := cl.Net.Conn
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if pc, ok := c.(*pendingConn); ok {
		pc.connected()
	}
}

// guardedListener accepts through a gate, and does not give up on an
// accept error: mochi's accept loop returns at the first one, so a node
// out of file descriptors for a moment (EMFILE) stopped accepting devices
// for good. It pauses, logs and counts instead, and returns only once
// closed.
type guardedListener struct {
	net.Listener
	id   string
	g    *gate
	b    *Broker
	done chan struct{}
	once sync.Once

	// While accepts fail: since when, how many, and the last error; for
	// Broker.Problems.
	failingMu    sync.Mutex
	failingSince time.Time
	failures     int
	lastErr      error
}

func (b *Broker) guard(id string, l net.Listener) *guardedListener {
	gl := &guardedListener{Listener: l, id: id, g: b.gate, b: b, done: make(chan struct{})}
	b.listenersMu.Lock()
	b.guarded = append(b.guarded, gl)
	b.listenersMu.Unlock()
	return gl
}

// failing reports whether accepts fail now, since when, how many have and
// the last error.
func (l *guardedListener) failing() (since time.Time, failures int, last error) {
	l.failingMu.Lock()
	defer l.failingMu.Unlock()
	return l.failingSince, l.failures, l.lastErr
}

func (l *guardedListener) noteFailure(failures int, since time.Time, err error) {
	l.failingMu.Lock()
	defer l.failingMu.Unlock()
	l.failingSince, l.failures, l.lastErr = since, failures, err
}

// problemWindow is how long after its last refusal the gate's cap still
// shows as a problem.
const problemWindow = time.Minute

// Problems describes, for the people who look after the cluster, what is
// wrong with this broker's listeners now: one that cannot accept, and
// connections refused at the cap of those not yet sent CONNECT in the
// last minute (a flood of idle connections, or too small a cap). Nil when
// all is well.
func (b *Broker) Problems() []string {
	var out []string
	b.listenersMu.Lock()
	guarded := append([]*guardedListener(nil), b.guarded...)
	b.listenersMu.Unlock()
	for _, l := range guarded {
		if since, n, err := l.failing(); n > 0 {
			out = append(out, fmt.Sprintf("MQTT listener %s cannot accept connections since %s (%d failed accepts; last: %v); it keeps retrying",
				l.id, since.UTC().Format(time.RFC3339), n, err))
		}
	}
	if last := b.gate.lastRefused.Load(); last != 0 {
		if ago := time.Since(time.Unix(0, last)); ago < problemWindow {
			out = append(out, fmt.Sprintf("MQTT connections refused at the cap of %d waiting for CONNECT (%d per address), the last %s ago; %d refused since start",
				b.gate.max, b.gate.perAddr, ago.Round(time.Second), b.gate.refused.Load()))
		}
	}
	return out
}

func (l *guardedListener) Accept() (net.Conn, error) {
	var wait time.Duration
	var failedSince time.Time
	failures := 0
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			select {
			case <-l.done:
				return nil, err
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return nil, err
			}
			l.b.stats.acceptErrors.Add(1)
			if failures == 0 {
				failedSince = time.Now()
				l.b.stats.acceptFailing.Add(1)
				l.b.logger.Error("mqtt listener cannot accept connections; retrying", "listener", l.id, "error", err)
			}
			failures++
			l.noteFailure(failures, failedSince, err)
			wait = min(max(2*wait, acceptRetryFirst), acceptRetryMax)
			select {
			case <-l.done:
				return nil, err
			case <-time.After(wait):
			}
			continue
		}
		if failures > 0 {
			l.b.stats.acceptFailing.Add(-1)
			l.b.logger.Warn("mqtt listener accepts connections again", "listener", l.id,
				"failed_accepts", failures, "after", time.Since(failedSince))
			failures, wait = 0, 0
			l.noteFailure(0, time.Time{}, nil)
		}
		pc, ok := l.g.admit(c)
		if !ok {
			c.Close()
			continue
		}
		return pc, nil
	}
}

func (l *guardedListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// listenTCP adds a mochi listener named id on addr, over a guarded
// listener, with TLS if tc is set.
func (b *Broker) listenTCP(s *mqtt.Server, id, addr string, tc *tls.Config) (*listeners.Net, error) {
	listen := b.cfg.Listen
	if listen == nil {
		listen = net.Listen
	}
	raw, err := listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	var l net.Listener = b.guard(id, raw)
	if tc != nil {
		l = tls.NewListener(l, tc)
	}
	ml := listeners.NewNet(id, l)
	if err := s.AddListener(ml); err != nil {
		l.Close()
		return nil, fmt.Errorf("cannot add listener %s: %w", id, err)
	}
	return ml, nil
}
