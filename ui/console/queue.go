package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/ui"
	"github.com/vigilarc/vigil/ui/auth"
)

// Timing of an event stream.
const (
	// heartbeatEvery keeps proxies and the browser from thinking an idle
	// stream is dead.
	heartbeatEvery = 15 * time.Second
	// recheckEvery is how often a stream checks that its session is still
	// valid (signed out elsewhere, disabled, expired).
	recheckEvery = 30 * time.Second
	// retryMillis tells EventSource how soon to reconnect.
	retryMillis = 1000
)

// queueView is what the queue page shows.
type queueView struct {
	pageBase
	Rows  []alarmRow
	Error string
}

// snapshot is the data of a "snapshot" event and of GET /ui/queue.json:
// the open queue, by priority then oldest first, and the node's clock, so
// that the browser can show ages right even if its own clock is off.
type snapshot struct {
	Now  time.Time  `json:"now"`
	Node string     `json:"node"`
	Rows []alarmRow `json:"rows"`
}

func (co *Console) snapshot() (snapshot, error) {
	alarms, err := co.svc.OpenAlarms()
	if err != nil {
		return snapshot{}, err
	}
	names := newNamer(co.svc, nil)
	rows := make([]alarmRow, 0, len(alarms))
	for i := range alarms {
		rows = append(rows, names.row(&alarms[i]))
	}
	sortRows(rows)
	return snapshot{Now: time.Now().UTC(), Node: co.cfg.NodeID, Rows: rows}, nil
}

// GET /ui/: the live alarm queue.
func (co *Console) queuePage(c *gin.Context) {
	v := queueView{pageBase: co.base(c, "Alarm queue")}
	v.Page = "queue"
	s, err := co.snapshot()
	if err != nil {
		v.Error = ui.ErrorText(err)
	}
	v.Rows = s.Rows
	co.render(c, http.StatusOK, "queue", v)
}

// GET /ui/queue.json: the queue as the event stream's snapshot.
func (co *Console) queueJSON(c *gin.Context) {
	s, err := co.snapshot()
	if err != nil {
		c.JSON(ui.ErrorStatus(err), gin.H{"error": ui.ErrorText(err)})
		return
	}
	c.JSON(http.StatusOK, s)
}

// GET /ui/events: server-sent events. First a "snapshot" of the open
// queue, then an "alarm" event for each change of an alarm (its new queue
// row), "audio" when an alarm's audio grows, "board" when sessions or
// devices changed (at most once a second), "resync" when the browser must
// reload the queue, and "signedout" before the stream ends because the
// session did.
func (co *Console) events(c *gin.Context) {
	client := co.hub.add()
	if client == nil {
		c.JSON(http.StatusServiceUnavailable, gin.H{"error": "the console is stopping"})
		return
	}
	defer co.hub.remove(client)
	snap, err := co.snapshot() // after add: no change falls between the two
	if err != nil {
		c.JSON(ui.ErrorStatus(err), gin.H{"error": ui.ErrorText(err)})
		return
	}
	w := c.Writer
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(event string, data []byte) bool {
		_, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data)
		w.Flush()
		return err == nil
	}
	fmt.Fprintf(w, "retry: %d\n\n", retryMillis)
	b, _ := json.Marshal(snap)
	if !send("snapshot", b) {
		return
	}
	token := auth.SessionTokenOf(c)
	beat := time.NewTicker(heartbeatEvery)
	defer beat.Stop()
	recheck := time.NewTicker(recheckEvery)
	defer recheck.Stop()
	ctx := c.Request.Context()
	for {
		select {
		case <-ctx.Done():
			return
		case <-client.done:
			return // dropped for falling behind, or the console stops: the browser reconnects
		case m := <-client.ch:
			if !send(m.event, m.data) {
				return
			}
		case <-beat.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
			w.Flush()
		case <-recheck.C:
			if _, _, err := co.svc.Authenticate(token); errors.Is(err, monitoring.ErrNoSession) {
				send("signedout", []byte(`{}`))
				return
			}
		}
	}
}
