package main

// The load: clients that append 1 KB diagnostic records to one node for a
// fixed time, measuring throughput and latency.

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigilarc/vigil/ui/api"
)

const (
	// valueSize is the size of each record's value: with the ID, key and
	// framing, each command is about 1 KB. Values are random hex, which
	// Badger's Snappy compression cannot shrink, so the disk figures are not
	// flattered.
	valueSize = 1000
	// failoverConc is the number of clients during the failover phase.
	failoverConc = 16
	// retryPause is how long a failover client waits before it retries a
	// 503 or 504 on the next node.
	retryPause = 10 * time.Millisecond
)

// poster sends POST /api/v1/diag/records.
type poster struct {
	client   *http.Client
	apiToken string // see vigilHTTP
	seq      atomic.Uint64
}

func newPoster(maxConns int, apiToken string) *poster {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 4 * maxConns
	tr.MaxIdleConnsPerHost = maxConns
	return &poster{
		client:   &http.Client{Transport: tr, Timeout: 30 * time.Second},
		apiToken: apiToken,
	}
}

// newID returns a command ID unique within this bench run.
func (p *poster) newID() string { return fmt.Sprintf("bench-%d", p.seq.Add(1)) }

// newValue returns a random record value of valueSize bytes.
func newValue() string {
	var raw [valueSize / 2]byte
	_, _ = crand.Read(raw[:])
	return hex.EncodeToString(raw[:])
}

// post appends one record on the node at addr. It returns the HTTP status
// and, for 201, the log index at which the command was applied.
func (p *poster) post(ctx context.Context, addr, id, key, value string) (int, uint64, error) {
	body, err := json.Marshal(api.DiagRecordRequest{ID: id, Key: key, Value: value})
	if err != nil {
		return 0, 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/api/v1/diag/records", bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := vigilHTTP{client: p.client, apiToken: p.apiToken}.do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	var r api.DiagRecordResponse
	if resp.StatusCode == http.StatusCreated {
		err = json.NewDecoder(resp.Body).Decode(&r)
	}
	_, _ = io.Copy(io.Discard, resp.Body) // so the connection is reused
	return resp.StatusCode, r.Index, err
}

// loadResult is what one fixed-time load measured.
type loadResult struct {
	name    string
	conc    int
	commits int
	errors  int
	elapsed time.Duration
	lat     []time.Duration // of each commit, sorted
	cpu     cpuUse          // while measuring
}

// cpuPerCommit is the nodes' CPU time per commit, summed over all three.
func (r loadResult) cpuPerCommit() time.Duration {
	if r.commits == 0 || r.cpu.nodes < 0 {
		return 0
	}
	return time.Duration(r.cpu.nodes * float64(r.elapsed) * float64(runtime.NumCPU()) / float64(r.commits))
}

func (r loadResult) perSecond() float64 { return float64(r.commits) / r.elapsed.Seconds() }

// quantile returns the q-quantile (0..1) of the commit latencies.
func (r loadResult) quantile(q float64) time.Duration { return quantile(r.lat, q) }

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted)) + 0.5)
	return sorted[min(max(i-1, 0), len(sorted)-1)]
}

// runLoad runs conc clients against addr, each sending one record at a time
// as fast as the answers come. Commits answered during the warm-up, or after
// it plus dur, are not counted; nothing is retried. pids are the node
// processes, whose CPU time is measured.
func runLoad(ctx context.Context, p *poster, name, addr string, conc int, warmup, dur time.Duration, pids []int) (loadResult, error) {
	key := fmt.Sprintf("b%d", conc)
	return closedLoop(ctx, loadResult{name: name, conc: conc, elapsed: dur}, warmup, pids, func(ctx context.Context, _ int, _ uint64) error {
		status, _, err := p.post(ctx, addr, p.newID(), key, newValue())
		if err == nil && status != http.StatusCreated {
			err = fmt.Errorf("HTTP %d", status)
		}
		return err
	})
}

// closedLoop runs res.conc workers, each calling op (with its worker
// number from 0 and a count from 1) again as soon as it returns, measures
// the calls answered after warmup and before warmup plus res.elapsed (a
// call that returned an error counts as an error, unless ctx ended), and
// the CPU use of pids meanwhile. Nothing is retried.
func closedLoop(ctx context.Context, res loadResult, warmup time.Duration, pids []int, op func(ctx context.Context, worker int, n uint64) error) (loadResult, error) {
	from := time.Now().Add(warmup)
	end := from.Add(res.elapsed)
	var mu sync.Mutex
	var wg sync.WaitGroup
	wg.Go(func() { cpuWindow(ctx, pids, from, end, &res.cpu) })
	for w := range res.conc {
		wg.Go(func() {
			var lat []time.Duration
			errs := 0
			for n := uint64(1); ctx.Err() == nil; n++ {
				t0 := time.Now()
				if !t0.Before(end) {
					break
				}
				err := op(ctx, w, n)
				t1 := time.Now()
				if t1.Before(from) || t1.After(end) {
					continue
				}
				if err == nil {
					lat = append(lat, t1.Sub(t0))
				} else if ctx.Err() == nil {
					errs++
				}
			}
			mu.Lock()
			res.lat = append(res.lat, lat...)
			res.errors += errs
			mu.Unlock()
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return res, err
	}
	slices.Sort(res.lat)
	res.commits = len(res.lat)
	return res, nil
}

// cpuWindow waits until from, then measures the CPU use of pids until end
// into *dst; it leaves *dst alone if ctx ends first.
func cpuWindow(ctx context.Context, pids []int, from, end time.Time, dst *cpuUse) {
	if sleep(ctx, time.Until(from)) != nil {
		return
	}
	a := sampleCPU(pids)
	if sleep(ctx, time.Until(end)) != nil {
		return
	}
	*dst = cpuBetween(a, sampleCPU(pids))
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
