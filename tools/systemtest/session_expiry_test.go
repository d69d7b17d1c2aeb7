package systemtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/vigilarc/vigil/cluster/clustertest"

	"github.com/vigilarc/vigil/appliance/monitoring"
	vapi "github.com/vigilarc/vigil/ui/api"
)

// The session-expiry test's figures.
const (
	// expiryGrace is the organisation's grace period: between the timer
	// running out and the missed-check-in alarm.
	expiryGrace = 2 * time.Second
	// expirySession is the session's length. The Service takes any
	// positive length; this leaves the start through a follower time to
	// return on a loaded machine before the kill.
	expirySession = 5 * time.Second
	// killBeforeDue is how long before the session is due the leader is
	// SIGKILLed.
	killBeforeDue = 500 * time.Millisecond
	// alarmSlack is what the alarm may take beyond failover plus grace:
	// scheduler scans (200 ms each), the proposal, and a loaded machine.
	alarmSlack = 5 * time.Second
	// writeBudget bounds the retries of one setup write.
	writeBudget = 30 * time.Second
)

// TestCluster_SessionExpiresWhileLeaderKilledRaisesOneAlarm starts a session
// through a follower, SIGKILLs the leader shortly before the session is
// due, and checks that the two survivors raise exactly one missed-check-in
// alarm, after the grace period and within failover plus grace; once the
// killed node is back, all three show that same alarm and no other.
func TestCluster_SessionExpiresWhileLeaderKilledRaisesOneAlarm(t *testing.T) {
	if testing.Short() {
		t.Skip("system test: builds vigil and runs three processes")
	}
	bin := mustBuildVigil(t)
	c := mustStartCluster(t, bin, 3)

	// The directory goes in through the leader; every node has it before
	// the session starts on a follower, which looks up the worker locally.
	leader := c.Leader()
	mustWrite(t, c, leader, "/api/v1/organisations", vapi.OrganisationRequest{
		Command: vapi.Command{ID: "st-org", Actor: "systemtest"},
		Org:     vapi.OrganisationBody{ID: "trust", Name: "North Trust", Grace: expiryGrace.String()},
	}, nil)
	mustWrite(t, c, leader, "/api/v1/workers", vapi.WorkerRequest{
		Command: vapi.Command{ID: "st-worker", Actor: "systemtest"},
		Worker:  vapi.WorkerBody{ID: "w1", Name: "Ann Smith", OrgID: "trust"},
	}, nil)
	mustWrite(t, c, leader, "/api/v1/devices", vapi.DeviceRequest{
		Command: vapi.Command{ID: "st-device", Actor: "systemtest"},
		Device:  vapi.DeviceBody{ID: "d1", Kind: monitoring.DevicePhoneApp, OrgID: "trust", WorkerID: "w1"},
	}, nil)
	c.waitConverged(convergeTimeout, 0)

	follower := c.Followers()[0]
	var sess monitoring.Session
	mustWrite(t, c, follower, "/api/v1/sessions", vapi.StartSessionBody{
		Command:  vapi.Command{ID: "st-session", Actor: "w1"},
		WorkerID: "w1", DeviceID: "d1", Duration: expirySession.String(), Update: "systemtest visit",
	}, &sess)
	due := sess.NextDue
	t.Logf("session %s started through %s, due at %s", sess.ID, c.nodes[follower].name, due.Format(time.StampMilli))

	// The kill is set for a moment on the session's clock, not a wait for
	// a condition: a sleep is what it needs.
	killAt := due.Add(-killBeforeDue)
	if time.Until(killAt) <= 0 {
		t.Fatalf("the session start returned %s before it was due; too late to kill the leader before then", time.Until(due))
	}
	time.Sleep(time.Until(killAt))
	if l := c.agreedLeader(); l >= 0 {
		leader = l // leadership may have moved; kill whoever leads now
	}
	c.Kill(leader)
	killedAt := time.Now()
	t.Logf("SIGKILLed the leader %s %s before the session was due", c.nodes[leader].name, due.Sub(killedAt).Round(time.Millisecond))

	newLeader := c.WaitForLeader()
	failover := time.Since(killedAt)
	if newLeader == leader {
		t.Fatalf("%s, killed, is reported leader", c.nodes[leader].name)
	}
	t.Logf("%s leads after a failover of %s (from the kill to a leader that both survivors name)",
		c.nodes[newLeader].name, failover.Round(time.Millisecond))

	// Each survivor shows the alarm; it must come within failover plus
	// grace of the due time, and never before the grace has passed.
	bound := failover + expiryGrace + alarmSlack
	var survivors []int
	for i := range c.nodes {
		if i != leader {
			survivors = append(survivors, i)
		}
	}
	seen := map[int]time.Time{}
	var alarmID string
	clustertest.PollUntil(t, time.Until(due.Add(bound)), "a missed-check-in alarm on both survivors", func() bool {
		c.mustAllRunning(leader)
		for _, i := range survivors {
			if _, ok := seen[i]; ok {
				continue
			}
			alarms, err := missedCheckIns(c, i, sess.ID)
			if err != nil || len(alarms) == 0 {
				continue
			}
			seen[i] = time.Now()
			if alarmID == "" {
				alarmID = alarms[0].ID
			}
		}
		return len(seen) == len(survivors)
	})
	for _, i := range survivors {
		t.Logf("%s showed the alarm %s after the session was due", c.nodes[i].name, seen[i].Sub(due).Round(time.Millisecond))
	}
	// Any second alarm would come from a second firing, within a scan or
	// two of the first; the check after the restart, seconds later, would
	// see it too.
	alarm := mustOneMissedCheckIn(t, c, survivors, sess.ID)
	raisedAfterDue := alarm.RaisedAt.Sub(due)
	t.Logf("due -> alarm raised: %s (grace %s, failover %s, bound %s)",
		raisedAfterDue.Round(time.Millisecond), expiryGrace, failover.Round(time.Millisecond), bound.Round(time.Millisecond))
	switch {
	case raisedAfterDue < expiryGrace:
		t.Errorf("the alarm was raised %s after the due time, before the grace of %s had passed", raisedAfterDue, expiryGrace)
	case raisedAfterDue > bound:
		t.Errorf("the alarm was raised %s after the due time, more than failover + grace + slack = %s", raisedAfterDue, bound)
	}
	var st monitoring.Session
	if err := c.api.getJSON(context.Background(), "http://"+c.http[newLeader]+"/api/v1/sessions/"+sess.ID, &st); err != nil {
		t.Fatal(err)
	}
	if st.Status != monitoring.SessionAlarm || st.AlarmID != alarm.ID {
		t.Fatalf("session after the alarm: status %s, alarm %q; want %s, %q", st.Status, st.AlarmID, monitoring.SessionAlarm, alarm.ID)
	}

	// The killed node comes back, catches up, and shows the same alarm.
	lst, err := c.api.status(c.http[newLeader])
	if err != nil {
		t.Fatal(err)
	}
	c.Restart(leader)
	applied := c.waitConverged(convergeTimeout, lst.AppliedIndex)
	t.Logf("%s restarted; all three nodes applied index %d", c.nodes[leader].name, applied)
	if again := mustOneMissedCheckIn(t, c, []int{0, 1, 2}, sess.ID); again.ID != alarm.ID {
		t.Fatalf("after the restart the alarm is %s, before it was %s", again.ID, alarm.ID)
	}
}

