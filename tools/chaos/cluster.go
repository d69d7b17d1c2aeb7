package chaos

// The three nodes as a cluster: start, look at each node's status over its
// HTTP API, find the leader, wait until the cluster is whole again.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/cluster"
	"github.com/vigilarc/vigil/provisioning"
	"github.com/vigilarc/vigil/tools/chaos/powerfs"
	"github.com/vigilarc/vigil/ui/auth"
	"github.com/vigilarc/vigil/ui/console"
)

// Timeouts of the cluster helpers.
const (
	// requestTimeout bounds one status or read request: a paused or cut
	// off node must not hold the harness up.
	requestTimeout = 2 * time.Second
	// bigReadTimeout bounds the checker's reads of a whole state.
	bigReadTimeout = 2 * time.Minute
	// formTimeout bounds the first formation of the cluster.
	formTimeout = 90 * time.Second
	// healthyTimeout bounds the wait for the cluster to be whole after a
	// fault is healed. Longer means Vigil did not recover: a finding. A
	// replacement catching up on the state of a 40-minute run took 90 s.
	healthyTimeout = 5 * time.Minute
	// pollInterval is how often a wait polls.
	pollInterval = 100 * time.Millisecond
)

// Cluster is the three nodes of a run.
type Cluster struct {
	nodes []*node
	ca    *provisioning.CA // the cluster's, with its key: it makes the join tokens
	http  *http.Client     // trusts ca
	// token is the admin API token every request sends, once obtainToken
	// has made it (before the load starts); until then each request sends
	// its node's own setup token.
	token string
}

// newCluster returns a cluster of one node per namespace of nw, running
// vigil with their data and logs under dir, and its new CA; it writes and
// starts nothing.
func newCluster(vigil, dir string, nw *Network) (*Cluster, error) {
	ca, err := provisioning.NewCA(fmt.Sprintf("chaos-%s", filepath.Base(dir)), time.Now())
	if err != nil {
		return nil, err
	}
	c := &Cluster{ca: ca, http: newHTTPClient(ca, 0)}
	var addrs []string
	for i := range nw.nodes {
		n := &node{slot: i, name: fmt.Sprintf("n%d", i+1), ns: nw.Namespace(i), ip: nw.NodeIP(i), vigil: vigil}
		n.id = n.name
		disk := filepath.Join(dir, n.name+"-disk")
		n.diskOpts = powerfs.Options{Mountpoint: disk, Backing: disk + ".backing", Store: disk + ".store"}
		n.dataDir = filepath.Join(disk, "data")
		n.logPath = filepath.Join(dir, n.name+".log")
		c.nodes = append(c.nodes, n)
		addrs = append(addrs, n.clusterAddr())
	}
	for _, n := range c.nodes {
		n.args = n.serveArgs(addrs)
	}
	return c, nil
}

// start mounts every node's disk, gives every node its trust (synced, as
// an installer would leave it), starts them and waits until they have
// formed one cluster.
func (c *Cluster) start(ctx context.Context) error {
	for _, n := range c.nodes {
		if err := n.mountDisk(); err != nil {
			return err
		}
	}
	if err := c.provisionTrust(); err != nil {
		return err
	}
	for _, n := range c.nodes {
		if err := syncTree(n.dataDir); err != nil {
			return fmt.Errorf("cannot sync %s's trust to its disk: %w", n.name, err)
		}
	}
	for _, n := range c.nodes {
		if err := n.start(); err != nil {
			return err
		}
	}
	_, _, err := c.waitHealthy(ctx, formTimeout)
	return err
}

// killAll SIGKILLs every node at once, then waits until all have gone
// (resuming none: SIGKILL ends a stopped process too).
func (c *Cluster) killAll() error {
	for _, n := range c.nodes {
		if n.running() {
			_ = n.run.cmd.Process.Signal(syscall.SIGKILL)
		}
	}
	var errs []error
	for _, n := range c.nodes {
		errs = append(errs, n.kill())
	}
	return errors.Join(errs...)
}

// unmountDisks unmounts every node's disk in order; the nodes must not run.
func (c *Cluster) unmountDisks() error {
	var errs []error
	for _, n := range c.nodes {
		errs = append(errs, n.unmountDisk())
	}
	return errors.Join(errs...)
}

// getJSON decodes the 200 reply to GET path on node n into v.
func (c *Cluster) getJSON(ctx context.Context, n *node, path string, timeout time.Duration, v any) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.url()+path, nil)
	if err != nil {
		return err
	}
	c.authorise(req, n)
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return &httpError{method: "GET", path: path, status: resp.StatusCode, body: string(bytes.TrimSpace(b))}
	}
	return json.Unmarshal(b, v)
}

