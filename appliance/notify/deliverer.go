package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
)

// Service is what the Deliverer needs of the monitoring Service.
type Service interface {
	PendingNotices(now time.Time) ([]monitoring.Notification, error)
	EnqueueNotification(ctx context.Context, actor string, n monitoring.Notification) (*monitoring.EnqueueResult, error)
	DueOutbox(now time.Time, limit int) ([]monitoring.OutboxMessage, error)
	RecordOutboxOutcome(ctx context.Context, id string, attempt int, sent bool, reason string, next time.Time,
		giveUp bool) (*monitoring.OutboxMessage, error)
}

var _ Service = (*monitoring.Service)(nil)

// Hooks are what other parts add to the messages as they go out.
type Hooks struct {
	// ConsoleURL returns the console's address when Config.ConsoleURL is
	// empty (the node's own).
	ConsoleURL func() string
	// AudioLink, when set, returns a link to download the audio of an
	// alarm, for a message that asks for one (OutboxMessage.AudioAlarmID:
	// the close notice). It is called at each attempt, so that a signed
	// link's expiry counts from the sending. An error fails the attempt.
	AudioLink func(ctx context.Context, alarmID string) (string, error)
	// Attachments, when set, returns the files to attach to the mails of
	// a notice the leader enqueues (PendingNotices): the PDF of a signed-off
	// report or of a month. They are made once, before the enqueue, and
	// replicated with the message. An error, or files that would take the
	// message over monitoring.MaxOutboxMessage, sends the notice without
	// them, its text saying so: the console link stays.
	Attachments func(ctx context.Context, n *monitoring.Notification) ([]monitoring.Attachment, error)
}

// Deliverer delivers the outbox while its node leads.
type Deliverer struct {
	svc      Service
	isLeader func() bool
	now      func() time.Time
	cfg      Config
	hooks    Hooks
	logger   *slog.Logger
	mail     *mailer
	webhooks map[string]*webhook
	client   *http.Client

	mu     sync.Mutex
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a Deliverer for svc, acting while isLeader reports true, with
// now as its clock. It reads the secret files of cfg.
func New(svc Service, isLeader func() bool, now func() time.Time, cfg Config, hooks Hooks, logger *slog.Logger) (*Deliverer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	read := func(field, file string) (string, error) {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%s: %w", field, err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	d := &Deliverer{svc: svc, isLeader: isLeader, now: now, cfg: cfg, hooks: hooks, logger: logger.With("system", "notify"),
		webhooks: map[string]*webhook{}, client: &http.Client{Timeout: cfg.AttemptTimeout}}
	d.mail = &mailer{cfg: cfg.SMTP, password: cfg.SMTP.Password, timeout: cfg.AttemptTimeout}
	if cfg.SMTP.PasswordFile != "" {
		p, err := read("notify.smtp.password_file", cfg.SMTP.PasswordFile)
		if err != nil {
			return nil, err
		}
		d.mail.password = p
	}
	for i, w := range cfg.Webhooks {
		secret := w.Secret
		if w.SecretFile != "" {
			s, err := read(fmt.Sprintf("notify.webhooks[%d].secret_file", i), w.SecretFile)
			if err != nil {
				return nil, err
			}
			secret = s
		}
		d.webhooks[w.Name] = &webhook{url: w.URL, secret: []byte(secret)}
	}
	return d, nil
}

// Open starts the loop. It returns at once.
func (d *Deliverer) Open(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cancel != nil {
		return errors.New("notify: already open")
	}
	ctx, d.cancel = context.WithCancel(ctx)
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.loop(ctx)
	}()
	return nil
}

// Close stops the loop and waits for the attempts in flight. It is safe to
// call twice.
func (d *Deliverer) Close() error {
	d.mu.Lock()
	cancel := d.cancel
	d.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	d.wg.Wait()
	return nil
}

func (d *Deliverer) loop(ctx context.Context) {
	t := time.NewTicker(d.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !d.isLeader() {
			continue
		}
		if err := d.Tick(ctx); err != nil && ctx.Err() == nil {
			d.logger.Warn("cannot deliver the outbox", "error", err)
		}
	}
}

// attach adds the Attachments hook's files to n's mails when they fit in an
// outbox message; otherwise n's text says where the file is.
func (d *Deliverer) attach(ctx context.Context, n *monitoring.Notification) {
	if d.hooks.Attachments == nil || len(n.Emails) == 0 {
		return
	}
	atts, err := d.hooks.Attachments(ctx, n)
	if err != nil {
		d.logger.Warn("notice sent without its attachments", "key", n.Key, "error", err)
		return
	}
	size := len(n.Subject) + len(n.Text) + len(n.HTML) + len(n.Payload)
	for _, a := range n.Attachments {
		size += len(a.Data)
	}
	extra := 0
	for _, a := range atts {
		extra += len(a.Data)
	}
	const note = 200 // room for the note below
	if size+extra+note > monitoring.MaxOutboxMessage {
		d.logger.Warn("attachments over the outbox's limit: the notice links to the console", "key", n.Key, "bytes", extra)
		n.Text += fmt.Sprintf("\nThe PDF (%d KiB) is too large to attach: open it in the console.\n", extra>>10)
		return
	}
	n.Attachments = append(n.Attachments, atts...)
}

