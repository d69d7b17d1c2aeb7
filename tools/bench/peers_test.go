package main

import (
	"context"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/sim"
)

// mustEtcd starts a three-member etcd cluster, or skips the test when etcd
// is not installed (make bench installs it).
func mustEtcd(t *testing.T) *etcdCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("starts etcd")
	}
	c, err := newEtcdCluster(t.TempDir())
	if err != nil {
		t.Skip(err)
	}
	t.Cleanup(c.stop)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.startAll(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}

// The bench's etcd client (3.5) puts through Debian's etcd server (3.4),
// and a killed leader is replaced under load.
func TestEtcdCluster_PutsAndFailsOver(t *testing.T) {
	c := mustEtcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := runEtcdLoad(ctx, c, c.endpoints(), "all", 4, 200*time.Millisecond, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r.commits == 0 || r.errors != 0 {
		t.Fatalf("%d puts, %d errors; want some and none", r.commits, r.errors)
	}
	rounds, _, err := runEtcdFailover(ctx, c, 1, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(rounds) != 1 || rounds[0].firstAfter <= 0 || rounds[0].newLeader == "" || rounds[0].newLeader == rounds[0].killed {
		t.Fatalf("failover rounds %+v, want one with a new leader and a put after the kill", rounds)
	}
}

// The simulator's closed alarm loop runs against Mosquitto, which PUBACKs
// and sends no replies.
func TestMosquitto_AlarmLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts mosquitto")
	}
	m, err := newMosquitto(t.TempDir())
	if err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.start(ctx); err != nil {
		t.Fatal(err)
	}
	defer m.stop()
	creds := []sim.Credential{{DeviceID: "m1", Secret: "x"}, {DeviceID: "m2", Secret: "x"}}
	l := gwLevel{tag: "mosquitto", where: "mosquitto", devices: 2, brokers: []string{m.addr}, peer: true}
	r, err := runAlarmLoad(ctx, l, creds, 200*time.Millisecond, time.Second, []int{m.p.pid()})
	if err != nil {
		t.Fatal(err)
	}
	if r.commits == 0 || r.errors != 0 {
		t.Fatalf("%d alarms PUBACKed, %d errors; want some and none", r.commits, r.errors)
	}
}

// Recovery counts only writes sent after the kill.
func TestRecovery(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 15, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	ops := []op{
		{client: 0, sent: at(-10), done: at(5), ok: true},     // sent before the kill
		{client: 0, sent: at(10), done: at(900), ok: false},   // failed
		{client: 1, sent: at(20), done: at(1200), ok: true},   // first
		{client: 0, sent: at(900), done: at(1500), ok: true},  // client 0's first
		{client: 1, sent: at(1300), done: at(1310), ok: true}, // client 1's second
	}
	first, all, fok, aok := recovery(ops, 2, t0)
	if !fok || !aok || first != 1200*time.Millisecond || all != 1500*time.Millisecond {
		t.Fatalf("recovery = %s, %s, %v, %v; want 1.2s, 1.5s, true, true", first, all, fok, aok)
	}
	if _, _, _, aok := recovery(ops, 3, t0); aok {
		t.Fatal("every client recovered, though the third never wrote")
	}
}
