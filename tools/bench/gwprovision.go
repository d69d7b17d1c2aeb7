package main

// Provisioning the gateway section's devices through the nodes' HTTP API:
// one organisation, then for each device POST /api/v1/devices and POST
// /api/v1/devices/:id/secret. The secret is hashed with argon2id (4 MiB, one
// pass) on the node that takes the request, so this is where the cost of
// enrolling many devices shows.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/sim"
	"github.com/vigilarc/vigil/ui/api"
)

const (
	// benchOrg is the organisation of the bench's devices.
	benchOrg = "bench-org"
	// benchActor is the actor of the bench's provisioning commands.
	benchActor = "vigil-bench"
	// provisionAttempts bounds the tries of one provisioning request that
	// fails with no reply, 503 (no leader) or 504 (unknown outcome).
	provisionAttempts = 20
)

// provisionResult is what provisioning took.
type provisionResult struct {
	devices int
	// The first seqDevices were provisioned one at a time, to measure
	// each request; seqCreate and seqSecret are their latencies, sorted.
	seqDevices           int
	seqElapsed           time.Duration
	seqCreate, seqSecret []time.Duration
	// The rest were provisioned by concClients clients over all nodes.
	concClients int
	concDevices int
	concElapsed time.Duration
	retries     int // requests repeated after no reply, 503 or 504
}

// total is the time provisioning took.
func (r provisionResult) total() time.Duration { return r.seqElapsed + r.concElapsed }

// seqPerDevice is the time per device one at a time.
func (r provisionResult) seqPerDevice() time.Duration {
	if r.seqDevices == 0 {
		return 0
	}
	return r.seqElapsed / time.Duration(r.seqDevices)
}

// concPerSecond is the devices provisioned per second with concClients.
func (r provisionResult) concPerSecond() float64 {
	if r.concElapsed <= 0 {
		return 0
	}
	return float64(r.concDevices) / r.concElapsed.Seconds()
}

// provisioner posts provisioning commands to the nodes' APIs.
type provisioner struct {
	http     *http.Client
	apiToken string   // see vigilHTTP
	addrs    []string // HTTP host:port of each node

	mu      sync.Mutex
	retries int
}

func newProvisioner(addrs []string, clients int, apiToken string) *provisioner {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = clients
	return &provisioner{http: &http.Client{Transport: tr, Timeout: 30 * time.Second}, apiToken: apiToken, addrs: addrs}
}

// errRetry is an answer worth retrying: no reply, 503 or 504.
var errRetry = errors.New("no leader or unknown outcome")

