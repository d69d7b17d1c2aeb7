package appliance

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/notify"
	"github.com/vigilarc/vigil/broker"
	"github.com/vigilarc/vigil/cluster"
	"github.com/vigilarc/vigil/provisioning"
	"github.com/vigilarc/vigil/provisioning/discovery"
	"github.com/vigilarc/vigil/ui/incident"
	"github.com/vigilarc/vigil/ui/server"
	"github.com/vigilarc/vigil/ui/statistics"
)

// Timeouts of the HTTP server.
const (
	DefaultHTTPReadHeaderTimeout = 10 * time.Second
	DefaultHTTPReadTimeout       = 30 * time.Second
	DefaultHTTPIdleTimeout       = 2 * time.Minute
	// DefaultShutdownTimeout is how long Close lets HTTP requests in flight
	// finish before it cuts them off.
	DefaultShutdownTimeout = 5 * time.Second
)

// Node is one running appliance: the composition root that wires the
// cluster node, the monitoring state machine and the HTTP API.
//
// New does no I/O. Open starts the parts bottom up (cluster, then HTTP);
// Close stops them in reverse order and is safe to call twice.
type Node struct {
	cfg     Config
	logger  *slog.Logger
	fsm     *monitoring.FSM
	cluster *cluster.Node
	service *monitoring.Service
	trust   *peerTrust // the cluster port's certificates
	nodeID  string     // from New, before the cluster node opens
	sched   *monitoring.Scheduler
	notify  *notify.Deliverer // the outbox's delivery, while leading
	broker  *broker.Broker
	web     *server.Server // the HTTP surface: console, REST API, their authentication

	openedAt  time.Time // when the cluster node opened; read by downNodes
	publicURL string    // the console's origin as browsers reach it, once open

	httpLn   net.Listener
	httpSrv  *http.Server
	sniff    *sniffListener // https: splits TLS from plain connections; nil for plain HTTP
	redirect *http.Server   // https: answers plain requests with a redirect
	pprof    *http.Server   // debug.pprof_addr; nil when off
	metrics  *nodeMetrics   // the registry /metrics serves
	// metricsLn and metricsSrv serve metrics_addr; nil when it is off.
	metricsLn  net.Listener
	metricsSrv *http.Server
	adv        *discovery.Advertiser // the mDNS announcement; nil when discovery is off
	stop       chan struct{}         // closed by Close: ends the node's own loops

	joinRefused joinRefusals // refused joins, for the log
	wg          sync.WaitGroup

	mu        sync.Mutex // guards opened
	opened    bool
	closeOnce sync.Once
	closeErr  error
}

// New returns a node for cfg. It validates cfg and reads the node's ID and
// trust from its data directory; it writes nothing.
func New(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = newFormatLogger(os.Stderr, cfg.LogLevel, cfg.LogFormat, journalStream(os.LookupEnv, os.Stderr))
	}
	trust, err := loadTrust(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	id, err := nodeIdentity(cfg, trust)
	if err != nil {
		return nil, err
	}
	pt := &peerTrust{}
	ccfg := cfg.clusterConfig(logger)
	if ccfg.Bootstrap && cfg.Cluster.Bootstrap == nil {
		// A node that joined with a token never starts a cluster of its
		// own: until it is a voter it dials the members it was given.
		joined, err := readJoined(cfg.DataDir)
		if err != nil {
			return nil, err
		}
		if len(joined) > 0 {
			ccfg.Bootstrap, ccfg.Join = false, joined
		}
	}
	ccfg.NodeID, ccfg.ServerTLS, ccfg.ClientTLS, ccfg.VerifyPeer = id, pt.serverTLS(), pt.clientTLS(), pt.verifyPeer
	fsm := monitoring.NewFSM()
	cn, err := cluster.New(ccfg, fsm)
	if err != nil {
		return nil, err
	}
	pt.allow, pt.watch = memberCheck(cn.Configuration, cfg.DataDir, logger)
	if trust != nil {
		pt.set(trust)
	}
	svc := monitoring.NewService(cn, fsm, logger.With(logKeySystem, "monitoring"))
	// Rolling upgrades: this node reports which rules it knows, and
	// proposes only rules that every member knows (monitoring/rulesfloor.go).
	cn.SetFeatures(monitoring.RulesFeatures())
	svc.SetRulesFloor(cn.FeatureFloor)
	n := &Node{cfg: cfg, logger: logger, fsm: fsm, cluster: cn, service: svc, trust: pt, nodeID: id}
	n.sched = monitoring.NewScheduler(svc, cn.IsLeader, monitoring.SchedulerConfig{Logger: logger, DownNodes: n.downNodes})
	n.metrics = newNodeMetrics(metricsSource{cluster: cn, service: svc, dataDir: cfg.DataDir, logger: logger,
		broker: func() *broker.Broker { return n.broker }})
	// The links in notifications lead to notify.console_url, else to this
	// node's console, known once it listens (Open sets publicURL before
	// the deliverer starts).
	n.notify, err = notify.New(svc, cn.IsLeader, svc.Now, cfg.Notify, notify.Hooks{ConsoleURL: func() string { return n.publicURL }, AudioLink: n.closeAudioLink,
		Attachments: n.noticePDF}, logger)
	if err != nil {
		return nil, err
	}
	return n, nil
}

