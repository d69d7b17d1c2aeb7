package console_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/monitoring/monitoringtest"
	"github.com/vigilarc/vigil/ui/uitest"
)

// On a new installation the sign-in page says that no account exists yet
// and how to make the first administrator; once one exists it says
// nothing of the kind. The bare address leads to the console.
func TestLogin_FirstBootSaysHowToMakeTheFirstAdmin(t *testing.T) {
	srv := uitest.MustServe(t, monitoringtest.MustService(t, monitoringtest.Options{}), uitest.Options{})
	s := uitest.NewSession(t, srv.URL)
	resp, _ := s.Do(http.MethodGet, "/", nil, nil)
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/ui/" {
		t.Fatalf("GET / = %d to %q, want 302 to /ui/", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, page := s.Do(http.MethodGet, "/ui/login", nil, nil)
	if !strings.Contains(page, `id="no-accounts"`) || !strings.Contains(page, "vigil operator create --admin") {
		t.Fatalf("the first sign-in page does not say how to make the first admin:\n%s", page)
	}
	if _, err := srv.Node.Service.PutOperator(context.Background(), "first-admin", "local-setup", monitoring.PutOperatorRequest{
		ID: "ada", Name: "Ada Lovelace", Role: monitoring.RoleAdmin, Password: "a long first passphrase", Create: true}); err != nil {
		t.Fatal(err)
	}
	if _, page := s.Do(http.MethodGet, "/ui/login", nil, nil); strings.Contains(page, `id="no-accounts"`) {
		t.Fatal("the sign-in page still says no account exists")
	}
	if code := s.SignIn("ada", "a long first passphrase"); code != http.StatusOK {
		t.Fatalf("the first admin cannot sign in: %d", code)
	}
}