// post sends body to path on node addr and decodes a 2xx reply into out.
func (p *provisioner) post(ctx context.Context, addr, path string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := vigilHTTP{client: p.http, apiToken: p.apiToken}.do(req)
	if err != nil {
		return fmt.Errorf("%w: %v", errRetry, err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch {
	case err != nil:
		return fmt.Errorf("%w: cannot read the reply: %v", errRetry, err)
	case resp.StatusCode == http.StatusServiceUnavailable, resp.StatusCode == http.StatusGatewayTimeout:
		return fmt.Errorf("%w: HTTP %d: %s", errRetry, resp.StatusCode, bytes.TrimSpace(rb))
	case resp.StatusCode/100 != 2:
		return fmt.Errorf("POST %s: HTTP %d: %s", path, resp.StatusCode, bytes.TrimSpace(rb))
	case out != nil:
		return json.Unmarshal(rb, out)
	}
	return nil
}

// retry calls try(attempt, addr) until it succeeds or fails with an error
// other than errRetry, moving to the next node after each errRetry.
func (p *provisioner) retry(ctx context.Context, node int, try func(attempt int, addr string) error) error {
	var err error
	for attempt := range provisionAttempts {
		if attempt > 0 {
			p.mu.Lock()
			p.retries++
			p.mu.Unlock()
			if err := sleep(ctx, 100*time.Millisecond); err != nil {
				return err
			}
		}
		if err = try(attempt, p.addrs[(node+attempt)%len(p.addrs)]); !errors.Is(err, errRetry) {
			return err
		}
	}
	return fmt.Errorf("gave up after %d attempts: %w", provisionAttempts, err)
}

// deviceID returns the ID of the bench's device i (from 0).
func deviceID(i int) string { return fmt.Sprintf("bench-d%05d", i+1) }

// createOrg creates the bench's organisation.
func (p *provisioner) createOrg(ctx context.Context) error {
	req := api.OrganisationRequest{
		Command: api.Command{ID: "bench-c-org", Actor: benchActor},
		Org:     api.OrganisationBody{ID: benchOrg, Name: "Bench device pool"},
	}
	return p.retry(ctx, 0, func(_ int, addr string) error {
		return p.post(ctx, addr, "/api/v1/organisations", req, nil)
	})
}

// device registers device i as a pooled device, then sets its secret. It
// returns the credential (the simulator's: device ID and secret; a pooled
// device has no worker, so no PINs) and how long each of the two requests
// took.
func (p *provisioner) device(ctx context.Context, i int) (sim.Credential, time.Duration, time.Duration, error) {
	id := deviceID(i)
	node := i % len(p.addrs)
	t0 := time.Now()
	dev := api.DeviceRequest{
		Command: api.Command{ID: "bench-c-" + id, Actor: benchActor},
		Device: api.DeviceBody{ID: id, Kind: monitoring.DevicePooled,
			Label: fmt.Sprintf("Pool device %d", i+1), OrgID: benchOrg},
	}
	// The same command ID on every attempt: a retry after an unknown
	// outcome is a no-op if the first one committed.
	err := p.retry(ctx, node, func(_ int, addr string) error {
		return p.post(ctx, addr, "/api/v1/devices", dev, nil)
	})
	if err != nil {
		return sim.Credential{}, 0, 0, fmt.Errorf("cannot register device %s: %w", id, err)
	}
	t1 := time.Now()
	var sec api.DeviceSecretResponse
	// A new command ID on every attempt: a secret is shown once, so a
	// retry of a command that did commit is refused rather than answered.
	err = p.retry(ctx, node, func(attempt int, addr string) error {
		cmd := api.Command{ID: fmt.Sprintf("bench-c-secret-%s-%d", id, attempt), Actor: benchActor}
		return p.post(ctx, addr, "/api/v1/devices/"+id+"/secret", cmd, &sec)
	})
	if err == nil && sec.Secret == "" {
		err = errors.New("the reply holds no secret")
	}
	if err != nil {
		return sim.Credential{}, 0, 0, fmt.Errorf("cannot set the secret of device %s: %w", id, err)
	}
	return sim.Credential{DeviceID: id, Secret: sec.Secret}, t1.Sub(t0), time.Since(t1), nil
}

// provisionDevices creates the organisation and n devices with secrets:
// the first seq one at a time, the rest with clients concurrent clients,
// each device through node i mod 3, with apiToken on every request.
func provisionDevices(ctx context.Context, addrs []string, n, seq, clients int, apiToken string) ([]sim.Credential, provisionResult, error) {
	p := newProvisioner(addrs, clients, apiToken)
	defer p.http.CloseIdleConnections()
	res := provisionResult{devices: n, seqDevices: min(seq, n), concClients: clients}
	if err := p.createOrg(ctx); err != nil {
		return nil, res, fmt.Errorf("cannot create the organisation %s: %w", benchOrg, err)
	}
	creds := make([]sim.Credential, n)
	t0 := time.Now()
	for i := range res.seqDevices {
		c, create, secret, err := p.device(ctx, i)
		if err != nil {
			return nil, res, err
		}
		creds[i] = c
		res.seqCreate, res.seqSecret = append(res.seqCreate, create), append(res.seqSecret, secret)
	}
	res.seqElapsed = time.Since(t0)
	slices.Sort(res.seqCreate)
	slices.Sort(res.seqSecret)

	// done counts the devices the concurrent clients have tried, failed
	// those of them that could not be provisioned.
	var done, failed atomic.Int64
	t0 = time.Now()
	err := forEach(ctx, n-res.seqDevices, clients, func(j int) error {
		i := res.seqDevices + j
		c, _, _, err := p.device(ctx, i)
		creds[i] = c
		if d := done.Add(1); d%2000 == 0 {
			progress("gateway: %d of %d devices provisioned", int64(res.seqDevices)+d, n)
		}
		if err != nil {
			failed.Add(1)
		}
		return err
	})
	res.concElapsed = time.Since(t0)
	res.concDevices = n - res.seqDevices
	res.retries = p.retries
	if err := ctx.Err(); err != nil {
		return nil, res, err
	}
	if err != nil {
		return nil, res, fmt.Errorf("%d devices not provisioned; the first: %w", failed.Load(), err)
	}
	return creds, res, nil
}

// forEach calls fn(i) for every i below n, at most limit at a time, and
// returns the first error; after an error or the end of ctx it starts no
// more calls.
func forEach(ctx context.Context, n, limit int, fn func(i int) error) error {
	next := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	failed := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return first != nil
	}
	for range min(limit, n) {
		wg.Go(func() {
			for i := range next {
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	for i := 0; i < n && !failed() && ctx.Err() == nil; i++ {
		select {
		case next <- i:
		case <-ctx.Done():
		}
	}
	close(next)
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}
