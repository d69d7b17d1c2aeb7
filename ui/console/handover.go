package console

// Moving a console page to another node when its node stops.
//
// Any node serves the console, and a sign-in is valid on every node; but
// a browser keeps cookies per origin, and each node is its own origin. So a
// signed-in page asks its node for a resume ticket (POST /ui/resume/ticket)
// every ticketRefresh, and keeps it, with the other nodes' console URLs, in
// sessionStorage. The session token itself stays in its HttpOnly cookie.
//
// When the page's event stream breaks, the page says so at once, asks its
// own node whether it is alive (GET /ui/alive), and if not, asks the other
// nodes in turn. It then posts the ticket, the page it was on and the
// operator's unsent drafts to the first node that answers (POST
// /ui/resume): a top-level form post, which that node accepts only from a
// console origin of the cluster. The node spends the ticket (replicated:
// once, within monitoring.ResumeTicketTTL), sets its own session cookie,
// and answers a page that puts the drafts back into sessionStorage and
// opens the page the operator was on.
//
//	GET  /ui/alive           is this node up, with a leader? CORS for the cluster's consoles
//	POST /ui/resume/ticket   a new ticket for the signed-in page (CSRF)
//	POST /ui/resume          ticket, next, drafts, from, lost_at: sign in here with a ticket

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/ui"
	"github.com/vigilarc/vigil/ui/auth"
)

// Timing and limits of the hand-over.
const (
	// ticketTTL is how long a ticket is valid.
	ticketTTL = monitoring.ResumeTicketTTL
	// ticketRefresh is how often a page asks for a new ticket: well within
	// ticketTTL, so that a page always holds a valid one.
	ticketRefresh = 30 * time.Second
	// registerRetry is the pause between attempts to register this node's
	// console while the cluster cannot take it.
	registerRetry = 2 * time.Second
	// nodesCacheFor is how long the list of console nodes is reused.
	nodesCacheFor = 5 * time.Second
	// maxDrafts bounds the drafts a hand-over carries, in bytes of JSON.
	maxDrafts = 64 << 10
	// draftPrefix begins the sessionStorage key of every draft.
	draftPrefix = "vigil.draft:" + Prefix + "/"
)

// originRE is an origin as the console accepts it in its headers:
// scheme://host[:port], nothing that could end a header's directive.
var originRE = regexp.MustCompile(`^https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$`)

// validOrigin reports whether o is safe to name in a CSP or CORS header.
func validOrigin(o string) bool { return len(o) <= 300 && originRE.MatchString(o) }

// register records this node's console and MQTT addresses in the
// replicated state, retrying until the cluster takes it or ctx ends.
func (co *Console) register(ctx context.Context) {
	n := monitoring.ConsoleNode{NodeID: co.cfg.NodeID, Name: co.cfg.NodeName, URL: co.cfg.PublicURL, MQTT: co.cfg.MQTTURLs}
	for {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := co.svc.RegisterConsoleNode(cctx, "console-node/"+co.cfg.NodeID+"/"+ui.RandomToken(), n)
		cancel()
		if err == nil {
			co.logger.Info("console registered", "url", n.URL, "mqtt", strings.Join(n.MQTT, " "))
			co.nodesMu.Lock()
			co.nodesAt = time.Time{} // read it again
			co.nodesMu.Unlock()
			return
		}
		var re *monitoring.RuleError
		if errors.As(err, &re) {
			co.logger.Error("cannot register this node's console: the other nodes cannot move pages here", "url", n.URL, "error", err)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(registerRetry):
		}
	}
}

