package console_test

// The latency of the live queue: from the commit of an alarm to its
// arrival at the browsers' event streams, with 50 consoles connected to
// three nodes.
//
//	go test -run '^$' -bench SSE -benchtime 300x ./ui/console/
//
// Each iteration raises one alarm through the leader and waits until all
// 50 streams have it. The commit time is when the leader's own state
// machine publishes the alarm (the command committed on a quorum and
// applied there); the arrival is when a stream's reader has the "alarm"
// event's data line. Reported: p50, p99 and max over every (alarm,
// console) pair, and p50/p99 of the consoles on followers alone.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/cluster/clustertest"
	"github.com/vigilarc/vigil/ui/uitest"
)

// sseConsoles is how many consoles the benchmark connects.
const sseConsoles = 50

// sseStream is one console's event stream.
type sseStream struct {
	node     int
	follower bool
	ready    chan struct{} // closed at the snapshot
	mu       sync.Mutex
	arrived  map[string]time.Time // alarm ID -> when its raise arrived
	notify   chan struct{}
}

// follow reads the stream until ctx ends.
func (s *sseStream) follow(ctx context.Context, b testing.TB, url, cookie string) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cookie", cookie)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			b.Errorf("event stream: %v", err)
		}
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Errorf("event stream: HTTP %d", resp.StatusCode)
		return
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			now := time.Now()
			switch event {
			case "snapshot":
				close(s.ready)
			case "alarm":
				var m struct {
					Event monitoring.EventType `json:"event"`
					Row   struct{ ID string }  `json:"row"`
				}
				if json.Unmarshal([]byte(line[len("data: "):]), &m) == nil && m.Event == monitoring.EventAlarmRaised {
					s.mu.Lock()
					if _, ok := s.arrived[m.Row.ID]; !ok {
						s.arrived[m.Row.ID] = now
					}
					s.mu.Unlock()
					select {
					case s.notify <- struct{}{}:
					default:
					}
				}
			}
		}
	}
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(p*float64(len(s)) + 0.5)
	return s[min(max(i-1, 0), len(s)-1)]
}

func BenchmarkSSE_CommitToArrival(b *testing.B) {
	c, consoles := mustConsoles(b, 3)
	uitest.MustSeed(b, c.Node(0).Service)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	leaderIdx := c.WaitForLeader()
	leader := c.Node(leaderIdx)

	// 50 console sessions (five operators, ten each: an operator may hold
	// MaxOperatorSessions), spread over the three nodes.
	svc := leader.Service
	for i := range 5 {
		if _, err := svc.PutOperator(ctx, fmt.Sprint("bench-op-", i), "setup", monitoring.PutOperatorRequest{
			ID: fmt.Sprint("bench", i), Name: fmt.Sprint("Bench ", i), Role: monitoring.RoleOperator, Password: "bench password long", Create: true}); err != nil {
			b.Fatal(err)
		}
	}
	streams := make([]*sseStream, sseConsoles)
	for i := range streams {
		in, err := svc.Login(ctx, fmt.Sprint("bench-login-", i), monitoring.LoginRequest{OperatorID: fmt.Sprint("bench", i%5),
			Password: "bench password long", TTL: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		n := i % len(consoles)
		clustertest.PollUntil(b, 10*time.Second, "the session on its node", func() bool {
			_, _, err := c.Node(n).Service.Authenticate(in.Token)
			return err == nil
		})
		s := &sseStream{node: n, follower: n != leaderIdx, ready: make(chan struct{}), arrived: map[string]time.Time{}, notify: make(chan struct{}, 1)}
		streams[i] = s
		go s.follow(ctx, b, consoles[n].URL+"/ui/events", "__Host-vigil_session="+in.Token)
	}
	for _, s := range streams {
		select {
		case <-s.ready:
		case <-time.After(30 * time.Second):
			b.Fatal("a stream sent no snapshot")
		}
	}
	// The commit time of each alarm: when the leader's state machine
	// publishes it.
	sub := svc.Subscribe(monitoring.DefaultSubscriptionBuffer)
	defer sub.Close()
	devices := []string{"d-amira", "d-ben", "d-eve"}
	var all, onFollowers, onLeader []time.Duration
	b.ResetTimer()
	for i := range b.N {
		a, err := svc.RaiseAlarm(ctx, fmt.Sprint("bench-alarm-", i), "device:"+devices[i%3],
			monitoring.RaiseAlarmRequest{Type: monitoring.AlarmTest, DeviceID: devices[i%3]})
		if err != nil {
			b.Fatal(err)
		}
		var committed time.Time
		for committed.IsZero() {
			select {
			case ev, ok := <-sub.C:
				if !ok {
					b.Fatal("the leader's subscription lagged")
				}
				if ev.Type == monitoring.EventAlarmRaised && ev.Alarm != nil && ev.Alarm.ID == a.ID {
					committed = time.Now() // the event reached this subscriber: a little after the commit
				}
			case <-time.After(10 * time.Second):
				b.Fatalf("alarm %s: no event on the leader", a.ID)
			}
		}
		// The console's hub follows the same bus as the subscriber above,
		// so a console on the leader may have the alarm a few microseconds
		// before this goroutine does: a latency can be slightly negative.
		for _, s := range streams {
			deadline := time.After(10 * time.Second)
			for {
				s.mu.Lock()
				at, ok := s.arrived[a.ID]
				s.mu.Unlock()
				if ok {
					d := at.Sub(committed)
					all = append(all, d)
					if s.follower {
						onFollowers = append(onFollowers, d)
					} else {
						onLeader = append(onLeader, d)
					}
					break
				}
				select {
				case <-s.notify:
				case <-time.After(5 * time.Millisecond):
				case <-deadline:
					b.Fatalf("alarm %s never reached a console on node %d", a.ID, s.node)
				}
			}
		}
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(percentile(all, 0.50)), "p50-ms")
	b.ReportMetric(ms(percentile(all, 0.99)), "p99-ms")
	b.ReportMetric(ms(slices.Max(all)), "max-ms")
	b.ReportMetric(ms(percentile(onFollowers, 0.50)), "followers-p50-ms")
	b.ReportMetric(ms(percentile(onFollowers, 0.99)), "followers-p99-ms")
	b.ReportMetric(ms(percentile(onLeader, 0.50)), "leader-p50-ms")
	b.ReportMetric(ms(percentile(onLeader, 0.99)), "leader-p99-ms")
	b.Logf("%d alarms x %d consoles (%d on the leader %s): commit to arrival p50 %s, p99 %s, max %s; on followers p50 %s, p99 %s",
		b.N, sseConsoles, len(onLeader)/max(b.N, 1), leader.ID(), percentile(all, 0.5), percentile(all, 0.99), slices.Max(all),
		percentile(onFollowers, 0.5), percentile(onFollowers, 0.99))
}