// Tick enqueues the pending alarm notices and attempts the messages due,
// once. The loop calls it while the node leads.
func (d *Deliverer) Tick(ctx context.Context) error {
	ns, err := d.svc.PendingNotices(d.now())
	if err != nil {
		return err
	}
	for _, n := range ns {
		d.attach(ctx, &n)
		ectx, cancel := context.WithTimeout(ctx, d.cfg.AttemptTimeout)
		_, err := d.svc.EnqueueNotification(ectx, "system", n)
		cancel()
		var re *monitoring.RuleError
		switch {
		case errors.As(err, &re):
			// Deterministic: a retry is refused alike. Say so; deliver the
			// rest.
			d.logger.Error("notification refused", "key", n.Key, "kind", n.Kind, "error", err)
		case err != nil:
			return fmt.Errorf("cannot enqueue %s: %w", n.Key, err)
		}
	}
	due, err := d.svc.DueOutbox(d.now(), DefaultBatch)
	if err != nil {
		return err
	}
	// Mail and webhooks each in their own line, so that a relay that
	// hangs does not hold the webhooks up.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, ch := range []string{monitoring.ChannelSMTP, monitoring.ChannelWebhook} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, m := range due {
				if m.Channel != ch {
					continue
				}
				if ctx.Err() != nil || !d.isLeader() {
					return
				}
				if err := d.attempt(ctx, m); err != nil {
					errs[i] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// attempt tries to deliver m once and records the outcome. An error is a
// failure to record it.
func (d *Deliverer) attempt(ctx context.Context, m monitoring.OutboxMessage) error {
	r := &rendered{OutboxMessage: m, Attempt: m.Attempts + 1}
	actx, cancel := context.WithTimeout(ctx, d.cfg.AttemptTimeout)
	sendErr := d.send(actx, r)
	cancel()
	if ctx.Err() != nil {
		return nil // stopping: the next leader tries again
	}
	now := d.now()
	reason, next, giveUp := "", time.Time{}, false
	if sendErr != nil {
		reason = sendErr.Error()
		next = now.Add(Backoff(r.Attempt, d.cfg.MinBackoff, d.cfg.MaxBackoff))
		giveUp = !now.Before(m.CreatedAt.Add(d.cfg.GiveUpAfter))
		d.logger.Warn("notification not delivered", "id", m.ID, "kind", m.Kind, "channel", m.Channel, "to", m.To,
			"attempt", r.Attempt, "error", sendErr, "give_up", giveUp)
	}
	rctx, cancel := context.WithTimeout(ctx, d.cfg.AttemptTimeout)
	defer cancel()
	_, err := d.svc.RecordOutboxOutcome(rctx, m.ID, r.Attempt, sendErr == nil, reason, next, giveUp)
	var re *monitoring.RuleError
	if errors.As(err, &re) {
		// Another leader recorded this attempt first: nothing to do.
		d.logger.Info("outcome not recorded", "id", m.ID, "attempt", r.Attempt, "error", err)
		return nil
	}
	return err
}

// send makes r's links and sends it over its channel.
func (d *Deliverer) send(ctx context.Context, r *rendered) error {
	if r.Link != "" {
		base := d.cfg.ConsoleURL
		if base == "" && d.hooks.ConsoleURL != nil {
			base = d.hooks.ConsoleURL()
		}
		if base != "" {
			r.URL = strings.TrimRight(base, "/") + r.Link
		}
	}
	if r.AudioAlarmID != "" && d.hooks.AudioLink != nil {
		u, err := d.hooks.AudioLink(ctx, r.AudioAlarmID)
		if err != nil {
			return fmt.Errorf("cannot make the audio link: %w", err)
		}
		r.AudioURL = u
	}
	switch r.Channel {
	case monitoring.ChannelSMTP:
		return d.mail.send(ctx, r)
	case monitoring.ChannelWebhook:
		w := d.webhooks[r.To]
		if w == nil {
			return fmt.Errorf("no webhook %q in this node's configuration (notify.webhooks)", r.To)
		}
		return w.post(ctx, d.client, r, d.now())
	}
	return fmt.Errorf("unknown channel %q", r.Channel)
}