// consoleNodes returns the console nodes of the cluster's members (every
// registered one when there is no cluster status), with valid origins, by
// node ID. It reads the state at most every nodesCacheFor.
func (co *Console) consoleNodes() []monitoring.ConsoleNode {
	co.nodesMu.Lock()
	defer co.nodesMu.Unlock()
	if time.Since(co.nodesAt) < nodesCacheFor || co.svc == nil {
		return co.nodes
	}
	co.nodesAt = time.Now()
	all, err := co.svc.ConsoleNodes()
	if err != nil {
		return co.nodes // keep the last good list
	}
	var members map[string]bool
	if co.cfg.Cluster != nil {
		members = map[string]bool{}
		for _, m := range co.cfg.Cluster.Status().Members {
			members[m.ID] = true
		}
	}
	var nodes []monitoring.ConsoleNode
	var origins []string
	for _, n := range all {
		if !validOrigin(n.URL) || members != nil && !members[n.NodeID] {
			continue
		}
		nodes = append(nodes, n)
		origins = append(origins, n.URL)
	}
	for _, o := range co.cfg.AllowedOrigins {
		if validOrigin(strings.TrimSuffix(o, "/")) {
			origins = append(origins, strings.TrimSuffix(o, "/"))
		}
	}
	slices.Sort(origins)
	co.nodes, co.nodesCSP = nodes, cspFor(slices.Compact(origins))
	return nodes
}

// csp returns the Content-Security-Policy of this node's pages.
func (co *Console) csp() string {
	co.consoleNodes()
	co.nodesMu.Lock()
	defer co.nodesMu.Unlock()
	if co.nodesCSP == "" {
		return contentSecurityPolicy
	}
	return co.nodesCSP
}

// clusterOrigin reports whether origin is the console of a node of the
// cluster, or one of the allowed origins.
func (co *Console) clusterOrigin(origin string) bool {
	origin = strings.TrimSuffix(origin, "/")
	if !validOrigin(origin) {
		return false
	}
	for _, n := range co.consoleNodes() {
		if strings.EqualFold(n.URL, origin) {
			return true
		}
	}
	return slices.Contains(co.cfg.AllowedOrigins, origin)
}

// peer is another node's console, as a page is told of it.
type peer struct {
	Node      string `json:"node"`
	URL       string `json:"url"`
	Reachable bool   `json:"reachable"` // this node heard from it lately
}

// peers returns the consoles of the other nodes, those this node heard
// from lately first.
func (co *Console) peers() []peer {
	reach := map[string]bool{}
	if co.cfg.Cluster != nil {
		for _, m := range co.cfg.Cluster.Status().Members {
			reach[m.ID] = m.Reachable
		}
	}
	var out []peer
	for _, n := range co.consoleNodes() {
		if n.NodeID != co.cfg.NodeID {
			out = append(out, peer{Node: n.NodeID, URL: n.URL, Reachable: reach[n.NodeID]})
		}
	}
	slices.SortStableFunc(out, func(a, b peer) int {
		switch {
		case a.Reachable == b.Reachable:
			return strings.Compare(a.Node, b.Node)
		case a.Reachable:
			return -1
		}
		return 1
	})
	return out
}

// aliveReply is the reply to GET /ui/alive.
type aliveReply struct {
	Node   string `json:"node"`
	Leader string `json:"leader"` // empty: this node knows no leader, and cannot take changes
	OK     bool   `json:"ok"`
}

// GET /ui/alive: whether this node is up and knows a leader (503 if not).
// Pages of the cluster's other consoles may read it (CORS).
func (co *Console) alive(c *gin.Context) {
	if o := c.GetHeader("Origin"); o != "" && co.clusterOrigin(o) {
		c.Header("Access-Control-Allow-Origin", strings.TrimSuffix(o, "/"))
	}
	c.Header("Vary", "Origin")
	r := aliveReply{Node: co.cfg.NodeID, OK: true}
	if co.cfg.Cluster != nil {
		r.Leader = co.cfg.Cluster.Status().LeaderID
		r.OK = r.Leader != ""
	}
	status := http.StatusOK
	if !r.OK {
		status = http.StatusServiceUnavailable
	}
	c.JSON(status, r)
}

// ticketReply is the reply to POST /ui/resume/ticket.
type ticketReply struct {
	Ticket    string    `json:"ticket"`
	ExpiresAt time.Time `json:"expires_at"`
	Node      string    `json:"node"`  // this node
	Peers     []peer    `json:"peers"` // the other nodes' consoles, to try in order
	RefreshMS int64     `json:"refresh_ms"`
}

