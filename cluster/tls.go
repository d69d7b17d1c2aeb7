package cluster

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Mutual TLS on the cluster port (DESIGN.md, "One port"). With it on, a
// connection is TLS first: the handshake, then the caller's VerifyPeer,
// then, inside TLS, the protocol byte, which the server echoes once it has
// accepted the peer. The echo makes a refusal visible to the dialler at
// dial time: in TLS 1.3 the client's handshake completes before the server
// has checked the client's certificate, so without it a refused node would
// learn of it only after sending a request.

// refusalLogInterval is the least time between two warnings about refused
// TLS connections; each refusal is also logged at debug level.
const refusalLogInterval = time.Minute

// errNotVerified refuses an accepted connection whose peer presented no
// certificate verified against the server's ClientCAs.
var errNotVerified = errors.New("peer presented no verified certificate")

// muxTLS is the cluster port's TLS: nil when the port is plain TCP.
type muxTLS struct {
	server *tls.Config
	client *tls.Config
	verify func(tls.ConnectionState) error // may be nil

	refused refusalLog

	// live holds the open connections that passed the checks, so that
	// recheck can close those whose peer is no longer wanted.
	liveMu sync.Mutex
	live   map[*liveConn]struct{}
}

// liveConn is a checked TLS connection, forgotten by its muxTLS when
// closed.
type liveConn struct {
	*tls.Conn
	t    *muxTLS
	once sync.Once
}

func (c *liveConn) Close() error {
	c.once.Do(func() {
		c.t.liveMu.Lock()
		delete(c.t.live, c)
		c.t.liveMu.Unlock()
	})
	return c.Conn.Close()
}

// track records tc as live and returns the connection to hand on.
func (t *muxTLS) track(tc *tls.Conn) net.Conn {
	if t.verify == nil {
		return tc
	}
	c := &liveConn{Conn: tc, t: t}
	t.liveMu.Lock()
	if t.live == nil {
		t.live = make(map[*liveConn]struct{})
	}
	t.live[c] = struct{}{}
	t.liveMu.Unlock()
	return c
}

// recheck asks VerifyPeer again about every open connection and closes
// those it now refuses: a member removed from the cluster loses the
// connections it already had, not only new ones. It returns how many it
// closed.
func (t *muxTLS) recheck(logger *slog.Logger) int {
	if t.verify == nil {
		return 0
	}
	t.liveMu.Lock()
	conns := make([]*liveConn, 0, len(t.live))
	for c := range t.live {
		conns = append(conns, c)
	}
	t.liveMu.Unlock()
	closed := 0
	for _, c := range conns {
		if err := t.verify(c.ConnectionState()); err != nil {
			logger.Warn("cluster port: closing a connection whose peer is no longer accepted", "remote", c.RemoteAddr().String(), "error", err)
			c.Close()
			closed++
		}
	}
	return closed
}

// newMuxTLS returns the port's TLS from cfg, nil when it is off.
func newMuxTLS(cfg Config) *muxTLS {
	if cfg.ServerTLS == nil {
		return nil
	}
	return &muxTLS{server: cfg.ServerTLS, client: cfg.ClientTLS, verify: cfg.VerifyPeer}
}

// accept runs the server side on conn, whose deadline the caller has set:
// the handshake, the checks, the protocol byte and its echo. It returns the
// TLS connection and the byte, or closes conn and logs the refusal.
func (t *muxTLS) accept(conn net.Conn, logger *slog.Logger) (net.Conn, byte, bool) {
	tc := tls.Server(conn, t.server)
	err := tc.Handshake()
	if err == nil {
		err = t.check(tc.ConnectionState(), true)
	}
	if err != nil {
		conn.Close() // not tc.Close: nothing more is said to a refused peer
		t.refused.log(logger, conn.RemoteAddr(), err)
		return nil, 0, false
	}
	var b [1]byte
	if _, err := io.ReadFull(tc, b[:]); err != nil {
		tc.Close()
		return nil, 0, false
	}
	if b[0] == muxRaft || b[0] == muxRPC {
		if _, err := tc.Write(b[:]); err != nil {
			tc.Close()
			return nil, 0, false
		}
	}
	return t.track(tc), b[0], true
}

// check refuses a handshake's peer: a server's peer must have presented a
// verified certificate (ServerTLS requires it; this holds even if a
// GetConfigForClient relaxed it), and VerifyPeer must accept it.
func (t *muxTLS) check(cs tls.ConnectionState, server bool) error {
	if server && len(cs.VerifiedChains) == 0 {
		return errNotVerified
	}
	if t.verify != nil {
		if err := t.verify(cs); err != nil {
			return fmt.Errorf("refused by verify_peer: %w", err)
		}
	}
	return nil
}

// dial opens a TLS connection of the given protocol to addr: the TCP
// connection, the handshake, the checks, the protocol byte and its echo,
// all within timeout.
func (t *muxTLS) dial(addr string, proto byte, timeout time.Duration) (net.Conn, error) {
	deadline := time.Now().Add(timeout)
	conn, err := (&net.Dialer{Deadline: deadline}).Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	_ = conn.SetDeadline(deadline)
	cfg := t.client
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			conn.Close()
			return nil, err
		}
		cfg = cfg.Clone()
		cfg.ServerName = host
	}
	tc := tls.Client(conn, cfg)
	if err := tc.Handshake(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("cannot complete TLS handshake (is TLS on at the peer, with this cluster's CA?): %w", err)
	}
	if err := t.check(tc.ConnectionState(), false); err != nil {
		conn.Close()
		return nil, err
	}
	if _, err := tc.Write([]byte{proto}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("cannot write protocol byte: %w", err)
	}
	var b [1]byte
	if _, err := io.ReadFull(tc, b[:]); err != nil {
		// A close, a reset or a TLS alert, depending on the timing and on
		// which check failed: all mean the same to the caller.
		conn.Close()
		return nil, fmt.Errorf("no answer after the TLS handshake (has the peer refused this node's certificate?): %w", err)
	}
	if b[0] != proto {
		conn.Close()
		return nil, fmt.Errorf("peer answered protocol byte %d with %d", proto, b[0])
	}
	_ = conn.SetDeadline(time.Time{})
	return t.track(tc), nil
}

// refusalLog logs refused TLS connections: each at debug level, and a
// warning at most once per refusalLogInterval with the count since the
// last, so that an outsider cannot flood the log.
type refusalLog struct {
	mu     sync.Mutex
	last   time.Time
	missed int // refusals since the last warning
}

func (r *refusalLog) log(logger *slog.Logger, remote net.Addr, err error) {
	logger.Debug("cluster port: TLS connection refused", "remote", remote.String(), "error", err)
	r.mu.Lock()
	r.missed++
	now := time.Now()
	if !r.last.IsZero() && now.Sub(r.last) < refusalLogInterval {
		r.mu.Unlock()
		return
	}
	n := r.missed
	r.last, r.missed = now, 0
	r.mu.Unlock()
	logger.Warn("cluster port: TLS connections refused (more are logged at debug level)", "count", n,
		"last_remote", remote.String(), "last_error", err)
}
