package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/vigilarc/vigil/appliance/monitoring"
)

// Defaults of Config.
const (
	// DefaultCommitTimeout bounds the wait for the cluster to commit one
	// device event before the gateway gives up, sends no PUBACK and drops
	// the connection.
	DefaultCommitTimeout = 5 * time.Second
	// DefaultReplicaWait bounds the wait, after the commit, for the voters
	// beyond the quorum to apply an event (Config.WaitReplicas).
	DefaultReplicaWait = 250 * time.Millisecond
	// DefaultWritesPending is mochi's MaximumClientWritesPending: the
	// outbound queue per connection. mochi's default (8,192) costs about
	// 90 KiB per idle device; a device gets a few replies at a time.
	DefaultWritesPending = 32
	// DefaultClientBuffer is the read and the write buffer per connection.
	DefaultClientBuffer = 1024
	// DefaultMaxPacket is the largest MQTT packet accepted; mochi drops the
	// connection of a client that sends a larger one. It is above
	// MaxPayload, so that a payload a little too large gets an error reply.
	DefaultMaxPacket = 64 * 1024
	// DefaultSessionExpiry is the longest a disconnected device's MQTT
	// session is kept, in seconds. Devices keep their own outbox: another
	// node never has their session anyway.
	DefaultSessionExpiry = 3600
)

// Config configures the gateway.
type Config struct {
	TCPAddr string // host:port of the MQTT listener; "" disables it
	WSAddr  string // host:port of the MQTT over WebSocket listener; "" disables it
	// TLSAddr is the host:port of the MQTT over TLS listener (8883 by
	// convention); "" disables it. It needs TLS.
	TLSAddr string
	// WSSAddr is the host:port of the MQTT over secure WebSocket listener;
	// "" disables it. It needs TLS.
	WSSAddr string
	// TLS is the server side of TLSAddr and WSSAddr: the certificate
	// devices see. Nil means neither may be set. A MinVersion below TLS 1.2
	// is raised to it (tls.go).
	TLS           *tls.Config
	NodeID        string        // this node's cluster ID, recorded with device telemetry
	CommitTimeout time.Duration // 0 means DefaultCommitTimeout
	// TelemetryFlush is how often telemetry and presence are written; 0
	// means DefaultTelemetryFlush.
	TelemetryFlush time.Duration
	// ListeningInterval is how often a device is told, on down/alarm with
	// status listening, that an operator has its alarm (listening.go); 0
	// means DefaultListeningInterval.
	ListeningInterval time.Duration
	// WaitApplied, if set, waits until this node has applied everything
	// the cluster committed before the call. A message refused for
	// something not found is tried once more after it.
	WaitApplied func(context.Context) error
	// WaitReplicas, if set, is called after a device event committed and
	// before its PUBACK: it waits, within its context, until every voter
	// that answers has applied the event, and says how many voters have
	// it. The commit already put the event on a quorum's disks; this puts
	// it on every healthy appliance (DESIGN.md, "Every replica").
	WaitReplicas func(context.Context) (confirmed, voters int)
	// ReplicaWait bounds WaitReplicas; 0 means DefaultReplicaWait.
	ReplicaWait time.Duration
	// ConnectTimeout is how long a new TCP or TLS connection may take to
	// send its CONNECT; 0 means DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// MaxPending bounds the TCP and TLS connections of this node that have
	// not sent CONNECT yet; 0 means DefaultMaxPending.
	MaxPending int
	// MaxPendingPerAddr bounds them per remote IP address; 0 means
	// DefaultMaxPendingPerAddr.
	MaxPendingPerAddr int
	// MessagesPerMinute is the rate at which a device's message bucket
	// refills, and MessageBurst its size: every message a device sends
	// takes a token, and one sent with none left is refused (limit.go); 0
	// means DefaultMessagesPerMinute and DefaultMessageBurst.
	MessagesPerMinute int
	MessageBurst      int
	// AlarmsPerMinute and AlarmBurst are the same for the tighter bucket
	// of the messages that can raise an alarm; 0 means
	// DefaultAlarmsPerMinute and DefaultAlarmBurst.
	AlarmsPerMinute int
	AlarmBurst      int
	// FloodQuiet is how long a device must go without a refusal before a
	// new refusal is a new flood, reported to the operators again; 0
	// means DefaultFloodQuiet.
	FloodQuiet time.Duration
	// ObservePuback, if set, is called with the time from a device's
	// PUBLISH to its PUBACK for every alarm, session, audio, update or
	// prompt message the cluster committed (telemetry is PUBACKed at once
	// and not observed): the latency a worker's device sees.
	ObservePuback func(msgType string, d time.Duration)
	// Listen, if set, replaces net.Listen for the TCP and TLS listeners
	// (tests give it a listener that fails).
	Listen func(network, address string) (net.Listener, error)
}

