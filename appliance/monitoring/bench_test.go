package monitoring

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// BenchmarkOpenQueue measures the open-alarm queue query and the time to
// reopen the state (a node restart) on a large state: by default 50,000
// workers and devices, 1,000,000 closed alarms (each with its indexes, three
// timeline entries and three audit records) and 200 open ones. It is a
// benchmark, not a timed test: run it with
//
//	go test -run '^$' -bench OpenQueue -benchtime 200x ./appliance/monitoring/
//
// -short, or VIGIL_BENCH_ALARMS and VIGIL_BENCH_WORKERS, make it smaller.
func BenchmarkOpenQueue(b *testing.B) {
	workers, closed, open := 50_000, 1_000_000, 200
	if testing.Short() {
		workers, closed = 1_000, 20_000
	}
	workers = envInt(b, "VIGIL_BENCH_WORKERS", workers)
	closed = envInt(b, "VIGIL_BENCH_ALARMS", closed)

	dir := b.TempDir()
	opts := badger.DefaultOptions(dir).WithLogger(nil)
	db, err := badger.Open(opts)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if err := loadState(db, workers, closed, open); err != nil {
		b.Fatal(err)
	}
	b.Logf("loaded %d workers and devices, %d closed and %d open alarms in %s", workers, closed, open, time.Since(start).Round(time.Millisecond))
	defer func() { db.Close() }()

	b.Run("query", func(b *testing.B) {
		lat := make([]time.Duration, 0, b.N)
		var n int
		b.ResetTimer()
		for b.Loop() {
			t := time.Now()
			err := db.View(func(txn *badger.Txn) error {
				as, err := OpenAlarms(txn)
				n = len(as)
				return err
			})
			lat = append(lat, time.Since(t))
			if err != nil {
				b.Fatal(err)
			}
		}
		if n != open {
			b.Fatalf("open queue has %d alarms, want %d", n, open)
		}
		reportPercentiles(b, lat)
	})

	b.Run("restart", func(b *testing.B) {
		// Close the state and open it again, then answer the first query:
		// what a restarting node does before it serves the console.
		lat := make([]time.Duration, 0, b.N)
		for b.Loop() {
			t := time.Now()
			if err := db.Close(); err != nil {
				b.Fatal(err)
			}
			if db, err = badger.Open(opts); err != nil {
				b.Fatal(err)
			}
			err := db.View(func(txn *badger.Txn) error {
				_, err := OpenAlarms(txn)
				return err
			})
			lat = append(lat, time.Since(t))
			if err != nil {
				b.Fatal(err)
			}
		}
		reportPercentiles(b, lat)
	})
}

func envInt(b *testing.B, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		b.Fatalf("%s=%q: want a count", name, s)
	}
	return n
}

// reportPercentiles reports the median and the 99th percentile in ms.
func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		i := min(len(lat)-1, int(float64(len(lat))*p))
		return float64(lat[i]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

// loadState writes a large state directly, as the state machine would have
// left it, through a WriteBatch.
func loadState(db *badger.DB, workers, closed, open int) error {
	wb := db.NewWriteBatch()
	defer wb.Cancel()
	set := func(k string, v any) error {
		if v == nil {
			return wb.Set([]byte(k), nil)
		}
		return putBatch(wb, k, v)
	}
	const orgs = 50
	for o := range orgs {
		if err := set(pOrg+fmt.Sprintf("org%d", o), Organisation{ID: fmt.Sprintf("org%d", o), Name: "Org"}); err != nil {
			return err
		}
	}
	for w := range workers {
		org := fmt.Sprintf("org%d", w%orgs)
		wid, did := fmt.Sprintf("worker%06d", w), fmt.Sprintf("device%06d", w)
		if err := set(pWorker+wid, Worker{ID: wid, Name: "Worker " + wid, OrgID: org, Phone: "+44 7700 900000",
			Important: ImportantInfo{Medical: "asthma", SpecialHandling: "hard of hearing"}}); err != nil {
			return err
		}
		if err := set(pDevice+did, Device{ID: did, Kind: DevicePhoneApp, OrgID: org, WorkerID: wid, Battery: 80,
			Location: &Location{Lat: 53.48, Lon: -2.24}}); err != nil {
			return err
		}
	}
	begin := t0.AddDate(-1, 0, 0)
	step := 365 * 24 * time.Hour / time.Duration(max(closed, 1))
	for i := range closed + open {
		w := i % max(workers, 1)
		a := &Alarm{ID: fmt.Sprintf("alarm%07d", i), Type: AlarmTypes[i%len(AlarmTypes)], Status: StatusClosed,
			OrgID: fmt.Sprintf("org%d", w%orgs), WorkerID: fmt.Sprintf("worker%06d", w), DeviceID: fmt.Sprintf("device%06d", w),
			RaisedAt: begin.Add(time.Duration(i) * step), Location: &Location{Lat: 53.48, Lon: -2.24}, Actions: 3,
			AckBy: "olivia", ClosedBy: "olivia", Resolution: ResolutionWorkerSafe}
		a.Priority = DefaultPriorities[a.Type]
		a.IncidentID = a.ID
		a.AckAt = a.RaisedAt.Add(8 * time.Second)
		a.ClosedAt = a.RaisedAt.Add(4 * time.Minute)
		if i >= closed {
			a.Status, a.ClosedBy, a.Resolution, a.ClosedAt, a.Actions = StatusAcknowledged, "", "", time.Time{}, 2
			if err := set(string(openKey(a)), nil); err != nil {
				return err
			}
		}
		if err := set(pAlarm+a.ID, a); err != nil {
			return err
		}
		for _, k := range [][]byte{raisedKey(a), deviceAlarmKey(a), []byte(pIncident + a.ID + "/" + tkey(a.RaisedAt) + "/" + a.ID)} {
			if err := set(string(k), nil); err != nil {
				return err
			}
		}
		index := uint64(1_000_000 + 3*i)
		kinds := []ActionKind{ActionRaised, ActionAcknowledged, ActionClosed}[:a.Actions]
		for n, kind := range kinds {
			at := []time.Time{a.RaisedAt, a.AckAt, a.ClosedAt}[n]
			idx := index + uint64(n)
			if err := set(pTimeline+a.ID+"/"+ikey(idx)+"/0000", TimelineEntry{Index: idx, AlarmID: a.ID, Kind: kind, At: at, Actor: "olivia"}); err != nil {
				return err
			}
			if err := set(pAudit+ikey(idx)+"/0000", AuditRecord{Index: idx, At: at, Actor: "olivia", Node: "n1",
				Command: "CmdAcknowledge", Subject: "alarm/" + a.ID}); err != nil {
				return err
			}
		}
	}
	return wb.Flush()
}

func putBatch(wb *badger.WriteBatch, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return wb.Set([]byte(key), b)
}
