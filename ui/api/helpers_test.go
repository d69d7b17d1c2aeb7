package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/monitoring/monitoringtest"
	"github.com/vigilarc/vigil/ui/uitest"
)

// apiNode is one node's whole HTTP surface served for a test (uitest: the
// console, the REST API and their authentication, as the appliance serves
// them) over the monitoring Service of a real cluster node, with the admin
// API token that call and send use, if it has one.
type apiNode struct {
	*uitest.Server
	admin string // the API token "test-admin"; empty on mustServeCluster's nodes
}

// svc returns the node's monitoring Service.
func (n *apiNode) svc() *monitoring.Service { return n.Node.Service }

// mustServe serves the HTTP surface of a single-node cluster on a loopback
// port, with an admin API token "test-admin" (adminToken).
func mustServe(t *testing.T) *apiNode {
	t.Helper()
	n := &apiNode{Server: uitest.MustServe(t, monitoringtest.MustService(t, monitoringtest.Options{}), uitest.Options{})}
	n.admin = mustToken(t, n, "test-admin", monitoring.RoleAdmin)
	return n
}

// mustServeCluster starts three cluster nodes and serves each one's HTTP
// surface, without admin tokens: the test makes the tokens it needs.
func mustServeCluster(t *testing.T) (*monitoringtest.Cluster, []*apiNode) {
	t.Helper()
	c := monitoringtest.MustCluster(t, 3, monitoringtest.Options{})
	nodes := make([]*apiNode, c.Len())
	for i := range nodes {
		nodes[i] = &apiNode{Server: uitest.MustServe(t, c.Node(i), uitest.Options{})}
	}
	return c, nodes
}

// mustToken makes an API token named name with role through n's Service,
// as POST /api/v1/tokens does, and returns the token string.
func mustToken(t testing.TB, n *apiNode, name string, role monitoring.OperatorRole) string {
	t.Helper()
	made, err := n.svc().CreateAPIToken(context.Background(), "test-token-"+name, "test", name, role)
	if err != nil {
		t.Fatalf("cannot make API token %s: %v", name, err)
	}
	return made.Secret
}

// adminToken returns the admin API token of a node mustServe served.
func adminToken(t testing.TB, n *apiNode) string {
	t.Helper()
	if n.admin == "" {
		t.Fatal("the node has no admin token: serve it with mustServe")
	}
	return n.admin
}

// call sends a request with the node's admin token and decodes the JSON
// reply into out (when not nil).
func call(t *testing.T, n *apiNode, method, path, body string, out any) int {
	t.Helper()
	return callAs(t, n, adminToken(t, n), method, path, body, out)
}

// callAs is call with the API token token, or none when it is empty.
func callAs(t *testing.T, n *apiNode, token, method, path, body string, out any) int {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, n.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: reply %q is not JSON: %v", method, path, b, err)
		}
	}
	return resp.StatusCode
}

// send marshals body (a string is sent as it is), sends it with the
// node's admin token, and decodes the reply into out (when not nil). It
// returns the status and the raw reply.
func send(t *testing.T, n *apiNode, method, path string, body, out any) (int, string) {
	t.Helper()
	return sendAs(t, n, adminToken(t, n), method, path, body, out)
}

// sendAs is send with the API token token, or none when it is empty.
func sendAs(t *testing.T, n *apiNode, token, method, path string, body, out any) (int, string) {
	t.Helper()
	var s string
	switch b := body.(type) {
	case nil:
	case string:
		s = b
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		s = string(j)
	}
	var raw json.RawMessage
	code := callAs(t, n, token, method, path, s, &raw)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: cannot decode %s: %v", method, path, raw, err)
		}
	}
	return code, string(raw)
}

// mustSend is send that fails the test unless the status is want.
func mustSend(t *testing.T, n *apiNode, want int, method, path string, body, out any) string {
	t.Helper()
	return mustSendAs(t, n, adminToken(t, n), want, method, path, body, out)
}

// mustSendAs is mustSend with the API token token.
func mustSendAs(t *testing.T, n *apiNode, token string, want int, method, path string, body, out any) string {
	t.Helper()
	code, raw := sendAs(t, n, token, method, path, body, out)
	if code != want {
		t.Fatalf("%s %s = %d %s; want %d", method, path, code, raw, want)
	}
	return raw
}

type obj = map[string]any
