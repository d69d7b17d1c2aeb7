package enrol_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"image/png"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/ui/enrol"
	"github.com/vigilarc/vigil/ui/uitest"
)

func TestBrokers_TLSFirstOnceEach(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lists [][]string
		want  []string
	}{
		{"none", nil, []string{}},
		{"plain only", [][]string{{"tcp://a:1883", "ws://a:8083"}}, []string{"tcp://a:1883", "ws://a:8083"}},
		{"TLS first, order kept",
			[][]string{{"tcp://a:1883", "ws://a:8083", "mqtts://a:8883", "wss://a:8084"}, {"tcp://b:1883", "MQTTS://b:8883"}},
			[]string{"mqtts://a:8883", "wss://a:8084", "MQTTS://b:8883", "tcp://a:1883", "ws://a:8083", "tcp://b:1883"}},
		{"ssl and tls are TLS", [][]string{{"tcp://a:1883", "ssl://a:8883", "tls://b:8883"}}, []string{"ssl://a:8883", "tls://b:8883", "tcp://a:1883"}},
		{"duplicates and empties dropped", [][]string{{"tcp://a:1883", ""}, {"tcp://a:1883", "mqtts://a:8883"}, {"mqtts://a:8883"}},
			[]string{"mqtts://a:8883", "tcp://a:1883"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := enrol.Brokers(tc.lists...); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Brokers(%q) = %q, want %q", tc.lists, got, tc.want)
			}
		})
	}
}

func TestCheckCACert_CertificatesOnly(t *testing.T) {
	ca := uitest.MustCACertPEM(t)
	key := []byte("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB8=\n-----END EC PRIVATE KEY-----\n")
	for _, tc := range []struct {
		name string
		pem  []byte
		ok   bool
	}{
		{"one certificate", ca, true},
		{"a chain, with blank lines", slices.Concat(ca, []byte("\n\n"), uitest.MustCACertPEM(t)), true},
		{"empty", nil, false},
		{"not PEM", []byte("hello"), false},
		{"a key", key, false},
		{"a certificate and its key", slices.Concat(ca, key), false},
		{"a certificate and trailing text", slices.Concat(ca, []byte("trailing")), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := enrol.CheckCACert(tc.pem)
			if tc.ok && err != nil || !tc.ok && !errors.Is(err, enrol.ErrNotCertificate) {
				t.Errorf("CheckCACert = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// testBundle is the bundle of a device on a three-node cluster with every
// listener, a CA, and a worker ID outside ASCII.
func testBundle(t *testing.T, ca []byte) *enrol.Bundle {
	t.Helper()
	var brokers []string
	for _, h := range []string{"vigil-1.care.example.org", "vigil-2.care.example.org", "vigil-3.care.example.org"} {
		brokers = append(brokers, "tcp://"+h+":1883", "ws://"+h+":8083", "mqtts://"+h+":8883", "wss://"+h+":8084")
	}
	d := &monitoring.Device{ID: "phone-amira-0001", OrgID: "northcare", WorkerID: "w-zoë-😀"}
	org := &monitoring.Organisation{ID: "northcare", HeartbeatInterval: 90 * time.Second}
	return enrol.New(d, "s3cr3t-"+strings.Repeat("x", 40), org, brokers, ca, time.Now())
}

func TestBundle_Fields(t *testing.T) {
	ca := uitest.MustCACertPEM(t)
	b := testBundle(t, ca)
	var got map[string]any
	if err := json.Unmarshal(b.JSON(), &got); err != nil {
		t.Fatal(err)
	}
	if got["ca_cert"] != string(ca) || got["mqtt_password"] != b.Password || got["heartbeat_interval"] != "1m30s" ||
		got["location_interval"] != "5m" || got["format"] != enrol.Format || got["worker_id"] != "w-zoë-😀" {
		t.Errorf("bundle:\n%s", b.JSON())
	}
	if brokers := b.Brokers; len(brokers) != 12 || !enrol.IsTLS(brokers[5]) || enrol.IsTLS(brokers[6]) {
		t.Errorf("brokers, TLS first: %q", brokers)
	}
	if strings.Contains(string(testBundle(t, nil).JSON()), "ca_cert") {
		t.Error("a bundle without a CA has a ca_cert field")
	}
	if b.FileName(".png") != "vigil-device-phone-amira-0001.png" {
		t.Errorf("file name %q", b.FileName(".png"))
	}
}

func TestBundle_QRCodeReadsBackAsCompactJSON(t *testing.T) {
	for _, tc := range []struct {
		name string
		ca   []byte
	}{
		{"no CA", nil},
		{"a CA", uitest.MustCACertPEM(t)},
		{"a chain of two", slices.Concat(uitest.MustCACertPEM(t), uitest.MustCACertPEM(t))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := testBundle(t, tc.ca)
			compact := b.Compact()
			for _, c := range compact {
				if c >= 0x80 || c == '\n' {
					t.Fatalf("the compact JSON has %q: not one line of ASCII\n%s", c, compact)
				}
			}
			var fromQR, fromJSON enrol.Bundle
			if err := json.Unmarshal(compact, &fromQR); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b.JSON(), &fromJSON); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(fromQR, fromJSON) || !reflect.DeepEqual(fromQR, *b) {
				t.Fatalf("the compact JSON is another document:\n%s\n%s", compact, b.JSON())
			}
			p, err := b.QRPNG()
			if err != nil {
				t.Fatalf("%d bytes: %v", len(compact), err)
			}
			img, err := png.Decode(bytes.NewReader(p))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d bytes of JSON, a %v PNG of %d bytes", len(compact), img.Bounds().Size(), len(p))
			if got := uitest.MustDecodeQR(t, p); got != string(compact) {
				t.Fatalf("the QR code reads\n%s\nwant\n%s", got, compact)
			}
		})
	}
}

func TestQRPNG_TooLarge(t *testing.T) {
	if _, err := enrol.QRPNG(bytes.Repeat([]byte("x"), 3000)); !errors.Is(err, enrol.ErrTooLarge) {
		t.Fatalf("3000 bytes: %v, want ErrTooLarge", err)
	}
}
