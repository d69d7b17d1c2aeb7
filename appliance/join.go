package appliance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/provisioning"
)

// The member's side of a join (provisioning/join.go has the joiner's). It
// is served at provisioning.JoinPath on the HTTPS listener only, to
// anyone: the join token is the credential. In order:
//
//  1. the token's form, then its secret, cluster, CA and expiry, checked
//     with the CA key (a member without it refuses with 503, and the
//     joiner tries another);
//  2. the request: a node ID that is not already a member, a cluster
//     address a peer can dial, a certificate request that checks;
//  3. the certificate signed (a request that cannot be signed uses
//     nothing up), then the use counted in the cluster
//     (monitoring.UseJoinToken), which refuses a token used up;
//  4. the node added as a non-voter, so that
//     the members' certificate check lets it in and the leader sends it
//     the log; it makes itself a voter once it runs;
//  5. the answer: the certificate, the CA, the CA key sealed under the
//     token's secret, and the members to dial.
//
// Every refusal names its reason: the joiner prints it for IT.

// joinTimeout bounds the cluster work of one join.
const joinTimeout = 20 * time.Second

// joinRefusals logs refused joins: each at debug level, and a warning at
// most once a minute with the count since the last, so that an outsider
// posting rubbish to the endpoint cannot flood the log.
type joinRefusals struct {
	mu     sync.Mutex
	last   time.Time
	missed int
}

func (j *joinRefusals) log(logger *slog.Logger, remote, reason string) {
	logger.Debug("refused an appliance's join", "remote", remote, "reason", reason)
	j.mu.Lock()
	j.missed++
	now := time.Now()
	if !j.last.IsZero() && now.Sub(j.last) < time.Minute {
		j.mu.Unlock()
		return
	}
	count := j.missed
	j.last, j.missed = now, 0
	j.mu.Unlock()
	logger.Warn("refused joins (more are logged at debug level)", "count", count, "last_remote", remote, "last_reason", reason)
}

func (n *Node) serveJoin(w http.ResponseWriter, r *http.Request) {
	refuse := func(status int, format string, a ...any) {
		reason := fmt.Sprintf(format, a...)
		n.joinRefused.log(n.logger, r.RemoteAddr, reason)
		provisioning.JoinRefusal(w, status, reason)
	}
	switch {
	case r.TLS == nil:
		refuse(http.StatusForbidden, "a join is accepted only over HTTPS")
		return
	case r.Method != http.MethodPost:
		w.Header().Set("Allow", http.MethodPost)
		refuse(http.StatusMethodNotAllowed, "a join is a POST")
		return
	}
	var req provisioning.JoinRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, provisioning.MaxJoinMessage))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		refuse(http.StatusBadRequest, "the request is not a join request: %v", err)
		return
	}
	tok, err := provisioning.ParseJoinToken(req.Token)
	if err != nil {
		refuse(http.StatusBadRequest, "%v", err)
		return
	}
	trust, _, _ := n.trust.get()
	if trust == nil || !trust.CA.CanSign() {
		refuse(http.StatusServiceUnavailable, "this member does not hold the CA key: join through another")
		return
	}
	if err := trust.CA.CheckJoinToken(tok, time.Now()); err != nil {
		refuse(http.StatusForbidden, "%v", err)
		return
	}
	if err := checkJoinRequest(&req); err != nil {
		refuse(http.StatusBadRequest, "%v", err)
		return
	}
	servers, err := n.cluster.Configuration()
	if err != nil {
		refuse(http.StatusServiceUnavailable, "cannot read the cluster's members: %v", err)
		return
	}
	for _, s := range servers {
		switch {
		case s.ID == req.NodeID:
			refuse(http.StatusConflict, "node %s is already a member: an appliance that lost its data directory joins under a new ID, once the old one is removed (vigil replace-node)", req.NodeID)
			return
		case s.Addr == req.ClusterAddr:
			refuse(http.StatusConflict, "member %s already has cluster address %s: remove it first (vigil replace-node), or give the new appliance another address", s.ID, s.Addr)
			return
		}
	}
	// Signed before the use is counted, so that a request that cannot be
	// signed uses nothing up; the certificate goes out only once counted.
	cert, err := trust.CA.SignRequest(req.CSR, req.NodeID, time.Now())
	if err != nil {
		refuse(http.StatusBadRequest, "%v", err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), joinTimeout)
	defer cancel()
	if _, err := n.service.UseJoinToken(ctx, "join-"+tok.ID+"-"+req.NodeID, tok.ID, tok.Uses, tok.Expires,
		monitoring.JoinedNode{NodeID: req.NodeID, Name: req.Name, ClusterAddr: req.ClusterAddr}); err != nil {
		if errors.Is(err, monitoring.ErrConflict) || errors.Is(err, monitoring.ErrInvalid) {
			refuse(http.StatusForbidden, "%v", err)
			return
		}
		refuse(http.StatusServiceUnavailable, "the cluster cannot record the join now: %v", err)
		return
	}
	if err := n.cluster.AddNonvoter(ctx, req.NodeID, req.ClusterAddr); err != nil {
		refuse(http.StatusServiceUnavailable, "cannot add the node to the cluster now: %v", err)
		return
	}
	sealed, err := provisioning.SealCAKey(trust.CA, tok)
	if err != nil {
		refuse(http.StatusInternalServerError, "%v", err)
		return
	}
	resp := provisioning.JoinResponse{ClusterID: trust.CA.ClusterID, CACert: trust.CA.CertPEM(),
		NodeCert: (&provisioning.NodeCert{Cert: cert}).CertPEM(), SealedCAKey: sealed}
	for _, s := range servers {
		resp.Members = append(resp.Members, provisioning.JoinMember{ID: s.ID, ClusterAddr: s.Addr})
	}
	n.logger.Info("an appliance joined with a join token", "joiner", req.NodeID, "name", req.Name,
		"cluster_addr", req.ClusterAddr, "token", tok.ID, "remote", r.RemoteAddr)
	var buf bytes.Buffer
	_ = json.NewEncoder(&buf).Encode(&resp)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(buf.Bytes())
}

// checkJoinRequest refuses a request whose fields a member must not take.
func checkJoinRequest(req *provisioning.JoinRequest) error {
	if err := validNodeID(req.NodeID); err != nil {
		return err
	}
	if len(req.Name) > 63 || strings.IndexFunc(req.Name, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return fmt.Errorf("name %q must be at most 63 printable characters", req.Name)
	}
	host, port, err := net.SplitHostPort(req.ClusterAddr)
	if err != nil || port == "0" || port == "" {
		return fmt.Errorf("cluster_addr %q is not host:port", req.ClusterAddr)
	}
	if isWildcard(host) || host == "" {
		return fmt.Errorf("cluster_addr %q is a wildcard: give the address the members dial", req.ClusterAddr)
	}
	if len(req.CSR) == 0 {
		return errors.New("the request carries no certificate request")
	}
	return nil
}

// validNodeID refuses a node ID that is not a plain identifier.
func validNodeID(id string) error {
	if id == "" || len(id) > 64 || strings.IndexFunc(id, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
	}) >= 0 {
		return fmt.Errorf("node_id %q must be 1 to 64 letters, digits, '-', '_' or '.'", id)
	}
	return nil
}

// joinMembers lists the cluster addresses to dial from a join's answer,
// the joiner's own left out.
func joinMembers(members []provisioning.JoinMember, self string) []string {
	var out []string
	for _, m := range members {
		if m.ID != self && !slices.Contains(out, m.ClusterAddr) {
			out = append(out, m.ClusterAddr)
		}
	}
	return out
}
