package main

// The cost of TLS for devices: MQTT over TLS against plain MQTT, on the
// gateway's cluster, where every node also listens for MQTT over TLS with
// its certificate from the cluster CA (the listener's default). Two
// measurements, each run on plain MQTT and on MQTT over TLS, one right
// after the other:
//
//   - per CONNECT: a connect storm of N provisioned devices against one
//     node (a follower), tlsStormInFlight at a time; each connection is
//     timed from the dial to the CONNACK (TCP, the TLS handshake, CONNECT
//     with its secret check), and the node's CPU time (utime + stime from
//     /proc/PID/stat) read before the first dial and after the last
//     CONNACK. First with devices that never connected to the node, whose
//     secret check is an argon2id hash, then again with the same devices,
//     whose check the node has cached (a SHA-256): a reconnection;
//   - per alarm: the closed alarm loop of the ingest section, k devices
//     (device i on node i mod 3) each publishing a test alarm QoS 1 and the
//     next as soon as the PUBACK arrives, with the three nodes' CPU time per
//     alarm.
//
// The devices are the bench's own paho clients (mqttdev.go), the same on
// both transports; over TLS they trust only the cluster CA, read from a
// node's data directory, and verify the node's name, 127.0.0.1. They keep
// no TLS session cache: every connection is a full handshake, as for a
// fleet of devices each connecting once.

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigilarc/vigil/appliance/sim"
	"github.com/vigilarc/vigil/provisioning"
)

// partTLS is the part of the gateway section -only names tls.
const partTLS = "tls"

// The plan of the TLS part.
const (
	tlsStormDevices      = 2000
	tlsStormDevicesQuick = 500
	// tlsStormInFlight is how many devices of a storm connect at once.
	tlsStormInFlight = 64
	// tlsAlarmDevices raise alarms back to back: the latency level of the
	// ingest section.
	tlsAlarmDevices = latencyLevel
	// tlsAlarmRounds is how many times each transport's alarm load runs
	// in a full run, alternated (plain, TLS, TLS, plain) so that a drift
	// of the machine weighs on both alike; once each with -quick.
	tlsAlarmRounds = 2
	// tlsSettle is the pause after a storm's devices disconnect, so that
	// the node's work on the disconnections falls outside the next storm.
	tlsSettle = 2 * time.Second
	// caCertFile is the cluster CA's certificate in a node's trust
	// directory (provisioning.TrustDir).
	caCertFile = "ca.crt"
)

// transport is how the devices reach the brokers.
type transport string

const (
	plainMQTT transport = "plain"
	tlsMQTT   transport = "tls"
)

// stormResult is one connect storm.
type stormResult struct {
	transport transport
	cached    bool // the node had checked these devices' secrets before
	devices   int
	failed    int             // connections that did not reach a CONNACK
	elapsed   time.Duration   // from the first dial to the last CONNACK
	lat       []time.Duration // dial to CONNACK of each connection, sorted
	nodeCPU   time.Duration   // the node's CPU time meanwhile
	cpu       cpuUse          // shares of all CPUs: machine, node, bench
}

// perSecond is the connections made per second.
func (r stormResult) perSecond() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(len(r.lat)) / r.elapsed.Seconds()
}

// cpuPerConnect is the node's CPU time per connection made.
func (r stormResult) cpuPerConnect() time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.nodeCPU / time.Duration(len(r.lat))
}

// tlsAlarmRun is one alarm load on one transport.
type tlsAlarmRun struct {
	transport transport
	loadResult
	refused int // PUBACKed, but the reply said not ok
}

// tlsReport holds the TLS part's figures.
type tlsReport struct {
	node      string // the storms' node
	handshake string // the negotiated version, cipher suite and key
	inFlight  int
	storms    []stormResult
	alarms    []tlsAlarmRun
	warmup    time.Duration
}

// storm returns the storm on t with or without cached secrets, or nil.
func (r *tlsReport) storm(t transport, cached bool) *stormResult {
	if r == nil {
		return nil
	}
	for i := range r.storms {
		if r.storms[i].transport == t && r.storms[i].cached == cached {
			return &r.storms[i]
		}
	}
	return nil
}

// alarmTotal pools the alarm runs on t; ok is false if there are none.
func (r *tlsReport) alarmTotal(t transport) (loadResult, bool) {
	if r == nil {
		return loadResult{}, false
	}
	var rs []loadResult
	for _, a := range r.alarms {
		if a.transport == t {
			rs = append(rs, a.loadResult)
		}
	}
	return poolLoads(rs), len(rs) > 0
}

