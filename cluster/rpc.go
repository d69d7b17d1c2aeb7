package cluster

import (
	"bufio"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"
)

// The cluster RPC carries what Raft does not: writes forwarded from followers
// to the leader, read indexes for linearizable reads on followers, joins and
// removals, and status. Each connection carries one request at a time, gob
// encoded; clients keep a small pool of connections per peer.

// rpcOp is an RPC operation. Append only.
type rpcOp uint8

const (
	opApply       rpcOp = 1 // apply a command envelope on the leader
	opReadIndex   rpcOp = 2 // the leader's read index, after confirming leadership
	opJoin        rpcOp = 3 // add a voter (leader only)
	opRemove      rpcOp = 4 // remove a server (leader only)
	opHello       rpcOp = 5 // who are you: node ID, for bootstrap-expect
	opStatus      rpcOp = 6 // this node's status
	opWaitApplied rpcOp = 7 // answer once this node has applied Index (replicas.go)
	opLeaving     rpcOp = 8 // FromNode is stopping cleanly (quiet.go)
)

// errCode carries sentinel errors across the wire. Append only.
type errCode uint8

const (
	codeOK errCode = iota
	codeNotLeader
	codeNoLeader
	codeUnknownOutcome
	codeRefused
	codeClosed
	codeOther
	codeDiskFull
)

type rpcRequest struct {
	Op       rpcOp
	Timeout  time.Duration // what is left of the caller's deadline
	Payload  []byte
	Index    uint64 // opWaitApplied: the index to wait for
	NodeID   string
	Addr     string
	FromNode string
	Nonvoter bool // opJoin: add the node as a non-voter (it votes once promoted)
}

type rpcResponse struct {
	Code      errCode
	Msg       string
	Index     uint64
	Response  []byte
	Duplicate bool
	NodeID    string
	Status    *Status
}

func errorToResponse(err error, r *rpcResponse) {
	var refused *RefusedError
	switch {
	case err == nil:
		r.Code = codeOK
		return
	case errors.As(err, &refused):
		r.Code = codeRefused
	case errors.Is(err, ErrNotLeader):
		r.Code = codeNotLeader
	case errors.Is(err, ErrNoLeader):
		r.Code = codeNoLeader
	case errors.Is(err, ErrUnknownOutcome):
		r.Code = codeUnknownOutcome
	case errors.Is(err, ErrClosed):
		r.Code = codeClosed
	case errors.Is(err, ErrDiskFull):
		r.Code = codeDiskFull
	default:
		r.Code = codeOther
	}
	r.Msg = err.Error()
}

func responseError(r *rpcResponse) error {
	switch r.Code {
	case codeOK:
		return nil
	case codeRefused:
		return &RefusedError{Reason: r.Msg}
	case codeNotLeader:
		return ErrNotLeader
	case codeNoLeader:
		return ErrNoLeader
	case codeUnknownOutcome:
		return ErrUnknownOutcome
	case codeClosed:
		return fmt.Errorf("remote node: %w", ErrClosed)
	case codeDiskFull:
		return fmt.Errorf("remote node: %w (%s)", ErrDiskFull, strings.TrimPrefix(r.Msg, ErrDiskFull.Error()+": "))
	default:
		return fmt.Errorf("remote node: %s", r.Msg)
	}
}

// rpcConn is one client connection with its gob streams.
type rpcConn struct {
	conn net.Conn
	bw   *bufio.Writer
	enc  *gob.Encoder
	dec  *gob.Decoder
}

func newRPCConn(c net.Conn) *rpcConn {
	bw := bufio.NewWriter(c)
	return &rpcConn{conn: c, bw: bw, enc: gob.NewEncoder(bw), dec: gob.NewDecoder(bufio.NewReader(c))}
}

// errNotSent marks a client failure before the request left this node, so
// the caller knows the command cannot have been applied.
var errNotSent = errors.New("request not sent")

// rpcClient keeps idle connections per peer address.
type rpcClient struct {
	dialTimeout time.Duration
	maxIdle     int
	tls         *muxTLS // nil: plain TCP

	mu     sync.Mutex
	idle   map[string][]*rpcConn
	closed bool
}

