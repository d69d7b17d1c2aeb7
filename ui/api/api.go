// Package api is Vigil's REST API: JSON under /api/v1, reference in
// docs/api.md. It reaches the replicated state only through the monitoring
// Service, and the cluster's membership only through the ui.Cluster the
// appliance supplies.
//
// Every route is behind one authentication middleware (auth.Auth.APIAuth:
// an API token, this node's setup token, or the console's sign-in cookie
// with its CSRF check), and is registered in the group of the least role
// that may call it (groups), as the console's pages are: what the
// console refuses a role, the API refuses it too. TestAPIAuth_EveryRoute
// walks the route table and fails on a route it does not know, so that a
// new route cannot be left open or given no role by mistake.
package api

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/internal/strictjson"
	"github.com/vigilarc/vigil/ui"
	"github.com/vigilarc/vigil/ui/auth"
)

// API limits.
const (
	// MaxRequestBody is the largest request body the API reads.
	MaxRequestBody = 1 << 20
	// MaxCommandIDLen is the longest command ID a client may give.
	MaxCommandIDLen = 200
	// RetryAfterSeconds is what a 503 tells the client to wait: about one
	// election.
	RetryAfterSeconds = 1
)

// Read consistencies for GET /api/v1/diag/records.
const (
	// ConsistencyLocal reads this node's state as it is: fast, and at most
	// a few milliseconds behind the leader.
	ConsistencyLocal = "local"
	// ConsistencyLinearizable first waits until this node has applied
	// everything committed before the request, as confirmed by the leader.
	ConsistencyLinearizable = "linearizable"
)

// Log attribute keys of the API's request log.
const (
	logKeyMethod   = "method"
	logKeyPath     = "path"
	logKeyStatus   = "status"
	logKeyDuration = "duration"
	logKeyRemote   = "remote"
	logKeyError    = "error"
	logKeyActor    = "actor" // who called the API: an operator, "token:<name>" or the setup token
)

// DiagRecordRequest is the body of POST /api/v1/diag/records.
type DiagRecordRequest struct {
	ID    string `json:"id"`    // command ID: a retry with the same ID is applied once
	Key   string `json:"key"`   // record key: 1 to 200 bytes, no '/'
	Value string `json:"value"` // any text
}

// DiagRecordResponse is the reply to POST /api/v1/diag/records.
type DiagRecordResponse struct {
	Index     uint64 `json:"index"`     // Raft log index at which the command was applied
	Duplicate bool   `json:"duplicate"` // the ID had been applied before; nothing new was written
}

// DiagRecordsResponse is the reply to GET /api/v1/diag/records.
type DiagRecordsResponse struct {
	Consistency string                  `json:"consistency"`
	Records     []monitoring.DiagRecord `json:"records"`
}

// MemberRequest is the body of POST /api/v1/cluster/members.
type MemberRequest struct {
	ID   string `json:"id"`   // the new node's ID (vigil status on it shows it)
	Addr string `json:"addr"` // the new node's cluster address, host:port
}

// ErrorResponse is the body of every error reply.
type ErrorResponse struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"` // the request field at fault, for 400
	Code  string `json:"code,omitempty"`  // the monitoring rule that refused the command, such as "wrong_pin"
}

// Service is what the API needs from the monitoring Service.
type Service interface {
	monitoringService
	diagService
	commandService
	audioService
	outboxService
	accountService
	backupService
	linkService
	holdService
}

var _ Service = (*monitoring.Service)(nil)

// api serves the HTTP API of one node.
type api struct {
	cluster ui.Cluster
	svc     Service
	bundles Bundler // nil: a new device secret comes without its bundle
	logger  *slog.Logger
}

// groups holds the API's routes by the least role that may call them.
// Each group is behind the authentication middleware, then the role check
// (auth.RequireRole).
type groups struct {
	operator, supervisor, admin *gin.RouterGroup
}

