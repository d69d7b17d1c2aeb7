package cluster

// A quiet clean shutdown.
//
// hashicorp/raft logs every failed attempt to reach a peer as an error:
// appendEntries, heartbeats, votes, tens of lines a second. When a member
// crashes that is right. When an administrator stops a member (a Ctrl-C,
// systemctl stop, a rolling upgrade) it is noise that hides the real
// errors and teaches people to ignore them. So a member that closes
// cleanly first tells the others it is leaving (opLeaving): they log it
// once at info level, and from then on Raft's failures to reach it, and
// its elections once every other voter has left, at debug level, until
// it answers a status request again. A member killed (Kill) tells no one:
// its absence is an error as before. The closing member's own transport
// reports connections cut by its shutdown as errors too; those are debug.

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// leavingTimeout bounds how long a closing member waits for its peers to
// take the notice that it is leaving.
const leavingTimeout = 500 * time.Millisecond

// handoverQuiet is how long after handing leadership over a former
// leader's "peer has newer term" is routine: its successor won the term.
const handoverQuiet = 5 * time.Second

// departures are the members that said they were leaving and have not
// answered since, by node ID.
type departures struct {
	mu sync.Mutex
	m  map[string]departure
}

// departure is a member's address and when it said it was leaving.
type departure struct {
	addr string
	at   time.Time
}

func (d *departures) add(id, addr string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m == nil {
		d.m = map[string]departure{}
	}
	d.m[id] = departure{addr: addr, at: time.Now()}
}

// remove forgets id if it said it was leaving before asked, when the
// answer that shows it back was asked for, and reports whether it did. An
// answer to a question asked before the notice came may have been given
// before the member began to stop.
func (d *departures) remove(id string, asked time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if dp, ok := d.m[id]; ok && dp.at.Before(asked) {
		delete(d.m, id)
		return true
	}
	return false
}

// has reports whether id or addr is a member that left.
func (d *departures) has(id, addr string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, dp := range d.m {
		if i == id || (addr != "" && dp.addr == addr) {
			return true
		}
	}
	return false
}

func (d *departures) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.m)
}

// tellLeaving tells every other member, at once, that this node is
// leaving; it waits at most leavingTimeout. From here on the node refuses
// the cluster RPC, so that no status answer makes a peer forget the
// notice before the node is gone.
func (n *Node) tellLeaving() {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return
	}
	n.leaving.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), leavingTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == n.id {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// An older member answers an unknown operation with an error:
			// it then logs this node's absence as before.
			_, _ = n.client.call(ctx, string(s.Address), &rpcRequest{Op: opLeaving, FromNode: n.id})
		}()
	}
	wg.Wait()
}

// peerLeaving records that member id said it is leaving.
func (n *Node) peerLeaving(id string) error {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	for _, s := range f.Configuration().Servers {
		if string(s.ID) != id || id == n.id {
			continue
		}
		n.departed.add(id, string(s.Address))
		n.logger.Info("a member is stopping (a clean shutdown): failures to reach it are logged at debug level until it is back",
			"member", id, "addr", string(s.Address))
		if n.othersDeparted() {
			n.logger.Info("every other member has stopped: this node cannot commit until a quorum is back")
		}
		return nil
	}
	return errors.New("not a member")
}

// peerAnswered forgets that member id left: it answered a status request
// asked at asked.
func (n *Node) peerAnswered(id string, asked time.Time) {
	if n.departed.remove(id, asked) {
		n.logger.Info("a member that had stopped answers again", "member", id)
	}
}

// othersDeparted reports whether every other voter said it was leaving.
func (n *Node) othersDeparted() bool {
	if n.departed.len() == 0 || n.raft == nil {
		return false
	}
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	for _, s := range f.Configuration().Servers {
		if string(s.ID) != n.id && s.Suffrage == raft.Voter && !n.departed.has(string(s.ID), "") {
			return false
		}
	}
	return true
}

// transferTarget returns a voter to hand leadership to: one that has not
// said it is leaving, the furthest applied as it last reported. ok is
// false when there is none.
func (n *Node) transferTarget() (s raft.Server, ok bool) {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return s, false
	}
	var best uint64
	for _, c := range f.Configuration().Servers {
		if string(c.ID) == n.id || c.Suffrage != raft.Voter || n.departed.has(string(c.ID), "") {
			continue
		}
		var applied uint64
		n.peersMu.Lock()
		if p := n.peers[string(c.ID)]; p != nil && p.Err == nil {
			applied = p.Status.AppliedIndex
		}
		n.peersMu.Unlock()
		if !ok || applied > best {
			s, best, ok = c, applied, true
		}
	}
	return s, ok
}

// quietLevel is the level filter of Raft's and its transport's loggers:
// it lowers to debug what a clean shutdown makes routine, and leaves
// everything else as Raft logs it.
func (n *Node) quietLevel(level slog.Level, msg string, args []any) slog.Level {
	if msg == "peer has newer term, stopping replication" &&
		(n.closing.Load() || time.Since(time.Unix(0, n.handoverAt.Load())) < handoverQuiet) {
		return slog.LevelDebug // the leadership this node handed over
	}
	if level < slog.LevelWarn {
		if level == slog.LevelInfo && n.othersDeparted() {
			return slog.LevelDebug // a candidate's rounds, with nobody to vote
		}
		return level
	}
	for i := 1; i < len(args); i += 2 {
		switch v := args[i].(type) {
		case error:
			if errors.Is(v, raft.ErrTransportShutdown) {
				return slog.LevelDebug // this node's own shutdown cut a connection
			}
		case raft.Server:
			if n.departed.has(string(v.ID), string(v.Address)) {
				return slog.LevelDebug
			}
		case raft.ServerID:
			if n.departed.has(string(v), "") {
				return slog.LevelDebug
			}
		case raft.ServerAddress:
			if n.departed.has("", string(v)) {
				return slog.LevelDebug
			}
		}
	}
	if n.othersDeparted() {
		// Elections and a lost quorum, with nobody left to vote.
		return slog.LevelDebug
	}
	return level
}