func newRPCClient(dialTimeout time.Duration, maxIdle int, t *muxTLS) *rpcClient {
	return &rpcClient{dialTimeout: dialTimeout, maxIdle: maxIdle, tls: t, idle: make(map[string][]*rpcConn)}
}

func (c *rpcClient) get(addr string) (*rpcConn, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	if l := c.idle[addr]; len(l) > 0 {
		rc := l[len(l)-1]
		c.idle[addr] = l[:len(l)-1]
		c.mu.Unlock()
		return rc, nil
	}
	c.mu.Unlock()
	conn, err := dialMux(addr, muxRPC, c.dialTimeout, c.tls)
	if err != nil {
		return nil, err
	}
	return newRPCConn(conn), nil
}

func (c *rpcClient) put(addr string, rc *rpcConn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || len(c.idle[addr]) >= c.maxIdle {
		rc.conn.Close()
		return
	}
	c.idle[addr] = append(c.idle[addr], rc)
}

// call sends req to addr and waits for the response until ctx ends. An error
// wrapping errNotSent means the request never left this node.
func (c *rpcClient) call(ctx context.Context, addr string, req *rpcRequest) (*rpcResponse, error) {
	rc, err := c.get(addr)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot reach %s: %v", errNotSent, addr, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		req.Timeout = time.Until(dl)
		_ = rc.conn.SetDeadline(dl)
	} else {
		_ = rc.conn.SetDeadline(time.Time{})
	}
	stop := context.AfterFunc(ctx, func() { _ = rc.conn.SetDeadline(time.Now()) })
	defer stop()
	if err := rc.enc.Encode(req); err != nil {
		rc.conn.Close()
		return nil, fmt.Errorf("cannot send to %s: %w", addr, err)
	}
	if err := rc.bw.Flush(); err != nil {
		rc.conn.Close()
		return nil, fmt.Errorf("cannot send to %s: %w", addr, err)
	}
	var resp rpcResponse
	if err := rc.dec.Decode(&resp); err != nil {
		rc.conn.Close()
		return nil, fmt.Errorf("no answer from %s: %w", addr, err)
	}
	if !stop() {
		rc.conn.Close() // the deadline was forced; do not reuse
	} else {
		c.put(addr, rc)
	}
	return &resp, nil
}

// drop closes idle connections to addr, for example after it failed.
func (c *rpcClient) drop(addr string) {
	c.mu.Lock()
	l := c.idle[addr]
	delete(c.idle, addr)
	c.mu.Unlock()
	for _, rc := range l {
		rc.conn.Close()
	}
}

func (c *rpcClient) Close() {
	c.mu.Lock()
	c.closed = true
	all := c.idle
	c.idle = map[string][]*rpcConn{}
	c.mu.Unlock()
	for _, l := range all {
		for _, rc := range l {
			rc.conn.Close()
		}
	}
}

// rpcServer tracks open server connections so Close can end them.
type rpcServer struct {
	handle func(context.Context, *rpcRequest) *rpcResponse

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

func newRPCServer(handle func(context.Context, *rpcRequest) *rpcResponse) *rpcServer {
	return &rpcServer{handle: handle, conns: make(map[net.Conn]struct{})}
}

// serveConn serves one connection until it closes.
func (s *rpcServer) serveConn(conn net.Conn) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		conn.Close()
		return
	}
	s.conns[conn] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, conn)
		s.mu.Unlock()
		conn.Close()
		s.wg.Done()
	}()
	bw := bufio.NewWriter(conn)
	enc, dec := gob.NewEncoder(bw), gob.NewDecoder(bufio.NewReader(conn))
	for {
		var req rpcRequest
		if err := dec.Decode(&req); err != nil {
			return
		}
		ctx, cancel := context.Background(), context.CancelFunc(func() {})
		if req.Timeout > 0 {
			ctx, cancel = context.WithTimeout(ctx, req.Timeout)
		}
		resp := s.handle(ctx, &req)
		cancel()
		if err := enc.Encode(resp); err != nil {
			return
		}
		if err := bw.Flush(); err != nil {
			return
		}
	}
}

func (s *rpcServer) Close() {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}
