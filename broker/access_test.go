package broker_test

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
)

// connect311 sends an MQTT 3.1.1 CONNECT with id as client ID and user
// name, and returns the CONNACK's return code.
func connect311(t *testing.T, addr, id, secret string) byte {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Error(err)
		return 0xff
	}
	defer c.Close()
	str := func(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }
	body := append([]byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0xC2, 0, 30}, str(id)...)
	body = append(append(body, str(id)...), str(secret)...)
	pkt := append([]byte{0x10, byte(len(body))}, body...)
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write(pkt); err != nil {
		t.Error(err)
		return 0xff
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(c, ack); err != nil {
		t.Errorf("no CONNACK: %v", err)
		return 0xff
	}
	return ack[3]
}

// TestAccess_BusyNodeSaysServerUnavailable: a flood of wrong secrets
// never runs more hashes than the node's pool allows; those beyond it get
// CONNACK "server unavailable" (come back later), not "not authorized",
// and the right secret still connects.
func TestAccess_BusyNodeSaysServerUnavailable(t *testing.T) {
	n := mustNode(t, func(s *monitoring.Service) { s.SetHashLimits(1, time.Millisecond) })
	f := mustFixture(t, n.Service, "busy")
	var wg sync.WaitGroup
	var unavailable, refused atomic.Int32
	for range 60 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch rc := connect311(t, n.BrokerAddr(), f.device, "a-wrong-secret"); rc {
			case 0x03:
				unavailable.Add(1)
			case 0x05:
				refused.Add(1)
			default:
				t.Errorf("CONNACK %#x", rc)
			}
		}()
	}
	wg.Wait()
	if unavailable.Load() == 0 || refused.Load() == 0 {
		t.Fatalf("%d server unavailable, %d not authorized: want both", unavailable.Load(), refused.Load())
	}
	if st := n.Service.HashStats(); st.MaxRunning > 1 {
		t.Fatalf("hash pool %+v: more than one hash at once", st)
	}
	if rc := connect311(t, n.BrokerAddr(), f.device, f.secret); rc != 0 {
		t.Fatalf("the right secret after the flood: CONNACK %#x", rc)
	}
}
