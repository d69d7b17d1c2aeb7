package console

// The sessions board: the timed sessions not ended, with the time left on
// each timer, overdue ones in amber, and their Update messages; and the
// devices, with battery, last seen and the node holding each connection.
// One search box filters both. The page refreshes its tables when the
// event stream says sessions or devices changed ("board" events, hub.go).

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/ui"
)

// Limits of the board.
const (
	// maxBoardDevices is how many devices the board lists; a search
	// narrows the rest down.
	maxBoardDevices = 500
	// maxSearch bounds the search text, in bytes.
	maxSearch = 200
	// lowBattery is the battery level, in percent, shown as low.
	lowBattery = 20
)

// boardView is what the sessions board shows.
type boardView struct {
	pageBase
	Q             string
	Sessions      []sessionRow
	Devices       []deviceRow
	SessionsTotal int // before the search
	DevicesTotal  int // before the search
	DevicesFound  int // after the search, before maxBoardDevices
	Connected     int // of every device
	LowBattery    int // of every device
	Overdue       int // of every session
	Error         string
}

// sessionRow is one session as the board shows it.
type sessionRow struct {
	ID          string
	Worker      string
	Org         string
	Status      monitoring.SessionStatus
	StatusLabel string
	// Until is when the timer runs out: the next check-in or end while
	// active, the end of the grace period while overdue.
	Until     time.Time
	Left      string // the time left, or how long ago it passed
	Late      bool   // Until has passed
	StartedAt time.Time
	EndsAt    time.Time
	CheckIn   string // the check-in interval, if any
	Address   string
	Update    string
	Device    string
	AlarmID   string
	Search    string // lower-case text the search looks in
}

// Class is the row's class list.
func (r sessionRow) Class() string {
	switch r.Status {
	case monitoring.SessionOverdue:
		return "session overdue"
	case monitoring.SessionAlarm:
		return "session alarm-raised"
	}
	return "session"
}

// deviceRow is one device as the board shows it.
type deviceRow struct {
	ID             string
	Label          string
	Kind           string
	Worker         string
	Org            string
	Battery        int
	Low            bool
	Connected      bool
	Node           string
	LastSeen       time.Time
	DisconnectedAt time.Time
	Reason         string
	Session        bool // its worker has a session not ended
	Search         string
}

var sessionLabels = map[monitoring.SessionStatus]string{
	monitoring.SessionActive:  "Active",
	monitoring.SessionOverdue: "OVERDUE",
	monitoring.SessionAlarm:   "Alarm raised",
	monitoring.SessionEnded:   "Ended",
}

var disconnectLabels = map[string]string{
	monitoring.DisconnectClean:    "signed off",
	monitoring.DisconnectLost:     "connection lost",
	monitoring.DisconnectNodeStop: "its node stopped",
	monitoring.DisconnectNodeDown: "its node stopped answering",
}

// timeLeft formats the time until t from now: "12m 05s", or "passed 3m
// 10s ago" once t has passed.
func timeLeft(t, now time.Time) (string, bool) {
	if d := t.Sub(now); d >= 0 {
		return ago(d), false
	}
	return "passed " + ago(now.Sub(t)) + " ago", true
}

// matches reports whether every word of q is in text.
func matches(text, q string) bool {
	for w := range strings.FieldsSeq(q) {
		if !strings.Contains(text, w) {
			return false
		}
	}
	return true
}

