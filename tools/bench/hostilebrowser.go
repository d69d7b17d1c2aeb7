package main

// A browser for the hostile part: it signs in to the console from an
// address of its own, keeps the sign-in form's CSRF cookie and the
// known-browser cookie the console gives at a sign-in, and reads the
// answer's status and the sign-in page's error text.

import (
	"context"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/vigilarc/vigil/ui/console"
)

// browser is one browser at one address.
type browser struct {
	http    *http.Client
	csrf    *http.Cookie // the sign-in form's
	known   *http.Cookie // vigil_browser, once signed in
	session *http.Cookie
}

func newBrowser(from net.IP) *browser {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	d := &net.Dialer{Timeout: hostileIOTimeout, LocalAddr: &net.TCPAddr{IP: from}}
	tr.DialContext = d.DialContext
	return &browser{http: &http.Client{
		Transport: tr,
		Timeout:   60 * time.Second,
		// A sign-in answers 303: the browser reads its cookies, it does not
		// follow it.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// open loads n's sign-in page for its CSRF cookie.
func (b *browser) open(ctx context.Context, n *node) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.httpAddr+console.Prefix+"/login", nil)
	if err != nil {
		return err
	}
	resp, err := vigilHTTP{client: b.http}.do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	b.csrf = cookieNamed(resp.Cookies(), "vigil_login")
	return nil
}

// loginAnswer is the console's answer to one sign-in.
type loginAnswer struct {
	code    int    // 0 if none came
	message string // the sign-in page's error text
	errText string // why no answer came
	took    time.Duration
}

// status is "303", "401" or what ended the wait.
func (a loginAnswer) status() string {
	if a.code == 0 {
		return a.errText
	}
	return strconv.Itoa(a.code)
}

// loginError finds the sign-in page's error text.
var loginError = regexp.MustCompile(`(?s)id="login-error">(.*?)</p>`)

// signIn posts the sign-in form with user and password.
func (b *browser) signIn(ctx context.Context, n *node, user, password string) loginAnswer {
	csrf := ""
	if b.csrf != nil {
		csrf = b.csrf.Value
	}
	form := url.Values{"user": {user}, "password": {password}, "csrf": {csrf}, "next": {console.Prefix + "/"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+n.httpAddr+console.Prefix+"/login", strings.NewReader(form.Encode()))
	if err != nil {
		return loginAnswer{errText: err.Error()}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "http://"+n.httpAddr)
	for _, c := range []*http.Cookie{b.csrf, b.known} {
		if c != nil {
			req.AddCookie(c)
		}
	}
	t0 := time.Now()
	resp, err := vigilHTTP{client: b.http}.do(req)
	if err != nil {
		return loginAnswer{errText: closedText(err), took: time.Since(t0)}
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	a := loginAnswer{code: resp.StatusCode, took: time.Since(t0)}
	if m := loginError.FindSubmatch(body); m != nil {
		a.message = html.UnescapeString(strings.TrimSpace(string(m[1])))
	}
	if c := cookieNamed(resp.Cookies(), "vigil_browser"); c != nil {
		b.known = c
	}
	if c := cookieNamed(resp.Cookies(), "vigil_session"); c != nil {
		b.session = c
	}
	if c := cookieNamed(resp.Cookies(), "vigil_login"); c != nil {
		b.csrf = c
	}
	return a
}