// send sends a JSON body with method to path on node n and decodes a 2xx
// reply into out (when not nil).
func (c *Cluster) send(ctx context.Context, n *node, method, path string, timeout time.Duration, body, out any) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, n.url()+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	c.authorise(req, n)
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return &httpError{method: method, path: path, status: resp.StatusCode, body: string(bytes.TrimSpace(b))}
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// authorise sets the Authorization header of a request to node n: the
// API token once obtainToken has made it, else n's own setup token, which
// n writes to its data directory at every start and accepts as an admin
// (it works on n alone, and before the cluster has a leader).
func (c *Cluster) authorise(req *http.Request, n *node) {
	tok := c.token
	if tok == "" {
		b, err := os.ReadFile(filepath.Join(n.dataDir, auth.SetupTokenFileName))
		if err != nil {
			return // the node refuses with 401, which the caller reports
		}
		tok = strings.TrimSpace(string(b))
	}
	req.Header.Set("Authorization", "Bearer "+tok)
}

// tokenName is the name of the harness's API token: the actor of its
// commands is "token:chaos-operator".
const tokenName = "chaos-operator"

// obtainToken makes an admin API token through node 1's local setup API,
// authorised by the setup token in node 1's data directory, and sends it
// with every request from then on. It is replicated, so it works on every
// node, also on one restarted or wiped and replaced. Call it once, when
// the cluster first has a leader.
func (c *Cluster) obtainToken(ctx context.Context) error {
	n := c.nodes[0]
	setup, err := os.ReadFile(filepath.Join(n.dataDir, auth.SetupTokenFileName))
	if err != nil {
		return fmt.Errorf("cannot read %s's setup token: %w", n.name, err)
	}
	body, err := json.Marshal(console.SetupTokenRequest{Name: tokenName, Role: monitoring.RoleAdmin})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, formTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.url()+console.Prefix+"/setup/tokens", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(setup)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot make the harness's API token through %s: %w", n.name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("cannot make the harness's API token through %s: %w", n.name, err)
	}
	var made monitoring.NewAPIToken
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(b, &made) != nil || made.Secret == "" {
		return fmt.Errorf("cannot make the harness's API token through %s: HTTP %d: %s", n.name, resp.StatusCode, bytes.TrimSpace(b))
	}
	c.token = made.Secret
	return nil
}

// httpError is a reply other than 2xx.
type httpError struct {
	method, path string
	status       int
	body         string
}

func (e *httpError) Error() string {
	return fmt.Sprintf("%s %s: HTTP %d: %s", e.method, e.path, e.status, e.body)
}

// statusCode returns the HTTP status of err, or 0 when there was no reply.
func statusCode(err error) int {
	var he *httpError
	if errors.As(err, &he) {
		return he.status
	}
	return 0
}

// status returns node n's view of the cluster.
func (c *Cluster) status(ctx context.Context, n *node) (cluster.Status, error) {
	var st cluster.Status
	err := c.getJSON(ctx, n, "/api/v1/cluster/status", requestTimeout, &st)
	return st, err
}

// statuses returns the status of each node that answers, nil for the
// others.
func (c *Cluster) statuses(ctx context.Context) []*cluster.Status {
	out := make([]*cluster.Status, len(c.nodes))
	done := make(chan struct{}, len(c.nodes))
	for i, n := range c.nodes {
		go func() {
			defer func() { done <- struct{}{} }()
			if !n.running() || n.paused {
				return
			}
			if st, err := c.status(ctx, n); err == nil {
				out[i] = &st
			}
		}()
	}
	for range c.nodes {
		<-done
	}
	return out
}

// leader returns the node that leads, as it and at least one other node
// say; nil when there is no such node.
func (c *Cluster) leader(ctx context.Context) *node {
	sts := c.statuses(ctx)
	for i, st := range sts {
		if st == nil || st.State != "Leader" {
			continue
		}
		for j, o := range sts {
			if j != i && o != nil && o.LeaderID == st.NodeID {
				return c.nodes[i]
			}
		}
	}
	return nil
}

// waitLeader waits for a leader as leader finds it.
func (c *Cluster) waitLeader(ctx context.Context, timeout time.Duration) (*node, error) {
	var l *node
	err := pollUntil(ctx, timeout, func() bool {
		l = c.leader(ctx)
		return l != nil
	})
	if err != nil {
		return nil, fmt.Errorf("no leader within %s: %w", timeout, err)
	}
	return l, nil
}

