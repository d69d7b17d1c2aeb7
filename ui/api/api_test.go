package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/vigilarc/vigil/ui"
	"github.com/vigilarc/vigil/ui/api"
)

func TestAPI_DiagRecordAppliedOnceAndRead(t *testing.T) {
	n := mustServe(t)
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
	n := mustServe(t)
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
	n := mustServe(t)
	call(t, n, "POST", "/api/v1/diag/records", `{"id":"s1","key":"k","value":"v"}`, nil)
	var st ui.ClusterStatus
	if code := call(t, n, "GET", "/api/v1/cluster/status", "", &st); code != http.StatusOK {
		t.Fatalf("status = %d", code)
	}
	if st.State != "Leader" || st.LeaderID != st.NodeID || len(st.Members) != 1 || !st.Members[0].Self ||
		st.CommitIndex == 0 || st.AppliedIndex < st.CommitIndex-1 || st.Term == 0 {
		t.Fatalf("status = %+v", st)
	}
}
