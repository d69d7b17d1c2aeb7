package console_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/monitoring/monitoringtest"
	"github.com/vigilarc/vigil/cluster/clustertest"
	"github.com/vigilarc/vigil/ui/enrol"
	"github.com/vigilarc/vigil/ui/server"
	"github.com/vigilarc/vigil/ui/uitest"
)

var (
	bundleRE   = regexp.MustCompile(`(?s)<pre class="bundle mono" id="bundle">(.*?)</pre>`)
	qrImgRE    = regexp.MustCompile(`<img src="data:image/png;base64,([A-Za-z0-9+/=&#;]+)"[^>]*id="bundle-qr-img">`)
	qrDownload = regexp.MustCompile(`<a class="button" href="data:image/png;base64,([A-Za-z0-9+/=&#;]+)" download="([^"]+)" id="download-qr">`)
)

// enrolled is what the page shows once after a device is enrolled: the
// bundle as the page's JSON and as the QR code's text.
type enrolled struct {
	page           string
	bundle         enrol.Bundle
	bundleText     string
	qrText, qrFile string
}

// mustCredentialsPage reads the one-time credentials page: the bundle's
// JSON, and the QR code's PNG decoded by a QR reader; the download link
// must be the same PNG.
func mustCredentialsPage(t *testing.T, page string) enrolled {
	t.Helper()
	e := enrolled{page: page}
	m := bundleRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no bundle on the page:\n%s", page)
	}
	e.bundleText = html.UnescapeString(m[1])
	if err := json.Unmarshal([]byte(e.bundleText), &e.bundle); err != nil {
		t.Fatalf("the bundle is not JSON: %v\n%s", err, e.bundleText)
	}
	img, dl := qrImgRE.FindStringSubmatch(page), qrDownload.FindStringSubmatch(page)
	if img == nil || dl == nil {
		t.Fatalf("no QR code, or no link to download it, on the page:\n%s", page)
	}
	if img[1] != dl[1] {
		t.Fatal("the download is another PNG than the QR code shown")
	}
	png, err := base64.StdEncoding.DecodeString(html.UnescapeString(img[1]))
	if err != nil {
		t.Fatal(err)
	}
	e.qrText, e.qrFile = uitest.MustDecodeQR(t, png), dl[2]
	return e
}

