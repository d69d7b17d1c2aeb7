package appliance

// Metrics and health checks: what a monitoring system asks a node.
//
// /metrics is Prometheus's text exposition from a registry of the node's
// own (not the process-wide default): Go's and the process's collectors,
// the PUBACK latency histogram the broker feeds, and a collector that
// reads the rest at scrape time from what the parts already keep (the
// cluster's status, the broker's counters, the open alarms), so nothing
// is counted twice and nothing runs between scrapes.
//
// /healthz says the process answers; /readyz whether this node can take
// writes (cluster.Node.Ready), for load balancers and compose health
// checks. Both are served without authentication on http_addr, and all
// three on metrics_addr when it is set. None says anything secret.

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/broker"
	"github.com/vigilarc/vigil/cluster"
)

// Paths of the health checks and the metrics.
const (
	HealthzPath = "/healthz"
	ReadyzPath  = "/readyz"
	MetricsPath = "/metrics"
)

// metricsNamespace begins every metric name of Vigil's own.
const metricsNamespace = "vigil"

// pubackBuckets are the PUBACK latency histogram's bounds, in seconds:
// a healthy cluster acknowledges in a few milliseconds, an election takes
// up to about two seconds, and the broker gives up at its commit timeout
// (5 s by default).
var pubackBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// metricsSource is what the node collector reads at scrape time.
type metricsSource struct {
	cluster *cluster.Node
	service *monitoring.Service
	broker  func() *broker.Broker // nil until the broker opens
	dataDir string
	logger  *slog.Logger
}

// nodeMetrics is a node's registry and the metrics fed as things happen.
type nodeMetrics struct {
	reg    *prometheus.Registry
	puback *prometheus.HistogramVec
}

// newNodeMetrics returns a registry holding Go's and the process's
// collectors, the PUBACK histogram and a collector over src.
func newNodeMetrics(src metricsSource) *nodeMetrics {
	m := &nodeMetrics{
		reg: prometheus.NewRegistry(),
		puback: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metricsNamespace, Subsystem: "device", Name: "puback_duration_seconds",
			Help:    "Time from a device's PUBLISH to its PUBACK for the messages the cluster committed (alarms, sessions, audio, updates, prompt answers), by message type.",
			Buckets: pubackBuckets,
		}, []string{"type"}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.puback,
		&nodeCollector{src: src},
	)
	return m
}

// observePuback is the broker's Config.ObservePuback.
func (m *nodeMetrics) observePuback(msgType string, d time.Duration) {
	m.puback.WithLabelValues(msgType).Observe(d.Seconds())
}

// handler serves the exposition.
func (m *nodeMetrics) handler(logger *slog.Logger) http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
	})
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(metricsNamespace+"_"+name, help, labels, nil)
}

