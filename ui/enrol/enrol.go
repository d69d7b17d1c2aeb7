// Package enrol makes the configuration bundle of an enrolled device:
// what its app or firmware needs to connect (docs/device-protocol.md),
// as indented JSON for the page and the file, and as a QR code for a
// phone app to scan. The console shows it once, with the device's new
// secret; the REST API returns it with the secret (POST
// /api/v1/devices/:id/secret). Nothing here keeps the secret.
package enrol

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	qr "github.com/piglig/go-qr"

	"github.com/vigilarc/vigil/appliance/monitoring"
)

// Format names the bundle's layout; a device refuses a format it does not
// know. Fields may be added under the same format; none is removed or
// changes meaning.
const Format = "vigil-device-config/1"

// Protocol is what the bundle says the device speaks.
const Protocol = "vigil device protocol v1, MQTT 3.1.1 or 5, QoS 1"

// The QR code's rendering: pixels per module and the quiet zone around
// the symbol, in modules (the standard asks for 4).
const (
	QRScale  = 4
	QRBorder = 4
)

// Errors of the package.
var (
	// ErrTooLarge is returned when a bundle does not fit in a QR code,
	// even at the lowest error correction.
	ErrTooLarge = errors.New("the bundle is too large for a QR code")
	// ErrNotCertificate is returned for a CA certificate that is not PEM
	// CERTIFICATE blocks (such as one with a private key in it).
	ErrNotCertificate = errors.New("not PEM certificates")
)

// Bundle is the configuration bundle of an enrolled device. Its JSON is
// what the device reads; docs/device-protocol.md describes each field.
type Bundle struct {
	Format            string   `json:"format"`
	DeviceID          string   `json:"device_id"`
	ClientID          string   `json:"mqtt_client_id"`
	Username          string   `json:"mqtt_username"`
	Password          string   `json:"mqtt_password"`
	Brokers           []string `json:"mqtt_brokers"`      // every node's listeners, TLS first: try the next if one fails
	CACert            string   `json:"ca_cert,omitempty"` // PEM: the CA the TLS listeners' certificates chain to
	UpTopic           string   `json:"up_topic"`
	DownTopic         string   `json:"down_topic"`
	HeartbeatInterval string   `json:"heartbeat_interval"`
	LocationInterval  string   `json:"location_interval"`
	OrgID             string   `json:"org_id"`
	WorkerID          string   `json:"worker_id,omitempty"`
	IssuedAt          string   `json:"issued_at"`
	Protocol          string   `json:"protocol"`
}

// New returns the bundle of device d with its new secret: org is its
// organisation (nil for the default intervals), brokers the MQTT URLs to
// offer (Brokers orders them), caPEM the CA certificate of the TLS
// listeners, or nil.
func New(d *monitoring.Device, secret string, org *monitoring.Organisation, brokers []string, caPEM []byte, now time.Time) *Bundle {
	b := &Bundle{Format: Format, DeviceID: d.ID, ClientID: d.ID, Username: d.ID, Password: secret,
		Brokers: Brokers(brokers), CACert: string(caPEM),
		UpTopic: "vigil/v1/d/" + d.ID + "/up/<type>", DownTopic: "vigil/v1/d/" + d.ID + "/down/#",
		HeartbeatInterval: fmtDur(monitoring.DefaultHeartbeatInterval), LocationInterval: fmtDur(monitoring.DefaultLocationInterval),
		OrgID: d.OrgID, WorkerID: d.WorkerID, IssuedAt: now.UTC().Format(time.RFC3339), Protocol: Protocol}
	if org != nil {
		if org.HeartbeatInterval > 0 {
			b.HeartbeatInterval = fmtDur(org.HeartbeatInterval)
		}
		if org.LocationInterval > 0 {
			b.LocationInterval = fmtDur(org.LocationInterval)
		}
	}
	return b
}

