package monitoring

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestHashPool_BoundsRunningAndQueue(t *testing.T) {
	p := newHashPool(2, 200*time.Millisecond)
	var running, most atomic.Int32
	release := make(chan struct{})
	var wg sync.WaitGroup
	var ok, busy atomic.Int32
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := p.run(context.Background(), hashAnonymous, func() {
				n := running.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				<-release
				running.Add(-1)
			})
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, ErrBusy):
				busy.Add(1)
			default:
				t.Errorf("run: %v", err)
			}
		}()
	}
	// Everyone beyond the places and the queue is refused at once.
	for busy.Load() < int32(100-2-p.maxQueue) {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	st := p.stats()
	if most.Load() > 2 || st.MaxRunning > 2 || st.Running != 0 || st.Waiting != 0 {
		t.Fatalf("at most %d ran at once (pool says %+v), want <= 2", most.Load(), st)
	}
	if ok.Load()+busy.Load() != 100 || busy.Load() < int32(100-2-p.maxQueue) || st.Refused != int64(busy.Load()) {
		t.Fatalf("%d ran, %d refused; stats %+v", ok.Load(), busy.Load(), st)
	}
}

func TestHashPool_TrustedGoesFirst(t *testing.T) {
	p := newHashPool(1, 5*time.Second)
	hold := make(chan struct{})
	started := make(chan struct{})
	go func() { _ = p.run(context.Background(), hashAnonymous, func() { close(started); <-hold }) }()
	<-started
	var order []string
	var mu sync.Mutex
	var wg sync.WaitGroup
	add := func(name string, prio hashPriority) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.run(context.Background(), prio, func() { mu.Lock(); order = append(order, name); mu.Unlock() }); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}()
	}
	add("anonymous", hashAnonymous)
	for p.stats().Waiting != 1 {
		time.Sleep(time.Millisecond)
	}
	add("trusted", hashTrusted)
	for p.stats().Waiting != 2 {
		time.Sleep(time.Millisecond)
	}
	close(hold)
	wg.Wait()
	if len(order) != 2 || order[0] != "trusted" {
		t.Fatalf("order %v, want the trusted check first", order)
	}
}

func TestHashPool_WaitEndsWithContext(t *testing.T) {
	p := newHashPool(1, time.Hour)
	hold := make(chan struct{})
	started := make(chan struct{})
	go func() { _ = p.run(context.Background(), hashAnonymous, func() { close(started); <-hold }) }()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := p.run(ctx, hashTrusted, func() {}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("run = %v", err)
	}
	close(hold)
	if err := p.run(context.Background(), hashTrusted, func() {}); err != nil {
		t.Fatal(err)
	}
	if st := p.stats(); st.Running != 0 || st.Waiting != 0 {
		t.Fatalf("stats %+v", st)
	}
}
