package uitest

import (
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Session is a console client without a browser: it keeps the cookies
// itself, since net/http's jar sends no Secure cookie over HTTP.
type Session struct {
	t    *testing.T
	base string
	// Cookies are the cookies the console set, by name.
	Cookies map[string]string
	// CSRF is the CSRF token of the page SignIn landed on.
	CSRF   string
	client *http.Client
}

// NewSession returns a client of the console at base (http://host:port),
// not signed in. It follows no redirect.
func NewSession(t *testing.T, base string) *Session {
	return &Session{t: t, base: base, Cookies: map[string]string{},
		client: &http.Client{Timeout: 15 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// Do sends a request with the session's cookies and the same-origin
// Origin header for a POST, unless headers say otherwise (an empty value
// removes a header), and keeps the cookies it is given.
func (s *Session) Do(method, path string, form url.Values, headers map[string]string) (*http.Response, string) {
	s.t.Helper()
	if form == nil {
		return s.send(method, path, nil, "", headers, true)
	}
	return s.send(method, path, strings.NewReader(form.Encode()), "application/x-www-form-urlencoded", headers, true)
}

// DoBody is Do with a raw body (JSON for the REST API); it keeps no
// cookie from the reply.
func (s *Session) DoBody(method, path, body string, headers map[string]string) (*http.Response, string) {
	s.t.Helper()
	return s.send(method, path, strings.NewReader(body), "", headers, false)
}

func (s *Session) send(method, path string, body io.Reader, contentType string, headers map[string]string, keep bool) (*http.Response, string) {
	s.t.Helper()
	req, err := http.NewRequest(method, s.base+path, body)
	if err != nil {
		s.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if method == http.MethodPost {
		req.Header.Set("Origin", s.base)
	}
	var parts []string
	for k, v := range s.Cookies {
		parts = append(parts, k+"="+v)
	}
	if len(parts) > 0 {
		req.Header.Set("Cookie", strings.Join(parts, "; "))
	}
	for k, v := range headers {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, c := range resp.Cookies() {
		if !keep {
			break
		}
		if c.MaxAge < 0 || c.Value == "" {
			delete(s.Cookies, c.Name)
		} else {
			s.Cookies[c.Name] = c.Value
		}
	}
	return resp, string(b)
}

var (
	csrfMetaRE  = regexp.MustCompile(`<meta name="csrf-token" content="([^"]*)">`)
	csrfInputRE = regexp.MustCompile(`name="csrf" value="([^"]*)"`)
)

// SignIn signs in through the sign-in form and keeps the page's CSRF
// token; it returns the final response's status.
func (s *Session) SignIn(user, password string) int {
	s.t.Helper()
	_, page := s.Do(http.MethodGet, "/ui/login", nil, nil)
	m := csrfInputRE.FindStringSubmatch(page)
	if m == nil {
		s.t.Fatalf("no CSRF token on the sign-in page:\n%s", page)
	}
	resp, _ := s.Do(http.MethodPost, "/ui/login", url.Values{"user": {user}, "password": {password}, "csrf": {m[1]}, "next": {"/ui/"}}, nil)
	if resp.StatusCode != http.StatusSeeOther {
		return resp.StatusCode
	}
	resp, page = s.Do(http.MethodGet, "/ui/", nil, nil)
	if mm := csrfMetaRE.FindStringSubmatch(page); mm != nil {
		s.CSRF = mm[1]
	}
	return resp.StatusCode
}

// PageCSRF returns the CSRF token a signed-in console page carries in its
// csrf-token meta element, or "".
func PageCSRF(page string) string {
	if m := csrfMetaRE.FindStringSubmatch(page); m != nil {
		return m[1]
	}
	return ""
}

// FormCSRF returns the CSRF token of the first form in page (the sign-in
// form's), or "".
func FormCSRF(page string) string {
	if m := csrfInputRE.FindStringSubmatch(page); m != nil {
		return m[1]
	}
	return ""
}
