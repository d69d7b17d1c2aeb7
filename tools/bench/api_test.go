package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// The API token goes on API requests only, and never replaces the
// Authorization a request carries already (the node's setup token).
func TestVigilHTTP_SetsTheAPITokenOnAPIRequests(t *testing.T) {
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("Authorization")
	}))
	defer srv.Close()
	for _, tc := range []struct {
		name, token, path, own, want string
	}{
		{"API request with a token", "vgt_abc", "/api/v1/cluster/status", "", "Bearer vgt_abc"},
		{"API request, open API", "", "/api/v1/cluster/status", "", ""},
		{"console request", "vgt_abc", "/ui/events", "", ""},
		{"setup request with its own token", "vgt_abc", "/api/v1/x", "Bearer setup", "Bearer setup"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, srv.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.own != "" {
				req.Header.Set("Authorization", tc.own)
			}
			resp, err := vigilHTTP{client: srv.Client(), apiToken: tc.token}.do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if a := <-got; a != tc.want {
				t.Errorf("Authorization %q, want %q", a, tc.want)
			}
		})
	}
}