// The metrics read at scrape time.
var (
	descRaftState       = desc("raft_state", "1 for this node's Raft state (leader, follower, candidate, shutdown), 0 for the others.", "state")
	descRaftLeaderKnown = desc("raft_leader_known", "1 when this node knows a leader.")
	descRaftTerm        = desc("raft_term", "This node's current Raft term.")
	descRaftCommit      = desc("raft_commit_index", "The highest log index this node knows to be committed.")
	descRaftApplied     = desc("raft_applied_index", "The highest log index applied to this node's state.")
	descRaftLastLog     = desc("raft_last_log_index", "The last index in this node's Raft log.")
	descRaftSnapshot    = desc("raft_last_snapshot_index", "The log index of this node's last snapshot.")
	descRaftApplyLag    = desc("raft_apply_lag_entries", "Committed entries this node has not applied yet.")
	descReady           = desc("ready", "1 when this node can take writes (/readyz): it knows a leader, is not far behind, and its disk is not full.")
	descPeerApplied     = desc("raft_peer_applied_index", "The applied index each other member last reported to this node (every status interval).", "peer")
	descPeerLag         = desc("raft_peer_lag_entries", "How far each other member's applied index is behind this node's commit index, as last reported.", "peer")
	descPeerContact     = desc("raft_peer_last_contact_seconds", "Seconds since each other member last answered this node; absent for a member never heard from.", "peer")
	descPeerReachable   = desc("raft_peer_reachable", "1 when each other member answered this node's last status request in time.", "peer")
	descDiskFree        = desc("disk_free_bytes", "Free bytes of the file system holding the data directory, for the node's user.")
	descDiskTotal       = desc("disk_size_bytes", "Size of the file system holding the data directory.")
	descDiskFloor       = desc("disk_floor_bytes", "Free space under which the node refuses writes (cluster.min_free_bytes); absent when the check is off.")
	descDiskFull        = desc("disk_full", "1 while the free space is under the floor and the node refuses writes.")
	descAlarmsOpen      = desc("alarms_open", "Open alarms by status, from this node's copy of the state.", "status")
	descAlarmsAwaiting  = desc("alarms_awaiting_confirmation", "Open alarms the worker has reset, waiting for an operator to confirm them safe.")
	descConnected       = desc("devices_connected", "Device connections held by this node's broker.")
	descCommitted       = desc("device_messages_committed_total", "Device messages the cluster committed, then acknowledged (PUBACK), on this node.")
	descRefused         = desc("device_messages_refused_total", "Device messages not recorded on this node, by reason: invalid (an error reply: a rule or the format refused it), rate_limited, acl (outside the device's topics), unavailable (not committed in time: no PUBACK), disk_full (the cluster refuses writes: no PUBACK).", "reason")
	descShort           = desc("device_messages_short_of_replicas_total", "Committed device messages acknowledged before every voter had applied them (one was down or behind).")
	descAuthRefused     = desc("device_connections_refused_total", "Device connections refused on this node, by reason: auth (unknown device or wrong secret), pending_limit (too many connections had not sent CONNECT).", "reason")
	descTelemetry       = desc("device_telemetry_reports_written_total", "Device heartbeats, locations and battery reports written to the cluster by this node.")
	descFlooding        = desc("devices_flooding", "Devices refused by the rate limits lately (a flood in progress) on this node.")
)

// nodeCollector reads the metrics of a node at scrape time.
type nodeCollector struct{ src metricsSource }

var _ prometheus.Collector = (*nodeCollector)(nil)

// Describe sends every metric's description.
func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRaftState, descRaftLeaderKnown, descRaftTerm, descRaftCommit, descRaftApplied,
		descRaftLastLog, descRaftSnapshot, descRaftApplyLag, descReady, descPeerApplied, descPeerLag, descPeerContact,
		descPeerReachable, descDiskFree, descDiskTotal, descDiskFloor, descDiskFull, descAlarmsOpen, descAlarmsAwaiting,
		descConnected, descCommitted, descRefused, descShort, descAuthRefused, descTelemetry, descFlooding} {
		ch <- d
	}
}

// raftStates are the values of vigil_raft_state's label.
var raftStates = []string{"leader", "follower", "candidate", "shutdown"}