// Service is what the gateway needs from the monitoring Service.
type Service interface {
	CheckDeviceSecret(deviceID, secret string) bool
	Device(id string) (*monitoring.Device, error)
	Session(id string) (*monitoring.Session, error)
	// DeviceView returns the state a connecting device is sent (resync.go).
	DeviceView(deviceID string, since time.Time) (*monitoring.DeviceView, error)
	RaiseAlarm(ctx context.Context, cmdID, actor string, req monitoring.RaiseAlarmRequest) (*monitoring.Alarm, error)
	CancelAlarm(ctx context.Context, cmdID, actor, alarmID, pin string) (monitoring.CancelReply, error)
	StartSession(ctx context.Context, cmdID, actor string, req monitoring.StartSessionRequest) (*monitoring.Session, error)
	CheckIn(ctx context.Context, cmdID, actor, sessionID, pin string) (monitoring.SessionReply, error)
	Extend(ctx context.Context, cmdID, actor, sessionID, pin string, d time.Duration) (monitoring.SessionReply, error)
	EndSession(ctx context.Context, cmdID, actor, sessionID, pin string) (monitoring.SessionReply, error)
	RecordDeviceStatus(ctx context.Context, cmdID, actor string, batch []monitoring.DeviceStatus) (int, error)
	Organisation(id string) (*monitoring.Organisation, error)
	AnswerPrompt(ctx context.Context, cmdID, actor string, req monitoring.PromptAnswerRequest) (*monitoring.DevicePrompt, error)
	PostUpdate(ctx context.Context, cmdID, actor string, req monitoring.PostUpdateRequest) (*monitoring.UpdateRecord, error)
	AppendAudio(ctx context.Context, cmdID, actor string, req monitoring.AudioChunkRequest) (*monitoring.AudioChunkResult, error)
	MarkNodeDown(ctx context.Context, cmdID, actor, node string, before, at time.Time, reason string) (int, error)
	ReportDeviceFlooding(ctx context.Context, cmdID, actor string, req monitoring.DeviceFloodingRequest) (*monitoring.DeviceFloodingResult, error)
	CommandApplied(t monitoring.CmdType, cmdID string) (bool, error)
	// OpenAlarms returns the alarms not closed (listening.go).
	OpenAlarms() ([]monitoring.Alarm, error)
	// Subscribe returns the events committed from now on (downlink.go).
	Subscribe(buffer int) *monitoring.Subscription
}

var _ Service = (*monitoring.Service)(nil)

// Stats are the gateway's counters since Open.
type Stats struct {
	AuthRefused uint64 // CONNECTs refused: unknown device, wrong secret, client ID not the device ID
	ACLRefused  uint64 // publishes and subscriptions outside the device's own topics
	Committed   uint64 // events the cluster committed, then PUBACKed
	Unavailable uint64 // events not committed in time: no PUBACK, connection dropped
	// DiskFull counts the events of Unavailable that the cluster refused
	// for a disk nearly full (a disk_full reply, no PUBACK).
	DiskFull uint64
	// ShortOfReplicas counts committed events PUBACKed before every voter
	// had applied them (one was down, cut off or behind): each was on a
	// quorum, not on all.
	ShortOfReplicas uint64
	ErrorReplies    uint64 // messages answered with an error reply (and PUBACKed)

	// RateLimited counts messages refused by the per-device rate limits
	// (a rate_limited reply, and PUBACKed); they are not in ErrorReplies.
	RateLimited uint64
	// RateLimitedDropped counts the messages refused by the rate limits
	// whose reply could not be queued to the device (it was not reading
	// them): no PUBACK, and the connection was dropped. Also in
	// RateLimited.
	RateLimitedDropped uint64
	// Floods counts the floods begun on this node: a refusal after the
	// device had none for FloodQuiet.
	Floods uint64
	// FloodReports counts the floods reported to the cluster (one
	// DeviceFlooding command each).
	FloodReports uint64
	// Flooding is the number of devices whose flood is in progress: they
	// had a refusal within FloodQuiet (Broker.Floods lists them).
	Flooding int

	// AcceptErrors counts failed accepts on the TCP and TLS listeners
	// (out of file descriptors, say); each is retried after a pause.
	AcceptErrors uint64
	// ListenersFailing is the number of those listeners whose last accept
	// failed: devices cannot connect to them now.
	ListenersFailing int
	// Pending is the number of connections that have not sent CONNECT yet.
	Pending int
	// PendingRefused counts connections closed as soon as accepted because
	// MaxPending or MaxPendingPerAddr was reached.
	PendingRefused uint64

	Connected        int    // device connections held now
	TelemetryQueued  int    // devices whose telemetry waits for the next flush
	TelemetryWritten uint64 // device reports written to the cluster
	TelemetryBatches uint64 // commands that wrote them
	TelemetryFailed  uint64 // flushes the cluster did not take (kept for the next one)
}

