package main

// Commit to console: the time from an alarm's PUBACK at the device to its
// event on an operator console's event stream (GET /ui/events, the
// server-sent events a signed-in browser follows, ui/queue.go), on each
// of the three nodes. The bench creates an operator through the node's
// local operator API (the bearer token in its data directory, as vigil
// operator does), signs in on every node as a browser would, and follows
// the three streams; a probe device on the leader's broker raises one test
// alarm at a time, learns the alarm's ID from its down/reply, and waits
// until every stream has shown it. Once quiet, once while 16 other devices
// raise alarms back to back.
//
// With broker.replica_wait the PUBACK waits until every healthy node has
// applied the alarm, so a console usually shows it before the device hears
// it is saved: the figures are then negative.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/sim"
	"github.com/vigilarc/vigil/ui/auth"
	"github.com/vigilarc/vigil/ui/console"
)

const (
	// consoleOperator is the bench's console account.
	consoleOperator = "bench-operator"
	// consoleWait bounds the wait for an alarm on every stream.
	consoleWait = 5 * time.Second
	// consoleLoadDevices raise alarms back to back during the loaded run.
	consoleLoadDevices = 16
)

// consoleRun is one series of probe alarms.
type consoleRun struct {
	name    string
	samples int
	puback  []time.Duration // publish to PUBACK of the probes, sorted
	nodes   []consoleNode
	errors  int // probes without PUBACK or without an alarm ID in the reply
	load    *gwLoad
}

// consoleNode is what one node's stream showed.
type consoleNode struct {
	name, role string
	afterAck   []time.Duration // event minus PUBACK, sorted; negative when the event came first
	afterSend  []time.Duration // event minus publish, sorted
	missing    int             // probes the stream did not show within consoleWait
	reconnects int
}

// consoleClient signs in and follows the consoles' event streams.
type consoleClient struct {
	http     *http.Client
	user     string // the account, consoleOperator unless changed
	password string
}

func newConsoleClient() *consoleClient {
	var raw [16]byte
	_, _ = rand.Read(raw[:])
	return &consoleClient{
		http: &http.Client{
			// The sign-in answers 303: the bench reads its cookie, it
			// does not follow it.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		user:     consoleOperator,
		password: hex.EncodeToString(raw[:]),
	}
}

// createOperator creates the bench's operator, cc.user, through n's local
// operator API, authorised by the token n wrote in its data directory.
func (cc *consoleClient) createOperator(ctx context.Context, n *node) error {
	tok, err := os.ReadFile(filepath.Join(n.dataDir, auth.SetupTokenFileName))
	if err != nil {
		return fmt.Errorf("cannot read %s's console setup token: %w", n.name, err)
	}
	body, _ := json.Marshal(console.SetupOperatorRequest{ID: cc.user, Name: "Bench operator",
		Role: monitoring.RoleOperator, Password: cc.password})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+n.httpAddr+console.Prefix+"/setup/operators", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	resp, err := vigilHTTP{client: cc.http}.do(req)
	if err != nil {
		return fmt.Errorf("cannot create the console operator: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("cannot create the console operator: HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	return nil
}

// cookieNamed returns the cookie whose name ends with name: the console
// prefixes __Host- when its cookies are Secure.
func cookieNamed(cs []*http.Cookie, name string) *http.Cookie {
	for _, c := range cs {
		if strings.HasSuffix(c.Name, name) && c.Value != "" {
			return c
		}
	}
	return nil
}

// signIn signs in on n's console as a browser does (the sign-in page's
// CSRF cookie, then the form) and returns the session cookie.
func (cc *consoleClient) signIn(ctx context.Context, n *node) (*http.Cookie, error) {
	base := "http://" + n.httpAddr + console.Prefix
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/login", nil)
	if err != nil {
		return nil, err
	}
	resp, err := vigilHTTP{client: cc.http}.do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot open %s's sign-in page: %w", n.name, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	csrf := cookieNamed(resp.Cookies(), "vigil_login")
	if csrf == nil {
		return nil, fmt.Errorf("%s's sign-in page (HTTP %d) set no vigil_login cookie", n.name, resp.StatusCode)
	}
	form := url.Values{"user": {cc.user}, "password": {cc.password}, "csrf": {csrf.Value}, "next": {console.Prefix + "/"}}
	req, err = http.NewRequestWithContext(ctx, http.MethodPost, base+"/login", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "http://"+n.httpAddr)
	req.AddCookie(csrf)
	resp, err = vigilHTTP{client: cc.http}.do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot sign in on %s: %w", n.name, err)
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	session := cookieNamed(resp.Cookies(), "vigil_session")
	if resp.StatusCode != http.StatusSeeOther || session == nil {
		return nil, fmt.Errorf("sign-in on %s: HTTP %d, no session cookie: %.200s", n.name, resp.StatusCode, b)
	}
	return session, nil
}

// sseStream follows one node's /ui/events and notes when each alarm was
// first shown as raised.
type sseStream struct {
	node   *node
	cookie *http.Cookie

	mu         sync.Mutex
	raised     map[string]time.Time // alarm ID -> arrival of its alarm_raised event
	changed    chan struct{}        // signalled on every new alarm
	ready      chan struct{}        // closed at the first snapshot
	readyOnce  sync.Once
	reconnects int
	resyncs    int
}

func newSSEStream(n *node, cookie *http.Cookie) *sseStream {
	return &sseStream{node: n, cookie: cookie, raised: map[string]time.Time{},
		changed: make(chan struct{}, 1), ready: make(chan struct{})}
}

// run follows the stream until ctx ends, reconnecting when it drops (the
// console drops a stream that falls behind).
func (s *sseStream) run(ctx context.Context, hc *http.Client) {
	for ctx.Err() == nil {
		err := s.follow(ctx, hc)
		if ctx.Err() != nil {
			return
		}
		s.mu.Lock()
		s.reconnects++
		s.mu.Unlock()
		if err != nil {
			progress("console: %s's event stream: %v; reconnecting", s.node.name, err)
		}
		_ = sleep(ctx, 100*time.Millisecond)
	}
}

func (s *sseStream) follow(ctx context.Context, hc *http.Client) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.node.httpAddr+console.Prefix+"/events", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.AddCookie(s.cookie)
	resp, err := vigilHTTP{client: hc}.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	r := bufio.NewReaderSize(resp.Body, 64<<10)
	var event string
	var data []byte
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A long line (the snapshot): read the rest of it.
			rest, err2 := r.ReadBytes('\n')
			line, err = append(slices.Clone(line), rest...), err2
		}
		if err != nil {
			return err
		}
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case len(line) == 0:
			s.dispatch(event, data)
			event, data = "", nil
		case bytes.HasPrefix(line, []byte("event: ")):
			event = string(line[len("event: "):])
		case bytes.HasPrefix(line, []byte("data: ")):
			data = append(data[:0], line[len("data: "):]...)
		}
	}
}