// Collect reads the cluster's status, the open alarms and the broker's
// counters.
func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	st := c.src.cluster.Status()
	for _, s := range raftStates {
		gauge(descRaftState, b2f(strings.EqualFold(st.State, s)), s)
	}
	gauge(descRaftLeaderKnown, b2f(st.LeaderID != ""))
	gauge(descRaftTerm, float64(st.Term))
	gauge(descRaftCommit, float64(st.CommitIndex))
	gauge(descRaftApplied, float64(st.AppliedIndex))
	gauge(descRaftLastLog, float64(st.LastLogIndex))
	gauge(descRaftSnapshot, float64(st.LastSnapshot))
	gauge(descRaftApplyLag, float64(sub0(st.CommitIndex, st.AppliedIndex)))
	gauge(descReady, b2f(c.src.cluster.Ready().Ready))
	for _, m := range st.Members {
		if m.Self {
			continue
		}
		gauge(descPeerReachable, b2f(m.Reachable), m.ID)
		if m.LastContactMS < 0 {
			continue
		}
		gauge(descPeerContact, float64(m.LastContactMS)/1000, m.ID)
		gauge(descPeerApplied, float64(m.AppliedIndex), m.ID)
		gauge(descPeerLag, float64(sub0(st.CommitIndex, m.AppliedIndex)), m.ID)
	}
	c.collectDisk(st.Disk, gauge)

	if alarms, err := c.src.service.OpenAlarms(); err != nil {
		c.src.logger.Warn("metrics: cannot read the open alarms", logKeyError, err)
	} else {
		byStatus := map[monitoring.AlarmStatus]int{}
		awaiting := 0
		for i := range alarms {
			byStatus[alarms[i].Status]++
			if alarms[i].AwaitingConfirmation() {
				awaiting++
			}
		}
		for _, s := range []monitoring.AlarmStatus{monitoring.StatusRaised, monitoring.StatusAcknowledged, monitoring.StatusInProgress} {
			gauge(descAlarmsOpen, float64(byStatus[s]), string(s))
		}
		gauge(descAlarmsAwaiting, float64(awaiting))
	}

	var b *broker.Broker
	if c.src.broker != nil {
		b = c.src.broker()
	}
	if b == nil {
		return
	}
	bs := b.Stats()
	gauge(descConnected, float64(bs.Connected))
	gauge(descFlooding, float64(bs.Flooding))
	counter(descCommitted, bs.Committed)
	counter(descRefused, bs.ErrorReplies, "invalid")
	counter(descRefused, bs.RateLimited, "rate_limited")
	counter(descRefused, bs.ACLRefused, "acl")
	counter(descRefused, sub0(bs.Unavailable, bs.DiskFull), "unavailable")
	counter(descRefused, bs.DiskFull, "disk_full")
	counter(descShort, bs.ShortOfReplicas)
	counter(descAuthRefused, bs.AuthRefused, "auth")
	counter(descAuthRefused, bs.PendingRefused, "pending_limit")
	counter(descTelemetry, bs.TelemetryWritten)
}

// collectDisk reports the data directory's free space: the cluster's
// disk check's last reading, or a reading of its own when the check is
// off.
func (c *nodeCollector) collectDisk(d *cluster.DiskStatus, gauge func(*prometheus.Desc, float64, ...string)) {
	if d != nil {
		gauge(descDiskFree, float64(d.FreeBytes))
		gauge(descDiskTotal, float64(d.TotalBytes))
		gauge(descDiskFloor, float64(d.FloorBytes))
		gauge(descDiskFull, b2f(d.Full))
		return
	}
	var s syscall.Statfs_t
	if err := syscall.Statfs(c.src.dataDir, &s); err != nil {
		return
	}
	gauge(descDiskFree, float64(s.Bavail*uint64(s.Bsize)))
	gauge(descDiskTotal, float64(s.Blocks*uint64(s.Bsize)))
	gauge(descDiskFull, 0)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// sub0 is a-b, or 0 when b is larger.
func sub0(a, b uint64) uint64 {
	if b > a {
		return 0
	}
	return a - b
}

// serveHealthz answers that the process is alive.
func serveHealthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte("ok\n"))
}

// readyzHandler answers 200 when the node can take writes, else 503, with
// the cluster's Readiness as JSON either way.
func readyzHandler(cn *cluster.Node) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rd := cn.Ready()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if !rd.Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(rd)
	}
}

// serveMetrics serves /metrics, /healthz and /readyz on ln (metrics_addr,
// bound by Open before the cluster starts, so that a port in use fails
// the start), plain HTTP, no authentication.
func (n *Node) serveMetrics(ln net.Listener) {
	mux := http.NewServeMux()
	mux.Handle(MetricsPath, n.metrics.handler(n.logger.With(logKeySystem, "metrics")))
	mux.HandleFunc(HealthzPath, serveHealthz)
	mux.Handle(ReadyzPath, readyzHandler(n.cluster))
	n.metricsLn = ln
	n.metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: DefaultHTTPReadHeaderTimeout, ReadTimeout: DefaultHTTPReadTimeout,
		ErrorLog: slog.NewLogLogger(n.logger.With(logKeySystem, "metrics").Handler(), slog.LevelDebug)}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.metricsSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.logger.Error("metrics server stopped", logKeyError, err)
		}
	}()
	n.logger.Info("serving metrics and health checks (metrics_addr)", "addr", "http://"+ln.Addr().String()+MetricsPath)
}

// MetricsAddr returns the address of the metrics_addr listener, once open;
// empty when it is off.
func (n *Node) MetricsAddr() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.metricsLn == nil {
		return ""
	}
	return n.metricsLn.Addr().String()
}
