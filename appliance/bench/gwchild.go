package main

// The idle-device child: a copy of the bench started with -idle-child
// holds a share of the idle devices' connections, because one process may
// hold at most RLIMIT_NOFILE open files (20,000 on the machines here) and
// 20,000 devices need as many sockets. It reads an idleSpec as JSON on
// stdin, connects its devices, sends their heartbeats, writes an
// idleStatus as one JSON line on stdout every second, and when stdin
// closes disconnects them all, writes a last status with done set, and
// exits.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigilarc/vigil/broker"
)

const (
	// fileMargin is the open files a process holding devices' connections
	// (a child, or a node) keeps for itself beyond one socket per device.
	fileMargin = 256
	// connectAttempts bounds the tries to connect one idle device.
	connectAttempts = 5
	// statusEvery is how often a child reports.
	statusEvery = time.Second
)

// idleSpec is what one child is asked to do.
type idleSpec struct {
	Brokers []string     `json:"brokers"`
	Devices []idleDevice `json:"devices"`
	// Each device sends a heartbeat as soon as it is connected, then
	// every HeartbeatMin to HeartbeatMax (uniformly at random).
	HeartbeatMin time.Duration `json:"heartbeat_min"`
	HeartbeatMax time.Duration `json:"heartbeat_max"`
	// KeepAlive is the devices' MQTT keep-alive.
	KeepAlive time.Duration `json:"keep_alive"`
	// ConnectsInFlight is how many devices connect at once.
	ConnectsInFlight int `json:"connects_in_flight"`
}

// idleDevice is a device and the index of its broker in idleSpec.Brokers.
type idleDevice struct {
	credential
	Broker int `json:"broker"`
}

// idleStatus is a child's report.
type idleStatus struct {
	Connected []int64 `json:"connected"` // devices connected now, by broker
	Failed    int64   `json:"failed"`    // devices that could not connect
	Lost      int64   `json:"lost"`      // connections lost after connecting
	HBSent    int64   `json:"hb_sent"`   // heartbeats published
	HBAcked   int64   `json:"hb_acked"`  // heartbeats PUBACKed
	HBOK      int64   `json:"hb_ok"`     // heartbeat replies that said ok
	HBErr     int64   `json:"hb_err"`    // heartbeat replies with an error code (unavailable...)
	Done      bool    `json:"done"`      // the last report: all disconnected
	Error     string  `json:"error,omitempty"`
}

// childCounters are the live counters behind idleStatus.
type childCounters struct {
	connected                    []atomic.Int64
	failed, lost                 atomic.Int64
	hbSent, hbAcked, hbOK, hbErr atomic.Int64
}

func (c *childCounters) status() idleStatus {
	s := idleStatus{Failed: c.failed.Load(), Lost: c.lost.Load(), HBSent: c.hbSent.Load(), HBAcked: c.hbAcked.Load(),
		HBOK: c.hbOK.Load(), HBErr: c.hbErr.Load()}
	for i := range c.connected {
		s.Connected = append(s.Connected, c.connected[i].Load())
	}
	return s
}

// checkSpec returns why a child whose process may open files files
// cannot carry out spec, or nil if it can.
func checkSpec(spec idleSpec, files uint64) error {
	switch {
	case len(spec.Brokers) == 0:
		return fmt.Errorf("spec: no brokers")
	case spec.HeartbeatMin <= 0 || spec.HeartbeatMax < spec.HeartbeatMin:
		return fmt.Errorf("spec: heartbeat interval %s to %s is not a range of positive durations", spec.HeartbeatMin, spec.HeartbeatMax)
	case spec.ConnectsInFlight < 1:
		return fmt.Errorf("spec: connects_in_flight %d is below 1", spec.ConnectsInFlight)
	}
	if need := uint64(len(spec.Devices)) + fileMargin; need > files {
		return fmt.Errorf("%d devices need %d open files, above this process's limit of %d (ulimit -n): give each child fewer devices",
			len(spec.Devices), need, files)
	}
	return nil
}

