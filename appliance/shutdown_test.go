package appliance_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance"
	"github.com/vigilarc/vigil/appliance/appliancetest"
	"github.com/vigilarc/vigil/cluster/clustertest"
)

// Three vigil serve commands with --log-format json write one JSON
// object a line, and stopping them one after another, as make run does on
// Ctrl-C, logs nothing at warn level or above: each says what stopped, at
// info level.
func TestCLI_CleanStopIsQuietInJSON(t *testing.T) {
	ids := []string{"q1", "q2", "q3"}
	cluster := []string{clustertest.FreeAddr(t), clustertest.FreeAddr(t), clustertest.FreeAddr(t)}
	dirs := map[string]string{}
	for _, id := range ids {
		dirs[id] = t.TempDir()
	}
	appliancetest.Provision(t, dirs)

	type proc struct {
		http   string
		stderr appliancetest.Buffer
		cancel context.CancelFunc
		done   chan int
	}
	procs := make([]*proc, 3)
	for i, id := range ids {
		p := &proc{http: clustertest.FreeAddr(t), done: make(chan int, 1)}
		ctx, cancel := context.WithCancel(context.Background())
		p.cancel = cancel
		procs[i] = p
		var out appliancetest.Buffer
		go func() {
			p.done <- appliance.RunCLI(ctx, &out, &p.stderr, appliance.EnvFrom(nil), []string{"vigil", "serve",
				"--data-dir", dirs[id], "--node-id", id, "--http-addr", p.http, "--cluster-addr", cluster[i],
				"--bootstrap-expect", strings.Join(cluster, ","), "--mqtt-addr", "127.0.0.1:0", "--mqtt-ws-addr", "",
				"--log-format", "json"})
		}()
		t.Cleanup(func() {
			cancel()
			<-p.done
		})
	}
	for _, p := range procs {
		clustertest.PollUntil(t, 30*time.Second, "node "+p.http+" ready", func() bool {
			resp, err := http.Get("http://" + p.http + appliance.ReadyzPath)
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
	}

	marks := make([]int, 3)
	for i, p := range procs {
		marks[i] = len(p.stderr.String())
	}
	for i, p := range procs {
		p.cancel()
		select {
		case code := <-p.done:
			if code != appliance.ExitOK {
				t.Fatalf("node %s exited %d:\n%s", ids[i], code, p.stderr.String())
			}
		case <-time.After(time.Minute):
			t.Fatalf("node %s did not stop within a minute", ids[i])
		}
		p.done <- appliance.ExitOK // for the cleanup
	}

	for i, p := range procs {
		all := p.stderr.String()
		var stopping []map[string]any
		for n, line := range strings.Split(strings.TrimSpace(all), "\n") {
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("node %s: log line %d is not JSON: %v\n%s", ids[i], n+1, err, line)
			}
			for _, k := range []string{"time", "level", "msg"} {
				if _, ok := rec[k]; !ok {
					t.Errorf("node %s: log line %d has no %q: %s", ids[i], n+1, k, line)
				}
			}
		}
		for _, line := range strings.Split(strings.TrimSpace(all[marks[i]:]), "\n") {
			var rec map[string]any
			_ = json.Unmarshal([]byte(line), &rec)
			stopping = append(stopping, rec)
		}
		var msgs []string
		for _, rec := range stopping {
			msgs = append(msgs, fmt.Sprint(rec["msg"]))
			if lvl := rec["level"]; lvl != "INFO" && lvl != "DEBUG" {
				t.Errorf("node %s logged at %v while stopping cleanly: %v", ids[i], lvl, rec)
			}
		}
		for _, want := range []string{"stopping: signal received", "mqtt broker stopped", "cluster node stopped", "vigil node closed"} {
			found := false
			for _, m := range msgs {
				found = found || m == want
			}
			if !found {
				t.Errorf("node %s did not log %q while stopping; it logged %q", ids[i], want, msgs)
			}
		}
	}
}
