package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/uuid"
	"github.com/hashicorp/raft"
)

// Node is one member of a Vigil cluster: a Raft peer with a Badger log, a
// Badger state hosting a StateMachine, and the cluster port.
//
// New does no I/O; Open starts the node; Close stops it and is safe to call
// twice. Every method that writes works on every node: followers forward to
// the leader.
type Node struct {
	cfg    Config
	sm     StateMachine
	logger *slog.Logger

	id   string
	addr string // advertised cluster address

	logs   *LogStore
	state  *badger.DB
	snaps  *guardedSnapshots
	disk   *diskGuard // nil when Config.MinFreeBytes is negative
	fsm    *fsm
	mux    *mux
	trans  *raft.NetworkTransport
	raft   *raft.Raft
	client *rpcClient
	server *rpcServer

	peersMu sync.Mutex
	peers   map[string]*PeerStatus // by node ID, refreshed by the status loop
	// peerFeatures are the features each peer last reported, kept in
	// the data directory (features.go): a peer that is down, or not asked
	// yet since this node started, is still known by what it said last.
	peerFeatures map[string]map[string]int

	replicasMu sync.Mutex
	replicas   map[string]*replicaWatch // by node ID (replicas.go)

	problems atomic.Pointer[func() []string] // SetProblems
	features atomic.Pointer[map[string]int]  // SetFeatures

	departed departures  // members that said they were leaving (quiet.go)
	leaving  atomic.Bool // Close told the others this node is leaving
	closing  atomic.Bool // Close has begun
	// handoverAt is when this node last began to hand leadership over
	// (TransferLeadership), in Unix nanoseconds; 0 never.
	handoverAt atomic.Int64

	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
	opened    atomic.Bool
}

// New returns a node for cfg hosting sm. It does no I/O.
func New(cfg Config, sm StateMachine) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &Node{
		cfg:    cfg,
		sm:     sm,
		logger: cfg.Logger.With("system", "cluster"),
		peers:  make(map[string]*PeerStatus),
	}, nil
}