type counters struct {
	authRefused, aclRefused, committed, unavailable, errorReplies, shortOfReplicas atomic.Uint64
	diskFull                                                                       atomic.Uint64
	acceptErrors, floodReports, rateLimitedDropped                                 atomic.Uint64
	acceptFailing                                                                  atomic.Int64 // listeners whose last accept failed
}

// Broker is the gateway of one node.
type Broker struct {
	cfg    Config
	svc    Service
	logger *slog.Logger
	stats  counters

	server *mqtt.Server
	gate   *gate // connections that have not sent CONNECT yet (listen.go)

	listenersMu sync.Mutex
	guarded     []*guardedListener // the TCP and TLS listeners' guards (listen.go)
	tcp         *listeners.Net     // over a guarded listener (listen.go)
	tlsTCP      *listeners.Net     // MQTT over TLS, when Config.TLSAddr is set
	ctx         context.Context    // cancelled by Close: ends ingest in flight
	cancel      context.CancelFunc
	hooks       sync.WaitGroup // OnPublish calls in flight

	downDone chan struct{} // closed when runDownlink returned

	mu        sync.Mutex
	opened    bool
	closeOnce sync.Once
	closeErr  error

	lastCancel cancelMark // used by the event loop only (downlink.go)

	cmds   *commandHook // down/config (commands.go)
	resync *resyncHook  // the state of alarms and session on connect (resync.go)

	limits     *limiter // per-device rate limits (limit.go)
	replyWatch sync.Map // *mqtt.Client -> *atomic.Bool: a reply being sent, set if mochi dropped it

	conns     conns      // device connections on this node (presence.go)
	tel       *telemetry // telemetry and presence on their way to the cluster
	staleDone chan struct{}
}

// New returns a gateway over svc. It does no I/O.
func New(cfg Config, svc Service, logger *slog.Logger) *Broker {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ReplicaWait <= 0 {
		cfg.ReplicaWait = DefaultReplicaWait
	}
	if cfg.CommitTimeout <= 0 {
		cfg.CommitTimeout = DefaultCommitTimeout
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.MaxPendingPerAddr <= 0 {
		cfg.MaxPendingPerAddr = DefaultMaxPendingPerAddr
	}
	cfg = cfg.withLimitDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	b := &Broker{cfg: cfg, svc: svc, logger: logger, ctx: ctx, cancel: cancel,
		gate:   newGate(cfg.MaxPending, cfg.MaxPendingPerAddr, cfg.ConnectTimeout),
		limits: newLimiter(cfg, logger)}
	b.tel = newTelemetry(b, cfg.TelemetryFlush)
	return b
}

// Open binds the listeners and starts serving.
func (b *Broker) Open(context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.opened {
		return errors.New("broker: already opened")
	}
	if err := b.cfg.Validate(); err != nil {
		return err
	}
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClientWritesPending = DefaultWritesPending
	caps.MaximumPacketSize = DefaultMaxPacket
	caps.MaximumSessionExpiryInterval = DefaultSessionExpiry
	// Nothing is retained: the protocol sends nothing retained, and a
	// retained message is memory any device could fill (DESIGN.md, Access).
	caps.RetainAvailable = 0
	s := mqtt.New(&mqtt.Options{
		Capabilities:             caps,
		ClientNetWriteBufferSize: DefaultClientBuffer,
		ClientNetReadBufferSize:  DefaultClientBuffer,
		InlineClient:             true, // replies are published by the broker itself
		Logger:                   slog.New(mochiHandler{b.logger.Handler()}),
	})
	if err := s.AddHook(&accessHook{b: b, s: s}, nil); err != nil {
		return fmt.Errorf("cannot add access hook: %w", err)
	}
	if err := s.AddHook(&conformanceHook{maxPacket: caps.MaximumPacketSize}, nil); err != nil {
		return fmt.Errorf("cannot add conformance hook: %w", err)
	}
	if err := s.AddHook(&ingestHook{b: b}, nil); err != nil {
		return fmt.Errorf("cannot add ingest hook: %w", err)
	}
	b.cmds = newCommandHook(b)
	if err := s.AddHook(b.cmds, nil); err != nil {
		return fmt.Errorf("cannot add commands hook: %w", err)
	}
	b.resync = newResyncHook(b) // after the commands hook: down/config comes first
	if err := s.AddHook(b.resync, nil); err != nil {
		return fmt.Errorf("cannot add resync hook: %w", err)
	}
	if err := s.AddHook(&presenceHook{b: b}, nil); err != nil {
		return fmt.Errorf("cannot add presence hook: %w", err)
	}
	if b.cfg.TCPAddr != "" {
		l, err := b.listenTCP(s, "tcp", b.cfg.TCPAddr, nil)
		if err != nil {
			return fmt.Errorf("cannot listen for MQTT on %s: %w", b.cfg.TCPAddr, err)
		}
		b.tcp = l
	}
	if err := b.addTLSListeners(s); err != nil {
		s.Close()
		return err
	}
	if b.cfg.WSAddr != "" {
		// mochi's WebSocket listener accepts any Origin: devices are not
		// browsers, and they authenticate with their own secret.
		if err := s.AddListener(listeners.NewWebsocket(listeners.Config{ID: "ws", Address: b.cfg.WSAddr})); err != nil {
			s.Close()
			return fmt.Errorf("cannot listen for MQTT over WebSocket on %s: %w", b.cfg.WSAddr, err)
		}
	}
	if err := s.Serve(); err != nil {
		s.Close()
		return fmt.Errorf("cannot start the MQTT broker: %w", err)
	}
	b.server = s
	b.opened = true
	go b.tel.run()
	b.staleDone = make(chan struct{})
	go b.markStale(time.Now())
	b.downDone = make(chan struct{})
	go b.runDownlink(b.svc.Subscribe(eventBuffer))
	b.logger.Info("mqtt broker open", "tcp", b.TCPAddr(), "ws", b.cfg.WSAddr, "tls", b.TLSAddr(), "wss", b.cfg.WSSAddr)
	return nil
}

// Close stops sending commands to devices, stops accepting devices, drops
// their connections, ends ingest in flight (without PUBACK) and waits for
// it. It is safe to call twice.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		b.cancel()
		b.mu.Lock()
		defer b.mu.Unlock()
		if !b.opened {
			return
		}
		<-b.downDone // unsubscribed: no command to devices from here on
		b.closeErr = b.server.Close()
		b.hooks.Wait()
		<-b.staleDone
		b.tel.close() // with the disconnects of the devices just dropped
		b.logger.Info("mqtt broker stopped")
	})
	return b.closeErr
}