// runIdleChild is the child's whole life; it returns the exit code.
func runIdleChild(in io.Reader, out io.Writer) int {
	enc := json.NewEncoder(out)
	fail := func(err error) int {
		_ = enc.Encode(idleStatus{Done: true, Error: err.Error()})
		return 1
	}
	dec := json.NewDecoder(in)
	var spec idleSpec
	if err := dec.Decode(&spec); err != nil {
		return fail(fmt.Errorf("cannot read the idle-device spec on stdin: %w", err))
	}
	files, err := raiseFileLimit()
	if err != nil {
		return fail(err)
	}
	if err := checkSpec(spec, files); err != nil {
		return fail(err)
	}

	// Stdin closing is the signal to stop.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		_, _ = io.Copy(io.Discard, io.MultiReader(dec.Buffered(), in))
		cancel()
	}()

	ctr := &childCounters{connected: make([]atomic.Int64, len(spec.Brokers))}
	var outMu sync.Mutex
	report := func(s idleStatus) {
		outMu.Lock()
		defer outMu.Unlock()
		_ = enc.Encode(s)
	}
	stopReports := make(chan struct{})
	reportsDone := make(chan struct{})
	go func() {
		defer close(reportsDone)
		t := time.NewTicker(statusEvery)
		defer t.Stop()
		for {
			select {
			case <-stopReports:
				return
			case <-t.C:
				report(ctr.status())
			}
		}
	}()

	clients := make([]paho.Client, len(spec.Devices))
	var hb sync.WaitGroup
	_ = forEach(ctx, len(spec.Devices), spec.ConnectsInFlight, func(i int) error {
		d := spec.Devices[i]
		c := connectIdle(ctx, d, spec, ctr)
		if c == nil {
			return nil
		}
		clients[i] = c
		hb.Go(func() { heartbeats(ctx, c, d.ID, i, spec, ctr) })
		return nil
	})
	<-ctx.Done()
	hb.Wait()
	_ = forEach(context.Background(), len(clients), 64, func(i int) error {
		if clients[i] != nil {
			clients[i].Disconnect(0)
		}
		return nil
	})
	close(stopReports)
	<-reportsDone
	s := ctr.status()
	for i := range s.Connected {
		s.Connected[i] = 0
	}
	s.Done = true
	report(s)
	return 0
}

// connectIdle connects device d, retrying a few times, and returns nil if
// it could not.
func connectIdle(ctx context.Context, d idleDevice, spec idleSpec, ctr *childCounters) paho.Client {
	onMessage := func(_ paho.Client, m paho.Message) {
		if r, ok := parseReply(m); ok {
			if r.OK {
				ctr.hbOK.Add(1)
			} else {
				ctr.hbErr.Add(1)
			}
		}
	}
	var once sync.Once
	onLost := func(error) {
		once.Do(func() {
			ctr.lost.Add(1)
			ctr.connected[d.Broker].Add(-1)
		})
	}
	for attempt := range connectAttempts {
		if attempt > 0 && sleep(ctx, time.Duration(attempt)*time.Second) != nil {
			break
		}
		c, err := dialDevice(d.credential, spec.Brokers[d.Broker], spec.KeepAlive, onMessage, onLost)
		if err == nil {
			ctr.connected[d.Broker].Add(1)
			return c
		}
		if attempt == connectAttempts-1 {
			fmt.Fprintf(os.Stderr, "bench idle child: device %s gave up on %s: %v\n", d.ID, spec.Brokers[d.Broker], err)
		}
	}
	ctr.failed.Add(1)
	return nil
}

// heartbeats sends device id's heartbeats, QoS 1, until ctx ends.
func heartbeats(ctx context.Context, c paho.Client, id string, i int, spec idleSpec, ctr *childCounters) {
	rng := rand.New(rand.NewPCG(uint64(i), 7))
	topic := broker.UpTopic(id, "heartbeat")
	battery := 40 + rng.IntN(60)
	for seq := 1; ; seq++ {
		if !c.IsConnectionOpen() {
			return
		}
		tok := c.Publish(topic, 1, false, message(fmt.Sprintf("h-%d", seq), time.Now(),
			map[string]any{"battery": battery, "firmware": "bench-1.0"}))
		ctr.hbSent.Add(1)
		go func() {
			if waitFor(tok, publishTimeout) == nil {
				ctr.hbAcked.Add(1)
			}
		}()
		gap := spec.HeartbeatMin + time.Duration(rng.Int64N(int64(spec.HeartbeatMax-spec.HeartbeatMin)+1))
		if sleep(ctx, gap) != nil {
			return
		}
	}
}

// raiseFileLimit raises this process's soft limit of open files to the
// hard limit and returns the limit then in force. (Go's os package already
// does so at start-up since Go 1.19; this makes the bench's need explicit.)
func raiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("cannot read the open-file limit: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, fmt.Errorf("cannot raise the open-file limit to %d: %w", lim.Max, err)
		}
	}
	return lim.Cur, nil
}

// processFileLimit returns the soft open-file limit of process pid, from
// /proc/<pid>/limits.
func processFileLimit(pid int) (uint64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// Max open files            20000                20000                files
		var soft, hard uint64
		if n, _ := fmt.Sscanf(sc.Text(), "Max open files %d %d", &soft, &hard); n == 2 {
			return soft, nil
		}
	}
	return 0, fmt.Errorf("no open-file limit in /proc/%d/limits", pid)
}
