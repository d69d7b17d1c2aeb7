package monitoring

// Join tokens' uses. A join token (provisioning) is checked by its secret
// on the member that receives it, with no record; what needs the cluster
// is how many appliances have used it, so that a single-use token lets one
// appliance join however many members it is shown to. The count is
// replicated like everything else and kept after the token expires, as the
// record of who joined.
//
// Keys (a prefix, once used, keeps its meaning forever):
//
//	jointoken/<token id>    JoinTokenUse

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// pJoinToken is the key prefix of join tokens' uses.
const pJoinToken = "jointoken/"

// maxJoinTokenUses bounds a token's uses; provisioning allows 16.
const maxJoinTokenUses = 64

// JoinTokenUse is the record of one join token's uses.
type JoinTokenUse struct {
	TokenID string       `json:"token_id"`
	Uses    int          `json:"uses"` // how many the token allows
	Expires time.Time    `json:"expires"`
	Joined  []JoinedNode `json:"joined"`
}

// JoinedNode is an appliance that joined with a token.
type JoinedNode struct {
	NodeID      string    `json:"node_id"`
	Name        string    `json:"name,omitempty"`
	ClusterAddr string    `json:"cluster_addr"`
	At          time.Time `json:"at"`
	Via         string    `json:"via"` // the member that checked the token
}

// useJoinTokenCmd counts one use of a join token by a node.
type useJoinTokenCmd struct {
	Header
	TokenID     string    `json:"token_id"`
	Uses        int       `json:"uses"`
	Expires     time.Time `json:"expires"`
	NodeID      string    `json:"node_id"`
	Name        string    `json:"name,omitempty"`
	ClusterAddr string    `json:"cluster_addr"`
}

// applyUseJoinToken counts a use, refusing one past the token's limit or
// after it expired. The same node using the same token again (it retries
// after a lost answer) is not counted twice.
func applyUseJoinToken(c *applyCtx, body []byte) ([]byte, error) {
	var cmd useJoinTokenCmd
	if err := c.decode(body, &cmd); err != nil {
		return nil, err
	}
	if err := validateJoinTokenUse(&cmd); err != nil {
		return nil, err
	}
	if !c.now().Before(cmd.Expires) {
		return nil, ruleErr(CodeConflict, "token", "the join token expired at %s", cmd.Expires.UTC().Format(time.RFC3339))
	}
	var rec JoinTokenUse
	found, err := getJSON(c.txn, pJoinToken+cmd.TokenID, &rec)
	if err != nil {
		return nil, err
	}
	if !found {
		rec = JoinTokenUse{TokenID: cmd.TokenID, Uses: cmd.Uses, Expires: cmd.Expires, Joined: []JoinedNode{}}
	}
	if i := slices.IndexFunc(rec.Joined, func(j JoinedNode) bool { return j.NodeID == cmd.NodeID }); i >= 0 {
		return json.Marshal(&rec)
	}
	if len(rec.Joined) >= rec.Uses {
		return nil, ruleErr(CodeConflict, "token", "the join token has been used %d of %d times: make a new one with vigil token join", len(rec.Joined), rec.Uses)
	}
	rec.Joined = append(rec.Joined, JoinedNode{NodeID: cmd.NodeID, Name: cmd.Name, ClusterAddr: cmd.ClusterAddr, At: c.now(), Via: cmd.Node})
	if err := putJSON(c.txn, pJoinToken+cmd.TokenID, &rec); err != nil {
		return nil, err
	}
	detail := fmt.Sprintf("appliance %s (%s, cluster port %s) joined with join token %s, use %d of %d, checked by node %s",
		cmd.NodeID, cmd.Name, cmd.ClusterAddr, cmd.TokenID, len(rec.Joined), rec.Uses, cmd.Node)
	if err := c.audit(CmdUseJoinToken, "node/"+cmd.NodeID, detail); err != nil {
		return nil, err
	}
	return json.Marshal(&rec)
}

func validateJoinTokenUse(cmd *useJoinTokenCmd) error {
	switch {
	case len(cmd.TokenID) != 16 || !isLowerHex(cmd.TokenID):
		return invalid("token_id", "must be 16 hex digits")
	case cmd.Uses < 1 || cmd.Uses > maxJoinTokenUses:
		return invalid("uses", "must be 1 to %d", maxJoinTokenUses)
	case cmd.Expires.IsZero():
		return invalid("expires", "must be set")
	case len(cmd.Name) > 63:
		return invalid("name", "is longer than 63 bytes")
	case hasHidden(cmd.Name):
		return validDisplay("name", cmd.Name)
	case cmd.ClusterAddr == "" || len(cmd.ClusterAddr) > 300:
		return invalid("cluster_addr", "must be host:port")
	}
	return validID("node_id", cmd.NodeID)
}

func isLowerHex(s string) bool {
	for _, r := range s {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return false
		}
	}
	return true
}

// UseJoinToken counts one use of join token tokenID (allowing uses, until
// expires) by the appliance nodeID, and returns the token's record. It
// refuses with CodeConflict a token used up or expired.
func (s *Service) UseJoinToken(ctx context.Context, cmdID, tokenID string, uses int, expires time.Time, j JoinedNode) (*JoinTokenUse, error) {
	cmd := useJoinTokenCmd{Header: s.header("node:" + s.cluster.ID()), TokenID: tokenID, Uses: uses, Expires: expires,
		NodeID: j.NodeID, Name: j.Name, ClusterAddr: j.ClusterAddr}
	if err := validateJoinTokenUse(&cmd); err != nil {
		return nil, err
	}
	res, err := s.propose(ctx, cmdID, CmdUseJoinToken, cmd)
	if err != nil {
		return nil, err
	}
	return decodeResponse[JoinTokenUse](res.Response)
}

// JoinTokenUses returns the record of every join token used, by token ID.
func (s *Service) JoinTokenUses() ([]JoinTokenUse, error) {
	return listRecords[JoinTokenUse](s, pJoinToken, nil)
}

// JoinTokenUseOf returns one token's record.
func (s *Service) JoinTokenUseOf(tokenID string) (*JoinTokenUse, error) {
	var rec JoinTokenUse
	var ok bool
	err := s.view(func(txn *badger.Txn) (err error) {
		ok, err = getJSON(txn, pJoinToken+tokenID, &rec)
		return err
	})
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ruleErr(CodeNotFound, "token_id", "join token %q was never used", tokenID)
	}
	return &rec, nil
}