// Brokers returns the URLs of lists once each, in their order but with
// the TLS ones (mqtts://, ssl://, tls://, wss://) first; never nil.
func Brokers(lists ...[]string) []string {
	out := []string{}
	for _, l := range lists {
		for _, u := range l {
			if u != "" && !slices.Contains(out, u) {
				out = append(out, u)
			}
		}
	}
	slices.SortStableFunc(out, func(a, b string) int {
		switch ta, tb := IsTLS(a), IsTLS(b); {
		case ta && !tb:
			return -1
		case tb && !ta:
			return 1
		}
		return 0
	})
	return out
}

// IsTLS reports whether the broker URL u is a TLS listener.
func IsTLS(u string) bool {
	scheme, _, _ := strings.Cut(strings.ToLower(u), "://")
	switch scheme {
	case "mqtts", "ssl", "tls", "wss":
		return true
	}
	return false
}

// CheckCACert returns an error unless b is one or more PEM CERTIFICATE
// blocks and nothing else: a bundle must never carry a key.
func CheckCACert(b []byte) error {
	rest, n := bytes.TrimSpace(b), 0
	for len(rest) > 0 {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil || blk.Type != "CERTIFICATE" || len(blk.Headers) > 0 {
			return ErrNotCertificate
		}
		rest = bytes.TrimSpace(rest)
		n++
	}
	if n == 0 {
		return ErrNotCertificate
	}
	return nil
}

// JSON returns the bundle as indented JSON, as the page shows it and the
// file holds it.
func (b *Bundle) JSON() []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // the page escapes it; the file is read by a device
	enc.SetIndent("", "  ")
	_ = enc.Encode(b) // strings and slices only: it cannot fail
	return bytes.TrimSpace(buf.Bytes())
}

// Compact returns the bundle as JSON without indentation, with every
// character outside ASCII escaped (\uXXXX): the same document as JSON,
// fewer bytes, and no character set for a QR reader to guess.
func (b *Bundle) Compact() []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(b)
	return asciiJSON(bytes.TrimSpace(buf.Bytes()))
}

// FileName is the name of the bundle's file: vigil-device-<id> with ext
// (".json", ".png").
func (b *Bundle) FileName(ext string) string {
	return "vigil-device-" + safeFileName(b.DeviceID) + ext
}

// QRPNG returns a PNG of a QR code of the bundle's compact JSON (Compact),
// at error correction Low, raised when that costs no larger symbol. The
// code is read from a screen or a file, not a worn label, and the smallest
// symbol scans best: a bundle with a CA and three nodes is about version
// 29 at Low, 33 at Medium, and ZXing's detector misread a good part of
// the Medium ones in the tests while it read every Low one. It returns
// ErrTooLarge when the bundle does not fit.
func (b *Bundle) QRPNG() ([]byte, error) {
	return QRPNG(b.Compact())
}

// QRPNG returns a PNG of a QR code of data, as Bundle.QRPNG does.
func QRPNG(data []byte) ([]byte, error) {
	code, err := qr.EncodeBinary(data, qr.Low) // boosted when free
	if errors.Is(err, qr.ErrDataTooLong) {
		return nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, len(data))
	}
	if err != nil {
		return nil, fmt.Errorf("cannot make the QR code: %w", err)
	}
	png, err := code.ToPNGBytes(qr.NewQrCodeImgConfig(QRScale, QRBorder))
	if err != nil {
		return nil, fmt.Errorf("cannot draw the QR code: %w", err)
	}
	return png, nil
}

// asciiJSON escapes every character outside ASCII in the JSON document b;
// outside strings JSON has none.
func asciiJSON(b []byte) []byte {
	var out []byte
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			out = append(out, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		i += n
		if r > 0xFFFF {
			r -= 0x10000
			out = fmt.Appendf(out, `\u%04x\u%04x`, 0xD800+(r>>10), 0xDC00+(r&0x3FF))
		} else {
			out = fmt.Appendf(out, `\u%04x`, r)
		}
	}
	return out
}

// safeFileName keeps the letters, digits, dots, dashes and underscores of s.
func safeFileName(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-", r)) {
			return r
		}
		return '_'
	}, s)
}

// fmtDur writes d as a Go duration without zero units ("5m", "1h30m").
func fmtDur(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