// Open opens the stores, starts the cluster port and Raft, and begins
// bootstrap or join if this node has no state yet. It returns once the node
// is running; use WaitForLeader to wait for a leader.
func (n *Node) Open(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			n.closeResources()
		}
	}()
	if err := os.MkdirAll(n.cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("cannot create data directory: %w", err)
	}
	if n.id, err = loadNodeID(n.cfg.DataDir, n.cfg.NodeID); err != nil {
		return err
	}
	n.logger = n.logger.With("node", n.id)

	if n.cfg.MinFreeBytes > 0 {
		n.disk = newDiskGuard(n.cfg.DataDir, uint64(n.cfg.MinFreeBytes), n.logger)
		// Under half the floor even Raft's own writes at start (a term, a
		// vote) could meet a full disk, which Badger answers with SIGBUS:
		// refuse to start, saying why, rather than crash.
		if err := n.disk.refuseLogWrite(); err != nil {
			return fmt.Errorf("cannot start: %w", err)
		}
	}
	if n.logs, err = OpenLogStore(filepath.Join(n.cfg.DataDir, "raft"), n.logger); err != nil {
		return fmt.Errorf("cannot open raft log: %w", err)
	}
	n.logs.guard = n.disk
	if n.state, err = openBadger(badgerOptions(filepath.Join(n.cfg.DataDir, "state"), false, n.logger), n.logger); err != nil {
		return fmt.Errorf("cannot open state: %w", err)
	}
	snapDir := filepath.Join(n.cfg.DataDir, "snapshots")
	if err := removePartialSnapshots(snapDir, n.logger); err != nil {
		return err
	}
	files, err := raft.NewFileSnapshotStoreWithLogger(snapDir, DefaultSnapshotRetain, newHCLogger(n.cfg.Logger.With("node", n.id), "snapshot", nil))
	if err != nil {
		return fmt.Errorf("cannot open snapshot store: %w", err)
	}
	n.snaps = &guardedSnapshots{FileSnapshotStore: files, dir: snapDir, guard: n.disk, logger: n.logger}
	if n.fsm, err = newFSM(n.state, n.sm); err != nil {
		return err
	}
	if err := n.restoreIfBehind(); err != nil {
		return err
	}

	ln, err := net.Listen("tcp", n.cfg.BindAddr)
	if err != nil {
		return fmt.Errorf("cannot listen on cluster port %s: %w", n.cfg.BindAddr, err)
	}
	adv, err := advertiseAddr(n.cfg.AdvertiseAddr, ln.Addr())
	if err != nil {
		ln.Close()
		return err
	}
	n.addr = adv.String()
	t := newMuxTLS(n.cfg)
	n.mux = newMux(ln, adv, t, n.logger)
	n.client = newRPCClient(DefaultDialTimeout, 64, t)
	n.server = newRPCServer(n.handleRPC)
	n.mux.serve(n.server.serveConn)
	n.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  raftLayer{n.mux},
		MaxPool: 3,
		// No pipelined replication: in hashicorp/raft 1.8 a follower's
		// refusal (Success=false) can leave the pipeline's sender parked
		// on an unread channel for good, so the leader stops sending that
		// follower entries (heartbeats go on, so no election heals it) and
		// Shutdown waits forever. CI saw the hang (a node's Close stuck 26
		// minutes in raft.Shutdown with pipelineSend blocked); grafana's
		// pyroscope hit the same and turned pipelining off (PR 5518).
		// Raft's own notes find pipelining of little benefit with batching.
		MaxRPCsInFlight: 1,
		Timeout:         10 * time.Second,
		Logger:          newHCLogger(n.cfg.Logger.With("node", n.id), "raft-net", n.quietLevel),
	})

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(n.id)
	rc.HeartbeatTimeout = n.cfg.HeartbeatTimeout
	rc.ElectionTimeout = n.cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = n.cfg.LeaderLeaseTimeout
	rc.CommitTimeout = n.cfg.CommitTimeout
	rc.MaxAppendEntries = n.cfg.MaxAppendEntries
	rc.BatchApplyCh = true
	rc.SnapshotThreshold = n.cfg.SnapshotThreshold
	rc.SnapshotInterval = n.cfg.SnapshotInterval
	rc.TrailingLogs = n.cfg.TrailingLogs
	rc.NoSnapshotRestoreOnStart = true // the state is durable on its own; see restoreIfBehind
	rc.PreVoteDisabled = false
	rc.Logger = newHCLogger(n.cfg.Logger.With("node", n.id), "raft", n.quietLevel)
	if n.raft, err = raft.NewRaft(rc, n.fsm, n.logs, n.logs, n.snaps, n.trans); err != nil {
		return fmt.Errorf("cannot start raft: %w", err)
	}

	runCtx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.opened.Store(true)
	n.logger.Info("cluster node started", "addr", n.addr, "applied", n.fsm.Applied(), "last_log", n.raft.LastIndex())

	has, err := raft.HasExistingState(n.logs, n.logs, n.snaps)
	if err != nil {
		return fmt.Errorf("cannot inspect raft state: %w", err)
	}
	switch {
	case has:
	case n.cfg.Bootstrap:
		cfg := raft.Configuration{Servers: []raft.Server{{ID: raft.ServerID(n.id), Address: raft.ServerAddress(n.addr)}}}
		if err := n.raft.BootstrapCluster(cfg).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return fmt.Errorf("cannot bootstrap: %w", err)
		}
	case len(n.cfg.BootstrapExpect) > 0:
		n.goLoop(func() { n.bootstrapExpect(runCtx) })
	case len(n.cfg.Join) > 0:
		n.goLoop(func() { n.joinLoop(runCtx) })
	}
	n.loadPeerFeatures()
	n.goLoop(func() { n.statusLoop(runCtx) })
	n.goLoop(func() { n.gcLoop(runCtx) })
	if n.disk != nil {
		n.goLoop(func() { n.disk.loop(runCtx, DiskCheckInterval) })
	}
	return nil
}