// mustOneMissedCheckIn fails the test unless each of the nodes shows
// exactly one open missed-check-in alarm for the session, and the same
// one; it returns that alarm as the first node shows it.
func mustOneMissedCheckIn(t *testing.T, c *testCluster, nodes []int, sessionID string) monitoring.Alarm {
	t.Helper()
	var first monitoring.Alarm
	for k, i := range nodes {
		alarms, err := missedCheckIns(c, i, sessionID)
		if err != nil {
			t.Fatal(err)
		}
		if len(alarms) != 1 {
			t.Fatalf("%s shows %d missed-check-in alarms for session %s, want 1: %+v", c.nodes[i].name, len(alarms), sessionID, alarms)
		}
		if k == 0 {
			first = alarms[0]
		} else if !reflect.DeepEqual(alarms[0], first) {
			t.Fatalf("%s shows the alarm as %+v, %s as %+v", c.nodes[i].name, alarms[0], c.nodes[nodes[0]].name, first)
		}
	}
	return first
}

// missedCheckIns returns the open missed-check-in alarms of a session as
// node i shows them in GET /api/v1/alarms.
func missedCheckIns(c *testCluster, i int, sessionID string) ([]monitoring.Alarm, error) {
	ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
	defer cancel()
	var resp vapi.AlarmsResponse
	if err := c.api.getJSON(ctx, "http://"+c.http[i]+"/api/v1/alarms", &resp); err != nil {
		return nil, err
	}
	var out []monitoring.Alarm
	for _, a := range resp.Alarms {
		if a.Type == monitoring.AlarmMissedCheckIn && a.SessionID == sessionID {
			out = append(out, a)
		}
	}
	return out, nil
}

// mustWrite posts body to node i's path and decodes the 2xx reply into out
// (when not nil). It retries with the same body, and so the same command
// ID, while the reply says to (no reply, 503, 504), for up to writeBudget.
func mustWrite(t *testing.T, c *testCluster, i int, path string, body, out any) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(writeBudget)
	for {
		status, reply, err := post(c, i, path, b)
		var last string
		switch {
		case err != nil:
			last = err.Error()
		case status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout:
			last = fmt.Sprintf("HTTP %d: %s", status, reply)
		case status < 200 || status > 299:
			t.Fatalf("POST %s on %s: HTTP %d: %s", path, c.nodes[i].name, status, reply)
		case out != nil:
			if err := json.Unmarshal(reply, out); err != nil {
				t.Fatalf("POST %s on %s: cannot decode %s: %v", path, c.nodes[i].name, reply, err)
			}
			return
		default:
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("POST %s on %s: no success in %s; last: %s", path, c.nodes[i].name, writeBudget, last)
		}
		time.Sleep(pollInterval)
	}
}

func post(c *testCluster, i int, path string, body []byte) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+c.http[i]+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	c.api.authorise(req)
	resp, err := c.api.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(resp.Body)
	return resp.StatusCode, bytes.TrimSpace(reply), err
}
