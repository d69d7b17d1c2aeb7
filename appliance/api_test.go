package appliance

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/cluster"
	"github.com/vigilarc/vigil/ui/api"
)

// adminTokens holds the admin API token that mustOpenNode made for each
// node; call and send use it.
var adminTokens sync.Map // *Node -> string

// mustToken makes an API token named name with role through n's Service,
// as POST /api/v1/tokens does, and returns the token string.
func mustToken(t testing.TB, n *Node, name string, role monitoring.OperatorRole) string {
	t.Helper()
	made, err := n.Service().CreateAPIToken(context.Background(), "test-token-"+name, "test", name, role)
	if err != nil {
		t.Fatalf("cannot make API token %s: %v", name, err)
	}
	return made.Secret
}

// adminToken returns the admin API token of a node mustOpenNode opened.
func adminToken(t testing.TB, n *Node) string {
	t.Helper()
	v, ok := adminTokens.Load(n)
	if !ok {
		t.Fatal("the node has no admin token: open it with mustOpenNode")
	}
	return v.(string)
}

// mustOpenNode opens a real single-node appliance on loopback ports, with
// an admin API token "test-admin" (adminToken).
func mustOpenNode(t *testing.T) *Node {
	t.Helper()
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Cluster.BindAddr = "127.0.0.1:0"
	cfg.Broker.TCPAddr, cfg.Broker.WSAddr = "127.0.0.1:0", ""
	cfg.Logger = slog.New(slog.DiscardHandler)
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := n.Cluster().WaitForLeader(ctx); err != nil {
		t.Fatal(err)
	}
	adminTokens.Store(n, mustToken(t, n, "test-admin", monitoring.RoleAdmin))
	t.Cleanup(func() { adminTokens.Delete(n) })
	return n
}

// call sends a request with the node's admin token and decodes the JSON
// reply into out (when not nil).
func call(t *testing.T, n *Node, method, path, body string, out any) int {
	t.Helper()
	return callAs(t, n, adminToken(t, n), method, path, body, out)
}

// callAs is call with the API token token, or none when it is empty.
func callAs(t *testing.T, n *Node, token, method, path, body string, out any) int {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://"+n.HTTPAddr()+path, rd)
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

func TestAPI_DiagRecordAppliedOnceAndRead(t *testing.T) {
	n := mustOpenNode(t)
	var first, again api.DiagRecordResponse
	if code := call(t, n, "POST", "/api/v1/diag/records", `{"id":"cmd-1","key":"k1","value":"hello"}`, &first); code != http.StatusCreated {
		t.Fatalf("POST = %d", code)
	}
	if code := call(t, n, "POST", "/api/v1/diag/records", `{"id":"cmd-1","key":"k1","value":"hello"}`, &again); code != http.StatusCreated {
		t.Fatalf("retried POST = %d", code)
	}
	if first.Duplicate || !again.Duplicate || again.Index != first.Index {
		t.Fatalf("first %+v, retry %+v: want the retry to be a duplicate of the first", first, again)
	}
	for _, consistency := range []string{"local", "linearizable"} {
		var got api.DiagRecordsResponse
		if code := call(t, n, "GET", "/api/v1/diag/records?consistency="+consistency, "", &got); code != http.StatusOK {
			t.Fatalf("GET %s = %d", consistency, code)
		}
		if len(got.Records) != 1 || got.Records[0].Key != "k1" || got.Records[0].Value != "hello" || got.Records[0].Index != first.Index {
			t.Fatalf("%s records = %+v", consistency, got.Records)
		}
	}
}

// Bad requests are refused with a message and the field at fault, and leave
// the journal as it was.
func TestAPI_BadRequestsNameTheProblem(t *testing.T) {
	n := mustOpenNode(t)
	tests := []struct {
		name, method, path, body string
		wantCode                 int
		wantField, wantText      string
	}{
		{"no id", "POST", "/api/v1/diag/records", `{"key":"k","value":"v"}`, 400, "id", "id is required"},
		{"id too long", "POST", "/api/v1/diag/records", `{"id":"` + strings.Repeat("x", api.MaxCommandIDLen+1) + `","key":"k"}`, 400, "id", "longer than the limit"},
		{"key with slash", "POST", "/api/v1/diag/records", `{"id":"a","key":"a/b"}`, 400, "key", "must not contain"},
		{"empty key", "POST", "/api/v1/diag/records", `{"id":"a","key":""}`, 400, "key", "must not be empty"},
		{"not json", "POST", "/api/v1/diag/records", `{"id":`, 400, "body", "not the expected JSON"},
		{"unknown field", "POST", "/api/v1/diag/records", `{"id":"a","key":"k","colour":"red"}`, 400, "body", "colour"},
		{"empty body", "POST", "/api/v1/diag/records", ``, 400, "body", "body is empty"},
		{"two values", "POST", "/api/v1/diag/records", `{"id":"a","key":"k"} {}`, 400, "body", "more than one"},
		{"too large", "POST", "/api/v1/diag/records", `{"id":"a","key":"k","value":"` + strings.Repeat("v", api.MaxRequestBody) + `"}`, 413, "", "larger than"},
		{"bad consistency", "GET", "/api/v1/diag/records?consistency=eventual", "", 400, "consistency", `"eventual"`},
		{"join without id", "POST", "/api/v1/cluster/members", `{"addr":"127.0.0.1:9"}`, 400, "id", "id is required"},
		{"join with bad addr", "POST", "/api/v1/cluster/members", `{"id":"n2","addr":"nowhere"}`, 400, "addr", "host:port"},
		{"no such route", "GET", "/api/v1/nothing", "", 404, "", "no such route"},
		{"wrong method", "PUT", "/api/v1/diag/records", `{}`, 405, "", "not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e api.ErrorResponse
			code := call(t, n, tt.method, tt.path, tt.body, &e)
			if code != tt.wantCode || e.Field != tt.wantField || !strings.Contains(e.Error, tt.wantText) {
				t.Fatalf("got %d %+v; want %d, field %q, text containing %q", code, e, tt.wantCode, tt.wantField, tt.wantText)
			}
		})
	}
	var got api.DiagRecordsResponse
	call(t, n, "GET", "/api/v1/diag/records", "", &got)
	if len(got.Records) != 0 {
		t.Fatalf("bad requests wrote records: %+v", got.Records)
	}
}

func TestAPI_ClusterStatus(t *testing.T) {
	n := mustOpenNode(t)
	call(t, n, "POST", "/api/v1/diag/records", `{"id":"s1","key":"k","value":"v"}`, nil)
	var st cluster.Status
	if code := call(t, n, "GET", "/api/v1/cluster/status", "", &st); code != http.StatusOK {
		t.Fatalf("status = %d", code)
	}
	if st.State != "Leader" || st.LeaderID != st.NodeID || len(st.Members) != 1 || !st.Members[0].Self ||
		st.CommitIndex == 0 || st.AppliedIndex < st.CommitIndex-1 || st.Term == 0 {
		t.Fatalf("status = %+v", st)
	}
}