func (s *sseStream) dispatch(event string, data []byte) {
	switch event {
	case "snapshot":
		s.readyOnce.Do(func() { close(s.ready) })
	case "resync":
		s.mu.Lock()
		s.resyncs++
		s.mu.Unlock()
	case "alarm":
		at := time.Now()
		var m struct {
			Event string `json:"event"`
			Row   struct {
				ID string `json:"id"`
			} `json:"row"`
		}
		if json.Unmarshal(data, &m) != nil || m.Event != string(monitoring.EventAlarmRaised) {
			return
		}
		s.mu.Lock()
		if _, ok := s.raised[m.Row.ID]; !ok {
			s.raised[m.Row.ID] = at
		}
		s.mu.Unlock()
		select {
		case s.changed <- struct{}{}:
		default:
		}
	}
}

// waitFor returns when the stream showed alarm id, waiting until deadline.
func (s *sseStream) waitFor(ctx context.Context, id string, deadline time.Time) (time.Time, bool) {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for {
		s.mu.Lock()
		at, ok := s.raised[id]
		if ok {
			delete(s.raised, id)
		}
		s.mu.Unlock()
		if ok {
			return at, true
		}
		select {
		case <-s.changed:
		case <-t.C:
			return time.Time{}, false
		case <-ctx.Done():
			return time.Time{}, false
		}
	}
}

// forget drops the alarms noted so far (the load's).
func (s *sseStream) forget() {
	s.mu.Lock()
	clear(s.raised)
	s.mu.Unlock()
}

// consoleReport holds the commit-to-console figures.
type consoleReport struct {
	runs []consoleRun
}

