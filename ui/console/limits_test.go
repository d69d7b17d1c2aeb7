package console_test

import (
	"io"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring/monitoringtest"
	"github.com/vigilarc/vigil/ui/console"
	"github.com/vigilarc/vigil/ui/uitest"
)

// zeros is an endless body that costs no memory.
type zeros struct{ n int64 }

func (z *zeros) Read(p []byte) (int, error) {
	if z.n <= 0 {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), z.n))
	clear(p[:n])
	z.n -= int64(n)
	return n, nil
}

func tempMultipartFiles(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir(os.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "multipart-") {
			n++
		}
	}
	return n
}

// TestLimits_AnonymousUploadsRefusedBeforeReading: the sign-in form takes
// no upload. A 50 MB multipart body gets 413 at once, without a temporary
// file or the heap growing; a multipart body of unknown length gets 415;
// a URL-encoded body over the limit gets 413 rather than being read as
// empty fields.
func TestLimits_AnonymousUploadsRefusedBeforeReading(t *testing.T) {
	srv := uitest.MustServe(t, monitoringtest.MustService(t, monitoringtest.Options{}), uitest.Options{})
	client := &http.Client{Timeout: 10 * time.Second}
	files := tempMultipartFiles(t)
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	post := func(body io.Reader, length int64, contentType string) (int, string, time.Duration) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/ui/login", body)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = length
		req.Header.Set("Content-Type", contentType)
		req.Header.Set("Origin", srv.URL)
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), time.Since(start)
	}
	const mp = "multipart/form-data; boundary=xyz"
	big := int64(50 << 20)
	head := "--xyz\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a\"\r\n\r\n"
	body := io.MultiReader(strings.NewReader(head), &zeros{big})
	code, text, took := post(body, int64(len(head))+big, mp)
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(text, "larger than the console takes") || took > 5*time.Second {
		t.Fatalf("50 MB multipart: %d %q after %s, want 413 at once", code, text, took)
	}
	// The length unknown (chunked): refused for being multipart.
	body = io.MultiReader(strings.NewReader(head), &zeros{big})
	if code, text, took := post(body, -1, mp); code != http.StatusUnsupportedMediaType || !strings.Contains(text, "multipart") || took > 5*time.Second {
		t.Fatalf("chunked multipart: %d %q after %s, want 415", code, text, took)
	}
	// URL-encoded, over the limit, the length unknown.
	form := "user=" + strings.Repeat("a", console.MaxFormBytes) + "&password=x"
	if code, text, _ := post(strings.NewReader(form), -1, "application/x-www-form-urlencoded"); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("a large URL-encoded form: %d %q, want 413", code, text)
	}
	// A normal form is still read.
	if code, _, _ := post(strings.NewReader(url.Values{"user": {"x"}, "password": {"y"}}.Encode()), -1, "application/x-www-form-urlencoded"); code != http.StatusForbidden {
		t.Fatalf("a small form without a token: %d, want 403", code)
	}

	if got := tempMultipartFiles(t); got != files {
		t.Fatalf("%d temporary multipart files, were %d", got, files)
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 16<<20 {
		t.Fatalf("the heap grew by %d MiB", grown>>20)
	}
}