func (n *Node) goLoop(f func()) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
}

// restoreIfBehind loads the newest snapshot when the state is older than it
// (the state directory was lost or wiped). Raft starts applying after the
// snapshot's index, so the state must reach that index first.
func (n *Node) restoreIfBehind() error {
	metas, err := n.snaps.List()
	if err != nil {
		return fmt.Errorf("cannot list snapshots: %w", err)
	}
	if len(metas) == 0 || metas[0].Index <= n.fsm.Applied() {
		return nil
	}
	n.logger.Warn("state is behind the newest snapshot: restoring it", "applied", n.fsm.Applied(), "snapshot", metas[0].Index)
	_, rc, err := n.snaps.Open(metas[0].ID)
	if err != nil {
		return fmt.Errorf("cannot open snapshot %s: %w", metas[0].ID, err)
	}
	return n.fsm.Restore(rc)
}

// TransferLeadership hands leadership to the most up-to-date other voter
// when this node leads a cluster of several, and returns once that voter
// leads (or Raft gives up, after an election timeout). A node about to
// stop calls it first: the cluster then has a new leader before this one
// stops serving, instead of an election timeout after. It does nothing on
// a follower or a node that is not open.
func (n *Node) TransferLeadership() error {
	if !n.opened.Load() || n.raft == nil || n.raft.State() != raft.Leader || n.voters() < 2 {
		return nil
	}
	// Not to a voter that said it is stopping too (quiet.go): with every
	// other voter stopping there is nobody to hand over to.
	n.handoverAt.Store(time.Now().UnixNano())
	start := time.Now()
	var fut raft.Future
	if n.departed.len() == 0 {
		fut = n.raft.LeadershipTransfer() // Raft picks the most up-to-date
	} else if to, ok := n.transferTarget(); ok {
		fut = n.raft.LeadershipTransferToServer(to.ID, to.Address)
	} else {
		return nil
	}
	if err := fut.Error(); err != nil {
		return fmt.Errorf("leadership transfer failed: %w", err)
	}
	id, _ := n.raft.LeaderWithID()
	n.logger.Info("handed leadership over", "to", id, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// Close leaves the cluster running without this node: a leader first hands
// leadership to another voter that is not stopping too, the others are
// told this node is leaving (quiet.go), then Raft stops and the stores
// close.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.closing.Store(true)
		if err := n.TransferLeadership(); err != nil {
			n.logger.Warn("leaving the cluster without a successor", "error", err)
		}
		if n.raft != nil && n.opened.Load() {
			n.tellLeaving()
		}
		n.closeErr = n.closeResources()
		n.logger.Info("cluster node stopped")
	})
	return n.closeErr
}

// Kill stops the node as a crash would look to the other nodes: no
// leadership transfer, so a leader leaves them to notice and elect. Its own
// stores still close cleanly. Tests and fault drills use it; an appliance
// shutting down calls Close. Close after Kill, and Kill twice, do nothing.
func (n *Node) Kill() error {
	n.closeOnce.Do(func() { n.closeErr = n.closeResources() })
	return n.closeErr
}

func (n *Node) closeResources() error {
	if n.cancel != nil {
		n.cancel()
	}
	var errs []error
	if n.raft != nil {
		errs = append(errs, n.raft.Shutdown().Error())
	}
	if n.trans != nil {
		errs = append(errs, n.trans.Close())
	}
	if n.mux != nil {
		n.mux.Close()
	}
	if n.server != nil {
		n.server.Close()
	}
	if n.client != nil {
		n.client.Close()
	}
	if n.mux != nil {
		n.mux.wg.Wait()
	}
	n.wg.Wait()
	if n.state != nil {
		errs = append(errs, n.state.Sync(), n.state.Close())
	}
	if n.logs != nil {
		errs = append(errs, n.logs.Close())
	}
	n.opened.Store(false)
	return errors.Join(errs...)
}