// others returns the nodes other than n.
func (c *Cluster) others(n *node) []*node {
	var out []*node
	for _, o := range c.nodes {
		if o != n {
			out = append(out, o)
		}
	}
	return out
}

// waitHealthy waits until the cluster is whole: every node runs and
// answers, all name one leader, whose configuration is exactly the three
// current members as voters, all reachable from it; and every node has
// applied what the leader had committed when the cluster first looked
// whole. It returns the leader, and what kept the cluster from being whole
// the longest (empty when it was whole at once).
func (c *Cluster) waitHealthy(ctx context.Context, timeout time.Duration) (*node, string, error) {
	var leader *node
	var target uint64 // the leader's commit index once all else holds
	var why, detail string
	held := map[string]time.Duration{} // how long each reason held the cluster up
	lastPoll := time.Now()
	err := pollUntil(ctx, timeout, func() bool {
		leader, why, detail = c.whole(ctx, &target)
		now := time.Now()
		if why != "" {
			held[why] += now.Sub(lastPoll)
		}
		lastPoll = now
		return why == ""
	})
	longest := ""
	for r, d := range held {
		if longest == "" || d > held[longest] {
			longest = r
		}
	}
	if longest != "" {
		longest = fmt.Sprintf("%s for %s", longest, held[longest].Round(100*time.Millisecond))
	}
	if err != nil {
		return nil, longest, fmt.Errorf("cluster not whole within %s (%s: %s): %w", timeout, why, detail, err)
	}
	return leader, longest, nil
}

// whole looks at the cluster once. It returns the leader if the cluster is
// whole, else why not (a short reason) and the details; target is the
// commit index every node must have applied, set the first time all else
// holds.
func (c *Cluster) whole(ctx context.Context, target *uint64) (leader *node, why, detail string) {
	for _, n := range c.nodes {
		if !n.running() {
			return nil, "a node exited", fmt.Sprintf("%s: %s", n.name, n.exitState())
		}
	}
	sts := c.statuses(ctx)
	for i, st := range sts {
		switch {
		case st == nil:
			return nil, "a node does not answer", c.nodes[i].name
		case st.NodeID != c.nodes[i].id:
			return nil, "a node has another ID", fmt.Sprintf("%s is %s, want %s", c.nodes[i].name, st.NodeID, c.nodes[i].id)
		case st.LeaderID == "" || st.LeaderID != sts[0].LeaderID:
			return nil, "no agreed leader", fmt.Sprintf("%s follows %q, %s %q", c.nodes[i].name, st.LeaderID, c.nodes[0].name, sts[0].LeaderID)
		case st.State == "Leader":
			leader = c.nodes[i]
		}
	}
	if leader == nil {
		return nil, "no agreed leader", "no node is leader"
	}
	lst := sts[leader.slot]
	var ids []string
	for _, m := range lst.Members {
		if !m.Voter || !m.Reachable {
			return nil, "a member is not a reachable voter", fmt.Sprintf("%s: voter %v, reachable %v", m.ID, m.Voter, m.Reachable)
		}
		ids = append(ids, m.ID)
	}
	slices.Sort(ids)
	if want := c.memberIDs(); !slices.Equal(ids, want) {
		return nil, "members differ", fmt.Sprintf("%v, want %v", ids, want)
	}
	if *target == 0 {
		*target = lst.CommitIndex
	}
	for i, st := range sts {
		if st.AppliedIndex < *target {
			return nil, "a node is catching up", fmt.Sprintf("%s has applied %d of %d", c.nodes[i].name, st.AppliedIndex, *target)
		}
	}
	return leader, "", ""
}

// memberIDs returns the current members' IDs, sorted.
func (c *Cluster) memberIDs() []string {
	var ids []string
	for _, n := range c.nodes {
		ids = append(ids, n.id)
	}
	slices.Sort(ids)
	return ids
}

// logTails returns the last lines of each node's log.
func (c *Cluster) logTails(lines int) string {
	var sb strings.Builder
	for _, n := range c.nodes {
		fmt.Fprintf(&sb, "---- %s (%s), last lines of %s, requests answered below 500 left out ----\n%s\n", n.name, n.id, n.logPath, tail(n.logPath, lines))
	}
	return sb.String()
}

// pollUntil calls cond every pollInterval until it returns true; it fails
// after timeout or when ctx ends.
func pollUntil(ctx context.Context, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollInterval):
		}
	}
	return nil
}