// runConsole measures commit to console on c: samples probes quiet, then
// samples under the load of consoleLoadDevices devices (creds[:16]); the
// probe device is probe.
func runConsole(ctx context.Context, c *localCluster, creds []sim.Credential, probe sim.Credential, samples int, warmup time.Duration) (*consoleReport, error) {
	leader, err := c.waitLeader(ctx, startTimeout)
	if err != nil {
		return nil, err
	}
	cc := newConsoleClient()
	if err := cc.createOperator(ctx, leader); err != nil {
		return nil, err
	}
	if err := c.barrier(ctx); err != nil {
		return nil, err
	}
	sctx, stopStreams := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		stopStreams()
		wg.Wait()
		cc.http.CloseIdleConnections()
	}()
	var streams []*sseStream
	for _, n := range c.nodes {
		cookie, err := cc.signIn(ctx, n)
		if err != nil {
			return nil, err
		}
		s := newSSEStream(n, cookie)
		streams = append(streams, s)
		wg.Go(func() { s.run(sctx, cc.http) })
	}
	for _, s := range streams {
		select {
		case <-s.ready:
		case <-time.After(startTimeout):
			return nil, fmt.Errorf("%s's console event stream sent no snapshot within %s", s.node.name, startTimeout)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}

	rep := &consoleReport{}
	run, err := consoleProbes(ctx, c, leader, streams, probe, samples, "quiet: no other alarms")
	if err != nil {
		return nil, err
	}
	rep.runs = append(rep.runs, run)

	// The same under load: the simulator's closed alarm loop, in the
	// background, while the probes run.
	var all []string
	for _, n := range c.nodes {
		all = append(all, n.mqttAddr)
	}
	l := gwLevel{tag: "console_load", where: "the 3 nodes' brokers", devices: consoleLoadDevices, brokers: all}
	lctx, stopLoad := context.WithCancel(ctx)
	loadDone := make(chan struct{})
	var load gwLoad
	var loadErr error
	loading := make(chan struct{})
	go func() {
		defer close(loadDone)
		load, loadErr = runAlarmLoadUntil(lctx, l, creds[:consoleLoadDevices], c.pids(), loading)
	}()
	select {
	case <-loading:
	case <-loadDone:
		stopLoad()
		return nil, fmt.Errorf("the console's background load did not start: %w", loadErr)
	}
	if err := sleep(ctx, warmup); err != nil {
		stopLoad()
		<-loadDone
		return nil, err
	}
	for _, s := range streams {
		s.forget()
	}
	run, err = consoleProbes(ctx, c, leader, streams, probe, samples, fmt.Sprintf("under load: %d devices raising alarms back to back", consoleLoadDevices))
	stopLoad()
	<-loadDone
	if err != nil {
		return nil, err
	}
	if loadErr != nil && !errors.Is(loadErr, context.Canceled) {
		return nil, loadErr
	}
	run.load = &load
	rep.runs = append(rep.runs, run)
	return rep, nil
}

// consoleProbes raises samples test alarms from probe on leader's broker,
// one at a time, and notes when each stream showed each of them.
func consoleProbes(ctx context.Context, c *localCluster, leader *node, streams []*sseStream, probe sim.Credential, samples int, name string) (consoleRun, error) {
	run := consoleRun{name: name, samples: samples}
	replies := make(chan deviceReply, 16)
	dev, err := connectDevice(ctx, leader.mqttAddr, nil, probe, false, nil, func(r deviceReply) {
		select {
		case replies <- r:
		default:
		}
	})
	if err != nil {
		return run, err
	}
	defer dev.disconnect()
	for _, s := range streams {
		role := "follower"
		if s.node == leader {
			role = "leader"
		}
		s.mu.Lock()
		r := s.reconnects
		s.mu.Unlock()
		run.nodes = append(run.nodes, consoleNode{name: s.node.name, role: role, reconnects: -r})
	}
	tag := fmt.Sprintf("b-console-%d", time.Now().UnixMilli())
	for i := range samples {
		eid := fmt.Sprintf("%s-%d", tag, i)
		t0 := time.Now()
		err := waitToken(ctx, dev.publishAlarm(eid), publishTimeout)
		acked := time.Now()
		if err != nil {
			if ctx.Err() != nil {
				return run, ctx.Err()
			}
			return run, fmt.Errorf("console probe %s: no PUBACK: %w", eid, err)
		}
		run.puback = append(run.puback, acked.Sub(t0))
		alarmID := ""
		deadline := time.Now().Add(consoleWait)
		for alarmID == "" && time.Now().Before(deadline) {
			select {
			case r := <-replies:
				if r.EventID == eid && r.OK {
					alarmID = r.Result.AlarmID
				}
			case <-time.After(time.Until(deadline)):
			case <-ctx.Done():
				return run, ctx.Err()
			}
		}
		if alarmID == "" {
			run.errors++
			continue
		}
		for j, s := range streams {
			at, ok := s.waitFor(ctx, alarmID, acked.Add(consoleWait))
			if !ok {
				run.nodes[j].missing++
				continue
			}
			run.nodes[j].afterAck = append(run.nodes[j].afterAck, at.Sub(acked))
			run.nodes[j].afterSend = append(run.nodes[j].afterSend, at.Sub(t0))
		}
	}
	for j, s := range streams {
		s.mu.Lock()
		run.nodes[j].reconnects += s.reconnects
		s.mu.Unlock()
		slices.Sort(run.nodes[j].afterAck)
		slices.Sort(run.nodes[j].afterSend)
	}
	slices.Sort(run.puback)
	return run, c.exited()
}
