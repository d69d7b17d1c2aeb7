package provisioning

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// The join exchange. A new appliance, holding a join token and a key of
// its own, sends a JoinRequest to a member's HTTPS listener at JoinPath,
// over a TLS connection that trusts only the CA the token pins. The member
// checks the token (CheckJoinToken), counts its use in the cluster, signs
// the request, adds the node to the cluster as a non-voter (so the
// members' certificate check lets it in), and answers with a
// JoinResponse: its certificate, the CA's, the CA key sealed under the
// token's secret, and the members to dial.

// JoinPath is the path of the join endpoint on a member's HTTPS listener.
const JoinPath = "/cluster/v1/join"

// MaxJoinMessage bounds a join request or response.
const MaxJoinMessage = 64 << 10

// JoinRequest is what a joining appliance sends.
type JoinRequest struct {
	Token string `json:"token"`
	// NodeID is the joiner's ID: a new UUID, kept in its data directory.
	NodeID string `json:"node_id"`
	// Name is the joiner's readable name, its host name.
	Name string `json:"name"`
	// ClusterAddr is the address of the joiner's cluster port, as the
	// members will dial it.
	ClusterAddr string `json:"cluster_addr"`
	// CSR is the certificate request, DER (Request).
	CSR []byte `json:"csr"`
}

// JoinMember is one member the joiner can dial.
type JoinMember struct {
	ID          string `json:"id"`
	ClusterAddr string `json:"cluster_addr"`
}

// JoinResponse is what a member answers.
type JoinResponse struct {
	ClusterID string `json:"cluster_id"`
	CACert    []byte `json:"ca_cert"`   // PEM
	NodeCert  []byte `json:"node_cert"` // PEM
	// SealedCAKey is the CA key sealed under the token's secret
	// (SealCAKey), for a joiner that will be a voter.
	SealedCAKey []byte       `json:"sealed_ca_key,omitempty"`
	Members     []JoinMember `json:"members"`
}

// joinError is the body of a refusal.
type joinError struct {
	Error string `json:"error"`
}

// RefusedJoinError is a member's refusal of a join: the token is used up,
// expired or not this cluster's, or the request is wrong. Trying another
// member will not help.
type RefusedJoinError struct {
	Addr   string
	Status int
	Reason string
}

func (e *RefusedJoinError) Error() string {
	return fmt.Sprintf("the member at %s refused the join (%d): %s", e.Addr, e.Status, e.Reason)
}

// Join asks the members at addrs, in turn, to let this appliance join
// with token t, and returns its trust (certificate, CA, CA key) and the
// members to dial. key is the appliance's own key; it never leaves it.
// A refusal (RefusedJoinError) stops at once; an unreachable member, or
// one that cannot answer yet, is skipped for the next.
func Join(ctx context.Context, t *JoinToken, key *NodeKey, names NodeNames, req JoinRequest, addrs []string) (*Trust, []JoinMember, error) {
	csr, err := key.Request(names)
	if err != nil {
		return nil, nil, err
	}
	req.Token, req.CSR = t.String(), csr
	body, err := json.Marshal(req)
	if err != nil {
		return nil, nil, err
	}
	client := &http.Client{
		Transport: &http.Transport{TLSClientConfig: JoinClientTLS(t), TLSHandshakeTimeout: 5 * time.Second},
		Timeout:   30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return errors.New("a member does not redirect a join")
		},
	}
	defer client.CloseIdleConnections()
	if len(addrs) == 0 {
		return nil, nil, errors.New("no member address to join through: the token carries none and none was given")
	}
	var errs []error
	for _, a := range addrs {
		resp, err := postJoin(ctx, client, a, body)
		if err != nil {
			var refused *RefusedJoinError
			if errors.As(err, &refused) {
				return nil, nil, err
			}
			errs = append(errs, fmt.Errorf("%s: %w", a, err))
			continue
		}
		tr, err := acceptJoin(t, key, req.NodeID, resp)
		if err != nil {
			return nil, nil, fmt.Errorf("the member at %s answered, but: %w", a, err)
		}
		return tr, resp.Members, nil
	}
	return nil, nil, fmt.Errorf("no member could be reached to join: %w", errors.Join(errs...))
}

// postJoin sends the request to one member.
func postJoin(ctx context.Context, client *http.Client, addr string, body []byte) (*JoinResponse, error) {
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+addr+JoinPath, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(hr)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxJoinMessage+1))
	if err != nil {
		return nil, err
	}
	if len(raw) > MaxJoinMessage {
		return nil, fmt.Errorf("the answer is longer than %d bytes", MaxJoinMessage)
	}
	if resp.StatusCode != http.StatusOK {
		var je joinError
		_ = json.Unmarshal(raw, &je)
		if je.Error == "" {
			je.Error = http.StatusText(resp.StatusCode)
		}
		if resp.StatusCode >= 500 {
			return nil, fmt.Errorf("%d: %s", resp.StatusCode, je.Error)
		}
		return nil, &RefusedJoinError{Addr: addr, Status: resp.StatusCode, Reason: je.Error}
	}
	var jr JoinResponse
	if err := json.Unmarshal(raw, &jr); err != nil {
		return nil, fmt.Errorf("the answer is not a join response: %w", err)
	}
	return &jr, nil
}

// acceptJoin checks a member's answer: the CA is the pinned one, the
// certificate is the CA's, names this node and holds this node's key.
func acceptJoin(t *JoinToken, key *NodeKey, nodeID string, jr *JoinResponse) (*Trust, error) {
	caCert, err := parseCertPEM(jr.CACert)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	if Fingerprint(caCert) != t.CAFingerprint {
		return nil, ErrFingerprint
	}
	var ca *CA
	if len(jr.SealedCAKey) > 0 {
		if ca, err = OpenCAKey(jr.CACert, jr.SealedCAKey, t); err != nil {
			return nil, err
		}
	} else if ca, err = LoadCA(jr.CACert, nil); err != nil {
		return nil, err
	}
	keyPEM, err := key.PEM()
	if err != nil {
		return nil, err
	}
	n, err := LoadNodeCert(jr.NodeCert, keyPEM)
	if err != nil {
		return nil, err
	}
	if _, err := n.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, fmt.Errorf("the node certificate is not from the CA: %w", err)
	}
	id, err := NodeIdentity(n.Cert, t.ClusterID)
	if err != nil {
		return nil, err
	}
	if id != nodeID {
		return nil, fmt.Errorf("the node certificate names node %q, not %q", id, nodeID)
	}
	return &Trust{CA: ca, Node: n}, nil
}

// JoinRefusal writes a refusal of a join to w: status and the reason, as
// the joiner's RefusedJoinError reports it.
func JoinRefusal(w http.ResponseWriter, status int, reason string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(joinError{Error: reason})
}
