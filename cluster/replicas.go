package cluster

// Waiting for every replica.
//
// Apply returns once a quorum has the command on disk and the leader (and,
// through a follower, this node) has applied it: that is the promise, and
// with three appliances it survives the loss of any one. WaitReplicas asks
// for more where it costs little: before a device is told "saved", every
// other voter that is answering has applied the command too, so that an
// alarm is on all three appliances, not two, when the worker's device says
// "alarm received". A follower learns that an entry committed from the
// leader's next AppendEntries (at most CommitTimeout later) and applies it
// at once, so in a healthy cluster this adds a few milliseconds.
//
// A voter that does not answer within the caller's bound (stopped, cut
// off, or catching up from far behind) is not waited for, and is not asked
// again for replicaRetry: waiting on it would trade availability for
// nothing the quorum does not already guarantee.
//
// Concurrent callers share one question per peer: whoever finds none in
// flight asks "tell me when you have applied index I" (opWaitApplied), and
// every caller waiting on that peer wakes when the answer arrives. So a
// thousand devices publishing at once cost each peer one RPC at a time, not
// a thousand.

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// replicaRetry is how long a peer that did not answer is left out of
// WaitReplicas before it is asked again.
const replicaRetry = time.Second

// replicaWatch is what this node knows of how far one peer has applied.
type replicaWatch struct {
	mu       sync.Mutex
	addr     string
	applied  uint64        // the highest index the peer said it has applied
	asking   bool          // a caller has a question to the peer in flight
	failedAt time.Time     // when the last question went unanswered; zero if answered
	changed  chan struct{} // closed and replaced when a question ends
}

// WaitReplicas waits, within ctx, until every voter that answers has applied
// everything this node has applied now. It returns how many voters,
// counting this one, are known to have it, and how many voters there are.
// It never fails: the outcome of the writes it waits for is already settled
// by the quorum, and the counts say how far beyond the quorum they got.
func (n *Node) WaitReplicas(ctx context.Context) (confirmed, voters int) {
	index := n.fsm.Applied()
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return 1, 1
	}
	for _, s := range f.Configuration().Servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		voters++
		if string(s.ID) == n.id || n.waitPeer(ctx, n.watch(string(s.ID), string(s.Address)), index) {
			confirmed++
		}
	}
	return confirmed, voters
}

// watch returns the replicaWatch of peer id at addr.
func (n *Node) watch(id, addr string) *replicaWatch {
	n.replicasMu.Lock()
	defer n.replicasMu.Unlock()
	if n.replicas == nil {
		n.replicas = make(map[string]*replicaWatch)
	}
	w := n.replicas[id]
	if w == nil || w.addr != addr {
		// A new peer, or one that moved: what was known no longer holds.
		w = &replicaWatch{addr: addr, changed: make(chan struct{})}
		n.replicas[id] = w
	}
	return w
}

// waitPeer waits until the peer has applied index, asking it if no other
// caller is. It gives up at once on a peer that recently did not answer.
func (n *Node) waitPeer(ctx context.Context, w *replicaWatch, index uint64) bool {
	for {
		w.mu.Lock()
		switch {
		case w.applied >= index:
			w.mu.Unlock()
			return true
		case !w.failedAt.IsZero() && time.Since(w.failedAt) < replicaRetry:
			w.mu.Unlock()
			return false
		case w.asking:
			ch := w.changed
			w.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return false
			}
		}
		w.asking = true
		addr := w.addr
		w.mu.Unlock()

		resp, err := n.client.call(ctx, addr, &rpcRequest{Op: opWaitApplied, Index: index, FromNode: n.id})
		if err == nil {
			err = responseError(resp)
		}

		w.mu.Lock()
		w.asking = false
		if err == nil && resp.Index >= index {
			w.failedAt = time.Time{}
		} else {
			// Unreachable, refusing, or still behind when the caller's
			// time ran out: leave it out for a while.
			w.failedAt = time.Now()
		}
		if err == nil && resp.Index > w.applied {
			w.applied = resp.Index
		}
		close(w.changed)
		w.changed = make(chan struct{})
		ok := w.applied >= index
		w.mu.Unlock()
		if ok || ctx.Err() != nil || err != nil {
			return ok
		}
	}
}

// waitAppliedLocal serves opWaitApplied: it answers once this node has
// applied index, or when the asker's time runs out, with the index it has
// applied either way.
func (n *Node) waitAppliedLocal(ctx context.Context, index uint64) uint64 {
	n.fsm.waitApplied(ctx.Done(), index)
	return n.fsm.Applied()
}