func (n *Node) voters() int {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return 0
	}
	c := 0
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			c++
		}
	}
	return c
}

// ID returns this node's stable ID.
func (n *Node) ID() string { return n.id }

// Addr returns this node's advertised cluster address.
func (n *Node) Addr() string { return n.addr }

// IsLeader reports whether this node is the leader now.
func (n *Node) IsLeader() bool { return n.raft != nil && n.raft.State() == raft.Leader }

// Leader returns the current leader's ID and address, empty when unknown.
func (n *Node) Leader() (id, addr string) {
	a, i := n.raft.LeaderWithID()
	return string(i), string(a)
}

// LeaderCh receives true when this node becomes leader and false when it
// stops being leader. Only one consumer may use it.
func (n *Node) LeaderCh() <-chan bool { return n.raft.LeaderCh() }

// AppliedIndex returns the index of the last entry applied to the state.
func (n *Node) AppliedIndex() uint64 { return n.fsm.Applied() }

// WaitForLeader waits until a leader is known and returns its ID.
func (n *Node) WaitForLeader(ctx context.Context) (string, error) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if id, _ := n.Leader(); id != "" {
			return id, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%w: %v", ErrNoLeader, ctx.Err())
		case <-t.C:
		}
	}
}

// Snapshot asks Raft to take a snapshot now (and so truncate the log). It
// fails with ErrDiskFull, taking none, when a snapshot would leave less than
// the free-space floor.
func (n *Node) Snapshot() error {
	// Checked here too: Raft reports the store's refusal only as text.
	if err := n.snaps.refuse(); err != nil {
		return err
	}
	err := n.raft.Snapshot().Error()
	if err == nil && !n.disk.isFull() {
		n.logs.RunGC()
	}
	return err
}

// View runs fn in a read transaction on this node's state. It may be a few
// milliseconds behind the leader.
func (n *Node) View(fn func(txn *badger.Txn) error) error {
	return n.state.View(fn)
}

// LinearizableView runs fn on this node's state once it includes every
// command committed before the call: the leader confirms it still leads and
// names its last index, and this node waits until it has applied it.
func (n *Node) LinearizableView(ctx context.Context, fn func(txn *badger.Txn) error) error {
	if err := n.WaitApplied(ctx); err != nil {
		return err
	}
	return n.state.View(fn)
}

// WaitApplied waits until this node has applied everything committed before
// the call (the read index), as confirmed by the current leader.
func (n *Node) WaitApplied(ctx context.Context) error {
	ctx, cancel := n.withDeadline(ctx)
	defer cancel()
	var idx uint64
	err := n.retry(ctx, false, func(ctx context.Context) error {
		var err error
		idx, err = n.readIndexOnce(ctx)
		return err
	})
	if err != nil {
		return err
	}
	if !n.fsm.waitApplied(ctx.Done(), idx) {
		return fmt.Errorf("cannot reach read index %d: %w", idx, ctx.Err())
	}
	return nil
}

func (n *Node) readIndexOnce(ctx context.Context) (uint64, error) {
	leaderAddr, leaderID := n.raft.LeaderWithID()
	switch {
	case leaderID == "":
		return 0, ErrNoLeader
	case string(leaderID) == n.id:
		return n.localReadIndex()
	}
	resp, err := n.client.call(ctx, string(leaderAddr), &rpcRequest{Op: opReadIndex, FromNode: n.id})
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrNoLeader, err)
	}
	return resp.Index, responseError(resp)
}

