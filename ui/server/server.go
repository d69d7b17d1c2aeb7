// Package server assembles one node's whole HTTP surface on one gin
// engine: the authentication that the console and the API share
// (ui/auth), the operator console (ui/console) and the REST API (ui/api).
// The appliance makes one per node and serves its Handler; the tests of the
// console and the API make one over a Service on real cluster nodes
// (ui/uitest), so that they test what the appliance serves.
//
// New does no I/O; Open writes the node's setup token and starts the
// console's event streams; Close ends them, and is safe to call twice.
package server

import (
	"context"
	"log/slog"
	"net/http"
	"path/filepath"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/ui"
	"github.com/vigilarc/vigil/ui/api"
	"github.com/vigilarc/vigil/ui/auth"
	"github.com/vigilarc/vigil/ui/console"
)

// logKeySystem names the part of the node a log line comes from.
const logKeySystem = "system"

// Config configures a node's HTTP surface.
type Config struct {
	// NodeID names this node: in the console's footer, the audit log, and
	// as the setup token's principal.
	NodeID string
	// NodeName is the node's readable name (its host name).
	NodeName string
	// DataDir is the node's data directory, where Open writes the setup
	// token (auth.SetupTokenFileName); empty writes none.
	DataDir string
	// InsecureCookies leaves the Secure flag off the cookies (development
	// on loopback only; the appliance refuses it elsewhere).
	InsecureCookies bool
	// SessionTTL is how long a console sign-in lasts; 0 means
	// console.DefaultSessionTTL.
	SessionTTL time.Duration
	// AllowedOrigins lists the origins of a reverse proxy in front of the
	// console, accepted on state-changing requests.
	AllowedOrigins []string
	// TrustedProxies lists the reverse proxies (CIDRs or addresses) whose
	// X-Forwarded-For names the client (auth.Config.TrustedProxies).
	TrustedProxies []string
	// PublicURL is this node's console origin as browsers reach it; the
	// console registers it for the hand-over (console.Config.PublicURL).
	PublicURL string
	// MQTTURLs are the node's MQTT listeners as devices reach them.
	MQTTURLs []string
	// CACertPEM is the CA certificate (PEM) of the TLS MQTT listeners,
	// written into enrolled devices' configuration bundles; nil writes
	// none (console.Config.CACertPEM).
	CACertPEM []byte
	// ClusterCAPEM is the cluster CA's certificate that operator PCs
	// install (console.Config.ClusterCAPEM).
	ClusterCAPEM []byte
	// Logger receives the logs, each part's with its "system" attribute;
	// nil discards them.
	Logger *slog.Logger
}

// Service is what the HTTP surface needs from the monitoring Service: what
// the console, the API and the authentication each declare.
type Service interface {
	console.Service
	api.Service
	auth.Accounts
}

var _ Service = (*monitoring.Service)(nil)

// The console makes the devices' configuration bundles for the API too.
var _ api.Bundler = (*console.Console)(nil)

// Server is one node's HTTP surface.
type Server struct {
	auth    *auth.Auth
	console *console.Console
	handler http.Handler
}

// New returns the HTTP surface over svc and this node's cluster member c.
// It parses the console's templates and does no I/O.
func New(cfg Config, svc Service, c ui.Cluster) (*Server, error) {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ac := auth.Config{
		NodeID: cfg.NodeID, InsecureCookies: cfg.InsecureCookies, AllowedOrigins: cfg.AllowedOrigins,
		TrustedProxies: cfg.TrustedProxies, LoginPath: console.LoginPath, HomePath: console.HomePath,
	}
	if cfg.DataDir != "" {
		ac.SetupTokenFile = filepath.Join(cfg.DataDir, auth.SetupTokenFileName)
	}
	a := auth.New(ac, svc)
	co, err := console.New(console.Config{
		NodeID: cfg.NodeID, NodeName: cfg.NodeName, SessionTTL: cfg.SessionTTL, AllowedOrigins: cfg.AllowedOrigins,
		PublicURL: cfg.PublicURL, MQTTURLs: cfg.MQTTURLs, CACertPEM: cfg.CACertPEM, ClusterCAPEM: cfg.ClusterCAPEM, Cluster: c,
		Logger: logger.With(logKeySystem, "console"),
	}, svc, a)
	if err != nil {
		return nil, err
	}
	return &Server{auth: a, console: co,
		handler: api.New(c, svc, a, co, logger.With(logKeySystem, "http"), co.Mount)}, nil
}

// Open writes the setup token and starts the console's event streams,
// which run until Close, not until ctx ends.
func (s *Server) Open(ctx context.Context) error {
	if err := s.auth.Open(); err != nil {
		return err
	}
	return s.console.Open(context.WithoutCancel(ctx))
}

// Handler serves the console under /ui/ and the REST API under /api/v1.
func (s *Server) Handler() http.Handler { return s.handler }

// Close ends the console's event streams. Call it before shutting the HTTP
// server down, which otherwise waits for them.
func (s *Server) Close() { s.console.Close() }
