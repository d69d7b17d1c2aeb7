// Package notify delivers the outbox (appliance/monitoring, outbox.go):
// mail through the installation's SMTP relay and webhooks (JSON, signed
// with HMAC-SHA256). A Deliverer runs on every node and acts only while
// its node leads, as the deadline scheduler does: it enqueues the alarm
// notices the state calls for (Service.PendingNotices, with the files of
// Hooks.Attachments such as a report's PDF), attempts the
// messages that are due, and records each attempt's outcome through the
// Service, with the time of the next attempt chosen by exponential
// back-off, or the give-up. A new leader carries on from the replicated
// state. Delivery is at least once; the message's ID, in the mail's
// Message-ID and X-Vigil-Idempotency-Key and the webhook's
// Idempotency-Key, lets a receiver drop the duplicate a leader change may
// cause. docs/notifications.md is the user's description.
package notify

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// webhookName is what a webhook's name may be: as an organisation's
// policy names it (monitoring's validWebhookName).
var webhookName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,39}$`)

// Defaults of the Config.
const (
	DefaultInterval       = time.Second
	DefaultMinBackoff     = 10 * time.Second
	DefaultMaxBackoff     = 10 * time.Minute
	DefaultGiveUpAfter    = 24 * time.Hour
	DefaultAttemptTimeout = 30 * time.Second
	DefaultBatch          = 32
	DefaultSMTPPort       = 587
)

// SMTP security modes (SMTPConfig.Security).
const (
	SecuritySTARTTLS = "starttls" // plain connection upgraded with STARTTLS, required
	SecurityTLS      = "tls"      // implicit TLS from the first byte (port 465)
	SecurityNone     = "none"     // no encryption: a relay on a trusted network only
)

// SMTPConfig is the installation's mail relay.
type SMTPConfig struct {
	// Host is the relay's host name or address; empty: no mail is sent
	// (mail messages fail and are retried until one is set or they give
	// up).
	Host string `yaml:"host"`
	// Port is the relay's port; 0 means 587 (465 with security tls).
	Port int `yaml:"port"`
	// Security is starttls (the default), tls or none.
	Security string `yaml:"security"`
	// Username and Password, when set, authenticate with the strongest
	// mechanism the relay offers (SCRAM-SHA-256 down to CRAM-MD5, then
	// PLAIN or LOGIN, which are sent only over TLS). The password may be
	// given in PasswordFile instead, read at start.
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	// From is the sender's address, such as vigil@example.org.
	From string `yaml:"from"`
	// InsecureSkipVerify accepts any certificate of the relay: for tests
	// only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// WebhookConfig is one webhook that organisations' policies name.
type WebhookConfig struct {
	// Name is what a policy lists (lower-case letters, digits, - and _).
	Name string `yaml:"name"`
	// URL is where the JSON is POSTed (https, or http on a trusted
	// network).
	URL string `yaml:"url"`
	// Secret is the HMAC-SHA256 key of the signature; SecretFile reads it
	// from a file instead. Never shown back by the console or the API.
	Secret     string `yaml:"secret"`
	SecretFile string `yaml:"secret_file"`
}

// Config configures a Deliverer.
type Config struct {
	SMTP     SMTPConfig      `yaml:"smtp"`
	Webhooks []WebhookConfig `yaml:"webhooks"`
	// ConsoleURL is the console's address as recipients reach it, such as
	// https://vigil.example.org; a message's link is made from it. Empty:
	// the node's own console address.
	ConsoleURL string `yaml:"console_url"`
	// MinBackoff is the wait after a first failure; it doubles after each
	// one up to MaxBackoff. GiveUpAfter is how long after its enqueue a
	// message stops being tried.
	MinBackoff  time.Duration `yaml:"min_backoff"`
	MaxBackoff  time.Duration `yaml:"max_backoff"`
	GiveUpAfter time.Duration `yaml:"give_up_after"`
	// Interval is how often the leader looks for work; AttemptTimeout
	// bounds one attempt.
	Interval       time.Duration `yaml:"interval"`
	AttemptTimeout time.Duration `yaml:"attempt_timeout"`
}

// DefaultConfig returns the defaults: no relay, no webhooks.
func DefaultConfig() Config {
	return Config{SMTP: SMTPConfig{Security: SecuritySTARTTLS}, MinBackoff: DefaultMinBackoff, MaxBackoff: DefaultMaxBackoff,
		GiveUpAfter: DefaultGiveUpAfter, Interval: DefaultInterval, AttemptTimeout: DefaultAttemptTimeout}
}

// withDefaults fills in what is zero.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.SMTP.Security == "" {
		c.SMTP.Security = d.SMTP.Security
	}
	for _, p := range []struct{ v, def *time.Duration }{
		{&c.MinBackoff, &d.MinBackoff}, {&c.MaxBackoff, &d.MaxBackoff}, {&c.GiveUpAfter, &d.GiveUpAfter},
		{&c.Interval, &d.Interval}, {&c.AttemptTimeout, &d.AttemptTimeout},
	} {
		if *p.v <= 0 {
			*p.v = *p.def
		}
	}
	return c
}

// Validate checks the configuration; errors name the field under notify.
func (c Config) Validate() error {
	s := c.SMTP
	switch s.Security {
	case "", SecuritySTARTTLS, SecurityTLS, SecurityNone:
	default:
		return ferr("notify.smtp.security", "%q is not one of starttls, tls, none", s.Security)
	}
	if s.Port < 0 || s.Port > 65535 {
		return ferr("notify.smtp.port", "%d is not a port", s.Port)
	}
	if s.Host != "" && !strings.Contains(s.From, "@") {
		return ferr("notify.smtp.from", "a sender's address such as vigil@example.org is required with a host")
	}
	if s.Password != "" && s.PasswordFile != "" {
		return ferr("notify.smtp.password_file", "give the password or its file, not both")
	}
	seen := map[string]bool{}
	for i, w := range c.Webhooks {
		f := fmt.Sprintf("notify.webhooks[%d]", i)
		if !webhookName.MatchString(w.Name) || seen[w.Name] {
			return ferr(f+".name", "%q: a name of lower-case letters, digits, - and _ (up to 40), each once, is required", w.Name)
		}
		seen[w.Name] = true
		u, err := url.Parse(w.URL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return ferr(f+".url", "%q is not an http(s) URL", w.URL)
		}
		if (w.Secret == "") == (w.SecretFile == "") {
			return ferr(f+".secret", "give a secret or a secret_file (one of them)")
		}
	}
	if c.MinBackoff < 0 || c.MaxBackoff < 0 || c.GiveUpAfter < 0 || (c.MaxBackoff > 0 && c.MinBackoff > c.MaxBackoff) {
		return ferr("notify.min_backoff", "must not be negative nor over max_backoff")
	}
	if c.ConsoleURL != "" {
		if u, err := url.Parse(c.ConsoleURL); err != nil || u.Host == "" {
			return ferr("notify.console_url", "%q is not a URL such as https://vigil.example.org", c.ConsoleURL)
		}
	}
	return nil
}

// FieldError is a configuration error naming the field.
type FieldError struct {
	Field  string // such as "notify.smtp.port"; a webhook's as "notify.webhooks[0].url"
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

func ferr(field, format string, a ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, a...)}
}

// Backoff returns the wait after the attempt-th failure: min doubled
// attempt-1 times, at most max.
func Backoff(attempt int, minWait, maxWait time.Duration) time.Duration {
	d := minWait
	for i := 1; i < attempt && d < maxWait; i++ {
		d *= 2
	}
	return min(d, maxWait)
}