// downNodes lists the other members this node has not heard from for
// broker.node_down_after: since their last answer, or since this node
// opened if they never answered.
func (n *Node) downNodes() []monitoring.DownNode {
	var out []monitoring.DownNode
	now := time.Now()
	for _, m := range n.cluster.Status().Members {
		if m.Self {
			continue
		}
		since := n.openedAt
		if m.LastContact != nil {
			t, err := time.Parse(time.RFC3339Nano, *m.LastContact)
			if err != nil {
				continue
			}
			since = t
		}
		if !since.IsZero() && now.Sub(since) >= n.cfg.Broker.NodeDownAfter {
			out = append(out, monitoring.DownNode{ID: m.ID, Since: since})
		}
	}
	return out
}

// Open starts the node: it binds the HTTP port (so a port in use fails
// before Raft starts), opens the cluster node, then serves the API. It
// returns once everything runs; the cluster may still be electing a leader.
func (n *Node) Open(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.opened {
		return errors.New("appliance: node already opened")
	}
	if err := secureDataDir(n.cfg.DataDir, n.logger); err != nil {
		return err
	}
	if err := n.ensureTrust(); err != nil {
		return err
	}
	if _, err := n.renewCertificate(time.Now()); err != nil {
		n.logger.Warn("cannot renew this node's certificate", logKeyError, err)
	}
	ln, err := net.Listen("tcp", n.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("cannot listen on http_addr %s: %w", n.cfg.HTTPAddr, err)
	}
	var metricsLn net.Listener
	if a := n.cfg.MetricsAddr; a != "" {
		if metricsLn, err = net.Listen("tcp", a); err != nil {
			ln.Close()
			return fmt.Errorf("cannot listen on metrics_addr %s: %w", a, err)
		}
		defer func() {
			if !n.opened {
				metricsLn.Close()
			}
		}()
	}
	if err := n.cluster.Open(ctx); err != nil {
		ln.Close()
		return fmt.Errorf("cannot open cluster node: %w", err)
	}
	n.logger = n.logger.With(logKeyNode, n.cluster.ID())
	n.openedAt = time.Now()
	if err := n.sched.Open(context.Background()); err != nil { // runs until Close, not until ctx ends
		ln.Close()
		n.cluster.Close()
		return fmt.Errorf("cannot start the deadline scheduler: %w", err)
	}
	var waitReplicas func(context.Context) (int, int)
	if n.cfg.Broker.ReplicaWait > 0 {
		waitReplicas = n.cluster.WaitReplicas
	}
	var serverTLS *tls.Config
	if n.cfg.Broker.TLSAddr != "" || n.cfg.Broker.WSSAddr != "" {
		if n.cfg.Broker.TLSCertFile == "" {
			serverTLS = n.nodeCertTLS()
		} else {
			var err error
			if serverTLS, err = n.cfg.Broker.loadTLS(); err != nil {
				return fmt.Errorf("cannot load the MQTT TLS certificate: %w", err)
			}
		}
	}
	n.warnPlainMQTT()
	n.warnNoMQTT()
	n.broker = broker.New(broker.Config{
		TCPAddr: n.cfg.Broker.TCPAddr, WSAddr: n.cfg.Broker.WSAddr,
		TLSAddr: n.cfg.Broker.TLSAddr, WSSAddr: n.cfg.Broker.WSSAddr, TLS: serverTLS,
		NodeID: n.cluster.ID(), CommitTimeout: n.cfg.Broker.CommitTimeout,
		TelemetryFlush: n.cfg.Broker.TelemetryFlush, ListeningInterval: n.cfg.Broker.ListeningInterval,
		WaitApplied:  n.cluster.WaitApplied,
		WaitReplicas: waitReplicas, ReplicaWait: n.cfg.Broker.ReplicaWait,
		MessagesPerMinute: n.cfg.Broker.MessagesPerMinute, MessageBurst: n.cfg.Broker.MessageBurst,
		AlarmsPerMinute: n.cfg.Broker.AlarmsPerMinute, AlarmBurst: n.cfg.Broker.AlarmBurst,
		FloodQuiet: n.cfg.Broker.FloodQuiet, ObservePuback: n.metrics.observePuback,
	}, n.service, n.logger.With(logKeySystem, "broker"))
	if err := n.broker.Open(ctx); err != nil {
		ln.Close()
		n.sched.Close()
		n.cluster.Close()
		return fmt.Errorf("cannot open the MQTT broker: %w", err)
	}
	n.cluster.SetProblems(n.broker.Problems)
	var httpsCfg *tls.Config
	if n.cfg.httpsOn() {
		if httpsCfg, err = n.httpsConfig(); err != nil {
			ln.Close()
			n.broker.Close()
			n.sched.Close()
			n.cluster.Close()
			return err
		}
	}
	n.publicURL = n.consoleURL(ln.Addr().String())
	n.web, err = server.New(server.Config{
		NodeID: n.cluster.ID(), NodeName: n.name(), DataDir: n.cfg.DataDir, InsecureCookies: n.cfg.Console.InsecureCookies,
		SessionTTL: n.cfg.Console.SessionTTL, AllowedOrigins: n.cfg.Console.AllowedOrigins, TrustedProxies: n.cfg.Console.TrustedProxies,
		PublicURL: n.publicURL, MQTTURLs: n.mqttURLs(), CACertPEM: n.brokerCA(), ClusterCAPEM: n.clusterCA(), Logger: n.logger,
	}, n.service, clusterView{n.cluster})
	if err == nil {
		err = n.web.Open(ctx)
	}
	if err != nil {
		ln.Close()
		n.broker.Close()
		n.sched.Close()
		n.cluster.Close()
		return fmt.Errorf("cannot open the operator console: %w", err)
	}
	n.httpLn = ln
	if err := n.notify.Open(context.Background()); err != nil { // runs until Close, not until ctx ends
		n.logger.Error("cannot start the delivery of notifications", logKeyError, err)
	}
	// The commands run on the appliance (vigil status, operator, token)
	// find the API here rather than guess the default address.
	if err := os.WriteFile(filepath.Join(n.cfg.DataDir, HTTPURLFile), []byte(localURL(n.httpScheme()+"://"+ln.Addr().String())+"\n"), 0o600); err != nil {
		n.logger.Warn("cannot write where the API listens for the local commands", "error", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc(provisioning.JoinPath, n.serveJoin)
	mux.HandleFunc(HealthzPath, serveHealthz) // metrics.go: no authentication, nothing secret
	mux.Handle(ReadyzPath, readyzHandler(n.cluster))
	mux.Handle("/", n.web.Handler())
	var serveLn net.Listener = ln
	if n.cfg.httpsOn() {
		sl := newSniffListener(ln, httpsCfg, n.logger)
		serveLn = sl.secure
		// A load balancer's plain health check gets its answer, not a
		// redirect; everything else goes to HTTPS.
		plain := http.NewServeMux()
		plain.HandleFunc(HealthzPath, serveHealthz)
		plain.Handle(ReadyzPath, readyzHandler(n.cluster))
		plain.HandleFunc("/", redirectToHTTPS)
		n.redirect = &http.Server{Handler: plain, ReadHeaderTimeout: DefaultHTTPReadHeaderTimeout,
			ErrorLog: slog.NewLogLogger(n.logger.With(logKeySystem, "http").Handler(), slog.LevelDebug)}
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			_ = n.redirect.Serve(sl.plain)
		}()
		n.sniff = sl
	}
	n.httpSrv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: DefaultHTTPReadHeaderTimeout,
		ReadTimeout:       DefaultHTTPReadTimeout,
		IdleTimeout:       DefaultHTTPIdleTimeout,
		ErrorLog:          slog.NewLogLogger(n.logger.With(logKeySystem, "http").Handler(), slog.LevelWarn),
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.httpSrv.Serve(serveLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.logger.Error("http server stopped", logKeyError, err)
		}
	}()
	if a := n.cfg.Debug.PprofAddr; a != "" {
		n.servePprof(a)
	}
	if metricsLn != nil {
		n.serveMetrics(metricsLn)
	}
	if n.cfg.discoveryOn() {
		n.advertise(ln.Addr())
	}
	n.stop = make(chan struct{})
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.renewLoop(n.stop)
	}()
	if n.trust.watch != nil {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.trust.watch(n.stop)
		}()
	}
	n.opened = true
	n.logger.Info("vigil node open",
		logKeyHTTP, n.publicURL,
		logKeyCluster, n.cluster.Addr())
	return nil
}

