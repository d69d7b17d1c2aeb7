package sim

import (
	"fmt"
	"io"
	"sync/atomic"
)

// counters are a run's live counts, updated by the devices as they go, so
// that Status can be read at any time without going through the history.
type counters struct {
	connected                           []atomic.Int64 // devices connected now, by broker index
	connects, reconnects, connectErrors atomic.Int64
	lost, failovers                     atomic.Int64
	heartbeats, locations               atomic.Int64
	telemetryAcked, telemetryUnacked    atomic.Int64
	telemetryOK, telemetryRefused       atomic.Int64
	sent, acked                         atomic.Int64
	done                                atomic.Bool
}

// Status is a snapshot of a run's live counters; its JSON form is what
// vigil sim --status-json prints.
type Status struct {
	// Devices is the number of simulated devices.
	Devices int `json:"devices"`
	// Connected is the devices connected now, ByBroker the same split by
	// broker address.
	Connected int64            `json:"connected"`
	ByBroker  map[string]int64 `json:"by_broker"`
	// Connects counts the connections made, Reconnects those of them that
	// were not a device's first, ConnectErrors the attempts that failed,
	// Lost the connections that dropped without the simulator closing them,
	// Failovers the moves to the next broker.
	Connects      int64 `json:"connects"`
	Reconnects    int64 `json:"reconnects"`
	ConnectErrors int64 `json:"connect_errors"`
	Lost          int64 `json:"lost"`
	Failovers     int64 `json:"failovers"`
	// Heartbeats and Locations count the telemetry sent. At TelemetryQoS
	// 1, TelemetryAcked counts the PUBACKs and TelemetryUnacked the
	// publishes that got none. TelemetryOK and TelemetryRefused count the
	// replies that said ok and those with an error code.
	Heartbeats       int64 `json:"heartbeats"`
	Locations        int64 `json:"locations"`
	TelemetryAcked   int64 `json:"telemetry_acked"`
	TelemetryUnacked int64 `json:"telemetry_unacked"`
	TelemetryOK      int64 `json:"telemetry_ok"`
	TelemetryRefused int64 `json:"telemetry_refused"`
	// Sent counts the outbox publishes (alarms and session events),
	// resends included, and Acked those PUBACKed.
	Sent  int64 `json:"sent"`
	Acked int64 `json:"acked"`
	// Done is set once the run has ended and every device disconnected.
	Done bool `json:"done"`
}

// Status returns the run's counters now; it is safe to call while Run runs.
func (s *Simulator) Status() Status {
	c := &s.ctr
	st := Status{
		Devices:    len(s.cfg.Credentials),
		ByBroker:   make(map[string]int64, len(s.cfg.Brokers)),
		Connects:   c.connects.Load(),
		Reconnects: c.reconnects.Load(), ConnectErrors: c.connectErrors.Load(),
		Lost: c.lost.Load(), Failovers: c.failovers.Load(),
		Heartbeats: c.heartbeats.Load(), Locations: c.locations.Load(),
		TelemetryAcked: c.telemetryAcked.Load(), TelemetryUnacked: c.telemetryUnacked.Load(),
		TelemetryOK: c.telemetryOK.Load(), TelemetryRefused: c.telemetryRefused.Load(),
		Sent: c.sent.Load(), Acked: c.acked.Load(),
		Done: c.done.Load(),
	}
	for i, addr := range s.cfg.Brokers {
		n := c.connected[i].Load()
		st.ByBroker[addr] += n
		st.Connected += n
	}
	return st
}

// Add adds o's counts to s, as for the runs of several processes; Done is
// left alone.
func (s *Status) Add(o Status) {
	s.Devices += o.Devices
	s.Connected += o.Connected
	if s.ByBroker == nil {
		s.ByBroker = make(map[string]int64, len(o.ByBroker))
	}
	for addr, n := range o.ByBroker {
		s.ByBroker[addr] += n
	}
	s.Connects += o.Connects
	s.Reconnects += o.Reconnects
	s.ConnectErrors += o.ConnectErrors
	s.Lost += o.Lost
	s.Failovers += o.Failovers
	s.Heartbeats += o.Heartbeats
	s.Locations += o.Locations
	s.TelemetryAcked += o.TelemetryAcked
	s.TelemetryUnacked += o.TelemetryUnacked
	s.TelemetryOK += o.TelemetryOK
	s.TelemetryRefused += o.TelemetryRefused
	s.Sent += o.Sent
	s.Acked += o.Acked
}

// WriteStatus prints st for people, on one line.
func WriteStatus(w io.Writer, st Status) {
	fmt.Fprintf(w, "connected %d of %d (%d connects, %d reconnects, %d failed, %d lost, %d failovers); "+
		"heartbeats %d, locations %d (acked %d, unacked %d, replies ok %d, refused %d); events sent %d, acked %d\n",
		st.Connected, st.Devices, st.Connects, st.Reconnects, st.ConnectErrors, st.Lost, st.Failovers,
		st.Heartbeats, st.Locations, st.TelemetryAcked, st.TelemetryUnacked, st.TelemetryOK, st.TelemetryRefused,
		st.Sent, st.Acked)
}