// localReadIndex returns the read index on the leader, once it has
// confirmed that it still leads: the last entry at or below its last log
// index that the state machine sees (a command or a configuration).
// Raft never hands no-op and barrier entries to the state machine, and a new
// leader's first entry is a no-op, so waiting for the last index itself
// could last until the next write.
func (n *Node) localReadIndex() (uint64, error) {
	idx := n.raft.LastIndex()
	if err := n.raft.VerifyLeader().Error(); err != nil {
		return 0, mapRaftError(err, false)
	}
	first, err := n.logs.FirstIndex()
	if err != nil {
		return 0, err
	}
	for ; idx >= first && idx > 0; idx-- {
		var l raft.Log
		err := n.logs.GetLog(idx, &l)
		switch {
		case errors.Is(err, raft.ErrLogNotFound):
			return n.fsm.Applied(), nil // truncated meanwhile: see below
		case err != nil:
			return 0, fmt.Errorf("cannot read log entry %d: %w", idx, err)
		case l.Type == raft.LogCommand || l.Type == raft.LogConfiguration:
			return idx, nil
		}
	}
	// Every entry left in the log is a no-op: what changed the state is in
	// the snapshot, which this leader's state includes.
	return n.fsm.Applied(), nil
}

// Apply replicates one command and returns the state machine's response once
// a quorum has it on disk and the leader has applied it; on a follower, Apply
// also waits (within ctx) until this node has applied it, so that reads here
// see the caller's own write.
//
// id makes the command idempotent: applying an ID again returns the first
// result (Duplicate set) without calling the state machine. With an ID, Apply
// retries through elections and lost leaderships until ctx ends; without one
// it cannot retry once the command may have been sent. A refusal by the state
// machine is a *RefusedError. ErrUnknownOutcome means the command may or may
// not have been committed.
func (n *Node) Apply(ctx context.Context, id string, data []byte) (Result, error) {
	if len(data)+len(id) > MaxCommandSize {
		return Result{}, fmt.Errorf("%w: %d bytes, limit %d", ErrCommandTooLarge, len(data)+len(id), MaxCommandSize)
	}
	// A node whose disk is nearly full could not store the command, nor
	// apply it to its state, so it would not see its own write: refuse.
	if err := n.disk.refuseCommand(); err != nil {
		return Result{}, fmt.Errorf("node %s: %w", n.id, err)
	}
	ctx, cancel := n.withDeadline(ctx)
	defer cancel()
	payload := encodeEnvelope(id, data)
	var res Result
	err := n.retry(ctx, id != "", func(ctx context.Context) error {
		var err error
		res, err = n.applyOnce(ctx, payload)
		return err
	})
	var refused *RefusedError
	if (err == nil || errors.As(err, &refused)) && res.Index > n.fsm.Applied() {
		// Forwarded: the leader has applied it (a refusal too is recorded),
		// this node may not have yet. Wait, so that a caller reading this
		// node next sees its own write. The outcome is committed whatever
		// happens here, so a deadline reached while waiting changes nothing.
		n.fsm.waitApplied(ctx.Done(), res.Index)
	}
	return res, err
}

func (n *Node) withDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, n.cfg.ApplyTimeout)
}

// retry calls op until it succeeds, is refused, or ctx ends. Errors that say
// nothing was done (no leader, not leader) are always retried; an unknown
// outcome is retried only when idempotent.
func (n *Node) retry(ctx context.Context, idempotent bool, op func(context.Context) error) error {
	backoff := 5 * time.Millisecond
	unknown := false
	for {
		if !n.opened.Load() {
			return ErrClosed
		}
		err := op(ctx)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, ErrUnknownOutcome):
			if !idempotent {
				return err
			}
			unknown = true
		case errors.Is(err, ErrNotLeader), errors.Is(err, ErrNoLeader):
		default:
			return err
		}
		select {
		case <-ctx.Done():
			if unknown {
				return fmt.Errorf("%w (last error: %v)", ErrUnknownOutcome, err)
			}
			return fmt.Errorf("%w: %v (last error: %v)", ErrNoLeader, ctx.Err(), err)
		case <-time.After(backoff):
		}
		if backoff < 100*time.Millisecond {
			backoff *= 2
		}
	}
}