// poolLoads merges runs of the same load into one: their latencies,
// counts and measured times added up, their CPU shares weighted by time.
func poolLoads(rs []loadResult) loadResult {
	var p loadResult
	var busy, nodes, self float64
	unknown := false
	for _, r := range rs {
		p.name, p.conc = r.name, r.conc
		p.commits += r.commits
		p.errors += r.errors
		p.elapsed += r.elapsed
		p.lat = append(p.lat, r.lat...)
		w := r.elapsed.Seconds()
		busy, nodes, self = busy+w*r.cpu.busy, nodes+w*r.cpu.nodes, self+w*r.cpu.self
		unknown = unknown || r.cpu.busy < 0 || r.cpu.nodes < 0 || r.cpu.self < 0
	}
	slices.Sort(p.lat)
	p.cpu = cpuUse{busy: -1, nodes: -1, self: -1}
	if s := p.elapsed.Seconds(); s > 0 && !unknown {
		p.cpu = cpuUse{busy: busy / s, nodes: nodes / s, self: self / s}
	}
	return p
}

// tlsDevicesNeeded is how many devices the TLS part uses: two storms'
// worth of devices that connect nowhere else first, and the alarm
// devices.
func tlsDevicesNeeded(storm int) int { return 2*storm + tlsAlarmDevices }

// clusterCATLS is a client TLS configuration trusting only the cluster CA
// in dataDir.
func clusterCATLS(dataDir string) (*tls.Config, error) {
	path := filepath.Join(dataDir, provisioning.TrustDir, caCertFile)
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read the cluster CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in %s", path)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// describeHandshake makes one TLS connection to addr with cfg and
// describes what was negotiated: "TLS 1.3, TLS_AES_128_GCM_SHA256,
// X25519MLKEM768 key exchange, ECDSA P-256 certificate".
func describeHandshake(ctx context.Context, addr string, cfg *tls.Config) (string, error) {
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: deviceConnectTimeout}, Config: cfg}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", fmt.Errorf("cannot make a TLS connection to %s trusting the cluster CA: %w", addr, err)
	}
	defer c.Close()
	st := c.(*tls.Conn).ConnectionState()
	key := "unknown"
	if len(st.PeerCertificates) > 0 {
		switch k := st.PeerCertificates[0].PublicKey.(type) {
		case *ecdsa.PublicKey:
			key = "ECDSA " + k.Curve.Params().Name
		case *rsa.PublicKey:
			key = fmt.Sprintf("RSA %d", k.N.BitLen())
		}
	}
	return fmt.Sprintf("%s, %s, %s key exchange, %s certificate", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite), st.CurveID, key), nil
}

