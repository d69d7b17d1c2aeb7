package systemtest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	vapi "github.com/vigilarc/vigil/ui/api"
)

// The load client: workers send diagnostic record commands to the nodes'
// HTTP APIs the way a careful client would, retrying every failure whose
// outcome allows it with the same command ID.

const (
	// commandBudget is how long the client keeps trying one command.
	commandBudget = 30 * time.Second
	// maxAttempts bounds the attempts at one command.
	maxAttempts = 300
	// requestTimeout bounds one HTTP request. It is longer than the
	// server's apply timeout, so that the server answers 503 or 504 first.
	requestTimeout = 15 * time.Second
	// firstBackoff and maxBackoff pace the retries of one command.
	firstBackoff = 20 * time.Millisecond
	maxBackoff   = 400 * time.Millisecond
)

// command is one diagnostic record command and what became of it.
type command struct {
	id, key string

	acked     bool
	index     uint64 // the index the 201 reply gave
	duplicate bool   // the 201 reply said the ID had been applied before
	attempts  int
	failure   string // why it was not acknowledged
}

// ackEvent is one acknowledgement, for timing.
type ackEvent struct {
	sentAt time.Time // when the successful attempt was sent
	at     time.Time // when its 201 arrived
	via    int       // index of the node that answered
}

// loadClient applies commands through the nodes' HTTP APIs.
type loadClient struct {
	api   *api
	addrs []string // the nodes' HTTP addresses

	cmds []*command // each written only by the worker that runs it

	acked atomic.Int64
	// Retries by cause.
	connErrs, noLeader, unknown atomic.Int64

	mu     sync.Mutex
	events []ackEvent
}

// newLoadClient returns a client of n commands to the nodes at addrs,
// authorised by the API token token.
func newLoadClient(addrs []string, token string, n int) *loadClient {
	c := &loadClient{api: newAPI(requestTimeout), addrs: addrs}
	c.api.token = token
	for i := range n {
		c.cmds = append(c.cmds, &command{
			id:  fmt.Sprintf("systemtest-cmd-%04d", i+1),
			key: fmt.Sprintf("c%04d", i+1),
		})
	}
	return c
}

// run applies every command with the given number of concurrent workers
// and returns when each has been acknowledged or has given up.
func (c *loadClient) run(ctx context.Context, workers int) {
	defer c.api.close()
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				c.apply(ctx, i)
			}
		})
	}
	for i := range c.cmds {
		next <- i
	}
	close(next)
	wg.Wait()
}

// apply sends command i until it is acknowledged, refused, or its budget is
// spent. Each command starts at a different node, so that every node takes
// writes and forwards them; after a failure it moves on to the next node.
func (c *loadClient) apply(ctx context.Context, i int) {
	cmd := c.cmds[i]
	ctx, cancel := context.WithTimeout(ctx, commandBudget)
	defer cancel()
	req := vapi.DiagRecordRequest{ID: cmd.id, Key: cmd.key, Value: cmd.id}
	node, backoff := i%len(c.addrs), firstBackoff
	for {
		cmd.attempts++
		sentAt := time.Now()
		status, resp, body, err := c.api.postRecord(ctx, c.addrs[node], req)
		switch {
		case err == nil && status == http.StatusCreated:
			cmd.acked, cmd.index, cmd.duplicate = true, resp.Index, resp.Duplicate
			c.acked.Add(1)
			c.mu.Lock()
			c.events = append(c.events, ackEvent{sentAt: sentAt, at: time.Now(), via: node})
			c.mu.Unlock()
			return
		case err != nil && status == 0:
			// No reply: the node is down, or it went down with the
			// request. The command may have been applied; the same ID
			// makes the retry safe.
			c.connErrs.Add(1)
			cmd.failure = err.Error()
		case status == http.StatusServiceUnavailable:
			c.noLeader.Add(1)
			cmd.failure = fmt.Sprintf("HTTP 503: %s", body)
		case status == http.StatusGatewayTimeout:
			c.unknown.Add(1)
			cmd.failure = fmt.Sprintf("HTTP 504: %s", body)
		default:
			// 409 (refused), 400, 500, or a 201 that could not be read:
			// retrying would not help.
			cmd.failure = fmt.Sprintf("HTTP %d from %s: %s %v", status, c.addrs[node], body, err)
			return
		}
		if cmd.attempts >= maxAttempts {
			cmd.failure = fmt.Sprintf("gave up after %d attempts; last: %s", cmd.attempts, cmd.failure)
			return
		}
		node = (node + 1) % len(c.addrs)
		select {
		case <-ctx.Done():
			cmd.failure = fmt.Sprintf("gave up after %d attempts in %s; last: %s", cmd.attempts, commandBudget, cmd.failure)
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// retries returns how many attempts were retries.
func (c *loadClient) retries() int64 {
	return c.connErrs.Load() + c.noLeader.Load() + c.unknown.Load()
}

// ackedSince returns the acknowledgements of attempts sent at or after t,
// in the order they arrived.
func (c *loadClient) ackedSince(t time.Time) []ackEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []ackEvent
	for _, e := range c.events {
		if !e.sentAt.Before(t) {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b ackEvent) int { return a.at.Compare(b.at) })
	return out
}

// longestAckGap returns the longest time without an acknowledgement
// between the first and the last one, and when that gap began.
func (c *loadClient) longestAckGap() (gap time.Duration, from time.Time) {
	c.mu.Lock()
	ats := make([]time.Time, 0, len(c.events))
	for _, e := range c.events {
		ats = append(ats, e.at)
	}
	c.mu.Unlock()
	slices.SortFunc(ats, time.Time.Compare)
	for i := 1; i < len(ats); i++ {
		if d := ats[i].Sub(ats[i-1]); d > gap {
			gap, from = d, ats[i-1]
		}
	}
	return gap, from
}

// errNotDone is returned by waitDone when the client is still running.
var errNotDone = errors.New("the client is still running")

// waitDone waits for done to close, for at most timeout.
func waitDone(done <-chan struct{}, timeout time.Duration) error {
	select {
	case <-done:
		return nil
	case <-time.After(timeout):
		return errNotDone
	}
}