func (n *Node) applyOnce(ctx context.Context, payload []byte) (Result, error) {
	leaderAddr, leaderID := n.raft.LeaderWithID()
	switch {
	case leaderID == "":
		return Result{}, ErrNoLeader
	case string(leaderID) == n.id:
		return n.applyLocal(ctx, payload)
	}
	resp, err := n.client.call(ctx, string(leaderAddr), &rpcRequest{Op: opApply, Payload: payload, FromNode: n.id})
	if err != nil {
		if errors.Is(err, errNotSent) {
			return Result{}, fmt.Errorf("%w: %v", ErrNoLeader, err)
		}
		n.client.drop(string(leaderAddr))
		return Result{}, fmt.Errorf("%w: %v", ErrUnknownOutcome, err)
	}
	return Result{Index: resp.Index, Response: resp.Response, Duplicate: resp.Duplicate}, responseError(resp)
}

// applyLocal applies on this node, which must be the leader.
func (n *Node) applyLocal(ctx context.Context, payload []byte) (Result, error) {
	timeout := time.Until(deadlineOf(ctx))
	if timeout <= 0 {
		return Result{}, ErrNoLeader
	}
	if err := n.refuseForDisk(); err != nil {
		return Result{}, err
	}
	f := n.raft.Apply(payload, timeout)
	done := make(chan struct{})
	go func() {
		_ = f.Error()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		// Appended or not, it may still commit.
		return Result{}, fmt.Errorf("%w: %v", ErrUnknownOutcome, ctx.Err())
	}
	if err := f.Error(); err != nil {
		return Result{}, mapRaftError(err, true)
	}
	o, ok := f.Response().(*applyOutcome)
	if !ok || o == nil {
		return Result{}, fmt.Errorf("cluster: entry %d returned no outcome", f.Index())
	}
	if o.refused != "" {
		return o.result, &RefusedError{Reason: o.refused}
	}
	return o.result, nil
}

func deadlineOf(ctx context.Context) time.Time {
	if dl, ok := ctx.Deadline(); ok {
		return dl
	}
	return time.Now().Add(DefaultApplyTimeout)
}

// mapRaftError turns raft's errors into this package's. appended says the
// command may have entered the log.
func mapRaftError(err error, appended bool) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%w: %v", ErrNotLeader, err)
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: %v", ErrNoLeader, err)
	case errors.Is(err, raft.ErrLeadershipLost):
		if appended {
			return fmt.Errorf("%w: %v", ErrUnknownOutcome, err)
		}
		return fmt.Errorf("%w: %v", ErrNotLeader, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return ErrClosed
	}
	return err
}

// handleRPC serves the cluster RPC.
func (n *Node) handleRPC(ctx context.Context, req *rpcRequest) *rpcResponse {
	resp := &rpcResponse{NodeID: n.id}
	if !n.opened.Load() {
		// Open serves the port before Raft exists, for Raft's own
		// connections; the RPC waits for Raft.
		errorToResponse(fmt.Errorf("%w: node %s is starting", ErrNoLeader, n.id), resp)
		return resp
	}
	if n.leaving.Load() {
		errorToResponse(fmt.Errorf("%w: node %s is stopping", ErrNoLeader, n.id), resp)
		return resp
	}
	var err error
	switch req.Op {
	case opApply:
		if !n.IsLeader() {
			err = ErrNotLeader
			break
		}
		var res Result
		res, err = n.applyLocal(ctx, req.Payload)
		resp.Index, resp.Response, resp.Duplicate = res.Index, res.Response, res.Duplicate
	case opReadIndex:
		if !n.IsLeader() {
			err = ErrNotLeader
			break
		}
		resp.Index, err = n.localReadIndex()
	case opJoin:
		err = n.addServerLocal(req.NodeID, req.Addr, !req.Nonvoter)
	case opRemove:
		err = n.removeLocal(req.NodeID)
	case opHello:
	case opStatus:
		st := n.Status()
		resp.Status = &st
	case opWaitApplied:
		resp.Index = n.waitAppliedLocal(ctx, req.Index)
	case opLeaving:
		err = n.peerLeaving(req.FromNode)
	default:
		err = fmt.Errorf("unknown cluster RPC operation %d", req.Op)
	}
	errorToResponse(err, resp)
	return resp
}