// POST /ui/resume/ticket: a new hand-over ticket for this page's session.
func (co *Console) resumeTicket(c *gin.Context) {
	token := auth.SessionTokenOf(c)
	g, err := co.svc.IssueResumeTicket(c.Request.Context(), ui.RandomToken(), token, ticketTTL)
	if err != nil {
		c.JSON(ui.ErrorStatus(err), gin.H{"error": ui.ErrorText(err)})
		return
	}
	peers := co.peers()
	if peers == nil {
		peers = []peer{}
	}
	c.JSON(http.StatusOK, ticketReply{Ticket: g.Ticket, ExpiresAt: g.ExpiresAt, Node: co.cfg.NodeID, Peers: peers,
		RefreshMS: ticketRefresh.Milliseconds()})
}

// resumeView is what the hand-over page shows: nothing for long, on
// success; why not, on failure.
type resumeView struct {
	pageBase
	Next   string
	Drafts string // JSON: sessionStorage key -> text
	From   string // the node the page came from
	LostAt string // when the page lost it, in ms since 1970
	Failed string // why the ticket was refused; empty on success
	Login  string // the sign-in page, with next
}

// POST /ui/resume: ticket, next, drafts, from, lost_at. Accepted only from
// this node's own pages or the cluster's other consoles.
func (co *Console) resumePost(c *gin.Context) {
	origin := c.GetHeader("Origin")
	if !co.auth.OriginOK(c) && !co.clusterOrigin(origin) {
		ui.Refuse(c, http.StatusForbidden, "The request was refused: it did not come from a console of this cluster.")
		return
	}
	v := resumeView{pageBase: co.base(c, "Moving to node "+co.cfg.NodeID), Next: safeNext(c.PostForm("next"))}
	v.Page = "resume"
	v.Drafts = cleanDrafts(c.PostForm("drafts"))
	if from := c.PostForm("from"); validResumeNode(from) {
		v.From = from
	}
	if ms, err := strconv.ParseInt(c.PostForm("lost_at"), 10, 64); err == nil && ms > 0 {
		v.LostAt = strconv.FormatInt(ms, 10)
	}
	v.Login = Prefix + "/login?next=" + url.QueryEscape(v.Next)
	ticket := c.PostForm("ticket")
	if ok, wait := co.auth.AllowLogin(ui.RemoteIP(c)); !ok {
		c.Header("Retry-After", wait)
		v.Failed = "Too many attempts from this computer. Wait " + wait + " seconds, then sign in."
		co.render(c, http.StatusTooManyRequests, "resume", v)
		return
	}
	in, err := co.svc.RedeemResumeTicket(c.Request.Context(), ui.RandomToken(), ticket, ui.RemoteIP(c))
	if err != nil {
		status := ui.ErrorStatus(err)
		v.Failed = "Your sign-in could not be carried over"
		if v.From != "" {
			v.Failed += " from node " + v.From
		}
		if errors.Is(err, monitoring.ErrNoSession) {
			v.Failed += ": the hand-over ticket had expired or was used. Sign in again."
		} else {
			v.Failed += ": " + ui.ErrorText(err)
		}
		co.logger.Info("console hand-over refused", "from", v.From, "remote", ui.RemoteIP(c), "error", err)
		co.render(c, status, "resume", v)
		return
	}
	ttl := time.Until(in.Session.ExpiresAt)
	co.auth.SetCookie(c, auth.SessionCookie, in.Token, max(1, int(ttl.Seconds())))
	co.logger.Info("console hand-over", "operator", in.Operator.ID, "from", v.From, "remote", ui.RemoteIP(c))
	co.render(c, http.StatusOK, "resume", v)
}

// validResumeNode reports whether s may be shown as a node's name.
func validResumeNode(s string) bool {
	return s != "" && len(s) <= monitoring.MaxIDLen && !strings.ContainsAny(s, "/ \t\r\n<>\"'&")
}

// cleanDrafts returns the drafts a hand-over carries, as JSON, keeping
// only text under the console's own draft keys; "{}" when there are none
// or they are not what a page sends.
func cleanDrafts(s string) string {
	if s == "" || len(s) > maxDrafts {
		return "{}"
	}
	var in map[string]string
	if err := json.Unmarshal([]byte(s), &in); err != nil {
		return "{}"
	}
	out := map[string]string{}
	for k, v := range in {
		if strings.HasPrefix(k, draftPrefix) && len(k) < 500 && len(v) <= monitoring.MaxTextLen {
			out[k] = v
		}
	}
	b, _ := json.Marshal(out)
	return string(b)
}