// ensureTrust makes sure the node has its certificate before the cluster
// port opens: a single appliance's first boot makes its cluster's CA; a
// node that is to form or join a cluster of several must have been given
// its trust by vigil init or vigil join.
func (n *Node) ensureTrust() error {
	t, _, _ := n.trust.get()
	if t == nil {
		if !n.cfg.Cluster.bootstrap() {
			mode := "cluster.join"
			if len(n.cfg.Cluster.BootstrapExpect) > 0 {
				mode = "cluster.bootstrap_expect"
			}
			return fmt.Errorf("%s: this node has no cluster certificate in %s: run vigil init on the first appliance and vigil join <token> on this one (docs/install.md)",
				mode, filepath.Join(n.cfg.DataDir, provisioning.TrustDir))
		}
		var err error
		if t, err = firstBootTrust(n.cfg, n.nodeID); err != nil {
			return fmt.Errorf("cannot make this appliance's cluster certificate: %w", err)
		}
		n.trust.set(t)
		n.logger.Info("made a new cluster CA and this node's certificate (first boot)", "cluster_id", t.CA.ClusterID,
			"ca_fingerprint", t.CA.Fingerprint(), "dir", filepath.Join(n.cfg.DataDir, provisioning.TrustDir))
	}
	n.logger.Info("cluster port speaks mutual TLS", "cluster_id", t.CA.ClusterID, "ca_fingerprint", t.CA.Fingerprint()[:16],
		"certificate_until", certExpiry(t.Node.Cert), "holds_ca_key", t.CA.CanSign())
	return nil
}

