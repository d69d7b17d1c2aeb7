package main

// Hostile input, measured (-only hostile; docs/reliability.md, "Limits"):
// what an outsider or a stolen device sends to one node of the gateway's
// cluster (a follower, "the attacked node"), what comes back, and what it
// costs the node and its legitimate users. Each case of issue 16 is sent
// with real clients, bare MQTT and HTTP over TCP from addresses of
// 127.0.0.0/8 (hostilenet.go), paho for the devices, and while it runs:
//
//   - the attacked node's resident memory (VmRSS) and open files are read
//     every 50 ms: before, the peak, and after the case has settled;
//   - a legitimate operator (the bench's API token, its own connection
//     from 127.0.0.1) reads GET /api/v1/organisations/bench-org from the
//     attacked node every 100 ms, a cheap read: its latency and failures;
//   - a legitimate device, connected to the attacked node before the part
//     began, raises a test alarm every 500 ms and waits for its PUBACK,
//     and once more after the case: did it get through.
//
// Each case also says whether the answer is the one docs/reliability.md
// (or docs/api.md, docs/device-protocol.md) promises; the part only
// measures, it fixes nothing. It runs only when -only names it, and last,
// as its floods leave alarms and refused sessions behind.

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/vigilarc/vigil/appliance"
	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/sim"
	"github.com/vigilarc/vigil/broker"
)

// partHostile is the part -only names hostile. It is not among the
// gateway's parts: it runs only when named.
const partHostile = "hostile"

// The hostile part's plan for a full run and a -quick one.
const (
	hostileIdleConns        = 20000
	hostileIdleConnsQuick   = 4000
	hostileIdleAddrs        = 400 // 50 connections each: under the per-address bound
	hostileIdleAddrsQuick   = 80
	hostilePerAddrConns     = 200 // from one address
	hostileBadConnects      = 2000
	hostileBadConnectsQuick = 400
	hostileBadInFlight      = 200
	hostileBadAddrs         = 32
	hostileSignIns          = 150
	hostileSignInsQuick     = 60
	hostileUploads          = 8
	hostileUploadSize       = 1 << 30
	hostileUploadLimit      = 60 * time.Second
	hostileFlood            = 10 * time.Second
	hostileFloodQuick       = 3 * time.Second
	// hostileFloodWindow is how many alarms the flooding device keeps
	// unacknowledged at most: less than the 65,535 packet IDs.
	hostileFloodWindow = 1024
	hostileSettle      = 2 * time.Second
	hostileSettleQuick = time.Second
	// hostileMinWatch is the shortest a case is watched, so that a case
	// answered at once still has some 30 reads of the API to show.
	hostileMinWatch = 3 * time.Second
	// hostileDevices is how many provisioned devices the part uses.
	hostileDevices = 12
	// Sampling of the watch.
	hostileRSSEvery   = 50 * time.Millisecond
	hostileAPIEvery   = 100 * time.Millisecond
	hostileAPITimeout = 5 * time.Second
	// hostileLegitEvery keeps the legitimate device under the default
	// per-device alarm limit (20 a minute, a burst of 20) over the run.
	hostileLegitEvery = 4 * time.Second
	hostileLegitWait  = 5 * time.Second
	// hostileBigPublish is the PUBLISH of case 8: more than the broker's
	// packet limit.
	hostileBigPublish = 70 * 1000
	// hostileHeldAfter is how long a connection that never sent CONNECT
	// must stay open to count as held (admitted until the CONNECT
	// timeout) rather than refused at once.
	hostileHeldAfter = broker.DefaultConnectTimeout / 2
)

// The /16 blocks of 127.0.0.0/8 the cases dial from (loopbackAddr).
const (
	blockPerAddr  = 10
	blockIdle     = 11
	blockBadMQTT  = 12
	blockSignIns  = 13
	blockGuesser  = 14
	blockUnknown  = 15
	blockUploads  = 16
	blockWill     = 17
	blockFlood    = 18
	blockBigPub   = 19
	blockNewDevOK = 20
)

// hostilePlan is what the hostile part sends.
type hostilePlan struct {
	idleConns, idleAddrs, perAddrConns int
	badConnects, badInFlight, badAddrs int
	signIns                            int
	uploads                            int
	uploadSize                         int64
	flood, settle                      time.Duration
}

func newHostilePlan(quick bool) hostilePlan {
	p := hostilePlan{
		idleConns: hostileIdleConns, idleAddrs: hostileIdleAddrs, perAddrConns: hostilePerAddrConns,
		badConnects: hostileBadConnects, badInFlight: hostileBadInFlight, badAddrs: hostileBadAddrs,
		signIns: hostileSignIns, uploads: hostileUploads, uploadSize: hostileUploadSize,
		flood: hostileFlood, settle: hostileSettle,
	}
	if quick {
		p.idleConns, p.idleAddrs = hostileIdleConnsQuick, hostileIdleAddrsQuick
		p.badConnects, p.signIns = hostileBadConnectsQuick, hostileSignInsQuick
		p.flood, p.settle = hostileFloodQuick, hostileSettleQuick
	}
	return p
}

// hostileCase is one row of the table.
type hostileCase struct {
	id     string // "2b": the number, and a letter
	sent   string
	answer string
	// documented is whether the answer is the one the docs promise;
	// skipped cases leave it unset and say why in answer.
	documented bool
	skipped    bool
	watch      watchResult
}

// hostileReport is the hostile part's figures.
type hostileReport struct {
	plan     hostilePlan
	node     string // the attacked node
	baseline int64  // its RSS before the first case
	cases    []hostileCase
}

