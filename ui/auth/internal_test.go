package auth

import (
	"strings"
	"testing"
	"time"
)

func TestSameOrigin(t *testing.T) {
	allowed := []string{"https://vigil.example.org"}
	for _, tc := range []struct {
		origin, host string
		want         bool
	}{
		{"http://127.0.0.1:8080", "127.0.0.1:8080", true},
		{"https://127.0.0.1:8080", "127.0.0.1:8080", true},
		{"http://127.0.0.1:8081", "127.0.0.1:8080", false},
		{"http://127.0.0.1:8080.evil.example", "127.0.0.1:8080", false},
		{"https://vigil.example.org", "10.0.0.5:8080", true},
		{"https://vigil.example.org/", "10.0.0.5:8080", true},
		{"https://evil.example", "10.0.0.5:8080", false},
		{"null", "127.0.0.1:8080", false},
		{"", "127.0.0.1:8080", false},
		{"ftp://127.0.0.1:8080", "127.0.0.1:8080", false},
	} {
		if got := sameOrigin(tc.origin, tc.host, allowed); got != tc.want {
			t.Errorf("sameOrigin(%q, %q) = %v", tc.origin, tc.host, got)
		}
	}
}

func TestCSRFToken_BoundToTheSession(t *testing.T) {
	a, b := csrfToken("session-a"), csrfToken("session-b")
	if a == b || a != csrfToken("session-a") || strings.Contains(a, "session") {
		t.Fatalf("tokens %q %q", a, b)
	}
	if !validCSRF("session-a", a) || validCSRF("session-a", b) || validCSRF("session-a", "") {
		t.Fatal("validCSRF is wrong")
	}
}

func TestRateLimiter_BurstThenRefill(t *testing.T) {
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	l := newRateLimiter(3, 10*time.Second)
	l.now = func() time.Time { return now }
	for i := range 3 {
		if ok, _ := l.allow("192.0.2.1"); !ok {
			t.Fatalf("attempt %d refused", i+1)
		}
	}
	ok, wait := l.allow("192.0.2.1")
	if ok || wait != "10" {
		t.Fatalf("the fourth attempt: %v, wait %q", ok, wait)
	}
	if ok, _ := l.allow("192.0.2.2"); !ok {
		t.Fatal("another address was limited")
	}
	now = now.Add(10 * time.Second)
	if ok, _ := l.allow("192.0.2.1"); !ok {
		t.Fatal("no refill")
	}
}
