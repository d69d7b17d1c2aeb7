package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	mail "github.com/wneessen/go-mail"

	"github.com/vigilarc/vigil/appliance/monitoring"
)

// Headers of what Vigil sends.
const (
	// HeaderIdempotencyKey carries the message's ID on a webhook.
	HeaderIdempotencyKey = "Idempotency-Key"
	// HeaderMailIdempotencyKey carries the message's ID on a mail, beside
	// its Message-ID.
	HeaderMailIdempotencyKey = "X-Vigil-Idempotency-Key"
	// HeaderTimestamp is the Unix time, in seconds, of a webhook's
	// signature.
	HeaderTimestamp = "X-Vigil-Timestamp"
	// HeaderSignature is "sha256=" and the hex HMAC-SHA256, keyed with the
	// webhook's secret, of the timestamp, a dot, and the body.
	HeaderSignature = "X-Vigil-Signature"
)

// rendered is a message as it goes out: its link and audio link made.
type rendered struct {
	monitoring.OutboxMessage
	URL      string // the console link, absolute; empty without one
	AudioURL string // the audio link; empty without one
	Attempt  int
}

// text returns the mail's plain body.
func (r *rendered) text() string {
	var b strings.Builder
	b.WriteString(r.Text)
	if r.URL != "" {
		fmt.Fprintf(&b, "\nIn the console: %s\n", r.URL)
	}
	if r.AudioURL != "" {
		fmt.Fprintf(&b, "Audio: %s\n", r.AudioURL)
	}
	return b.String()
}

// html returns the mail's HTML body, or "" when the message has none.
func (r *rendered) html() string {
	if r.HTML == "" {
		return ""
	}
	var b strings.Builder
	b.WriteString(r.HTML)
	if r.URL != "" {
		fmt.Fprintf(&b, `<p><a href="%s">Open in the console</a></p>`, html.EscapeString(r.URL))
	}
	if r.AudioURL != "" {
		fmt.Fprintf(&b, `<p><a href="%s">Listen to or download the audio</a></p>`, html.EscapeString(r.AudioURL))
	}
	return b.String()
}

// mailer sends mail through the relay.
type mailer struct {
	cfg      SMTPConfig
	password string
	timeout  time.Duration
}

func (m *mailer) send(ctx context.Context, r *rendered) error {
	if m.cfg.Host == "" {
		return errors.New("no SMTP relay is configured (notify.smtp.host)")
	}
	msg := mail.NewMsg()
	if err := msg.From(m.cfg.From); err != nil {
		return fmt.Errorf("from address: %w", err)
	}
	if err := msg.To(r.To); err != nil {
		return fmt.Errorf("recipient: %w", err)
	}
	msg.Subject(r.Subject)
	domain := m.cfg.From[strings.LastIndexByte(m.cfg.From, '@')+1:]
	msg.SetMessageIDWithValue(r.ID + "@" + domain)
	msg.SetGenHeader(mail.Header(HeaderMailIdempotencyKey), r.ID)
	msg.SetDate()
	msg.SetBodyString(mail.TypeTextPlain, r.text())
	if h := r.html(); h != "" {
		msg.AddAlternativeString(mail.TypeTextHTML, h)
	}
	for _, a := range r.Attachments {
		if err := msg.AttachReader(a.Name, bytes.NewReader(a.Data), mail.WithFileContentType(mail.ContentType(a.ContentType))); err != nil {
			return fmt.Errorf("attachment %s: %w", a.Name, err)
		}
	}
	opts := []mail.Option{mail.WithTimeout(m.timeout)}
	port := m.cfg.Port
	switch m.cfg.Security {
	case SecurityTLS:
		if port == 0 {
			port = 465
		}
		opts = append(opts, mail.WithSSL())
	case SecurityNone:
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	default:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	}
	if port == 0 {
		port = DefaultSMTPPort
	}
	opts = append(opts, mail.WithPort(port))
	if m.cfg.InsecureSkipVerify {
		opts = append(opts, mail.WithTLSConfig(&tls.Config{InsecureSkipVerify: true, ServerName: m.cfg.Host})) //nolint:gosec // tests only, documented
	}
	if m.cfg.Username != "" {
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthAutoDiscover), mail.WithUsername(m.cfg.Username), mail.WithPassword(m.password))
	}
	c, err := mail.NewClient(m.cfg.Host, opts...)
	if err != nil {
		return err
	}
	return c.DialAndSendWithContext(ctx, msg)
}

// webhook is one configured webhook, its secret read.
type webhook struct {
	url    string
	secret []byte
}

// Envelope is the JSON body of every webhook (docs/notifications.md).
type Envelope struct {
	ID        string    `json:"id"`   // the idempotency key, also in the Idempotency-Key header
	Kind      string    `json:"kind"` // alarm_closed, duress_raised, ack_escalation, ...
	CreatedAt time.Time `json:"created_at"`
	Attempt   int       `json:"attempt"`
	OrgID     string    `json:"org_id,omitempty"`
	AlarmID   string    `json:"alarm_id,omitempty"`
	Subject   string    `json:"subject"`
	Text      string    `json:"text,omitempty"`
	Link      string    `json:"link,omitempty"`
	AudioURL  string    `json:"audio_url,omitempty"`
	// Data is the kind's own object (for alarm notices,
	// monitoring.AlarmNotice).
	Data json.RawMessage `json:"data,omitempty"`
}

// Sign returns the signature header's value for body sent at ts with
// secret.
func Sign(secret []byte, ts int64, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	fmt.Fprintf(mac, "%d.", ts)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify checks a webhook's signature header against its timestamp header
// and body, and that the timestamp is within tolerance of now: what a
// receiver does (docs/notifications.md).
func Verify(secret []byte, tsHeader, sigHeader string, body []byte, now time.Time, tolerance time.Duration) error {
	ts, err := strconv.ParseInt(tsHeader, 10, 64)
	if err != nil {
		return errors.New("no valid timestamp")
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("timestamp %s away from now", d)
	}
	if !hmac.Equal([]byte(Sign(secret, ts, body)), []byte(sigHeader)) {
		return errors.New("bad signature")
	}
	return nil
}

// post sends r to the webhook.
func (w *webhook) post(ctx context.Context, client *http.Client, r *rendered, now time.Time) error {
	body, err := json.Marshal(Envelope{ID: r.ID, Kind: r.Kind, CreatedAt: r.CreatedAt, Attempt: r.Attempt, OrgID: r.OrgID,
		AlarmID: r.AlarmID, Subject: r.Subject, Text: r.Text, Link: r.URL, AudioURL: r.AudioURL, Data: r.Payload})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	ts := now.Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Vigil")
	req.Header.Set(HeaderIdempotencyKey, r.ID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(w.secret, ts, body))
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(snippet)))
	}
	return nil
}
