package cluster

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// One TCP port carries both Raft and the cluster RPC. A connection says which
// it is with its first byte. The values are part of the wire protocol:
// append only.
const (
	muxRaft byte = 1 // hashicorp/raft's NetworkTransport
	muxRPC  byte = 2 // Vigil's cluster RPC (rpc.go)
)

// tlsHandshakeRecord is the first byte of a TLS ClientHello: a peer with TLS
// on dialling a node with it off.
const tlsHandshakeRecord byte = 22

// muxHeaderTimeout bounds how long an accepted connection may take to say
// which protocol it speaks, its TLS handshake included.
const muxHeaderTimeout = 5 * time.Second

// mux accepts connections on the cluster port and hands each to Raft or to
// the RPC server by its first byte.
type mux struct {
	ln        net.Listener
	advertise net.Addr
	logger    *slog.Logger
	tls       *muxTLS // nil: plain TCP
	raftConns chan net.Conn
	rpc       func(net.Conn)

	closeOnce sync.Once
	closed    chan struct{}
	wg        sync.WaitGroup
}

func newMux(ln net.Listener, advertise net.Addr, t *muxTLS, logger *slog.Logger) *mux {
	return &mux{
		ln:        ln,
		advertise: advertise,
		logger:    logger,
		tls:       t,
		raftConns: make(chan net.Conn, 16),
		closed:    make(chan struct{}),
	}
}

// serve runs the accept loop until Close. rpc handles RPC connections.
func (m *mux) serve(rpc func(net.Conn)) {
	m.rpc = rpc
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		for {
			conn, err := m.ln.Accept()
			if err != nil {
				select {
				case <-m.closed:
					return
				default:
				}
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					continue
				}
				m.logger.Error("cluster port accept failed", "error", err)
				time.Sleep(100 * time.Millisecond)
				continue
			}
			m.wg.Add(1)
			go func() {
				defer m.wg.Done()
				m.route(conn)
			}()
		}
	}()
}

func (m *mux) route(conn net.Conn) {
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	var b [1]byte
	if m.tls != nil {
		// The handshake too is bounded: a silent or slow outsider costs one
		// goroutine for muxHeaderTimeout at most.
		_ = conn.SetDeadline(time.Now().Add(muxHeaderTimeout))
		var ok bool
		if conn, b[0], ok = m.tls.accept(conn, m.logger); !ok {
			return
		}
		_ = conn.SetDeadline(time.Time{})
	} else {
		_ = conn.SetReadDeadline(time.Now().Add(muxHeaderTimeout))
		if _, err := io.ReadFull(conn, b[:]); err != nil {
			conn.Close()
			return
		}
		_ = conn.SetReadDeadline(time.Time{})
	}
	switch b[0] {
	case muxRaft:
		select {
		case m.raftConns <- conn:
		case <-m.closed:
			conn.Close()
		}
	case muxRPC:
		m.rpc(conn)
	case tlsHandshakeRecord:
		m.logger.Warn("cluster port: a peer speaks TLS but this node has no TLS configured", "remote", conn.RemoteAddr().String())
		conn.Close()
	default:
		m.logger.Warn("cluster port: unknown protocol byte", "byte", b[0], "remote", conn.RemoteAddr().String())
		conn.Close()
	}
}

// Close stops accepting and waits for the routing goroutines. RPC handlers
// return when their connections are closed by the caller.
func (m *mux) Close() error {
	var err error
	m.closeOnce.Do(func() {
		close(m.closed)
		err = m.ln.Close()
	})
	return err
}

// dialMux opens a connection of the given protocol to addr, over TLS when t
// is not nil.
func dialMux(addr string, proto byte, timeout time.Duration, t *muxTLS) (net.Conn, error) {
	if t != nil {
		return t.dial(addr, proto, timeout)
	}
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	_ = conn.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := conn.Write([]byte{proto}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("cannot write protocol byte: %w", err)
	}
	_ = conn.SetWriteDeadline(time.Time{})
	return conn, nil
}

// raftLayer is the raft.StreamLayer over the mux.
type raftLayer struct{ m *mux }

var _ raft.StreamLayer = raftLayer{}

func (l raftLayer) Accept() (net.Conn, error) {
	select {
	case c := <-l.m.raftConns:
		return c, nil
	case <-l.m.closed:
		return nil, errors.New("cluster port closed")
	}
}

func (l raftLayer) Close() error   { return l.m.Close() }
func (l raftLayer) Addr() net.Addr { return l.m.advertise }

func (l raftLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return dialMux(string(addr), muxRaft, timeout, l.m.tls)
}
