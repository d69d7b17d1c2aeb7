package api_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

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
		{"two values", "POST", "/api/v1/diag/records", `{"id":"a","key":"k"} {}`, 400, "body", "more after the JSON value"},
		{"stray bracket", "POST", "/api/v1/diag/records", `{"id":"a","key":"k"}]`, 400, "body", "more after the JSON value"},
		{"stray brace", "POST", "/api/v1/diag/records", `{"id":"a","key":"k"}}`, 400, "body", "more after the JSON value"},
		{"duplicate key", "POST", "/api/v1/diag/records", `{"id":"a","key":"k","key":"other"}`, 400, "key", "appears twice"},
		{"key in capitals", "POST", "/api/v1/diag/records", `{"id":"a","KEY":"k"}`, 400, "KEY", `case-sensitive: write "key"`},
		{"too large", "POST", "/api/v1/diag/records", `{"id":"a","key":"k","value":"` + strings.Repeat("v", api.MaxRequestBody) + `"}`, 413, "body", "larger than the limit of 1048576 bytes"},
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

// TestAPI_BodyOverLimitGets413: a client that sends its whole body before
// reading the reply, as many do, reads a 413 that names the limit rather
// than a connection reset; one that asks for "100 Continue" gets the 413
// at once and sends nothing.
func TestAPI_BodyOverLimitGets413(t *testing.T) {
	n := mustServe(t)
	addr := strings.TrimPrefix(n.URL, "http://")
	const size = 8 << 20
	for _, tc := range []struct {
		name   string
		header string
		frame  func(w io.Writer, chunk []byte) error
		end    string
	}{
		{"content length", fmt.Sprintf("Content-Length: %d\r\n", size),
			func(w io.Writer, chunk []byte) error { _, err := w.Write(chunk); return err }, ""},
		{"chunked", "Transfer-Encoding: chunked\r\n",
			func(w io.Writer, chunk []byte) error {
				_, err := fmt.Fprintf(w, "%x\r\n%s\r\n", len(chunk), chunk)
				return err
			}, "0\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
			head := "POST /api/v1/diag/records HTTP/1.1\r\nHost: vigil\r\nAuthorization: Bearer " + adminToken(t, n) +
				"\r\nContent-Type: application/json\r\n" + tc.header + "\r\n"
			if _, err := io.WriteString(conn, head); err != nil {
				t.Fatal(err)
			}
			chunk := []byte(strings.Repeat(" ", 64<<10))
			for sent := 0; sent < size; sent += len(chunk) {
				if err := tc.frame(conn, chunk); err != nil {
					t.Fatalf("the connection broke after %d bytes of the body: %v", sent, err)
				}
			}
			if _, err := io.WriteString(conn, tc.end); err != nil {
				t.Fatal(err)
			}
			mustRead413(t, bufio.NewReader(conn))
		})
	}
	t.Run("expect 100-continue", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
		head := fmt.Sprintf("POST /api/v1/diag/records HTTP/1.1\r\nHost: vigil\r\nAuthorization: Bearer %s\r\n"+
			"Content-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", adminToken(t, n), size)
		if _, err := io.WriteString(conn, head); err != nil {
			t.Fatal(err)
		}
		mustRead413(t, bufio.NewReader(conn))
	})
}

func mustRead413(t *testing.T, r *bufio.Reader) {
	t.Helper()
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("no reply: %v", err)
	}
	defer resp.Body.Close()
	var e api.ErrorResponse
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatalf("%d: the reply is not JSON: %v", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusRequestEntityTooLarge || e.Field != "body" || !strings.Contains(e.Error, "1048576") {
		t.Fatalf("got %d %+v; want 413 naming the body and its limit", resp.StatusCode, e)
	}
}

// TestAPI_SecurityHeaders: every reply under /api/v1, to every route, an
// unknown path and a refused caller alike, carries the baseline security
// headers and is not cached.
func TestAPI_SecurityHeaders(t *testing.T) {
	n := mustServe(t)
	want := map[string]string{
		"X-Content-Type-Options":  "nosniff",
		"Cache-Control":           "no-store",
		"Referrer-Policy":         "no-referrer",
		"X-Frame-Options":         "DENY",
		"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
	}
	check := func(t *testing.T, method, path, token string) {
		t.Helper()
		req, err := http.NewRequest(method, n.URL+path, strings.NewReader(`{}`))
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
		resp.Body.Close()
		for k, v := range want {
			if got := resp.Header.Get(k); !strings.HasPrefix(got, v) {
				t.Errorf("%s %s (%d): %s is %q; want %q", method, path, resp.StatusCode, k, got, v)
			}
		}
	}
	for _, r := range apiRoutes(t, n) {
		method, path, _ := strings.Cut(r, " ")
		path = routeParamRE.ReplaceAllString(path, "walk-$1")
		check(t, method, path, adminToken(t, n))
		check(t, method, path, "")
	}
	check(t, "GET", "/api/v1/nothing", adminToken(t, n))
	check(t, "PUT", "/api/v1/diag/records", adminToken(t, n))
}