// GET /ui/sessions?q=: the sessions board.
func (co *Console) boardPage(c *gin.Context) {
	v := boardView{pageBase: co.base(c, "Sessions and devices")}
	v.Page, v.Section = "sessions", "sessions"
	v.Q = strings.TrimSpace(c.Query("q"))
	if len(v.Q) > maxSearch {
		v.Q = v.Q[:maxSearch]
	}
	q := strings.ToLower(v.Q)
	names := newNamer(co.svc, nil)
	orgName := func(id string) string {
		if o := names.org(id); o != nil {
			return o.Name
		}
		return id
	}
	workerName := func(id string) string {
		if w := names.worker(id); w != nil {
			return w.Name
		}
		return id
	}
	now := time.Now()
	sessions, err := co.svc.ActiveSessions()
	if err != nil {
		v.Error = ui.ErrorText(err)
	}
	inSession := map[string]bool{}
	for _, s := range sessions {
		inSession[s.WorkerID] = true
		r := sessionRow{ID: s.ID, Worker: workerName(s.WorkerID), Org: orgName(s.OrgID), Status: s.Status,
			StatusLabel: sessionLabels[s.Status], StartedAt: s.StartedAt, EndsAt: s.EndsAt, Update: s.Update,
			Device: s.DeviceID, AlarmID: s.AlarmID}
		switch s.Status {
		case monitoring.SessionOverdue:
			r.Until = s.GraceUntil
			v.Overdue++
		case monitoring.SessionActive:
			r.Until = s.NextDue
		}
		if !r.Until.IsZero() {
			r.Left, r.Late = timeLeft(r.Until, now)
		}
		if s.CheckInInterval > 0 {
			r.CheckIn = fmtDur(s.CheckInInterval)
		}
		if l := s.Location; l != nil {
			r.Address = l.Address
			if r.Address == "" {
				r.Address = fmt.Sprintf("%.5f, %.5f", l.Lat, l.Lon)
			}
		}
		r.Search = strings.ToLower(strings.Join([]string{r.Worker, s.WorkerID, r.Org, s.ID, r.Device, r.Address, r.Update, r.StatusLabel}, " "))
		v.SessionsTotal++
		if matches(r.Search, q) {
			v.Sessions = append(v.Sessions, r)
		}
	}
	devices, err := co.svc.Devices()
	if err != nil && v.Error == "" {
		v.Error = ui.ErrorText(err)
	}
	for _, d := range devices {
		r := deviceRow{ID: d.ID, Label: d.Label, Kind: kindLabels[d.Kind], Worker: workerName(d.WorkerID), Org: orgName(d.OrgID),
			Battery: d.Battery, Low: d.Battery >= 0 && d.Battery < lowBattery, Connected: d.Connected, Node: d.Node,
			LastSeen: d.LastSeen, DisconnectedAt: d.DisconnectedAt, Reason: disconnectLabels[d.DisconnectReason],
			Session: d.WorkerID != "" && inSession[d.WorkerID]}
		if d.WorkerID == "" {
			r.Worker = ""
		}
		v.DevicesTotal++
		if r.Connected {
			v.Connected++
		}
		if r.Low {
			v.LowBattery++
		}
		r.Search = strings.ToLower(strings.Join([]string{d.ID, d.Label, r.Kind, r.Worker, d.WorkerID, r.Org, d.Node}, " "))
		if matches(r.Search, q) {
			v.Devices = append(v.Devices, r)
		}
	}
	// Trouble first: a device in a session that is not connected, then any
	// not connected, then low batteries; then by worker.
	rank := func(r deviceRow) int {
		switch {
		case !r.Connected && r.Session:
			return 0
		case !r.Connected:
			return 1
		case r.Low:
			return 2
		}
		return 3
	}
	slices.SortStableFunc(v.Devices, func(a, b deviceRow) int {
		return cmp.Or(cmp.Compare(rank(a), rank(b)), strings.Compare(a.Worker, b.Worker), strings.Compare(a.ID, b.ID))
	})
	v.DevicesFound = len(v.Devices)
	if len(v.Devices) > maxBoardDevices {
		v.Devices = v.Devices[:maxBoardDevices]
	}
	co.render(c, http.StatusOK, "sessions", v)
}

var kindLabels = map[monitoring.DeviceKind]string{
	monitoring.DevicePhoneApp:  "phone app",
	monitoring.DeviceDedicated: "dedicated device",
	monitoring.DevicePooled:    "pooled device",
}