// Enrolling a device on one node of three shows, this once, its secret
// and its bundle as JSON and as a QR code: the QR code reads back as the
// same bundle (compact), with the secret, the CA certificate, and the MQTT
// listeners of all three nodes, TLS first. The device signs in with it;
// a later view of the page shows neither the secret nor a QR code.
func TestEnrol_BundleAndQRCodeShownOnce(t *testing.T) {
	ca := uitest.MustCACertPEM(t)
	c := monitoringtest.MustCluster(t, 3, monitoringtest.Options{})
	var wantBrokers []string
	consoles := make([]*uitest.Server, c.Len())
	for i := range consoles {
		h := fmt.Sprintf("vigil-%d.care.example.org", i+1)
		// ssl://, not mqtts://: the console-node records accept tcp, ssl,
		// ws and wss only (monitoring.validMQTTURL).
		mqtt := []string{"tcp://" + h + ":1883", "ssl://" + h + ":8883", "wss://" + h + ":8084"}
		wantBrokers = append(wantBrokers, mqtt...)
		consoles[i] = uitest.MustServe(t, c.Node(i), uitest.Options{MQTTURLs: mqtt, CACertPEM: ca})
	}
	svc := consoles[0].Node.Service
	uitest.MustSeed(t, svc)
	if _, err := svc.PutOperator(context.Background(), "enrol-ada", "setup", monitoring.PutOperatorRequest{
		ID: "ada", Name: "Ada Lovelace", Role: monitoring.RoleAdmin, Password: adaPassword, Create: true}); err != nil {
		t.Fatal(err)
	}
	ada := uitest.NewSession(t, consoles[0].URL)
	if code := ada.SignIn("ada", adaPassword); code != http.StatusOK {
		t.Fatalf("sign in: %d", code)
	}
	clustertest.PollUntil(t, 30*time.Second, "the other consoles registered", func() bool {
		_, peers := ticketOf(t, ada)
		return len(peers) == 2
	})

	resp, page := ada.Do(http.MethodPost, "/ui/admin/devices", url.Values{"csrf": {ada.CSRF}, "cmd_id": {"enrol-1"}, "new": {"1"},
		"id": {"phone-amira-2"}, "kind": {"phone_app"}, "org_id": {"northcare"}, "worker_id": {"w-amira"}, "label": {"Amira's new phone"}}, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("enrol: %d\n%s", resp.StatusCode, page)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("the credentials page may be cached: Cache-Control %q", cc)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "img-src 'self' data:") {
		t.Errorf("the CSP does not show a data: image: %q", csp)
	}
	e := mustCredentialsPage(t, page)
	b := e.bundle
	if !svc.CheckDeviceSecret("phone-amira-2", b.Password) || !strings.Contains(page, `value="`+b.Password+`"`) {
		t.Fatalf("the bundle's password %q is not the device's secret shown on the page", b.Password)
	}
	if b.DeviceID != "phone-amira-2" || b.WorkerID != "w-amira" || b.Format != enrol.Format || b.CACert != string(ca) {
		t.Errorf("bundle:\n%s", e.bundleText)
	}
	if got := slices.Sorted(slices.Values(b.Brokers)); !reflect.DeepEqual(got, slices.Sorted(slices.Values(wantBrokers))) {
		t.Errorf("brokers %q, want every node's %q", b.Brokers, wantBrokers)
	}
	for i, u := range b.Brokers {
		if tls := enrol.IsTLS(u); tls != (i < 6) {
			t.Errorf("brokers not TLS first: %q", b.Brokers)
			break
		}
	}
	var fromQR enrol.Bundle
	if err := json.Unmarshal([]byte(e.qrText), &fromQR); err != nil {
		t.Fatalf("the QR code is not JSON: %v\n%s", err, e.qrText)
	}
	if !reflect.DeepEqual(fromQR, b) {
		t.Errorf("the QR code holds another bundle than the page:\n%s\n%s", e.qrText, e.bundleText)
	}
	if strings.Contains(e.qrText, "\n") || !strings.Contains(e.qrText, `"ca_cert":"-----BEGIN CERTIFICATE-----\n`) {
		t.Errorf("the QR code is not the compact JSON with the CA:\n%s", e.qrText)
	}
	if e.qrFile != "vigil-device-phone-amira-2.png" {
		t.Errorf("QR download named %q", e.qrFile)
	}

	// Later views, on this node and another, show neither.
	for _, s := range []*uitest.Session{ada, uitest.NewSession(t, consoles[1].URL)} {
		if s != ada {
			if code := s.SignIn("ada", adaPassword); code != http.StatusOK {
				t.Fatalf("sign in on node 2: %d", code)
			}
		}
		resp, page := s.Do(http.MethodGet, "/ui/admin/devices/phone-amira-2", nil, nil)
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, `id="new-credentials"`) {
			t.Fatalf("device page: %d\n%s", resp.StatusCode, page)
		}
		for _, leak := range []string{b.Password, `id="bundle"`, "bundle-qr", "data:image/png", "mqtt_password"} {
			if strings.Contains(page, leak) {
				t.Errorf("a later view of the device page shows %q", leak)
			}
		}
	}
	// Resending the form shows no secret either.
	resp, page = ada.Do(http.MethodPost, "/ui/admin/devices", url.Values{"csrf": {ada.CSRF}, "cmd_id": {"enrol-1"}, "new": {"1"},
		"id": {"phone-amira-2"}, "kind": {"phone_app"}, "org_id": {"northcare"}, "worker_id": {"w-amira"}}, nil)
	if resp.StatusCode == http.StatusOK || strings.Contains(page, b.Password) || strings.Contains(page, "data:image/png") {
		t.Errorf("a resent enrolment: %d, and shows the secret or a QR code", resp.StatusCode)
	}

	// New credentials: a new secret in a new bundle and QR code; the old
	// secret stops working.
	resp, page = ada.Do(http.MethodPost, "/ui/admin/devices/phone-amira-2/credentials", url.Values{"csrf": {ada.CSRF}, "cmd_id": {"new-creds-1"}}, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("new credentials: %d\n%s", resp.StatusCode, page)
	}
	e2 := mustCredentialsPage(t, page)
	if e2.bundle.Password == b.Password || !strings.Contains(e2.qrText, `"mqtt_password":"`+e2.bundle.Password+`"`) ||
		!svc.CheckDeviceSecret("phone-amira-2", e2.bundle.Password) || svc.CheckDeviceSecret("phone-amira-2", b.Password) {
		t.Errorf("new credentials: the QR code or the secrets are wrong:\n%s", e2.qrText)
	}
}

// A console without a CA certificate writes no ca_cert; one given a key
// instead of a certificate refuses to start.
func TestEnrol_NoCANoField(t *testing.T) {
	srv := uitest.MustServe(t, monitoringtest.MustService(t, monitoringtest.Options{}), uitest.Options{MQTTURLs: []string{"tcp://10.0.0.5:1883"}})
	svc := srv.Node.Service
	uitest.MustSeed(t, svc)
	if _, err := svc.PutOperator(context.Background(), "enrol-ada", "setup", monitoring.PutOperatorRequest{
		ID: "ada", Name: "Ada Lovelace", Role: monitoring.RoleAdmin, Password: adaPassword, Create: true}); err != nil {
		t.Fatal(err)
	}
	ada := uitest.NewSession(t, srv.URL)
	if code := ada.SignIn("ada", adaPassword); code != http.StatusOK {
		t.Fatalf("sign in: %d", code)
	}
	resp, page := ada.Do(http.MethodPost, "/ui/admin/devices/d-ben/credentials", url.Values{"csrf": {ada.CSRF}, "cmd_id": {"creds-ben"}}, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("new credentials: %d\n%s", resp.StatusCode, page)
	}
	e := mustCredentialsPage(t, page)
	if strings.Contains(e.bundleText, "ca_cert") || strings.Contains(e.qrText, "ca_cert") || !reflect.DeepEqual(e.bundle.Brokers, []string{"tcp://10.0.0.5:1883"}) {
		t.Errorf("bundle without a CA:\n%s\n%s", e.bundleText, e.qrText)
	}
	key := []byte("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB8=\n-----END EC PRIVATE KEY-----\n")
	if _, err := server.New(server.Config{NodeID: "n1", CACertPEM: slices.Concat(uitest.MustCACertPEM(t), key)}, svc, uitest.Cluster(srv.Node)); !errors.Is(err, enrol.ErrNotCertificate) {
		t.Errorf("a CA certificate with a key in it: %v, want ErrNotCertificate", err)
	}
}
