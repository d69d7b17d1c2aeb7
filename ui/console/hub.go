package console

import (
	"context"
	"encoding/json"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
)

// Limits of the hub.
const (
	// clientBuffer is how many messages a browser may fall behind before
	// its stream is cut; it reconnects and starts again from a snapshot.
	clientBuffer = 256
	// trailLen is how many fixes of each device the console remembers.
	trailLen = 32
	// maxTrails bounds the devices whose trail is remembered.
	maxTrails = 20000
	// resubscribeWait is the pause before following the bus again after
	// falling behind it.
	resubscribeWait = 100 * time.Millisecond
	// boardEvery is the most often a "board" event goes out: sessions and
	// devices change many times a second in a large cluster, and the pages
	// that show them only need to know that they should read them again.
	boardEvery = time.Second
)

// sseMessage is one server-sent event: its name and JSON data.
type sseMessage struct {
	event string
	data  []byte
}

// hub follows this node's event bus and passes alarm changes to every
// browser's event stream. It also remembers the last fixes of each device,
// for the alarm page's trail.
type hub struct {
	svc    Monitoring
	logger *slog.Logger
	trails *trails

	mu      sync.Mutex
	clients map[*streamClient]struct{}
	closed  bool

	boardMu      sync.Mutex
	boardPending bool      // a "board" event is due
	boardLast    time.Time // when the last went out
}

// streamClient is one browser's event stream.
type streamClient struct {
	ch   chan sseMessage
	done chan struct{} // closed when the hub drops the client
	once sync.Once
}

func (s *streamClient) drop() { s.once.Do(func() { close(s.done) }) }

func newHub(svc Monitoring, logger *slog.Logger) *hub {
	return &hub{svc: svc, logger: logger, trails: newTrails(), clients: map[*streamClient]struct{}{}}
}

// add registers a browser's stream. It returns nil once the hub is closed.
func (h *hub) add() *streamClient {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	s := &streamClient{ch: make(chan sseMessage, clientBuffer), done: make(chan struct{})}
	h.clients[s] = struct{}{}
	return s
}

// remove unregisters a stream.
func (h *hub) remove(s *streamClient) {
	h.mu.Lock()
	delete(h.clients, s)
	h.mu.Unlock()
	s.drop()
}

// broadcast sends a message to every stream; a stream that is full is
// dropped rather than waited for.
func (h *hub) broadcast(m sseMessage) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.clients {
		select {
		case s.ch <- m:
		default:
			delete(h.clients, s)
			s.drop()
		}
	}
}

// close drops every stream; the hub takes no more.
func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for s := range h.clients {
		delete(h.clients, s)
		s.drop()
	}
}

// run follows the event bus until ctx ends. When it falls behind, it
// subscribes again and tells every browser to start from a new snapshot.
func (h *hub) run(ctx context.Context) {
	for ctx.Err() == nil {
		sub := h.svc.Subscribe(monitoring.DefaultSubscriptionBuffer)
		h.follow(ctx, sub)
		sub.Close()
		if ctx.Err() != nil {
			return
		}
		h.logger.Warn("console fell behind the event bus; browsers reload the queue")
		h.broadcast(sseMessage{event: "resync", data: []byte("{}")})
		select {
		case <-ctx.Done():
		case <-time.After(resubscribeWait):
		}
	}
}

func (h *hub) follow(ctx context.Context, sub *monitoring.Subscription) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-sub.C:
			if !ok {
				return
			}
			h.handle(ev)
		}
	}
}

// incidentDoNotCall sends again the rows of the other open alarms of a's
// incident, when a (raised, or cancelled with the Duress PIN) makes the
// incident do-not-call: the queues must show DO NOT CALL on all of them
// at once, not at the next change of each.
func (h *hub) incidentDoNotCall(ev monitoring.Event, a *monitoring.Alarm, names *namer) {
	if a.IncidentID == "" {
		return
	}
	inc, err := h.svc.Incident(a.IncidentID)
	if err != nil || len(inc) < 2 {
		return
	}
	for i := range inc {
		o := &inc[i]
		if o.ID == a.ID || o.Status == monitoring.StatusClosed {
			continue
		}
		if b, err := json.Marshal(alarmMessage{Event: monitoring.EventAlarmUpdated, Row: names.row(o)}); err == nil {
			h.broadcast(sseMessage{event: "alarm", data: b})
		}
	}
}