// Close hands leadership to another voter if this node leads, then stops
// the HTTP API, letting requests in flight finish for up to
// DefaultShutdownTimeout, then the MQTT broker, then the cluster node. It is safe to call twice
// and on a node that was never opened.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		if !n.opened {
			return
		}
		// A leader hands over first, while everything still serves: the
		// others have a leader before this node's parts stop, not an
		// election timeout after (a rolling upgrade's SIGTERM).
		if err := n.cluster.TransferLeadership(); err != nil {
			n.logger.Warn("stopping without handing leadership over", logKeyError, err)
		}
		var errs []error
		if n.pprof != nil {
			n.pprof.Close()
		}
		if n.metricsSrv != nil {
			n.metricsSrv.Close()
		}
		if n.adv != nil {
			n.adv.Close()
		}
		close(n.stop)
		n.web.Close() // ends the console's event streams, which Shutdown would wait for
		ctx, cancel := context.WithTimeout(context.Background(), DefaultShutdownTimeout)
		if n.sniff != nil {
			n.sniff.Close()
			n.redirect.Close()
		}
		if err := n.httpSrv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("cannot stop http server cleanly: %w", err))
			n.httpSrv.Close()
		}
		cancel()
		n.wg.Wait()
		if err := n.broker.Close(); err != nil {
			errs = append(errs, fmt.Errorf("cannot close the MQTT broker: %w", err))
		}
		if err := n.notify.Close(); err != nil {
			errs = append(errs, fmt.Errorf("cannot stop the delivery of notifications: %w", err))
		}
		if err := n.sched.Close(); err != nil {
			errs = append(errs, fmt.Errorf("cannot stop the deadline scheduler: %w", err))
		}
		if err := n.cluster.Close(); err != nil {
			errs = append(errs, fmt.Errorf("cannot close cluster node: %w", err))
		}
		n.closeErr = errors.Join(errs...)
		n.logger.Info("vigil node closed")
	})
	return n.closeErr
}

// consoleURL is the origin browsers reach this node's console at:
// console.public_url, else http:// and the HTTP listener's address, a
// wildcard host replaced by the host of the cluster address.
func (n *Node) consoleURL(httpAddr string) string {
	if u := n.cfg.Console.PublicURL; u != "" {
		return strings.TrimSuffix(u, "/")
	}
	if n.cfg.httpsOn() {
		return "https://" + n.reachable(httpAddr)
	}
	return "http://" + n.reachable(httpAddr)
}

