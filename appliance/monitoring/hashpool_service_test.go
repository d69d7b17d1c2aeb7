package monitoring_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/cluster/clustertest"
)

// TestHashPool_FloodOfWrongSecretsIsBounded: hundreds of wrong device
// secrets and unknown operators at once (the 2,000 bad MQTT
// connects, 150 console sign-ins) never run more hashes at once than the
// pool's limit, so the heap stays bounded; the rest are refused with
// ErrBusy; the right secret and the right password still get through.
func TestHashPool_FloodOfWrongSecretsIsBounded(t *testing.T) {
	n := mustSingle(t, time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	svc := n.Service
	seedService(t, svc)
	ctx := context.Background()
	secret, err := svc.SetDeviceSecret(ctx, "sec", "admin", "d1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PutOperator(ctx, "op", "setup", monitoring.PutOperatorRequest{ID: "olivia", Name: "Olivia", Role: monitoring.RoleOperator,
		Password: "correct horse battery", Create: true}); err != nil {
		t.Fatal(err)
	}
	limit := svc.HashStats().Limit

	var base runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		var m runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > peak.Load() {
				peak.Store(m.HeapAlloc)
			}
		}
	}()

	const flood = 300
	var wg sync.WaitGroup
	var busy, refused atomic.Int32
	for i := range flood {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if i%3 == 0 {
				_, err = svc.Login(ctx, fmt.Sprint("bad", i), monitoring.LoginRequest{OperatorID: fmt.Sprint("nobody", i), Password: "guess guess guess", TTL: time.Hour})
			} else {
				err = svc.AuthenticateDevice(ctx, fmt.Sprint("d", i%7), "wrong-secret")
			}
			switch {
			case errors.Is(err, monitoring.ErrBusy):
				busy.Add(1)
			case errors.Is(err, monitoring.ErrBadDeviceSecret), errors.Is(err, monitoring.ErrLoginFailed):
				refused.Add(1)
			default:
				t.Errorf("attempt %d: %v", i, err)
			}
		}()
	}
	// Meanwhile the right secret and the right password get through, at
	// worst after a few refusals while the flood lasts.
	clustertest.PollUntil(t, 30*time.Second, "the right secret during the flood", func() bool {
		return svc.AuthenticateDevice(ctx, "d1", secret) == nil
	})
	clustertest.PollUntil(t, 30*time.Second, "the right password during the flood", func() bool {
		_, err := svc.Login(ctx, fmt.Sprint("good", time.Now().UnixNano()), monitoring.LoginRequest{OperatorID: "olivia", Password: "correct horse battery", TTL: time.Hour})
		return err == nil
	})
	wg.Wait()
	close(stop)
	sampler.Wait()

	st := svc.HashStats()
	if st.MaxRunning > limit || st.Running != 0 || st.Waiting != 0 {
		t.Fatalf("hash pool %+v: more than %d hashes ran at once", st, limit)
	}
	if int(busy.Load()+refused.Load()) != flood || st.Refused < int64(busy.Load()) {
		t.Fatalf("%d busy, %d refused of %d; pool %+v", busy.Load(), refused.Load(), flood, st)
	}
	// A password hash takes 19 MiB: unbounded, the flood would hold
	// about flood × 10 MiB at once.
	grown := int64(peak.Load()) - int64(base.HeapAlloc)
	if bound := int64(limit)*3*19<<20 + 64<<20; grown > bound {
		t.Fatalf("the heap grew by %d MiB during the flood, want at most %d MiB", grown>>20, bound>>20)
	}
	t.Logf("flood of %d: %d refused as busy, %d checked; at most %d hashes at once; heap +%d MiB", flood, busy.Load(), refused.Load(), st.MaxRunning, grown>>20)
}