// alarmMessage is the data of an "alarm" event: the alarm's queue row, and
// what happened.
type alarmMessage struct {
	Event monitoring.EventType `json:"event"`
	Row   alarmRow             `json:"row"`
}

func (h *hub) handle(ev monitoring.Event) {
	switch ev.Type {
	case monitoring.EventAlarmRaised, monitoring.EventAlarmUpdated, monitoring.EventAlarmClosed, monitoring.EventAlarmCancelled,
		monitoring.EventContactDue:
		if ev.Alarm == nil {
			return
		}
		if ev.Alarm.Location != nil && ev.Alarm.DeviceID != "" {
			h.trails.add(ev.Alarm.DeviceID, *ev.Alarm.Location, ev.At)
		}
		names := newNamer(h.svc, nil)
		a := ev.Alarm
		if linked := a.IncidentID != "" && a.IncidentID != a.ID; linked && !a.DoNotCall {
			// Do-not-call is a property of the incident: the event carries
			// the alarm's own flag, the Service's read the incident's.
			if cur, err := h.svc.Alarm(a.ID); err == nil && cur.DoNotCall {
				c := *a
				c.DoNotCall = true
				a = &c
			}
		}
		b, err := json.Marshal(alarmMessage{Event: ev.Type, Row: names.row(a)})
		if err != nil {
			return
		}
		h.broadcast(sseMessage{event: "alarm", data: b})
		if a.DoNotCall && (ev.Type == monitoring.EventAlarmRaised || ev.Type == monitoring.EventAlarmCancelled) {
			h.incidentDoNotCall(ev, a, names)
		}
	case monitoring.EventDeviceUpdated:
		if ev.Device != nil && ev.Device.Location != nil {
			h.trails.add(ev.Device.ID, *ev.Device.Location, ev.Device.LastSeen)
		}
		h.boardChanged()
	case monitoring.EventSessionStarted, monitoring.EventSessionUpdated, monitoring.EventSessionEnded,
		monitoring.EventWorkerUpdated, monitoring.EventOrgUpdated:
		h.boardChanged()
	case monitoring.EventAudioChunk:
		if ev.Audio != nil && ev.Audio.Seq%5 == 0 { // a few times a minute is enough to refresh a player
			b, _ := json.Marshal(map[string]any{"alarm_id": ev.Audio.AlarmID, "seq": ev.Audio.Seq})
			h.broadcast(sseMessage{event: "audio", data: b})
		}
	}
}

// boardChanged sends a "board" event, saying that sessions or devices
// changed, at most every boardEvery: at once if the last went out long
// enough ago, else once at the end of the interval.
func (h *hub) boardChanged() {
	h.boardMu.Lock()
	defer h.boardMu.Unlock()
	if h.boardPending {
		return
	}
	h.boardPending = true
	wait := boardEvery - time.Since(h.boardLast)
	time.AfterFunc(max(0, wait), func() {
		h.boardMu.Lock()
		h.boardPending, h.boardLast = false, time.Now()
		h.boardMu.Unlock()
		h.broadcast(sseMessage{event: "board", data: []byte("{}")})
	})
}

// fix is one remembered position of a device.
type fix struct {
	Loc monitoring.Location
	At  time.Time // the fix's own time, else when Vigil recorded it
}

// trails remembers the last trailLen fixes of each device, in this node's
// memory since it started: the replicated state keeps only the latest fix.
type trails struct {
	mu sync.Mutex
	m  map[string][]fix
}

func newTrails() *trails { return &trails{m: map[string][]fix{}} }

func (t *trails) add(deviceID string, l monitoring.Location, seen time.Time) {
	at := l.At
	if at.IsZero() {
		at = seen
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	fs, ok := t.m[deviceID]
	if !ok && len(t.m) >= maxTrails {
		for k := range t.m { // forget one device, any
			delete(t.m, k)
			break
		}
	}
	if n := len(fs); n > 0 && fs[n-1].Loc.Lat == l.Lat && fs[n-1].Loc.Lon == l.Lon {
		return
	}
	fs = append(fs, fix{Loc: l, At: at})
	if len(fs) > trailLen {
		fs = fs[len(fs)-trailLen:]
	}
	t.m[deviceID] = fs
}

// get returns a copy of a device's trail, oldest first.
func (t *trails) get(deviceID string) []fix {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := append([]fix(nil), t.m[deviceID]...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out
}