// mqttURLs are the node's MQTT listeners as devices reach them.
func (n *Node) mqttURLs() []string {
	var out []string
	if a := n.broker.TCPAddr(); a != "" {
		out = append(out, "tcp://"+n.reachable(a))
	}
	if a := n.cfg.Broker.WSAddr; a != "" {
		if _, port, _ := net.SplitHostPort(a); port != "0" {
			out = append(out, "ws://"+n.reachable(a))
		}
	}
	if a := n.broker.TLSAddr(); a != "" {
		out = append(out, "mqtts://"+n.reachable(a))
	}
	if a := n.cfg.Broker.WSSAddr; a != "" {
		if _, port, _ := net.SplitHostPort(a); port != "0" {
			out = append(out, "wss://"+n.reachable(a))
		}
	}
	return out
}

// reachable replaces a wildcard host in addr by the host of the cluster
// address, which other machines can dial.
func (n *Node) reachable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || !isWildcard(host) {
		return addr
	}
	if h, _, err := net.SplitHostPort(n.cluster.Addr()); err == nil && !isWildcard(h) {
		return net.JoinHostPort(h, port)
	}
	return addr
}

// brokerCA is the CA certificate that devices verify the TLS MQTT
// listeners with, for their enrolment bundles: the cluster CA when the
// listeners present the node's certificate; none for a customer's
// certificate (devices trust the customer's CA as they already do) or
// when there is no TLS listener.
func (n *Node) brokerCA() []byte {
	if n.cfg.Broker.TLSAddr == "" && n.cfg.Broker.WSSAddr == "" || n.cfg.Broker.TLSCertFile != "" {
		return nil
	}
	t, _, _ := n.trust.get()
	return t.CA.CertPEM()
}

// clusterCA is the cluster CA's certificate, for operator PCs.
func (n *Node) clusterCA() []byte {
	t, _, _ := n.trust.get()
	return t.CA.CertPEM()
}

// nodeCertTLS is a TLS server configuration presenting the node's
// certificate from the cluster CA, with the CA after it, read at each
// handshake so that a renewed certificate takes effect at once.
func (n *Node) nodeCertTLS() *tls.Config {
	return &tls.Config{
		MinVersion: broker.MinTLSVersion,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			t, _, _ := n.trust.get()
			if t == nil {
				return nil, errNoTrust
			}
			c := provisioning.ServerTLS(t.CA, t.Node).Certificates[0]
			return &c, nil
		},
	}
}

// warnPlainMQTT warns about each plain MQTT listener on an address other
// machines reach: device secrets cross the network in clear there. The
// cluster page shows the same from the node's registered listeners.
func (n *Node) warnPlainMQTT() {
	for _, l := range []struct{ key, addr string }{{"broker.tcp_addr", n.cfg.Broker.TCPAddr}, {"broker.ws_addr", n.cfg.Broker.WSAddr}} {
		if l.addr != "" && !isLoopbackAddr(l.addr) {
			n.logger.Warn("plain MQTT listener on the network: device secrets and alarms cross it in clear; use broker.tls_addr (docs/install.md)",
				"setting", l.key, "addr", l.addr)
		}
	}
}

// warnNoMQTT says so when no MQTT listener is configured: devices cannot
// connect to this node.
func (n *Node) warnNoMQTT() {
	b := n.cfg.Broker
	if b.TCPAddr == "" && b.WSAddr == "" && b.TLSAddr == "" && b.WSSAddr == "" {
		n.logger.Warn("no MQTT listener is configured: devices cannot connect to this node; set broker.tls_addr (docs/install.md)")
	}
}

// advertise announces the node on the LAN (discovery). It only logs a
// failure: static addresses still work without it.
func (n *Node) advertise(httpAddr net.Addr) {
	t, _, _ := n.trust.get()
	name := n.name()
	if len(name) > discovery.MaxNameLen {
		name = name[:discovery.MaxNameLen]
	}
	a := discovery.Announcement{ClusterID: t.CA.ClusterID, NodeID: n.cluster.ID(), Name: name, State: discovery.StateMember,
		Port: portOf(httpAddr.String()), ClusterPort: portOf(n.cluster.Addr()), Interfaces: n.cfg.Discovery.Interfaces}
	adv, err := discovery.Advertise(a, n.logger.With(logKeySystem, "discovery"))
	if err != nil {
		n.logger.Warn("cannot announce this node on the LAN (discovery); static addresses still work", logKeyError, err)
		return
	}
	n.adv = adv
	n.logger.Info("announcing this node on the LAN", "service", discovery.Service, "cluster_id", a.ClusterID)
}

