package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/monitoring/monitoringtest"
	"github.com/vigilarc/vigil/ui/api"
	"github.com/vigilarc/vigil/ui/enrol"
	"github.com/vigilarc/vigil/ui/uitest"
)

// postRaw posts body to path with the node's admin token and headers, and
// returns the reply as it is.
func postRaw(t *testing.T, n *apiNode, path, body string, headers map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, n.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken(t, n))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// A new device secret comes with the device's configuration bundle: in
// the JSON reply, or as the PNG of its QR code (?format=qr, or Accept:
// image/png), which reads back as the bundle with the secret, the CA
// certificate and the brokers, TLS first. A format the API does not know
// issues no secret; a retried command shows none again.
func TestDeviceSecret_BundleAndQRCode(t *testing.T) {
	ca := uitest.MustCACertPEM(t)
	brokers := []string{"tcp://10.0.0.5:1883", "ws://10.0.0.5:8083", "ssl://10.0.0.5:8883", "wss://10.0.0.5:8084"}
	n := &apiNode{Server: uitest.MustServe(t, monitoringtest.MustService(t, monitoringtest.Options{}),
		uitest.Options{MQTTURLs: brokers, CACertPEM: ca})}
	n.admin = mustToken(t, n, "test-admin", monitoring.RoleAdmin)
	fx := uitest.MustSeed(t, n.svc())
	wantBrokers := []string{"ssl://10.0.0.5:8883", "wss://10.0.0.5:8084", "tcp://10.0.0.5:1883", "ws://10.0.0.5:8083"}
	check := func(what string, b *enrol.Bundle, secret string) {
		t.Helper()
		if b == nil {
			t.Fatalf("%s: no bundle", what)
		}
		if b.DeviceID != "d-amira" || b.Password != secret || b.CACert != string(ca) || !reflect.DeepEqual(b.Brokers, wantBrokers) ||
			b.Format != enrol.Format || b.WorkerID != fx.Amira.Worker {
			t.Errorf("%s: bundle %+v", what, b)
		}
		if !n.svc().CheckDeviceSecret("d-amira", secret) {
			t.Errorf("%s: the secret %q is not the device's", what, secret)
		}
	}

	var out api.DeviceSecretResponse
	raw := mustSend(t, n, http.StatusOK, http.MethodPost, "/api/v1/devices/d-amira/secret", obj{"id": "secret-json"}, &out)
	if out.DeviceID != "d-amira" || out.Secret == "" || !strings.Contains(raw, `"ca_cert":"-----BEGIN CERTIFICATE-----\n`) {
		t.Fatalf("reply %s", raw)
	}
	check("JSON", out.Bundle, out.Secret)

	for _, tc := range []struct {
		name, query string
		headers     map[string]string
	}{
		{"format=qr", "?format=qr", nil},
		{"Accept: image/png", "", map[string]string{"Accept": "image/png"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := postRaw(t, n, "/api/v1/devices/d-amira/secret"+tc.query, `{"id":"secret-qr-`+tc.name+`"}`, tc.headers)
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/png" {
				t.Fatalf("%d %s: %.200s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
			if resp.Header.Get("Cache-Control") != "no-store" ||
				resp.Header.Get("Content-Disposition") != `attachment; filename="vigil-device-d-amira.png"` {
				t.Errorf("headers %v", resp.Header)
			}
			text := uitest.MustDecodeQR(t, body)
			var b enrol.Bundle
			if err := json.Unmarshal([]byte(text), &b); err != nil {
				t.Fatalf("the QR code is not JSON: %v\n%s", err, text)
			}
			if n.svc().CheckDeviceSecret("d-amira", out.Secret) {
				t.Error("the secret before still works")
			}
			check("QR", &b, b.Password)
			out.Secret = b.Password

			// The same command again shows no secret, as a PNG or otherwise.
			resp, body = postRaw(t, n, "/api/v1/devices/d-amira/secret"+tc.query, `{"id":"secret-qr-`+tc.name+`"}`, tc.headers)
			if resp.StatusCode != http.StatusConflict || strings.Contains(string(body), b.Password) {
				t.Errorf("a retried command: %d %.200s", resp.StatusCode, body)
			}
		})
	}

	resp, body := postRaw(t, n, "/api/v1/devices/d-amira/secret?format=gif", `{"id":"secret-gif"}`, nil)
	var e api.ErrorResponse
	if resp.StatusCode != http.StatusBadRequest || json.Unmarshal(body, &e) != nil || e.Field != "format" {
		t.Errorf("an unknown format: %d %s", resp.StatusCode, body)
	}
	if !n.svc().CheckDeviceSecret("d-amira", out.Secret) {
		t.Error("an unknown format issued a new secret")
	}
}
