package console

import (
	"context"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/ui"
	"github.com/vigilarc/vigil/ui/auth"
	"github.com/vigilarc/vigil/ui/enrol"
)

// Defaults of the console.
const (
	// DefaultSessionTTL is how long a sign-in lasts: a long shift.
	DefaultSessionTTL = 12 * time.Hour
	// Prefix is where the console is mounted.
	Prefix = "/ui"
	// LoginPath is the sign-in page, and HomePath the alarm queue: where
	// auth.Config sends a browser that is not signed in, or whose role is
	// too low.
	LoginPath = Prefix + "/login"
	HomePath  = Prefix + "/"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Accounts is what the console's sign-in needs from the monitoring Service.
type Accounts interface {
	Login(ctx context.Context, cmdID string, req monitoring.LoginRequest) (*monitoring.SignIn, error)
	Logout(ctx context.Context, cmdID, token string) error
	Authenticate(token string) (*monitoring.Operator, *monitoring.OperatorSession, error)
	PutOperator(ctx context.Context, cmdID, actor string, req monitoring.PutOperatorRequest) (*monitoring.Operator, error)
	Operators() ([]monitoring.Operator, error)
	KnowsBrowser(operatorID, browserToken string) bool
}

// Tokens is what the REST API's authentication and the local setup API
// need from the monitoring Service: API tokens (apiauth.go, setup.go).
type Tokens interface {
	AuthenticateAPIToken(ctx context.Context, token string) (*monitoring.APIToken, error)
	CreateAPIToken(ctx context.Context, cmdID, actor, name string, role monitoring.OperatorRole) (*monitoring.NewAPIToken, error)
	DisableAPIToken(ctx context.Context, cmdID, actor, id string) (*monitoring.APIToken, error)
	APITokens() ([]monitoring.APIToken, error)
}

// Monitoring is what the console's pages need from the monitoring Service.
type Monitoring interface {
	Subscribe(buffer int) *monitoring.Subscription
	OpenAlarms() ([]monitoring.Alarm, error)
	Alarm(id string) (*monitoring.Alarm, error)
	Timeline(alarmID string) ([]monitoring.TimelineEntry, error)
	Incident(incidentID string) ([]monitoring.Alarm, error)
	Worker(id string) (*monitoring.Worker, error)
	Organisation(id string) (*monitoring.Organisation, error)
	Device(id string) (*monitoring.Device, error)
	Session(id string) (*monitoring.Session, error)
	AudioInfo(alarmID string) (*monitoring.AudioInfo, error)
	AlarmOutbox(alarmID string) ([]monitoring.OutboxMessage, error)
	OrgOutbox(orgID string, limit int) ([]monitoring.OutboxMessage, error)
	URNFor(alarmID string) (*monitoring.URNCheck, error)
	Acknowledge(ctx context.Context, cmdID, operator, alarmID string, takeover bool) (*monitoring.Alarm, error)
	LogAction(ctx context.Context, cmdID, operator, alarmID string, entry monitoring.TimelineEntry) (*monitoring.Alarm, error)
	RequestListen(ctx context.Context, cmdID, operator, alarmID string, seconds int) (*monitoring.Alarm, error)
	Close(ctx context.Context, cmdID, operator, alarmID string, resolution monitoring.Resolution, confirmation monitoring.Confirmation, note, noBriefingReason string) (*monitoring.Alarm, error)
	Reopen(ctx context.Context, cmdID, operator, alarmID, reason string) (*monitoring.Alarm, error)
	SendPrompt(ctx context.Context, cmdID, actor string, req monitoring.PromptRequest) (*monitoring.DevicePrompt, error)
}

// Directory is what the sessions board and the admin pages need from the
// monitoring Service.
type Directory interface {
	Organisations() ([]monitoring.Organisation, error)
	Workers(orgID string) ([]monitoring.Worker, error)
	Devices() ([]monitoring.Device, error)
	ActiveSessions() ([]monitoring.ActiveSession, error)
	PutOrganisation(ctx context.Context, cmdID, actor string, org monitoring.Organisation) (*monitoring.Organisation, error)
	PutWorker(ctx context.Context, cmdID, actor string, w monitoring.Worker) (*monitoring.Worker, error)
	SetPINs(ctx context.Context, cmdID, actor, workerID, safePIN, duressPIN string) (uint64, error)
	PutDevice(ctx context.Context, cmdID, actor string, d monitoring.Device) (*monitoring.Device, error)
	SetDeviceSecret(ctx context.Context, cmdID, actor, deviceID string) (string, error)
}

// Reports is what the supervisors' page needs from the monitoring Service.
type Reports interface {
	KPIs(orgID string, from, to time.Time) (*monitoring.KPIs, error)
	AlarmsRaised(orgID string, from, to time.Time, limit int) ([]monitoring.Alarm, bool, error)
	MonthlyStats(orgID, month string) (*monitoring.MonthlyStats, error)
}

// Handover is what moving a console page to another node needs from the
// monitoring Service (handover.go).
type Handover interface {
	IssueResumeTicket(ctx context.Context, cmdID, sessionToken string, ttl time.Duration) (*monitoring.ResumeGrant, error)
	RedeemResumeTicket(ctx context.Context, cmdID, ticket, remote string) (*monitoring.SignIn, error)
	EndSessions(ctx context.Context, cmdID, token string) (int, error)
	RegisterConsoleNode(ctx context.Context, cmdID string, n monitoring.ConsoleNode) (*monitoring.ConsoleNode, error)
	ConsoleNodes() ([]monitoring.ConsoleNode, error)
}

// Service is everything the console calls; *monitoring.Service is one.
type Service interface {
	Accounts
	Tokens
	Monitoring
	Directory
	Reports
	Handover
	AfterIncident
}

// ClusterStatus reports the cluster as this node sees it (the cluster
// page, the hand-over's alive check); the appliance supplies it.
type ClusterStatus interface {
	Status() ui.ClusterStatus
}

var _ Service = (*monitoring.Service)(nil)

// Config configures the console.
type Config struct {
	// NodeID names this node in the page footer and the audit log.
	NodeID string
	// NodeName is this node's readable name (its host name), shown beside
	// its ID.
	NodeName string
	// SessionTTL is how long a sign-in lasts; 0 means DefaultSessionTTL.
	SessionTTL time.Duration
	// AllowedOrigins lists origins ("https://vigil.example.org") of a
	// reverse proxy in front of the console: added to the
	// Content-Security-Policy and accepted for a hand-over. The Auth's
	// Origin check has the same list (auth.Config).
	AllowedOrigins []string
	// PublicURL is this node's console origin as browsers reach it, such
	// as "https://vigil-1.example.org". Open registers it in the replicated
	// state, so that a page on another node can move here when its node
	// stops (handover.go). Empty registers nothing.
	PublicURL string
	// MQTTURLs are this node's MQTT listeners as devices reach them, such
	// as "tcp://10.0.0.5:1883": registered with PublicURL, and written into
	// the configuration of enrolled devices.
	MQTTURLs []string
	// CACertPEM is the CA certificate (PEM) that devices verify the TLS
	// MQTT listeners (mqtts://, wss://) with, written into the
	// configuration of enrolled devices; nil writes none. It must hold
	// CERTIFICATE blocks only (enrol.CheckCACert).
	CACertPEM []byte
	// ClusterCAPEM is the cluster CA's certificate (PEM), which operator
	// PCs install to trust the console's HTTPS: served at /ui/ca.crt, and
	// its fingerprint shown on the cluster page. It must hold CERTIFICATE
	// blocks only; nil serves none.
	ClusterCAPEM []byte
	// Cluster reports the cluster for the cluster page and the hand-over;
	// nil shows this node alone.
	Cluster ClusterStatus
	// Logger receives the console's logs; nil discards them.
	Logger *slog.Logger
}

// Console is the operator console of one node. New does no I/O; Open
// starts following the event bus; Close ends every event stream and is
// safe to call twice.
type Console struct {
	cfg    Config
	svc    Service
	logger *slog.Logger
	pages  map[string]*template.Template
	hub    *hub
	auth   *auth.Auth // sign-in sessions, CSRF, limits, the setup token

	nodesMu  sync.Mutex
	nodes    []monitoring.ConsoleNode // the cluster's console nodes, as last read (handover.go)
	nodesAt  time.Time
	nodesCSP string // the CSP for those nodes

	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// New returns the console over svc, its sign-ins checked by a (shared with
// the REST API). It parses the embedded templates and does no I/O.
func New(cfg Config, svc Service, a *auth.Auth) (*Console, error) {
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.SessionTTL < 0 || cfg.SessionTTL > monitoring.MaxSessionTTL {
		return nil, fmt.Errorf("console: session TTL %s is outside 0..%s", cfg.SessionTTL, monitoring.MaxSessionTTL)
	}
	if len(cfg.CACertPEM) > 0 {
		if err := enrol.CheckCACert(cfg.CACertPEM); err != nil {
			return nil, fmt.Errorf("console: CACertPEM: %w", err)
		}
	}
	if len(cfg.ClusterCAPEM) > 0 {
		if err := enrol.CheckCACert(cfg.ClusterCAPEM); err != nil {
			return nil, fmt.Errorf("console: ClusterCAPEM: %w", err)
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	c := &Console{cfg: cfg, svc: svc, logger: cfg.Logger, pages: pages, auth: a}
	c.hub = newHub(svc, cfg.Logger)
	return c, nil
}

// Open starts following this node's events. The console serves requests
// before Open, but its event streams only carry events from then on.
func (c *Console) Open(ctx context.Context) error {
	ctx, c.cancel = context.WithCancel(ctx)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.hub.run(ctx)
	}()
	if c.cfg.PublicURL != "" {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.register(ctx) // handover.go
		}()
	}
	return nil
}

// Close ends every event stream and stops following events. Call it
// before shutting the HTTP server down, which otherwise waits for the
// streams.
func (c *Console) Close() {
	c.closeOnce.Do(func() {
		if c.cancel != nil {
			c.cancel()
		}
		c.hub.close()
		c.wg.Wait()
	})
}

// Mount adds the console's routes to r, under Prefix.
func (c *Console) Mount(r gin.IRouter) {
	// The appliance's bare address leads to the console: what IT types
	// first into a browser after `vigil serve` prints it.
	r.GET("/", func(ctx *gin.Context) { ctx.Redirect(http.StatusFound, Prefix+"/") })
	g := r.Group(Prefix, c.securityHeaders, c.limitForms) // limits.go
	g.StaticFS("/static", http.FS(mustSub(staticFS, "static")))
	g.GET("/login", c.loginPage)
	g.POST("/login", c.auth.CheckOrigin(), c.loginPost)
	c.setupRoutes(g.Group("/setup")) // setup.go: a bearer token, no cookies
	g.GET("/ca.crt", c.caCert)       // clusterpage.go: anonymous, a public certificate
	g.GET("/alive", c.alive)         // handover.go: anonymous, for pages on other nodes
	g.POST("/resume", c.resumePost)  // handover.go: a ticket from a page on another node

	op := g.Group("", c.auth.Require(monitoring.RoleOperator), c.auth.CheckCSRF())
	op.GET("", c.queuePage)
	op.GET("/", c.queuePage)
	op.POST("/logout", c.logout)
	op.GET("/events", c.events)
	op.GET("/queue.json", c.queueJSON)
	op.GET("/alarms/:id", c.alarmPage)
	op.POST("/alarms/:id/acknowledge", c.acknowledge)
	op.POST("/alarms/:id/actions", c.logAction)
	op.POST("/alarms/:id/close", c.closeAlarm)
	op.POST("/alarms/:id/reopen", c.auth.Require(monitoring.RoleSupervisor), c.reopen)
	op.POST("/alarms/:id/prompt", c.prompt)
	op.POST("/alarms/:id/listen", c.listen)
	op.POST("/alarms/:id/briefing", c.sendBriefing)                                               // briefing.go
	op.POST("/alarms/:id/audio-links", c.makeAudioLink)                                           // postincident.go
	op.POST("/alarms/:id/audio-links/:link/revoke", c.revokeAudioLink)                            // postincident.go
	op.POST("/alarms/:id/hold", c.auth.Require(monitoring.RoleSupervisor), c.legalHold(true))     // postincident.go
	op.POST("/alarms/:id/release", c.auth.Require(monitoring.RoleSupervisor), c.legalHold(false)) // postincident.go
	op.POST("/resume/ticket", c.resumeTicket)                                                     // handover.go
	op.GET("/sessions", c.boardPage)                                                              // board.go
	op.GET("/cluster", c.clusterPage)                                                             // clusterpage.go

	sup := op.Group("/reports", c.auth.Require(monitoring.RoleSupervisor)) // reports.go
	sup.GET("", c.reportsPage)
	sup.GET("/alarms.csv", c.reportsCSV)
	sup.GET("/monthly", c.monthlyPage) // monthly.go
	sup.GET("/monthly.csv", c.monthlyCSV)
	sup.GET("/monthly.pdf", c.monthlyPDF)
	sup.GET("/incidents", c.incidentsPage) // postincident.go
	sup.GET("/incidents/:id", c.incidentPage)
	sup.GET("/incidents/:id/report.pdf", c.incidentPDF)
	sup.POST("/incidents/:id", c.incidentPost)
	sup.GET("/notifications", c.notificationsPage) // notifications.go

	adm := op.Group("/admin", c.auth.Require(monitoring.RoleAdmin)) // admin.go
	adm.GET("", func(c *gin.Context) { c.Redirect(http.StatusSeeOther, Prefix+"/admin/organisations") })
	adm.GET("/organisations", c.adminOrgs)
	adm.GET("/organisations/:id", c.adminOrg) // "new" for a new one
	adm.POST("/organisations", c.adminOrgPost)
	adm.GET("/workers", c.adminWorkers)
	adm.GET("/workers/:id", c.adminWorker) // "new" for a new one
	adm.POST("/workers", c.adminWorkerPost)
	adm.POST("/workers/:id/pins", c.adminPINsPost)
	adm.GET("/devices", c.adminDevices)
	adm.GET("/devices/:id", c.adminDevice) // "new" to enrol one
	adm.POST("/devices", c.adminDevicePost)
	adm.POST("/devices/:id/credentials", c.adminCredentialsPost)
	adm.GET("/operators", c.adminOperators)
	adm.POST("/operators", c.adminOperatorPost)
}

func mustSub(f fs.FS, dir string) fs.FS {
	s, err := fs.Sub(f, dir)
	if err != nil {
		panic(err) // the directory is embedded
	}
	return s
}

// contentSecurityPolicy allows nothing but this origin's own files: no
// inline script or style, no frames. The consoles of the other nodes are
// added to connect-src and form-action (cspFor), so that a page can find
// one that answers and move there with its hand-over ticket.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"media-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// cspFor returns contentSecurityPolicy with origins added to connect-src
// and form-action. The origins are checked (validOrigin) by the caller.
func cspFor(origins []string) string {
	if len(origins) == 0 {
		return contentSecurityPolicy
	}
	extra := " " + strings.Join(origins, " ")
	return strings.NewReplacer("connect-src 'self'", "connect-src 'self'"+extra,
		"form-action 'self'", "form-action 'self'"+extra).Replace(contentSecurityPolicy)
}

// securityHeaders sets the headers every console response carries.
func (co *Console) securityHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", co.csp())
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	// Not "no-referrer" nor "same-origin": with those a browser sends
	// Origin: null on a POST (same-origin, or to another node's console
	// when the page moves), and the Origin check refuses it. Other sites
	// learn at most the console's origin.
	h.Set("Referrer-Policy", "strict-origin-when-cross-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	if !strings.HasPrefix(c.Request.URL.Path, Prefix+"/static/") {
		h.Set("Cache-Control", "no-store")
	}
	c.Next()
}