// TCPAddr returns the address of the TCP listener once open, else the
// configured one.
func (b *Broker) TCPAddr() string {
	if b.tcp != nil {
		return b.tcp.Address()
	}
	return b.cfg.TCPAddr
}

// Stats returns the counters.
func (b *Broker) Stats() Stats {
	return Stats{
		AuthRefused:     b.stats.authRefused.Load(),
		ACLRefused:      b.stats.aclRefused.Load(),
		Committed:       b.stats.committed.Load(),
		Unavailable:     b.stats.unavailable.Load(),
		DiskFull:        b.stats.diskFull.Load(),
		ErrorReplies:    b.stats.errorReplies.Load(),
		ShortOfReplicas: b.stats.shortOfReplicas.Load(),

		RateLimited:        b.limits.refused.Load(),
		RateLimitedDropped: b.stats.rateLimitedDropped.Load(),
		Floods:             b.limits.begun.Load(),
		FloodReports:       b.stats.floodReports.Load(),
		Flooding:           len(b.limits.inProgress(time.Now())),

		AcceptErrors:     b.stats.acceptErrors.Load(),
		ListenersFailing: int(b.stats.acceptFailing.Load()),
		Pending:          b.gate.count(),
		PendingRefused:   b.gate.refused.Load(),

		Connected:        b.connected(),
		TelemetryQueued:  b.tel.queued(),
		TelemetryWritten: b.tel.written.Load(),
		TelemetryBatches: b.tel.batches.Load(),
		TelemetryFailed:  b.tel.failed.Load(),
	}
}

// Floods returns the floods in progress on this node: devices refused by
// the rate limits within FloodQuiet, with the count of their refusals.
func (b *Broker) Floods() []Flood { return b.limits.inProgress(time.Now()) }

// connected counts the device connections held.
func (b *Broker) connected() int {
	n := 0
	b.conns.m.Range(func(any, any) bool { n++; return true })
	return n
}

// publish sends payload to a device's down topic. A device not subscribed
// does not get it; that is its choice. It does not block: mochi drops a
// message for a client whose outbound queue is full.
func (b *Broker) publish(device, sub string, payload []byte) {
	if err := b.server.Publish(DownTopic(device, sub), payload, false, 1); err != nil {
		b.logger.Warn("cannot publish to device", "device", device, "topic", sub, "error", err)
	}
}
