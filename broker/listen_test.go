package broker_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/vigilarc/vigil/broker"
	"github.com/vigilarc/vigil/cluster/clustertest"
)

// dialFrom opens a TCP connection to addr from the local IP from (any of
// 127.0.0.0/8 on Linux).
func dialFrom(t *testing.T, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: waitTimeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedByBroker says whether the broker closed c before deadline,
// without c sending anything.
func closedByBroker(c net.Conn, deadline time.Time) bool {
	_ = c.SetReadDeadline(deadline)
	_, err := c.Read(make([]byte, 1))
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

// mustConnectFrom connects device dev-2 from the local IP from with a raw
// MQTT 3.1.1 CONNECT and fails unless it is accepted.
func mustConnectFrom(t *testing.T, from, addr string) {
	t.Helper()
	nc := dialFrom(t, from, addr)
	c := &conn5{c: nc, r: bufio.NewReader(nc)}
	var buf bytes.Buffer
	pk := connectPacket(4, "dev-2", "s-2")
	if err := pk.ConnectEncode(&buf); err != nil {
		t.Fatal(err)
	}
	c.write(t, buf.Bytes())
	fh, body, err := c.read()
	if code := connackCode(t, fh, body, err); code != packets.CodeSuccess.Code {
		t.Fatalf("a device from %s: CONNACK 0x%02x", from, code)
	}
}

// Connections that never send CONNECT are bounded per remote address and
// per node: beyond the bound the broker closes them as soon as it accepts
// them. Per address, a device from another address still connects; per
// node, one does as soon as a slot is free. (About 20,000 such connections
// exhausted a node's file descriptors.)
func TestBroker_IdleConnectionsBounded(t *testing.T) {
	const bound, extra = 5, 10
	cases := []struct {
		name     string
		tweak    func(*broker.Config)
		from     func(i int) string // the local IP of the i-th idle connection
		freeSlot bool               // close an idle connection before the device connects
	}{
		{"per address", func(c *broker.Config) { c.MaxPendingPerAddr = bound },
			func(int) string { return "127.0.0.1" }, false},
		{"per node", func(c *broker.Config) { c.MaxPending = bound },
			func(i int) string { return net.IPv4(127, 0, 1, byte(1+i)).String() }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := mustHostileBroker(t, twoDevices(), func(c *broker.Config) {
				c.ConnectTimeout = time.Minute // the bound closes them, not the timeout
				tc.tweak(c)
			})
			idle := make([]net.Conn, bound)
			for i := range bound {
				idle[i] = dialFrom(t, tc.from(i), b.TCPAddr())
			}
			clustertest.PollUntil(t, waitTimeout, "the idle connections pending", func() bool { return b.Stats().Pending == bound })
			deadline := time.Now().Add(waitTimeout)
			for i := range extra {
				if c := dialFrom(t, tc.from(bound+i), b.TCPAddr()); !closedByBroker(c, deadline) {
					t.Fatalf("idle connection %d beyond the bound of %d is still open", bound+i+1, bound)
				}
			}
			want := bound
			if tc.freeSlot {
				idle[0].Close()
				want--
				clustertest.PollUntil(t, waitTimeout, "a free slot", func() bool { return b.Stats().Pending == want })
			}
			mustConnectFrom(t, "127.0.0.2", b.TCPAddr())
			if s := b.Stats(); s.PendingRefused != extra || s.Pending != want {
				t.Errorf("stats: %d refused, %d pending; want %d and %d", s.PendingRefused, s.Pending, extra, want)
			}
			if p := b.Problems(); len(p) != 1 || !strings.Contains(p[0], "refused at the cap") {
				t.Errorf("problems %q: want the refusals at the cap", p)
			}
			// mochi's Close waits for connections it is reading a CONNECT
			// from, and the race detector takes that wait for a race with
			// the connection's start (Add inside the connection's
			// goroutine): end them first.
			for _, c := range idle {
				c.Close()
			}
			clustertest.PollUntil(t, waitTimeout, "nothing pending", func() bool { return b.Stats().Pending == 0 })
		})
	}
}

// A connection that sends no CONNECT within the connect timeout is
// closed, and so is one that sends only part of it.
func TestBroker_ConnectTimeout(t *testing.T) {
	b := mustHostileBroker(t, twoDevices(), func(c *broker.Config) { c.ConnectTimeout = 300 * time.Millisecond })
	silent := dialFrom(t, "127.0.0.1", b.TCPAddr())
	partial := dialFrom(t, "127.0.0.1", b.TCPAddr())
	if _, err := partial.Write([]byte{0x10, 0x20, 0x00}); err != nil { // a CONNECT of 32 bytes, begun
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitTimeout)
	for name, c := range map[string]net.Conn{"silent": silent, "partial CONNECT": partial} {
		if !closedByBroker(c, deadline) {
			t.Errorf("%s connection still open after the connect timeout", name)
		}
	}
	clustertest.PollUntil(t, waitTimeout, "nothing pending", func() bool { return b.Stats().Pending == 0 })
	mustConnectFrom(t, "127.0.0.1", b.TCPAddr()) // a device that sends CONNECT at once is not concerned
}

// failingListener is a net.Listener whose next Accept fails with EMFILE,
// as accept(2) does when the process is out of file descriptors, while
// fail is set.
type failingListener struct {
	net.Listener
	fail atomic.Int32
}

func (l *failingListener) Accept() (net.Conn, error) {
	if l.fail.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// An accept error (the node out of file descriptors for a moment) does
// not stop the MQTT listener: mochi's own accept loop returns at the first
// one. The failure is counted, reported as a problem (the cluster page
// shows it) while it lasts, and the listener accepts devices again.
func TestBroker_ListenerSurvivesAcceptErrors(t *testing.T) {
	var fl *failingListener
	b := mustHostileBroker(t, twoDevices(), func(c *broker.Config) {
		c.Listen = func(network, addr string) (net.Listener, error) {
			l, err := net.Listen(network, addr)
			if err != nil {
				return nil, err
			}
			fl = &failingListener{Listener: l}
			fl.fail.Store(1 << 30)
			return fl, nil
		}
	})
	clustertest.PollUntil(t, waitTimeout, "the failing listener reported", func() bool {
		p := b.Problems()
		return len(p) == 1 && strings.Contains(p[0], "cannot accept connections") && strings.Contains(p[0], "too many open files")
	})
	if s := b.Stats(); s.AcceptErrors == 0 || s.ListenersFailing != 1 {
		t.Errorf("stats while failing: %d accept errors, %d listeners failing; want some and 1", s.AcceptErrors, s.ListenersFailing)
	}
	fl.fail.Store(0)
	mustConnectFrom(t, "127.0.0.1", b.TCPAddr())
	if s := b.Stats(); s.ListenersFailing != 0 {
		t.Errorf("stats after: %d listeners failing, want 0", s.ListenersFailing)
	}
	if p := b.Problems(); len(p) != 0 {
		t.Errorf("problems after the listener recovered: %q", p)
	}
}