// New returns the HTTP handler of the API over this node's cluster member
// c and the monitoring Service svc, every route behind az's APIAuth.
// bundles makes the devices' configuration bundles (nil: a new secret comes
// alone). mounts add more routes to the same engine (the operator console).
func New(c ui.Cluster, svc Service, az *auth.Auth, bundles Bundler, logger *slog.Logger, mounts ...func(gin.IRouter)) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	gin.SetMode(gin.ReleaseMode)
	h := &api{cluster: c, svc: svc, bundles: bundles, logger: logger}
	r := gin.New()
	// X-Forwarded-For names the client only when the peer is one of the
	// trusted proxies (ui.RemoteIP); the list was validated with the
	// configuration, so an error here leaves none trusted.
	r.RemoteIPHeaders = []string{"X-Forwarded-For"}
	if err := r.SetTrustedProxies(az.TrustedProxies()); err != nil {
		logger.Error("console.trusted_proxies refused: no proxy is trusted", "error", err)
		_ = r.SetTrustedProxies(nil)
	}
	r.HandleMethodNotAllowed = true
	r.Use(requestLogger(logger), gin.Recovery(), securityHeaders)
	r.NoRoute(func(c *gin.Context) {
		c.JSON(http.StatusNotFound, ErrorResponse{Error: "no such route: " + c.Request.URL.Path})
	})
	r.NoMethod(func(c *gin.Context) {
		c.JSON(http.StatusMethodNotAllowed, ErrorResponse{Error: c.Request.Method + " is not allowed on " + c.Request.URL.Path})
	})

	v1 := r.Group("/api/v1", az.APIAuth())
	g := groups{
		operator:   v1.Group("", auth.RequireRole(monitoring.RoleOperator)),
		supervisor: v1.Group("", auth.RequireRole(monitoring.RoleSupervisor)),
		admin:      v1.Group("", auth.RequireRole(monitoring.RoleAdmin)),
	}
	g.operator.GET("/cluster/status", h.clusterStatus)
	g.admin.POST("/cluster/members", h.joinMember)
	g.admin.DELETE("/cluster/members/:id", h.removeMember)
	g.admin.POST("/diag/records", h.postDiagRecord)
	g.admin.GET("/diag/records", h.getDiagRecords)
	g.admin.GET("/backup", h.backup) // backup.go
	h.monitoringRoutes(g)            // monitoring.go
	h.commandRoutes(g.operator)      // commands.go
	h.audioRoutes(g.operator)        // audio.go
	h.outboxRoutes(g)                // outbox.go
	h.diagStateRoutes(g.admin)       // diagstate.go
	h.accountRoutes(g.admin)         // accounts.go
	h.linkRoutes(r, g)               // audiolink.go
	h.holdRoutes(g)                  // retention.go
	for _, mount := range mounts {
		mount(r)
	}
	return r
}

// GET /api/v1/cluster/status: this node's view of the cluster.
func (a *api) clusterStatus(c *gin.Context) {
	c.JSON(http.StatusOK, a.cluster.Status())
}

// POST /api/v1/cluster/members {"id","addr"}: add a voter.
func (a *api) joinMember(c *gin.Context) {
	var req MemberRequest
	if !bindJSON(c, &req) {
		return
	}
	if req.ID == "" {
		badRequest(c, "id", "id is required")
		return
	}
	if !validHostPort(req.Addr) {
		badRequest(c, "addr", fmt.Sprintf("addr %q must be the node's cluster address as host:port", req.Addr))
		return
	}
	if err := a.cluster.Join(c.Request.Context(), req.ID, req.Addr); err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, req)
}

// DELETE /api/v1/cluster/members/:id: remove a member.
func (a *api) removeMember(c *gin.Context) {
	id := c.Param("id")
	if err := a.cluster.Remove(c.Request.Context(), id); err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"id": id})
}