// Join adds the node id at addr as a voter, through the leader.
func (n *Node) Join(ctx context.Context, id, addr string) error {
	return n.membership(ctx, &rpcRequest{Op: opJoin, NodeID: id, Addr: addr}, func() error { return n.addServerLocal(id, addr, true) })
}

// AddNonvoter adds the node id at addr as a non-voter, through the leader:
// it receives the log but does not count towards a quorum until it joins
// as a voter (its own join does that once it runs). A member that is
// already in the configuration is left as it is.
func (n *Node) AddNonvoter(ctx context.Context, id, addr string) error {
	return n.membership(ctx, &rpcRequest{Op: opJoin, NodeID: id, Addr: addr, Nonvoter: true}, func() error { return n.addServerLocal(id, addr, false) })
}

// Server is one server of the Raft configuration.
type Server struct {
	ID, Addr string
	Voter    bool
}

// Configuration returns the servers of the latest Raft configuration this
// node knows, committed or not; none before the cluster has formed.
func (n *Node) Configuration() ([]Server, error) {
	if !n.opened.Load() { // n.raft is set before opened, and read only after
		return nil, ErrNoLeader
	}
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, mapRaftError(err, false)
	}
	var out []Server
	for _, s := range f.Configuration().Servers {
		out = append(out, Server{ID: string(s.ID), Addr: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return out, nil
}

// Remove removes the node id from the cluster, through the leader. A node is
// never removed automatically: an administrator replaces a failed appliance.
func (n *Node) Remove(ctx context.Context, id string) error {
	return n.membership(ctx, &rpcRequest{Op: opRemove, NodeID: id}, func() error { return n.removeLocal(id) })
}

func (n *Node) membership(ctx context.Context, req *rpcRequest, local func() error) error {
	ctx, cancel := n.withDeadline(ctx)
	defer cancel()
	return n.retry(ctx, true, func(ctx context.Context) error {
		leaderAddr, leaderID := n.raft.LeaderWithID()
		switch {
		case leaderID == "":
			return ErrNoLeader
		case string(leaderID) == n.id:
			return local()
		}
		resp, err := n.client.call(ctx, string(leaderAddr), req)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrNoLeader, err)
		}
		return responseError(resp)
	})
}

func (n *Node) addServerLocal(id, addr string, voter bool) error {
	if id == "" || addr == "" {
		return errors.New("join needs a node ID and an address")
	}
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return mapRaftError(err, false)
	}
	for _, s := range f.Configuration().Servers {
		switch {
		case string(s.ID) == id && string(s.Address) == addr && (s.Suffrage == raft.Voter || !voter):
			return nil // already a member
		case string(s.ID) == id && string(s.Address) == addr:
			// A non-voter promoted: AddVoter changes its suffrage.
		case string(s.ID) == id || string(s.Address) == addr:
			// The same appliance with a new address, or a new appliance at
			// an old address: the old entry goes first.
			if err := n.raft.RemoveServer(s.ID, 0, 0).Error(); err != nil {
				return mapRaftError(err, false)
			}
		}
	}
	if !voter {
		n.logger.Info("adding non-voter", "id", id, "addr", addr)
		return mapRaftError(n.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), 0, 0).Error(), false)
	}
	n.logger.Info("adding voter", "id", id, "addr", addr)
	return mapRaftError(n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, 0).Error(), false)
}

func (n *Node) removeLocal(id string) error {
	n.logger.Info("removing server", "id", id)
	err := n.raft.RemoveServer(raft.ServerID(id), 0, 0).Error()
	if err != nil {
		return mapRaftError(err, false)
	}
	n.peersMu.Lock()
	delete(n.peers, id)
	n.peersMu.Unlock()
	return nil
}

