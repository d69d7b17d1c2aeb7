package monitoring

import (
	"bytes"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

func TestKPIs_TargetsAndCounts(t *testing.T) {
	e := mustAlarmEnv(t)
	at := func(d time.Duration) { e.now = t0.Add(d) }
	s := time.Second

	at(0)
	e.raise("a1", AlarmRedAlert, "d1")
	at(5 * s)
	e.ack("a1", "olivia")
	at(65 * s)
	e.closeAlarm("a1", "olivia", ResolutionWorkerSafe)

	at(100 * s)
	e.raise("a2", AlarmManDown, "d2")
	at(120 * s)
	e.ack("a2", "olivia")
	at(180 * s)
	e.closeAlarm("a2", "olivia", ResolutionFalseAlarm)

	at(200 * s)
	e.raise("a3", AlarmMissedCheckIn, "d1")
	at(250 * s)
	e.ack("a3", "sam") // late, still open

	at(300 * s)
	e.raise("a4", AlarmTest, "d2")
	at(400 * s)
	e.ack("a4", "sam")
	e.closeAlarm("a4", "sam", ResolutionTest)

	at(400 * s)
	e.raise("a5", AlarmRedAlert, "d2") // never acknowledged: missed
	at(500 * s)
	e.raise("a7", AlarmRedAlert, "d3") // another organisation
	at(501 * s)
	e.ack("a7", "olivia")
	at(990 * s)
	e.raise("a6", AlarmDuress, "d1") // 10 s old when counted: pending

	now := t0.Add(1000 * s)
	var k, all, window *KPIs
	e.view(func(txn *badger.Txn) (err error) {
		if k, err = ComputeKPIs(txn, "o1", t0, t0.Add(time.Hour), now); err != nil {
			return err
		}
		if all, err = ComputeKPIs(txn, "", t0, t0.Add(time.Hour), now); err != nil {
			return err
		}
		window, err = ComputeKPIs(txn, "o1", t0.Add(150*s), t0.Add(300*s+1), now)
		return err
	})
	want := KPIs{OrgID: "o1", From: t0, To: t0.Add(time.Hour), At: now,
		Raised: 6, Tests: 1, Acknowledged: 3, Closed: 2, FalseAlarms: 1, Open: 3,
		MeanToAck: 25 * s, MedianToAck: 20 * s, MeanToClose: 72500 * time.Millisecond, MedianToClose: 72500 * time.Millisecond,
		TargetBase: 4, AckWithin10s: 0.25, AckWithin40s: 0.5, Missed: 2}
	if *k != want {
		t.Fatalf("KPIs\n %+v\nwant\n %+v", *k, want)
	}
	if all.Raised != 7 || all.Acknowledged != 4 || all.TargetBase != 5 {
		t.Fatalf("all organisations: %+v", *all)
	}
	// [t0+150s, t0+300s]: a3 and the test a4 (to is exclusive, hence +1ns).
	if window.Raised != 2 || window.Tests != 1 || window.Acknowledged != 1 {
		t.Fatalf("window: %+v", *window)
	}
	e.view(func(txn *badger.Txn) error {
		if _, err := ComputeKPIs(txn, "", t0, t0, now); err == nil {
			t.Error("an empty period was accepted")
		}
		empty, err := ComputeKPIs(txn, "o1", t0.Add(-time.Hour), t0, now)
		if err != nil || empty.Raised != 0 || !empty.Target1Met || !empty.Target2Met {
			t.Errorf("a period without alarms: %+v, %v", empty, err)
		}
		return nil
	})
}

func TestKPIs_TargetsMet(t *testing.T) {
	e := mustAlarmEnv(t)
	// Ten alarms: eight acknowledged within 10 s, two within 40 s.
	for i := range 10 {
		e.now = t0.Add(time.Duration(i) * time.Hour)
		id := string(rune('a' + i))
		e.raise(id, AlarmRedAlert, "d1")
		delay := 9 * time.Second
		if i >= 8 {
			delay = 30 * time.Second
		}
		e.tick(delay)
		e.ack(id, "olivia")
	}
	var k *KPIs
	e.view(func(txn *badger.Txn) (err error) {
		k, err = ComputeKPIs(txn, "o1", t0, t0.AddDate(0, 1, 0), t0.AddDate(0, 1, 0))
		return err
	})
	if k.AckWithin10s != 0.8 || k.AckWithin40s != 1 || !k.Target1Met || !k.Target2Met || k.Missed != 0 {
		t.Fatalf("KPIs = %+v", *k)
	}
}

func TestQuery_AuditAndIncident(t *testing.T) {
	e := mustAlarmEnv(t)
	e.raise("a1", AlarmRedAlert, "d1")
	e.raise("a2", AlarmRedAlert, "d1") // a repeat
	e.ack("a1", "olivia")
	e.closeAlarm("a1", "olivia", ResolutionWorkerSafe)
	e.view(func(txn *badger.Txn) error {
		recs, err := AuditFor(txn, "alarm/a1")
		if err != nil {
			return err
		}
		var cmds []string
		for _, r := range recs {
			cmds = append(cmds, r.Command)
		}
		if got := len(cmds); got != 3 || cmds[0] != "CmdRaiseAlarm" || cmds[2] != "CmdCloseAlarm" {
			t.Errorf("audit of a1 = %v", cmds)
		}
		all, err := AuditLog(txn, 0, 2)
		if err != nil || len(all) != 2 || all[0].Index != 1 || all[1].Index != 2 {
			t.Errorf("AuditLog(0, 2) = %+v, %v", all, err)
		}
		inc, err := IncidentAlarms(txn, "a1")
		if err != nil || len(inc) != 2 || inc[0].ID != "a1" || inc[1].ID != "a2" {
			t.Errorf("incident a1 = %+v, %v", inc, err)
		}
		if _, err := AlarmTimeline(txn, "nope"); err == nil {
			t.Error("the timeline of an unknown alarm was returned")
		}
		return nil
	})
}

func TestStateHash_OrderAndHostKeys(t *testing.T) {
	write := func(kvs ...string) []byte {
		db := mustOpenDB(t)
		for i := 0; i < len(kvs); i += 2 {
			err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(kvs[i]), []byte(kvs[i+1])) })
			if err != nil {
				t.Fatal(err)
			}
		}
		var h []byte
		err := db.View(func(txn *badger.Txn) (err error) {
			h, err = StateHash(txn)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	a := write("a", "1", "b", "2")
	if b := write("b", "2", "a", "1", "\xffcluster/applied", "x"); !bytes.Equal(a, b) {
		t.Fatal("the hash depends on write order or on host keys")
	}
	if c := write("a", "1", "b", "3"); bytes.Equal(a, c) {
		t.Fatal("a changed value left the hash unchanged")
	}
	if d := write("a1", "", "b", "2"); bytes.Equal(a, d) {
		t.Fatal("moving bytes between key and value left the hash unchanged")
	}
}