// POST /api/v1/diag/records {"id","key","value"}: append a record.
func (a *api) postDiagRecord(c *gin.Context) {
	var req DiagRecordRequest
	if !bindJSON(c, &req) {
		return
	}
	switch {
	case req.ID == "":
		badRequest(c, "id", "id is required: give every command a unique ID and reuse it when you retry")
		return
	case len(req.ID) > MaxCommandIDLen:
		badRequest(c, "id", fmt.Sprintf("id is %d bytes, longer than the limit of %d", len(req.ID), MaxCommandIDLen))
		return
	}
	if err := monitoring.ValidateDiagKey(req.Key); err != nil {
		var fe *monitoring.FieldError
		field := "key"
		if errors.As(err, &fe) {
			field = fe.Field
		}
		badRequest(c, field, err.Error())
		return
	}
	index, dup, err := a.svc.PutDiagRecord(c.Request.Context(), req.ID, req.Key, req.Value)
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusCreated, DiagRecordResponse{Index: index, Duplicate: dup})
}

// GET /api/v1/diag/records?prefix=&consistency=local|linearizable
func (a *api) getDiagRecords(c *gin.Context) {
	prefix := c.Query("prefix")
	consistency := c.DefaultQuery("consistency", ConsistencyLocal)
	if consistency != ConsistencyLocal && consistency != ConsistencyLinearizable {
		badRequest(c, "consistency", fmt.Sprintf("consistency %q must be %q or %q", consistency, ConsistencyLocal, ConsistencyLinearizable))
		return
	}
	recs, err := a.svc.DiagRecords(c.Request.Context(), prefix, consistency == ConsistencyLinearizable)
	if err != nil {
		writeError(c, err)
		return
	}
	if recs == nil {
		recs = []monitoring.DiagRecord{}
	}
	c.JSON(http.StatusOK, DiagRecordsResponse{Consistency: consistency, Records: recs})
}