// runTLS measures the cost of TLS on c. creds must hold at least
// tlsDevicesNeeded(storm) devices, of which the last 2*storm have not
// connected to any node yet.
func runTLS(ctx context.Context, c *localCluster, creds []sim.Credential, plan gatewayPlan) (*tlsReport, error) {
	storm := plan.tlsStorm
	if len(creds) < tlsDevicesNeeded(storm) {
		return nil, fmt.Errorf("tls: %d devices wanted, %d provisioned", tlsDevicesNeeded(storm), len(creds))
	}
	leader, err := c.waitLeader(ctx, startTimeout)
	if err != nil {
		return nil, err
	}
	nd := c.others(leader)[0]
	tlsCfg, err := clusterCATLS(nd.dataDir)
	if err != nil {
		return nil, err
	}
	rep := &tlsReport{node: nd.name + " (a follower)", inFlight: tlsStormInFlight, warmup: plan.warmup}
	if rep.handshake, err = describeHandshake(ctx, nd.mqttTLSAddr, tlsCfg); err != nil {
		return rep, err
	}

	fresh := creds[len(creds)-2*storm:]
	sets := map[transport][]sim.Credential{plainMQTT: fresh[:storm], tlsMQTT: fresh[storm:]}
	// New devices first (argon2id), then the same again (cached); the
	// second pair in the other order.
	for _, s := range []struct {
		t      transport
		cached bool
	}{{plainMQTT, false}, {tlsMQTT, false}, {tlsMQTT, true}, {plainMQTT, true}} {
		what := "new devices"
		if s.cached {
			what = "the same devices again"
		}
		progress("tls: connect storm of %d devices over %s MQTT to %s, %d at a time (%s)", storm, s.t, nd.name, tlsStormInFlight, what)
		r, err := runStorm(ctx, nd, s.t, tlsCfg, sets[s.t], s.cached)
		rep.storms = append(rep.storms, r)
		if err != nil {
			return rep, err
		}
		if err := c.exited(); err != nil {
			return rep, err
		}
	}

	order := []transport{plainMQTT, tlsMQTT}
	if plan.tlsAlarmRounds > 1 {
		order = []transport{plainMQTT, tlsMQTT, tlsMQTT, plainMQTT}
	}
	for _, t := range order {
		progress("tls: %d devices raising alarms over %s MQTT on the 3 brokers for %s", tlsAlarmDevices, t, plan.dur)
		r, err := runTLSAlarms(ctx, c, t, tlsCfg, creds[:tlsAlarmDevices], plan.warmup, plan.dur)
		rep.alarms = append(rep.alarms, r)
		if err != nil {
			return rep, err
		}
		if err := c.exited(); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// brokerAddr is n's MQTT address on t, and the TLS configuration to use.
func brokerAddr(n *node, t transport, cfg *tls.Config) (string, *tls.Config) {
	if t == tlsMQTT {
		return n.mqttTLSAddr, cfg
	}
	return n.mqttAddr, nil
}

// runStorm connects one device per credential to n on t, tlsStormInFlight
// at a time, keeps them connected until the last CONNACK, then
// disconnects them all.
func runStorm(ctx context.Context, n *node, t transport, tlsCfg *tls.Config, creds []sim.Credential, cached bool) (stormResult, error) {
	res := stormResult{transport: t, cached: cached, devices: len(creds)}
	addr, cfg := brokerAddr(n, t, tlsCfg)
	devs := make([]*benchDevice, len(creds))
	lat := make([]time.Duration, len(creds))
	var next, failed atomic.Int64
	var firstErr error
	var errOnce sync.Once
	pids := []int{n.pid()}
	a := sampleCPU(pids)
	var wg sync.WaitGroup
	for range tlsStormInFlight {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(creds) {
					return
				}
				t0 := time.Now()
				d, err := connectDevice(ctx, addr, cfg, creds[i], false, nil, nil)
				if err != nil {
					failed.Add(1)
					errOnce.Do(func() { firstErr = err })
					continue
				}
				lat[i], devs[i] = time.Since(t0), d
			}
		})
	}
	wg.Wait()
	b := sampleCPU(pids)
	res.elapsed, res.nodeCPU, res.cpu = b.at.Sub(a.at), b.nodes-a.nodes, cpuBetween(a, b)
	for i, d := range devs {
		if d != nil {
			res.lat = append(res.lat, lat[i])
			d.disconnect()
		}
	}
	slices.Sort(res.lat)
	res.failed = int(failed.Load())
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if res.failed > 0 {
		return res, fmt.Errorf("%d of %d devices could not connect over %s MQTT: %w", res.failed, len(creds), t, firstErr)
	}
	return res, sleep(ctx, tlsSettle)
}

// runTLSAlarms connects one device per credential over t, device i to
// node i mod 3, and runs the closed alarm loop on them: each device
// publishes a test alarm QoS 1 and the next as soon as the PUBACK arrives.
// PUBACKs after warmup and before warmup plus dur count, and the three
// nodes' CPU time meanwhile.
func runTLSAlarms(ctx context.Context, c *localCluster, t transport, tlsCfg *tls.Config, creds []sim.Credential, warmup, dur time.Duration) (tlsAlarmRun, error) {
	res := tlsAlarmRun{transport: t}
	res.name = fmt.Sprintf("test alarm QoS 1, publish to PUBACK, %s MQTT, %s", t, dur)
	res.conc, res.elapsed = len(creds), dur
	var refused atomic.Int64
	devs := make([]*benchDevice, 0, len(creds))
	defer func() {
		for _, d := range devs {
			d.disconnect()
		}
	}()
	for i, cred := range creds {
		addr, cfg := brokerAddr(c.nodes[i%len(c.nodes)], t, tlsCfg)
		d, err := connectDevice(ctx, addr, cfg, cred, false, nil, func(r deviceReply) {
			if !r.OK {
				refused.Add(1)
			}
		})
		if err != nil {
			return res, err
		}
		devs = append(devs, d)
	}
	run := fmt.Sprintf("tls-%s-%d", t, time.Now().UnixMilli())
	var err error
	res.loadResult, err = closedLoop(ctx, res.loadResult, warmup, c.pids(), func(ctx context.Context, w int, n uint64) error {
		return waitToken(ctx, devs[w].publishAlarm(fmt.Sprintf("%s-%d-%d", run, w, n)), publishTimeout)
	})
	res.refused = int(refused.Load())
	return res, err
}
