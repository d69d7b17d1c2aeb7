package auth_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/monitoring/monitoringtest"
	"github.com/vigilarc/vigil/ui/auth"
)

// Wrong bearer tokens are counted per address: past twenty the API answers
// 429 with Retry-After before it looks at any token from that address,
// while other addresses, and the appliance itself on loopback, go on as
// before.
func TestAPIAuth_WrongTokensFromOneAddressAreLimited(t *testing.T) {
	svc := monitoringtest.MustService(t, monitoringtest.Options{}).Service
	made, err := svc.CreateAPIToken(context.Background(), "limit-token", "test", "wallboard", monitoring.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	az := auth.New(auth.Config{NodeID: "limit"}, svc)
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.GET("/api/v1/probe", az.APIAuth(), func(c *gin.Context) { c.Status(http.StatusNoContent) })
	send := func(addr, token string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/api/v1/probe", nil)
		req.RemoteAddr = addr + ":40000"
		req.Header.Set("Authorization", "Bearer "+token)
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		return w
	}
	right, wrong, unknown := made.Secret, made.Secret+"x", "vgt_0123456789abcdef_madeup"

	const lan, other = "192.0.2.7", "192.0.2.8"
	if w := send(lan, right); w.Code != http.StatusNoContent {
		t.Fatalf("the right token: %d %s", w.Code, w.Body)
	}
	for i := range 20 {
		tok := wrong
		if i%2 == 1 {
			tok = unknown
		}
		if w := send(lan, tok); w.Code != http.StatusUnauthorized {
			t.Fatalf("wrong token %d: %d %s; want 401", i+1, w.Code, w.Body)
		}
	}
	w := send(lan, wrong)
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("the 21st wrong token: %d %s; want 429", w.Code, w.Body)
	}
	if s, err := strconv.Atoi(w.Header().Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("429 with Retry-After %q", w.Header().Get("Retry-After"))
	}
	if w := send(lan, right); w.Code != http.StatusTooManyRequests {
		t.Errorf("the right token from the limited address: %d; want 429 (not looked at)", w.Code)
	}
	if w := send(other, right); w.Code != http.StatusNoContent {
		t.Errorf("the right token from another address: %d %s", w.Code, w.Body)
	}
	if w := send(other, wrong); w.Code != http.StatusUnauthorized {
		t.Errorf("a wrong token from another address: %d; want 401", w.Code)
	}
	for i := range 30 {
		if w := send("127.0.0.1", unknown); w.Code != http.StatusUnauthorized {
			t.Fatalf("wrong token %d from loopback: %d; want 401 (never limited)", i+1, w.Code)
		}
	}
	if w := send("127.0.0.1", right); w.Code != http.StatusNoContent {
		t.Errorf("the right token from loopback after 30 wrong ones: %d", w.Code)
	}
}