// hostileRun is what the cases share.
type hostileRun struct {
	c        *localCluster
	nd       *node // the attacked node
	plan     hostilePlan
	creds    []sim.Credential // hostileDevices of them, none connected yet
	legit    *benchDevice
	legitSeq atomic.Int64
	api      *http.Client // the legitimate operator's
	apiToken string
	rep      *hostileReport
}

// runHostile runs the hostile cases against a follower of c. creds must
// hold hostileDevices devices that have not connected yet, and one more,
// the legitimate device.
func runHostile(ctx context.Context, c *localCluster, creds []sim.Credential, plan hostilePlan) (*hostileReport, error) {
	if len(creds) < hostileDevices+1 {
		return nil, fmt.Errorf("hostile: %d devices wanted, %d provisioned", hostileDevices+1, len(creds))
	}
	// The other parts run the nodes with the per-device limits at their
	// bounds (unlimitedDevices); these cases meet the defaults, as an
	// appliance has them.
	saved := c.env
	progress("hostile: restarting the nodes with the default per-device limits")
	c.stop()
	c.env = append(slices.Clone(saved), defaultDeviceLimits()...)
	if err := c.startAll(ctx); err != nil {
		return nil, err
	}
	if err := c.barrier(ctx); err != nil {
		return nil, err
	}
	leader, err := c.waitLeader(ctx, startTimeout)
	if err != nil {
		return nil, err
	}
	nd := c.others(leader)[0]
	h := &hostileRun{c: c, nd: nd, plan: plan, creds: creds[:hostileDevices], apiToken: c.apiToken,
		api: &http.Client{Timeout: hostileAPITimeout}, rep: &hostileReport{plan: plan, node: nd.name}}
	legit, err := connectDevice(ctx, nd.mqttAddr, nil, creds[hostileDevices], true, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("hostile: the legitimate device: %w", err)
	}
	h.legit = legit
	defer legit.disconnect()
	if h.rep.baseline, _, err = readRSS(nd.pid()); err != nil {
		return nil, err
	}

	cases := []struct {
		id, what string
		run      func(context.Context, *hostileCase) error
	}{
		{"1a", "a last will on another device's topic", h.willElsewhere},
		{"1b", "a retained will", h.willRetained},
		{"2a", "connections from one address that never send CONNECT", h.perAddrPending},
		{"2b", "connections from many addresses that never send CONNECT", h.nodePending},
		{"3a", "MQTT CONNECTs with wrong secrets", h.badConnects},
		{"3b", "console sign-ins from many addresses", h.signInFlood},
		{"4", "wrong passwords, then the right one from a known browser", h.knownBrowser},
		{"5", "disk full", h.diskFull},
		{"6a", "1 GB multipart uploads to /ui/login", h.uploadsMultipart},
		{"6b", "1 GB multipart uploads to /ui/login, chunked", h.uploadsMultipartChunked},
		{"6c", "1 GB form bodies to /ui/login, chunked", h.uploadsForm},
		{"7", "one device publishing alarms as fast as it can", h.flood},
		{"8a", "a 70 KB PUBLISH, MQTT 5", h.bigPublish5},
		{"8b", "a 70 KB PUBLISH, MQTT 3.1.1", h.bigPublish4},
		{"10a", "names with a right-to-left override, a control character", h.hostileNames},
		{"10b", "a JSON key given twice", h.duplicateKeys},
		{"10c", "an alarm in the year 9999 over MQTT", h.year9999MQTT},
		{"10d", "an alarm in the year 9999 through the API", h.year9999API},
		{"10e", "a body over the API's limit", h.bodyTooLarge},
	}
	for _, tc := range cases {
		progress("hostile %s: %s, against %s", tc.id, tc.what, nd.name)
		hc := hostileCase{id: tc.id}
		w := h.startWatch(ctx)
		err := tc.run(ctx, &hc)
		hc.watch = w.finish(ctx, h)
		h.rep.cases = append(h.rep.cases, hc)
		if err != nil {
			return h.rep, fmt.Errorf("hostile %s: %w", tc.id, err)
		}
		if err := c.exited(); err != nil {
			return h.rep, fmt.Errorf("hostile %s: %w", tc.id, err)
		}
		progress("hostile %s: %s", tc.id, hc.answer)
	}
	return h.rep, nil
}

// cred returns the hostile part's device i (0 to hostileDevices-1).
func (h *hostileRun) cred(i int) sim.Credential { return h.creds[i] }

// watchResult is what the watch saw during a case.
type watchResult struct {
	rssBefore, rssPeak, rssAfter int64
	filesPeak                    int
	api                          []time.Duration // answered 200, sorted
	apiFailed                    int
	apiFirstFailure              string
	legitOK, legitSent           int
	legitMax                     time.Duration
	legitAfter                   bool // the alarm sent after the case was PUBACKed
}

// watch samples the attacked node while a case runs.
type watch struct {
	started time.Time
	stop    context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	res     watchResult
}