// portOf is the port of host:port, 0 when there is none.
func portOf(addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	port, _ := strconv.Atoi(p)
	return port
}

// servePprof serves Go's runtime profiles on addr (debug.pprof_addr). It
// only logs a failure: profiles are a diagnostic aid, not the node's job.
func (n *Node) servePprof(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		n.logger.Warn("cannot serve profiles on debug.pprof_addr", logKeyError, err)
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	n.pprof = &http.Server{Handler: mux, ReadHeaderTimeout: DefaultHTTPReadHeaderTimeout}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.pprof.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.logger.Warn("profile server stopped", logKeyError, err)
		}
	}()
	n.logger.Warn("serving Go profiles (debug.pprof_addr)", "addr", "http://"+ln.Addr().String()+"/debug/pprof/")
}

// ConsoleURL returns the console's origin as browsers reach it
// (console.public_url, else http:// and the HTTP address), once open.
func (n *Node) ConsoleURL() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.publicURL
}

// name is the node's readable name: node_name, else the host name.
func (n *Node) name() string {
	if n.cfg.NodeName != "" {
		return n.cfg.NodeName
	}
	h, _ := os.Hostname()
	if len(h) > 63 {
		h = h[:63]
	}
	return h
}

// httpScheme is "https" when http_addr speaks HTTPS, else "http".
func (n *Node) httpScheme() string {
	if n.cfg.httpsOn() {
		return "https"
	}
	return "http"
}

// DataDir returns the node's data directory (data_dir).
func (n *Node) DataDir() string { return n.cfg.DataDir }

// HTTPAddr returns the address the API listens on, once open.
func (n *Node) HTTPAddr() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.httpLn == nil {
		return ""
	}
	return n.httpLn.Addr().String()
}

// BrokerAddr returns the address of the MQTT TCP listener, once open.
func (n *Node) BrokerAddr() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.broker == nil {
		return ""
	}
	return n.broker.TCPAddr()
}

// Broker returns the node's MQTT gateway, once open.
func (n *Node) Broker() *broker.Broker {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.broker
}

// Service returns the node's monitoring Service.
func (n *Node) Service() *monitoring.Service { return n.service }

// Cluster returns the node's cluster node.
func (n *Node) Cluster() *cluster.Node { return n.cluster }

// closeAudioLink returns, for a close notification, a signed link to the
// alarm's audio on this node's console, or "" when the alarm has none. The
// link's command ID is the alarm's: every attempt, on any leader, gets the
// same link (monitoring/audiolink.go), which lasts the default week.
// noticePDF is the PDF attached to the mails of a signed-off report's
// notice (the post-incident report, ui/incident) and of a month's
// statistics (ui/statistics); other notices have none.
func (n *Node) noticePDF(ctx context.Context, nt *monitoring.Notification) ([]monitoring.Attachment, error) {
	var buf bytes.Buffer
	var name string
	switch nt.Kind {
	case monitoring.NoticeIncidentReport:
		r, err := incident.Build(ctx, n.service, nt.AlarmID, nil, n.service.Now())
		if err != nil {
			return nil, err
		}
		if err := incident.WritePDF(&buf, r, n.publicURL); err != nil {
			return nil, err
		}
		name = "post-incident-report-" + nt.AlarmID + ".pdf"
	case monitoring.NoticeMonthlyStats:
		var st monitoring.MonthlyStats
		if err := json.Unmarshal(nt.Payload, &st); err != nil {
			return nil, err
		}
		if err := statistics.WritePDF(&buf, &st, st.To); err != nil {
			return nil, err
		}
		name = "vigil-" + st.OrgID + "-" + st.Month + ".pdf"
	default:
		return nil, nil
	}
	return []monitoring.Attachment{{Name: name, ContentType: "application/pdf", Data: buf.Bytes()}}, nil
}

func (n *Node) closeAudioLink(ctx context.Context, alarmID string) (string, error) {
	if info, err := n.service.AudioInfo(alarmID); err != nil || info == nil || info.Chunks == 0 {
		return "", nil // no audio to link to
	}
	l, err := n.service.IssueAudioLink(ctx, "close-notice-audio-"+alarmID, "system", alarmID, 0, "in the close notification")
	if err != nil {
		return "", err
	}
	return strings.TrimRight(n.publicURL, "/") + l.Path, nil
}