// bindJSON decodes the request body, one JSON object, into v, and replies
// 400 or 413 when it cannot. The decoding is strict (strictjson): unknown
// fields, a key given twice, a key that matches a field only when case is
// ignored, and anything after the object are refused, naming the key.
func bindJSON(c *gin.Context, v any) bool {
	if c.Request.ContentLength > MaxRequestBody {
		tooLarge(c, c.Request.Body, c.GetHeader("Expect") == "")
		return false
	}
	body := c.Request.Body
	data, err := io.ReadAll(http.MaxBytesReader(c.Writer, body, MaxRequestBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		tooLarge(c, body, true)
		return false
	case err != nil:
		badRequest(c, "body", "the body could not be read: "+err.Error())
		return false
	case len(bytes.TrimSpace(data)) == 0:
		badRequest(c, "body", "body is empty: send a JSON object")
		return false
	}
	err = strictjson.Unmarshal(data, v, strictjson.Options{DisallowUnknownFields: true})
	var se *strictjson.Error
	switch {
	case err == nil:
		return true
	case errors.As(err, &se) && se.Key != "":
		badRequest(c, se.Key, "body: "+err.Error())
	default:
		badRequest(c, "body", "body is not the expected JSON object: "+err.Error())
	}
	return false
}

// Reading what is left of a body over the limit.
const (
	// drainBytes is the most of the rest of a body too large that the API
	// reads and drops after its 413.
	drainBytes = 32 << 20
	// drainTime is how long it reads it at most.
	drainTime = 5 * time.Second
)

// tooLarge replies 413 naming the limit and closes the connection. With
// drain, it first reads and drops what the client still sends of body (at
// most drainBytes, for at most drainTime): a server that closes a
// connection with unread data resets it, and a client that sends its
// whole body before reading the reply would see the reset and not the
// 413. A client that waits for "100 Continue" sends nothing more, so there
// is nothing to drain.
func tooLarge(c *gin.Context, body io.Reader, drain bool) {
	c.Header("Connection", "close")
	c.JSON(http.StatusRequestEntityTooLarge, ErrorResponse{Field: "body",
		Error: fmt.Sprintf("body: the body is larger than the limit of %d bytes (1 MiB)", MaxRequestBody)})
	if !drain {
		return
	}
	rc := http.NewResponseController(c.Writer)
	_ = rc.Flush()
	_ = rc.SetReadDeadline(time.Now().Add(drainTime))
	_, _ = io.CopyN(io.Discard, body, drainBytes)
}

func badRequest(c *gin.Context, field, msg string) {
	c.JSON(http.StatusBadRequest, ErrorResponse{Error: msg, Field: field})
}

// writeError replies with the status that tells the client what to do next.
func writeError(c *gin.Context, err error) {
	var refused *monitoring.RuleError
	switch {
	case errors.As(err, &refused):
		c.JSON(http.StatusConflict, ErrorResponse{Error: refused.Error()})
	case errors.Is(err, monitoring.ErrUnknownOutcome):
		c.JSON(http.StatusGatewayTimeout, ErrorResponse{Error: "the outcome is unknown: the command may or may not have been applied; " +
			"retry with the same id, which is safe and returns the first result"})
	case errors.Is(err, monitoring.ErrDiskFull):
		// Not 503: a retry succeeds only once space is freed on a node.
		c.JSON(http.StatusInsufficientStorage, ErrorResponse{Error: err.Error()})
	case errors.Is(err, monitoring.ErrNoLeader), errors.Is(err, monitoring.ErrNotLeader), errors.Is(err, monitoring.ErrClusterClosed):
		c.Header("Retry-After", strconv.Itoa(RetryAfterSeconds))
		c.JSON(http.StatusServiceUnavailable, ErrorResponse{Error: "no leader: the cluster has no quorum or is electing a leader; retry shortly (" + err.Error() + ")"})
	case errors.Is(err, monitoring.ErrCommandTooLarge):
		c.JSON(http.StatusRequestEntityTooLarge, ErrorResponse{Error: err.Error()})
	default:
		c.JSON(http.StatusInternalServerError, ErrorResponse{Error: err.Error()})
	}
}

// Prefix begins the path of every API route.
const Prefix = "/api/"

// contentSecurityPolicy lets a browser do nothing with a reply of the API:
// JSON, audio and images are data, never pages.
const contentSecurityPolicy = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// securityHeaders sets the headers every reply under Prefix carries,
// refusals included: the console's baseline (ui/console), with a policy
// that allows nothing, and no caching, since every reply is for the caller
// it authenticated (or says why it did not).
func securityHeaders(c *gin.Context) {
	if !strings.HasPrefix(c.Request.URL.Path, Prefix) {
		c.Next()
		return
	}
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	c.Next()
}

// requestLogger logs each request with slog: successful reads at debug
// level (status polling is frequent), everything else at info, server
// errors at warn.
func requestLogger(logger *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		status := c.Writer.Status()
		level := slog.LevelInfo
		switch {
		case status >= 500:
			level = slog.LevelWarn
		case c.Request.Method == http.MethodGet && status < 400:
			level = slog.LevelDebug
		}
		host, _, _ := net.SplitHostPort(c.Request.RemoteAddr)
		attrs := []slog.Attr{
			slog.String(logKeyMethod, c.Request.Method),
			slog.String(logKeyPath, c.Request.URL.Path),
			slog.Int(logKeyStatus, status),
			slog.Duration(logKeyDuration, time.Since(start)),
			slog.String(logKeyRemote, host),
		}
		if p := auth.PrincipalOf(c); p != nil {
			attrs = append(attrs, slog.String(logKeyActor, p.Actor))
		}
		logger.LogAttrs(c.Request.Context(), level, "http request", attrs...)
	}
}

// validHostPort reports whether v is host:port with a port from 1 to
// 65535: a node's cluster address.
func validHostPort(v string) bool {
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		return false
	}
	p, err := strconv.ParseUint(port, 10, 16)
	return err == nil && p != 0
}
