// Package uitest serves a node's whole HTTP surface (ui/server: the
// operator console, the REST API and their authentication, exactly as the
// appliance serves them) over the monitoring Service of a real cluster
// node (appliance/monitoring/monitoringtest), for the tests of the console
// and the API. No appliance is booted: the broker, the configuration and
// the command line are not there, and a test that needs devices starts a
// broker itself.
package uitest

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring/monitoringtest"
	"github.com/vigilarc/vigil/ui"
	"github.com/vigilarc/vigil/ui/server"
)

// Options say how a Server is built. The zero value is the appliance's
// default: cookies with the Secure flag, the default sign-in lifetime, and
// the console registered for the hand-over at its own URL.
type Options struct {
	InsecureCookies bool
	SessionTTL      time.Duration
	AllowedOrigins  []string
	// TrustedProxies are the proxies whose X-Forwarded-For is believed
	// (server.Config.TrustedProxies).
	TrustedProxies []string
	// NoPublicURL leaves the console unregistered for the hand-over.
	NoPublicURL bool
	// MQTTURLs are written into enrolled devices' configuration.
	MQTTURLs []string
	// CACertPEM is written into enrolled devices' configuration as their
	// brokers' CA certificate.
	CACertPEM []byte
}

// Server is one node's HTTP surface, serving on a loopback port until the
// test ends.
type Server struct {
	Node *monitoringtest.Node
	Web  *server.Server
	// Addr is the host:port it serves on, URL the same as http://host:port.
	Addr, URL string
	// DataDir holds the node's setup token (auth.SetupTokenFileName).
	DataDir string

	srv *http.Server
}

// MustServe serves n's HTTP surface on a new 127.0.0.1 port, and stops it
// when the test ends (before the node is closed).
func MustServe(t testing.TB, n *monitoringtest.Node, opts Options) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Node: n, Addr: ln.Addr().String(), DataDir: t.TempDir()}
	s.URL = "http://" + s.Addr
	cfg := server.Config{
		NodeID: n.ID(), DataDir: s.DataDir, InsecureCookies: opts.InsecureCookies,
		SessionTTL: opts.SessionTTL, AllowedOrigins: opts.AllowedOrigins, MQTTURLs: opts.MQTTURLs,
		CACertPEM: opts.CACertPEM, TrustedProxies: opts.TrustedProxies,
	}
	if !opts.NoPublicURL {
		cfg.PublicURL = s.URL
	}
	s.Web, err = server.New(cfg, n.Service, Cluster(n))
	if err == nil {
		err = s.Web.Open(context.Background())
	}
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	s.srv = &http.Server{Handler: s.Web.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	t.Cleanup(s.Close)
	return s
}

// Close stops serving: it ends the console's event streams, then the HTTP
// server. It is safe to call twice.
func (s *Server) Close() {
	s.Web.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		s.srv.Close()
	}
}

// Cluster is n's cluster member as the HTTP surface sees it (ui.Cluster).
// Its status is the cluster's own, read through its JSON, which has the
// same names: nothing under ui/ imports the cluster, tests included.
func Cluster(n *monitoringtest.Node) ui.Cluster { return clusterOf{n} }

type clusterOf struct{ n *monitoringtest.Node }

func (c clusterOf) Status() ui.ClusterStatus {
	var st ui.ClusterStatus
	b, err := json.Marshal(c.n.Cluster.Status())
	if err == nil {
		err = json.Unmarshal(b, &st)
	}
	if err != nil {
		panic("uitest: the cluster's status does not read as ui.ClusterStatus: " + err.Error())
	}
	return st
}

func (c clusterOf) Join(ctx context.Context, id, addr string) error {
	return c.n.Cluster.Join(ctx, id, addr)
}

func (c clusterOf) Remove(ctx context.Context, id string) error {
	return c.n.Cluster.Remove(ctx, id)
}
