package browsertest

import (
	"context"
	"crypto/sha256"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/vigilarc/vigil/appliance/appliancetest"
	"github.com/vigilarc/vigil/cluster/clustertest"
	"github.com/vigilarc/vigil/provisioning"
)

// lanIP is an IPv4 address of this machine that is not loopback, as an
// operator's PC would reach an appliance by; none skips the test.
func lanIP(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skip(err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() && !ipn.IP.IsLinkLocalUnicast() {
			return ipn.IP.String()
		}
	}
	t.Skip("this machine has no IPv4 address but loopback")
	return ""
}

// certutilPath is NSS's certutil (Debian's libnss3-tools, make deps),
// which installs a CA in the store chromium reads on Linux; installed here
// if missing and possible.
func certutilPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("certutil"); err == nil {
		return p
	}
	if apt, err := exec.LookPath("apt-get"); err == nil && os.Geteuid() == 0 {
		out, err := exec.Command(apt, "install", "-y", "-qq", "libnss3-tools").CombinedOutput()
		if p, lerr := exec.LookPath("certutil"); lerr == nil {
			return p
		}
		t.Fatalf("certutil is missing and apt-get install libnss3-tools failed (%v): %s", err, lastLines(string(out), 5))
	}
	t.Skip("certutil is missing (Debian's libnss3-tools): run make deps")
	return ""
}

// browserWithHome starts chromium with home as its HOME, so that it reads
// the NSS certificate store in home/.pki/nssdb, and returns a tab.
func browserWithHome(t *testing.T, name, home, base string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
		chromedp.Env("HOME="+home),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("cannot start chromium: %v", err)
	}
	t.Cleanup(func() { cancel(); cancelAlloc() })
	return &browser{t: t, name: name, ctx: ctx, base: base}
}

// An operator's PC with the cluster CA installed (in the NSS store that
// chromium reads, as docs/install.md says) opens the console over HTTPS at
// the appliance's LAN address with no certificate warning, signs in, stays
// signed in (the Secure cookie is kept, as it was not over plain HTTP on a
// LAN address), and finds on the cluster page the CA's fingerprint it was
// given. The same browser without the CA gets the certificate error, and
// a plain http:// address on the LAN is redirected to https://.
func TestBrowser_ConsoleOverHTTPSWithTheClusterCA(t *testing.T) {
	ip := lanIP(t)
	certutil := certutilPath(t)
	cfg := testConfig(t, clustertest.FreeAddr(t))
	cfg.HTTPAddr = ip + ":0" // http_tls auto: HTTPS, as on any LAN address
	n := appliancetest.MustNode(t, &cfg)
	mustAdmin(t, n.Service())
	base := "https://" + n.HTTPAddr()
	if n.ConsoleURL() != base {
		t.Fatalf("console URL %s, want %s", n.ConsoleURL(), base)
	}

	// The PC's certificate store, with the cluster CA installed as a
	// trusted root.
	caFile := filepath.Join(n.DataDir(), provisioning.TrustDir, "ca.crt")
	home := t.TempDir()
	db := "sql:" + filepath.Join(home, ".pki", "nssdb")
	if err := os.MkdirAll(filepath.Join(home, ".pki", "nssdb"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"-N", "-d", db, "--empty-password"},
		{"-A", "-d", db, "-n", "Vigil cluster CA", "-t", "C,,", "-i", caFile},
	} {
		if out, err := exec.Command(certutil, args...).CombinedOutput(); err != nil {
			t.Fatalf("certutil %v: %v: %s", args, err, out)
		}
	}

	b := browserWithHome(t, "operator PC", home, base)
	b.SignIn("ada", adaPassword)
	b.navigate("/ui/cluster")
	b.waitJS("the cluster page", `!!document.getElementById("ca-fingerprint")`)
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(caPEM)
	sum := sha256.Sum256(blk.Bytes)
	want := strings.ToUpper(strings.Join(strings.Split(fmt.Sprintf("% x", sum[:]), " "), ":"))
	if got := eval[string](b, `document.getElementById("ca-fingerprint").textContent`); got != want {
		t.Fatalf("the cluster page shows fingerprint %s, want %s", got, want)
	}
	// Still signed in after the move: the Secure cookie was kept.
	if got := eval[string](b, `location.pathname`); got != "/ui/cluster" {
		t.Fatalf("after signing in over HTTPS the browser is at %s", got)
	}
	if !eval[bool](b, `location.protocol === "https:"`) {
		t.Fatal("not on HTTPS")
	}
	b.shot("https-cluster-ca")

	// Without the CA, the same address is a certificate error.
	bare := browserWithHome(t, "PC without the CA", t.TempDir(), base)
	nctx, ncancel := context.WithTimeout(bare.ctx, browserTimeout)
	defer ncancel()
	err = chromedp.Do(nctx, chromedp.Navigate(base+"/ui/login"))
	if err == nil || !strings.Contains(err.Error(), "ERR_CERT") {
		t.Fatalf("a browser without the CA opened the console: %v", err)
	}

	// http:// on the LAN address is sent to https://.
	plain := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := plain.Get("http://" + n.HTTPAddr() + "/ui/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != base+"/ui/" {
		t.Fatalf("http:// on the LAN: %s to %q", resp.Status, resp.Header.Get("Location"))
	}
}