// joinLoop asks the configured members to add this node until one does.
func (n *Node) joinLoop(ctx context.Context) {
	for attempt := 0; ; attempt++ {
		for _, a := range n.cfg.Join {
			if a == n.addr {
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			resp, err := n.client.call(cctx, a, &rpcRequest{Op: opJoin, NodeID: n.id, Addr: n.addr})
			cancel()
			if err == nil {
				err = responseError(resp)
			}
			if err == nil {
				n.logger.Info("joined cluster", "via", a)
				return
			}
			if attempt%10 == 0 {
				n.logger.Warn("cannot join yet", "via", a, "error", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// bootstrapExpect waits until every expected peer answers with its node ID,
// then bootstraps the configuration that every peer computes identically.
func (n *Node) bootstrapExpect(ctx context.Context) {
	ids := map[string]string{n.addr: n.id}
	self := false
	for _, a := range n.cfg.BootstrapExpect {
		self = self || a == n.addr
	}
	if !self {
		n.logger.Error("bootstrap_expect does not list this node's advertised address", "addr", n.addr, "peers", strings.Join(n.cfg.BootstrapExpect, ","))
		return
	}
	for len(ids) < len(n.cfg.BootstrapExpect) {
		for _, a := range n.cfg.BootstrapExpect {
			if _, ok := ids[a]; ok {
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			resp, err := n.client.call(cctx, a, &rpcRequest{Op: opHello, FromNode: n.id})
			cancel()
			if err == nil && resp.NodeID != "" {
				ids[a] = resp.NodeID
			}
		}
		if len(ids) == len(n.cfg.BootstrapExpect) {
			break
		}
		if has, _ := raft.HasExistingState(n.logs, n.logs, n.snaps); has {
			return // another peer bootstrapped and reached us first
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
	var cfg raft.Configuration
	for _, a := range n.cfg.BootstrapExpect {
		cfg.Servers = append(cfg.Servers, raft.Server{ID: raft.ServerID(ids[a]), Address: raft.ServerAddress(a), Suffrage: raft.Voter})
	}
	err := n.raft.BootstrapCluster(cfg).Error()
	switch {
	case err == nil:
		n.logger.Info("bootstrapped cluster", "voters", len(cfg.Servers))
	case errors.Is(err, raft.ErrCantBootstrap):
	default:
		n.logger.Error("bootstrap failed", "error", err)
	}
}

func (n *Node) gcLoop(ctx context.Context) {
	t := time.NewTicker(n.cfg.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n.disk.isFull() {
				continue // a flatten or a value log rewrite needs room first
			}
			n.logs.RunGC()
			for n.state.RunValueLogGC(0.5) == nil {
			}
		}
	}
}

// loadNodeID returns the node ID kept in dir, creating it on first start.
func loadNodeID(dir, want string) (string, error) {
	p := filepath.Join(dir, "node-id")
	b, err := os.ReadFile(p)
	switch {
	case err == nil:
		id := strings.TrimSpace(string(b))
		if want != "" && want != id {
			return "", fmt.Errorf("node_id %q does not match %q kept in %s", want, id, p)
		}
		return id, nil
	case !errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("cannot read node ID: %w", err)
	}
	id := want
	if id == "" {
		id = uuid.NewString()
	}
	// Synced, renamed into place, and the rename synced: a node that lost
	// power soon after its first start would otherwise come back without
	// its ID, and take a new one next to a Raft log written under the old.
	tmp := p + ".tmp"
	if err := writeSynced(tmp, []byte(id+"\n"), 0o640); err != nil {
		return "", fmt.Errorf("cannot write node ID: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return "", fmt.Errorf("cannot write node ID: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return "", fmt.Errorf("cannot write node ID: %w", err)
	}
	return id, nil
}

// writeSynced writes data to a new file at path and syncs it.
func writeSynced(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func advertiseAddr(configured string, bound net.Addr) (net.Addr, error) {
	if configured == "" {
		tcp, ok := bound.(*net.TCPAddr)
		if ok && tcp.IP.IsUnspecified() {
			return nil, fmt.Errorf("cluster: bind_addr %s is a wildcard: set advertise_addr", bound)
		}
		return bound, nil
	}
	return net.ResolveTCPAddr("tcp", configured)
}