func (h *hostileRun) startWatch(ctx context.Context) *watch {
	ctx, cancel := context.WithCancel(ctx)
	w := &watch{stop: cancel, started: time.Now()}
	pid := h.nd.pid()
	w.res.rssBefore, _, _ = readRSS(pid)
	w.wg.Go(func() {
		t := time.NewTicker(hostileRSSEvery)
		defer t.Stop()
		for {
			rss, _, err := readRSS(pid)
			files := openFiles(pid)
			w.mu.Lock()
			if err == nil {
				w.res.rssPeak = max(w.res.rssPeak, rss)
			}
			w.res.filesPeak = max(w.res.filesPeak, files)
			w.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	w.wg.Go(func() {
		t := time.NewTicker(hostileAPIEvery)
		defer t.Stop()
		for {
			d, err := h.apiRead(ctx)
			w.mu.Lock()
			switch {
			case ctx.Err() != nil:
			case err != nil:
				w.res.apiFailed++
				if w.res.apiFirstFailure == "" {
					w.res.apiFirstFailure = err.Error()
				}
			default:
				w.res.api = append(w.res.api, d)
			}
			w.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	w.wg.Go(func() {
		t := time.NewTicker(hostileLegitEvery)
		defer t.Stop()
		for {
			d, err := h.legitAlarm(ctx)
			if ctx.Err() != nil {
				return
			}
			w.mu.Lock()
			w.res.legitSent++
			if err == nil {
				w.res.legitOK++
				w.res.legitMax = max(w.res.legitMax, d)
			}
			w.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	return w
}

// finish stops the sampling, sends the legitimate device's alarm after
// the case, and reads the node's RSS once the case has settled.
func (w *watch) finish(ctx context.Context, h *hostileRun) watchResult {
	_ = sleep(ctx, hostileMinWatch-time.Since(w.started))
	w.stop()
	w.wg.Wait()
	_, err := h.legitAlarm(ctx)
	w.res.legitAfter = err == nil
	_ = sleep(ctx, h.plan.settle)
	w.res.rssAfter, _, _ = readRSS(h.nd.pid())
	w.res.rssPeak = max(w.res.rssPeak, w.res.rssAfter, w.res.rssBefore)
	slices.Sort(w.res.api)
	return w.res
}

// apiRead is the legitimate operator's read: how long it took, or why it
// failed.
func (h *hostileRun) apiRead(ctx context.Context) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+h.nd.httpAddr+"/api/v1/organisations/"+benchOrg, nil)
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	resp, err := vigilHTTP{client: h.api, apiToken: h.apiToken}.do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var org struct{ ID string }
	err = json.NewDecoder(resp.Body).Decode(&org)
	d := time.Since(t0)
	switch {
	case resp.StatusCode != http.StatusOK:
		return d, fmt.Errorf("HTTP %d", resp.StatusCode)
	case err != nil || org.ID != benchOrg:
		return d, fmt.Errorf("unexpected reply: %v", err)
	}
	return d, nil
}

// defaultDeviceLimits are the settings of the default per-device limits,
// given explicitly: later settings win over unlimitedDevices'.
func defaultDeviceLimits() []string {
	return []string{
		appliance.EnvName("broker.messages_per_minute") + "=" + strconv.Itoa(broker.DefaultMessagesPerMinute),
		appliance.EnvName("broker.message_burst") + "=" + strconv.Itoa(broker.DefaultMessageBurst),
		appliance.EnvName("broker.alarms_per_minute") + "=" + strconv.Itoa(broker.DefaultAlarmsPerMinute),
		appliance.EnvName("broker.alarm_burst") + "=" + strconv.Itoa(broker.DefaultAlarmBurst),
	}
}

// openAlarmsOf counts the open alarms of device in the queue, and among
// them the device-flooding ones.
func (h *hostileRun) openAlarmsOf(ctx context.Context, device string) (alarms, flooding int, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+h.nd.httpAddr+"/api/v1/alarms", nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := vigilHTTP{client: h.api, apiToken: h.apiToken}.do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	var q struct {
		Alarms []struct {
			DeviceID string `json:"device_id"`
			Type     string `json:"type"`
		} `json:"alarms"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&q); err != nil || resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("the open alarms: HTTP %d, %v", resp.StatusCode, err)
	}
	for _, a := range q.Alarms {
		switch {
		case a.DeviceID != device:
		case a.Type == string(monitoring.AlarmDeviceFlooding):
			flooding++
		default:
			alarms++
		}
	}
	return alarms, flooding, nil
}

// legitAlarm raises one test alarm from the legitimate device and waits
// for its PUBACK.
func (h *hostileRun) legitAlarm(ctx context.Context) (time.Duration, error) {
	t0 := time.Now()
	tok := h.legit.publishAlarm(fmt.Sprintf("hostile-legit-%d", h.legitSeq.Add(1)))
	if err := waitToken(ctx, tok, hostileLegitWait); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}

// openFiles counts the open file descriptors of process pid, 0 if they
// cannot be read.
func openFiles(pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0
	}
	return len(ents)
}

// expect sets the case's answer and whether it is the documented one.
func (hc *hostileCase) expect(answer string, documented bool) {
	hc.answer, hc.documented = answer, documented
}

// --- 1. Last wills ---

// forgedMark marks the wills' messages, which no subscriber may get.
const forgedMark = "HOSTILE-FORGED-WILL"

// willCase sends, on MQTT 5 and 3.1.1, a CONNECT of device 0 carrying a
// will on topic, retained or not, drops the connection, and reports what
// device 1, subscribed to its own down/ topics, and a fresh subscriber of
// device 1 received.
func (h *hostileRun) willCase(ctx context.Context, hc *hostileCase, topic string, retain bool, want5, want4 byte) error {
	dev, target := h.cred(0), h.cred(1)
	var got atomic.Int64
	sub := func() (paho.Client, error) {
		d, err := connectDevice(ctx, h.nd.mqttAddr, nil, target, false, nil, nil)
		if err != nil {
			return nil, err
		}
		tok := d.client.Subscribe(topicPrefix+target.DeviceID+"/down/#", 1, func(_ paho.Client, m paho.Message) {
			if strings.Contains(string(m.Payload()), forgedMark) {
				got.Add(1)
			}
		})
		if err := waitToken(ctx, tok, hostileIOTimeout); err != nil {
			d.disconnect()
			return nil, err
		}
		return d.client, nil
	}
	watcher, err := sub()
	if err != nil {
		return err
	}
	defer watcher.Disconnect(0)
	codes := map[byte]string{}
	for _, v := range []byte{5, 4} {
		m, err := dialMQTT(ctx, loopbackAddr(blockWill, 0), h.nd.mqttAddr, v)
		if err != nil {
			return err
		}
		pk := m.connectPacket(dev.DeviceID, dev.Secret)
		pk.Connect.WillFlag, pk.Connect.WillTopic, pk.Connect.WillQos, pk.Connect.WillRetain = true, topic, 1, retain
		pk.Connect.WillPayload = []byte(`{"alarm_id":"` + forgedMark + `","status":"closed"}`)
		codes[v] = connackText(m.connect(pk))
		m.close() // not a DISCONNECT: a will kept would be published now
	}
	if err := sleep(ctx, time.Second); err != nil {
		return err
	}
	watcher.Disconnect(0)
	again, err := sub()
	if err != nil {
		return err
	}
	defer again.Disconnect(0)
	if err := sleep(ctx, time.Second); err != nil {
		return err
	}
	hc.expect(fmt.Sprintf("CONNACK %s (MQTT 5), %s (3.1.1); the will's message reached the target %d time(s), subscribed before or after",
		codes[5], codes[4], got.Load()),
		codes[5] == fmt.Sprintf("0x%02x", want5) && codes[4] == fmt.Sprintf("0x%02x", want4) && got.Load() == 0)
	return nil
}

func (h *hostileRun) willElsewhere(ctx context.Context, hc *hostileCase) error {
	topic := broker.DownTopic(h.cred(1).DeviceID, "alarm")
	hc.sent = "CONNECT of device A with a will on device B's down/alarm (MQTT 5, then 3.1.1), then the TCP connection dropped"
	return h.willCase(ctx, hc, topic, false, 0x87, 0x05)
}

func (h *hostileRun) willRetained(ctx context.Context, hc *hostileCase) error {
	topic := broker.UpTopic(h.cred(0).DeviceID, "gone")
	hc.sent = "CONNECT with a retained will on the device's own up/ topic (MQTT 5, then 3.1.1), then dropped"
	return h.willCase(ctx, hc, topic, true, 0x9a, 0x05)
}

// --- 2. Connections that never send CONNECT ---

// pendingOutcome is what became of connections that sent nothing.
type pendingOutcome struct {
	dialFailed, refused, held, open int
	maxHeld                         time.Duration
	took                            time.Duration // from the first dial to the last close
}

// holdSilent opens n connections to addr, from addrs addresses of block
// (n/addrs each), sending nothing, and waits until the node has closed
// every one or until the CONNECT timeout and a margin have passed after
// the last dial. during, if set, runs once every connection is dialled.
func holdSilent(ctx context.Context, addr string, block, n, addrs int, during func()) pendingOutcome {
	var mu sync.Mutex
	var out pendingOutcome
	t0 := time.Now()
	var conns sync.WaitGroup
	deadline := make(chan struct{})
	_ = forEach(ctx, n, 256, func(i int) error {
		c, err := dialFrom(ctx, loopbackAddr(block, i%addrs), addr)
		if err != nil {
			mu.Lock()
			out.dialFailed++
			mu.Unlock()
			return nil
		}
		start := time.Now()
		conns.Go(func() {
			defer c.Close()
			ended := make(chan struct{})
			go func() {
				select {
				case <-deadline:
					c.Close()
				case <-ended:
				}
			}()
			_, err := c.Read(make([]byte, 1))
			close(ended)
			held := time.Since(start)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				out.open++ // the node sent something: not expected
			case isDeadline(deadline):
				out.open++
			case held >= hostileHeldAfter:
				out.held++
				out.maxHeld = max(out.maxHeld, held)
			default:
				out.refused++
			}
		})
		return nil
	})
	if during != nil {
		during()
	}
	timer := time.AfterFunc(broker.DefaultConnectTimeout+5*time.Second, func() { close(deadline) })
	conns.Wait()
	timer.Stop()
	out.took = time.Since(t0)
	return out
}

func isDeadline(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func (o pendingOutcome) String() string {
	s := fmt.Sprintf("%s held until closed after at most %.1f s, %s closed at once", thousands(o.held), o.maxHeld.Seconds(), thousands(o.refused))
	if o.dialFailed > 0 {
		s += fmt.Sprintf(", %s dials failed", thousands(o.dialFailed))
	}
	if o.open > 0 {
		s += fmt.Sprintf(", **%s still open after the timeout**", thousands(o.open))
	}
	return s
}

func (h *hostileRun) perAddrPending(ctx context.Context, hc *hostileCase) error {
	n := h.plan.perAddrConns
	hc.sent = fmt.Sprintf("%d TCP connections from one address (127.%d.0.1), nothing sent", n, blockPerAddr)
	o := holdSilent(ctx, h.nd.mqttAddr, blockPerAddr, n, 1, nil)
	hc.expect(o.String(), o.held == broker.DefaultMaxPendingPerAddr && o.refused == n-o.held && o.open == 0 && o.dialFailed == 0)
	return ctx.Err()
}

func (h *hostileRun) nodePending(ctx context.Context, hc *hostileCase) error {
	n, addrs := h.plan.idleConns, h.plan.idleAddrs
	hc.sent = fmt.Sprintf("%s TCP connections from %d addresses (%d each), nothing sent; a new device connecting once all are dialled, and after",
		thousands(n), addrs, n/addrs)
	var during string
	o := holdSilent(ctx, h.nd.mqttAddr, blockIdle, n, addrs, func() {
		during = h.newDeviceConnects(ctx, h.cred(2))
	})
	after := h.newDeviceConnects(ctx, h.cred(3))
	shown := "**the node's cluster status shows no problem**"
	if st, err := h.c.nodeStatus(ctx, h.nd); err == nil && slices.ContainsFunc(st.Problems, func(p string) bool { return strings.Contains(p, "refused at the cap") }) {
		shown = "the node's cluster status shows the refusals"
	}
	hc.expect(fmt.Sprintf("%s; the new device: %s during, %s after; %s", o, during, after, shown),
		o.held <= broker.DefaultMaxPending && o.held > 0 && o.open == 0 && after == "connected" && !strings.HasPrefix(shown, "**"))
	return ctx.Err()
}

// newDeviceConnects connects a device from 127.0.0.1 once and reports
// "connected" or how it was refused.
func (h *hostileRun) newDeviceConnects(ctx context.Context, cred sim.Credential) string {
	m, err := dialMQTT(ctx, net.IPv4(127, 0, 0, 1), h.nd.mqttAddr, 4)
	if err != nil {
		return "dial failed: " + err.Error()
	}
	defer m.close()
	ack, err := m.connect(m.connectPacket(cred.DeviceID, cred.Secret))
	if err == nil && ack.ReasonCode == 0 {
		return "connected"
	}
	return "refused (" + connackText(ack, err) + ")"
}

// --- 3. Password floods ---

func (h *hostileRun) badConnects(ctx context.Context, hc *hostileCase) error {
	p := h.plan
	hc.sent = fmt.Sprintf("%s MQTT 3.1.1 CONNECTs of known device IDs with wrong secrets, %d at a time, from %d addresses",
		thousands(p.badConnects), p.badInFlight, p.badAddrs)
	var mu sync.Mutex
	var tally statusTally
	t0 := time.Now()
	err := forEach(ctx, p.badConnects, p.badInFlight, func(i int) error {
		cred := h.cred(4 + i%4)
		m, err := dialMQTT(ctx, loopbackAddr(blockBadMQTT, i%p.badAddrs), h.nd.mqttAddr, 4)
		var code string
		if err != nil {
			code = "dial failed"
		} else {
			code = connackText(m.connect(m.connectPacket(cred.DeviceID, "wrong-"+cred.Secret)))
			m.close()
		}
		mu.Lock()
		tally.add(code)
		mu.Unlock()
		return nil
	})
	took := time.Since(t0)
	// A wrong secret is return code 5 (not authorized); a node with no
	// place for the check answers 3 (server unavailable).
	documented := tally.n["0x05"]+tally.n["0x03"] == p.badConnects && tally.n["0x05"] > 0
	hc.expect(fmt.Sprintf("CONNACK %s in %.1f s", tally.String(), took.Seconds()), documented)
	return err
}

func (h *hostileRun) signInFlood(ctx context.Context, hc *hostileCase) error {
	n := h.plan.signIns
	hc.sent = fmt.Sprintf("%d console sign-ins at once, wrong password, each from its own address", n)
	cc := newConsoleClient()
	cc.user = "hostile-victim"
	if err := cc.createOperator(ctx, h.nd); err != nil {
		return err
	}
	browsers := make([]*browser, n)
	for i := range browsers {
		browsers[i] = newBrowser(loopbackAddr(blockSignIns, i))
		if err := browsers[i].open(ctx, h.nd); err != nil {
			return err
		}
	}
	var mu sync.Mutex
	var tally statusTally
	var slowest time.Duration
	start := make(chan struct{})
	var wg sync.WaitGroup
	for _, b := range browsers {
		wg.Go(func() {
			<-start
			t0 := time.Now()
			a := b.signIn(ctx, h.nd, cc.user, "not-"+cc.password)
			mu.Lock()
			defer mu.Unlock()
			tally.add(a.status())
			slowest = max(slowest, time.Since(t0))
		})
	}
	close(start)
	wg.Wait()
	documented := tally.n["401"]+tally.n["503"] == n && tally.n["401"] > 0
	hc.expect(fmt.Sprintf("HTTP %s; the slowest answer after %.1f s", tally.String(), slowest.Seconds()), documented)
	return ctx.Err()
}

// --- 4. A known browser ---

func (h *hostileRun) knownBrowser(ctx context.Context, hc *hostileCase) error {
	const wrong = 6
	hc.sent = fmt.Sprintf("a browser signs in; another, from another address, sends %d wrong passwords and then the right one; "+
		"the first signs in again; an unknown user name", wrong)
	cc := newConsoleClient()
	cc.user = "hostile-operator"
	if err := cc.createOperator(ctx, h.nd); err != nil {
		return err
	}
	known := newBrowser(net.IPv4(127, 0, 0, 1))
	if err := known.open(ctx, h.nd); err != nil {
		return err
	}
	if a := known.signIn(ctx, h.nd, cc.user, cc.password); a.code != http.StatusSeeOther {
		return fmt.Errorf("the first sign-in: %s", a.status())
	}
	guesser := newBrowser(loopbackAddr(blockGuesser, 0))
	var wrongs statusTally
	for range wrong {
		if err := guesser.open(ctx, h.nd); err != nil {
			return err
		}
		wrongs.add(guesser.signIn(ctx, h.nd, cc.user, "not-"+cc.password).status())
	}
	if err := guesser.open(ctx, h.nd); err != nil {
		return err
	}
	waiting := guesser.signIn(ctx, h.nd, cc.user, cc.password)
	if err := known.open(ctx, h.nd); err != nil {
		return err
	}
	again := known.signIn(ctx, h.nd, cc.user, cc.password)
	stranger := newBrowser(loopbackAddr(blockUnknown, 0))
	if err := stranger.open(ctx, h.nd); err != nil {
		return err
	}
	unknown := stranger.signIn(ctx, h.nd, "no-such-operator", cc.password)
	same := waiting.code == unknown.code && waiting.message == unknown.message && waiting.message != ""
	sameText := "the same status and text"
	if !same {
		sameText = "**different answers**"
	}
	hc.expect(fmt.Sprintf("wrong passwords: HTTP %s; then the right one from the other browser: %s (%.0f ms); "+
		"from the known browser: %s; unknown user: %s (%.0f ms), %s",
		wrongs.String(), waiting.status(), ms0f(waiting.took), again.status(), unknown.status(), ms0f(unknown.took), sameText),
		wrongs.n["401"] == wrong && waiting.code == http.StatusUnauthorized && again.code == http.StatusSeeOther && same)
	return ctx.Err()
}

func ms0f(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// --- 5. Disk full ---

func (h *hostileRun) diskFull(_ context.Context, hc *hostileCase) error {
	hc.sent = "writes until the data directory's file system is full"
	hc.answer = "not run here: it needs a small tmpfs (root); see \"Disk full\" above and its tests"
	hc.skipped = true
	return nil
}

// --- 6. Uploads ---

// uploads sends the plan's uploads at once to /ui/login, of contentType,
// with their length declared or chunked, and reports the answers; any of
// want is as documented, once no more than a small part was written.
func (h *hostileRun) uploads(ctx context.Context, hc *hostileCase, contentType string, chunked bool, want ...int) error {
	p := h.plan
	results := make([]streamedUpload, p.uploads)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() {
			results[i] = streamUpload(ctx, loopbackAddr(blockUploads, i), h.nd.httpAddr, "/ui/login",
				map[string]string{"Content-Type": contentType}, p.uploadSize, chunked, hostileUploadLimit)
		})
	}
	wg.Wait()
	var tally statusTally
	var maxSent int64
	var slowest time.Duration
	for _, r := range results {
		if r.status != 0 {
			tally.add(fmt.Sprint(r.status))
		} else {
			tally.add(r.errText)
		}
		maxSent, slowest = max(maxSent, r.sent), max(slowest, r.after)
	}
	wanted := 0
	for _, st := range want {
		wanted += tally.n[fmt.Sprint(st)]
	}
	hc.expect(fmt.Sprintf("HTTP %s, after at most %.2f s and %.1f MiB written (the kernel's socket buffers included)",
		tally.String(), slowest.Seconds(), float64(maxSent)/(1<<20)),
		wanted == p.uploads && maxSent < p.uploadSize/8)
	return ctx.Err()
}

// A multipart body whose declared length is over the limit is refused for
// its length (413) before its type is looked at; either refusal reads
// nothing.
func (h *hostileRun) uploadsMultipart(ctx context.Context, hc *hostileCase) error {
	hc.sent = fmt.Sprintf("%d POSTs at once of a %d MiB multipart/form-data body, Content-Length declared, streamed", h.plan.uploads, h.plan.uploadSize>>20)
	return h.uploads(ctx, hc, "multipart/form-data; boundary=hostile", false, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType)
}

func (h *hostileRun) uploadsMultipartChunked(ctx context.Context, hc *hostileCase) error {
	hc.sent = "the same, chunked: no length declared"
	return h.uploads(ctx, hc, "multipart/form-data; boundary=hostile", true, http.StatusUnsupportedMediaType)
}

func (h *hostileRun) uploadsForm(ctx context.Context, hc *hostileCase) error {
	hc.sent = fmt.Sprintf("%d POSTs at once of a %d MiB application/x-www-form-urlencoded body, chunked, streamed", h.plan.uploads, h.plan.uploadSize>>20)
	return h.uploads(ctx, hc, "application/x-www-form-urlencoded", true, http.StatusRequestEntityTooLarge)
}

// --- 7. One device's flood ---

func (h *hostileRun) flood(ctx context.Context, hc *hostileCase) error {
	cred := h.cred(8)
	hc.sent = fmt.Sprintf("one device's test alarms, QoS 1, each with a new event_id, as fast as the node takes them (up to %d unacknowledged) for %s",
		hostileFloodWindow, h.plan.flood)
	m, err := dialMQTT(ctx, loopbackAddr(blockFlood, 0), h.nd.mqttAddr, 4)
	if err != nil {
		return err
	}
	defer m.close()
	if ack, err := m.connect(m.connectPacket(cred.DeviceID, cred.Secret)); err != nil || ack.ReasonCode != 0 {
		return fmt.Errorf("the flooding device cannot connect: %s", connackText(ack, err))
	}
	window := make(chan struct{}, hostileFloodWindow)
	var acked, lastAck atomic.Int64 // lastAck: Unix nanoseconds
	readErr := make(chan error, 1)
	go func() {
		for {
			pk, err := m.read(hostileIOTimeout)
			if err != nil {
				readErr <- err
				return
			}
			if pk.FixedHeader.Type == packets.Puback {
				acked.Add(1)
				lastAck.Store(time.Now().UnixNano())
				<-window
			}
		}
	}()
	topic := broker.UpTopic(cred.DeviceID, "alarm")
	sent := 0
	t0 := time.Now()
	var closed error
send:
	for time.Since(t0) < h.plan.flood {
		select {
		case window <- struct{}{}:
		case closed = <-readErr:
			break send
		case <-ctx.Done():
			return ctx.Err()
		}
		b, _ := json.Marshal(map[string]string{"event_id": fmt.Sprintf("hostile-flood-%d", sent),
			"ts": time.Now().UTC().Format(time.RFC3339), "alarm_type": "test"})
		pk, err := m.publishPacket(uint16(sent%65535+1), topic, b)
		if err != nil {
			return err
		}
		if err := m.write(pk); err != nil {
			closed = err
			break
		}
		sent++
	}
	dur := time.Since(t0)
	// The PUBACKs of what was sent.
	if closed == nil {
		_ = pollUntil(ctx, 30*time.Second, func() bool { return acked.Load() == int64(sent) || len(readErr) > 0 })
	}
	n := acked.Load()
	conn := "the connection stayed open"
	if closed != nil {
		conn = "the connection was " + closedText(closed)
	}
	ackedFor := time.Duration(lastAck.Load() - t0.UnixNano())
	rate := 0.0
	if n > 0 {
		rate = float64(n) / ackedFor.Seconds()
	}
	recorded, flooding, err := h.openAlarmsOf(ctx, cred.DeviceID)
	if err != nil {
		return err
	}
	// The alarm bucket: its burst, and what it refills while the flood
	// lasts; the rest is refused with rate_limited, and one flooding alarm
	// is raised (docs/reliability.md, "Limits").
	allowed := broker.DefaultAlarmBurst + int(math.Ceil(dur.Seconds()*broker.DefaultAlarmsPerMinute/60))
	hc.answer = fmt.Sprintf("%s alarms sent in %.1f s, %s PUBACKed, the last %.1f s after the first was sent (%.0f per second); %s; "+
		"%d recorded (the limit allows %d), the rest refused rate_limited; %d device-flooding alarm(s)",
		thousands(sent), dur.Seconds(), thousands(int(n)), ackedFor.Seconds(), rate, conn, recorded, allowed, flooding)
	hc.documented = recorded <= allowed && recorded >= broker.DefaultAlarmBurst && flooding == 1
	return ctx.Err()
}

// --- 8. A PUBLISH over the packet limit ---

func (h *hostileRun) bigPublish(ctx context.Context, hc *hostileCase, v byte) error {
	cred := h.cred(9 + int(5-v)) // 9 for MQTT 5, 10 for 3.1.1
	m, err := dialMQTT(ctx, loopbackAddr(blockBigPub, int(v)), h.nd.mqttAddr, v)
	if err != nil {
		return err
	}
	defer m.close()
	ack, err := m.connect(m.connectPacket(cred.DeviceID, cred.Secret))
	if err != nil || ack.ReasonCode != 0 {
		return fmt.Errorf("cannot connect: %s", connackText(ack, err))
	}
	payload := `{"event_id":"hostile-big","ts":"` + time.Now().UTC().Format(time.RFC3339) + `","alarm_type":"test","pad":"` +
		strings.Repeat("x", hostileBigPublish) + `"}`
	pk, err := m.publishPacket(1, broker.UpTopic(cred.DeviceID, "alarm"), []byte(payload))
	if err != nil {
		return err
	}
	t0 := time.Now()
	werr := m.write(pk)
	back, rerr := m.read(hostileIOTimeout)
	took := time.Since(t0)
	var answer string
	switch {
	case rerr != nil && werr != nil:
		answer = "the connection was " + closedText(werr)
	case rerr != nil:
		answer = "the connection was " + closedText(rerr)
	case back.FixedHeader.Type == packets.Disconnect:
		answer = fmt.Sprintf("DISCONNECT 0x%02x", back.ReasonCode)
	default:
		answer = fmt.Sprintf("%s 0x%02x", packets.PacketNames[back.FixedHeader.Type], back.ReasonCode)
	}
	if v == 5 {
		hc.sent = fmt.Sprintf("MQTT 5 CONNECT, then a QoS 1 alarm PUBLISH of %d KB", len(pk)/1000)
		hc.expect(fmt.Sprintf("CONNACK advertised a maximum packet size of %d; %s after %.0f ms", ack.Properties.MaximumPacketSize, answer, ms0f(took)),
			ack.Properties.MaximumPacketSize == broker.DefaultMaxPacket && back.FixedHeader.Type != packets.Puback)
		return ctx.Err()
	}
	hc.sent = fmt.Sprintf("MQTT 3.1.1 CONNECT, then a QoS 1 alarm PUBLISH of %d KB", len(pk)/1000)
	hc.expect(fmt.Sprintf("%s after %.0f ms", answer, ms0f(took)), rerr != nil || werr != nil)
	return ctx.Err()
}

func (h *hostileRun) bigPublish5(ctx context.Context, hc *hostileCase) error {
	return h.bigPublish(ctx, hc, 5)
}
func (h *hostileRun) bigPublish4(ctx context.Context, hc *hostileCase) error {
	return h.bigPublish(ctx, hc, 4)
}

// --- 10. Hostile values ---

// apiPost posts body to path on the attacked node with the API token and
// returns the status and the reply's error and field.
func (h *hostileRun) apiPost(ctx context.Context, path string, body []byte) (int, apiError, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+h.nd.httpAddr+path, strings.NewReader(string(body)))
	if err != nil {
		return 0, apiError{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := vigilHTTP{client: &http.Client{Timeout: 30 * time.Second}, apiToken: h.apiToken}.do(req)
	if err != nil {
		return 0, apiError{}, err
	}
	defer resp.Body.Close()
	var e apiError
	e.jsonErr = json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, e, nil
}

// apiError is an API error reply.
type apiError struct {
	Error   string `json:"error"`
	Field   string `json:"field"`
	jsonErr error
}

func (e apiError) String() string {
	if e.jsonErr != nil {
		return "no JSON: " + e.jsonErr.Error()
	}
	return fmt.Sprintf("field %q: %s", e.Field, shorten(e.Error, 110))
}

func (h *hostileRun) hostileNames(ctx context.Context, hc *hostileCase) error {
	hc.sent = "POST /api/v1/workers with the name \"Ann\\u202Eevil\" (right-to-left override), then \"Ann\\u001b[2J\" (an escape)"
	var answers []string
	documented := true
	for i, name := range []string{"Ann\u202eevil", "Ann\x1b[2J"} {
		body, _ := json.Marshal(map[string]any{"id": fmt.Sprintf("hostile-c-name-%d", i),
			"worker": map[string]any{"id": fmt.Sprintf("hostile-w%d", i), "name": name, "org_id": benchOrg}})
		st, e, err := h.apiPost(ctx, "/api/v1/workers", body)
		if err != nil {
			return err
		}
		answers = append(answers, fmt.Sprintf("HTTP %d, %s", st, e))
		documented = documented && st == http.StatusBadRequest && e.Field == "worker.name"
	}
	hc.expect(strings.Join(answers, "; "), documented)
	return nil
}

func (h *hostileRun) duplicateKeys(ctx context.Context, hc *hostileCase) error {
	body := `{"id":"hostile-c-dup","org":{"id":"hostile-dup","name":"Shown","name":"Stored"}}`
	hc.sent = "POST /api/v1/organisations " + body
	st, e, err := h.apiPost(ctx, "/api/v1/organisations", []byte(body))
	if err != nil {
		return err
	}
	hc.expect(fmt.Sprintf("HTTP %d, %s", st, e), st == http.StatusBadRequest && e.Field == "org.name")
	return nil
}

func (h *hostileRun) year9999MQTT(ctx context.Context, hc *hostileCase) error {
	cred := h.cred(11)
	hc.sent = "a device's alarm (MQTT, QoS 1) with \"ts\": \"9999-12-31T23:59:59Z\""
	replies := make(chan deviceReply, 4)
	d, err := connectDevice(ctx, h.nd.mqttAddr, nil, cred, false, nil, func(r deviceReply) {
		select {
		case replies <- r:
		default:
		}
	})
	if err != nil {
		return err
	}
	defer d.disconnect()
	b, _ := json.Marshal(map[string]string{"event_id": "hostile-9999", "ts": "9999-12-31T23:59:59Z", "alarm_type": "test"})
	tok := d.client.Publish(topicPrefix+cred.DeviceID+"/up/alarm", 1, false, b)
	puback := "PUBACK"
	if err := waitToken(ctx, tok, hostileIOTimeout); err != nil {
		puback = "no PUBACK (" + err.Error() + ")"
	}
	// docs/device-protocol.md: the alarm is raised, at the time received;
	// a device time out of bounds is dropped, not kept, and not a reason
	// to refuse an alarm.
	reply := "no reply"
	var alarmID string
	select {
	case r := <-replies:
		reply = fmt.Sprintf("reply ok=%v code=%q", r.OK, r.Code)
		alarmID = r.Result.AlarmID
	case <-time.After(hostileIOTimeout):
	}
	hc.answer = puback + ", " + reply
	if alarmID == "" {
		hc.answer += "; **no alarm was raised**"
		return nil
	}
	deviceTime, err := h.alarmDeviceTime(ctx, alarmID)
	if err != nil {
		return err
	}
	if deviceTime == "" {
		hc.answer += "; the alarm raised at the time received, its device time dropped"
		hc.documented = true
		return nil
	}
	hc.answer += "; **the alarm was stored with the device time " + deviceTime + "**"
	return nil
}

// alarmDeviceTime returns the device_time of alarm id as the API gives
// it, "" when absent.
func (h *hostileRun) alarmDeviceTime(ctx context.Context, id string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+h.nd.httpAddr+"/api/v1/alarms/"+id, nil)
	if err != nil {
		return "", err
	}
	resp, err := vigilHTTP{client: h.api, apiToken: h.apiToken}.do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		Alarm struct {
			DeviceTime string `json:"device_time"`
		} `json:"alarm"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("alarm %s: HTTP %d, %v", id, resp.StatusCode, err)
	}
	return out.Alarm.DeviceTime, nil
}

func (h *hostileRun) year9999API(ctx context.Context, hc *hostileCase) error {
	body, _ := json.Marshal(map[string]any{"id": "hostile-c-9999", "type": "test", "device_id": h.cred(11).DeviceID,
		"device_time": "9999-12-31T23:59:59Z"})
	hc.sent = "POST /api/v1/alarms with \"device_time\": \"9999-12-31T23:59:59Z\""
	st, e, err := h.apiPost(ctx, "/api/v1/alarms", body)
	if err != nil {
		return err
	}
	hc.expect(fmt.Sprintf("HTTP %d, %s", st, e), st == http.StatusBadRequest && e.Field == "device_time")
	return nil
}

func (h *hostileRun) bodyTooLarge(ctx context.Context, hc *hostileCase) error {
	const size = 2 << 20
	hc.sent = fmt.Sprintf("POST /api/v1/organisations with a %d MiB JSON body", size>>20)
	body := `{"id":"hostile-c-big","org":{"id":"hostile-big","name":"` + strings.Repeat("x", size) + `"}}`
	st, e, err := h.apiPost(ctx, "/api/v1/organisations", []byte(body))
	if err != nil {
		hc.expect("no reply: "+closedText(err), false)
		return nil
	}
	hc.expect(fmt.Sprintf("HTTP %d, %s", st, e), st == http.StatusRequestEntityTooLarge && e.jsonErr == nil && e.Field == "body")
	return nil
}
