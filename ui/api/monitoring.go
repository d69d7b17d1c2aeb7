package api

// The monitoring routes of the HTTP API: organisations, workers, devices,
// sessions, alarms and KPIs, each a thin call into monitoring.Service.
//
// Every write carries a command ID ("id") chosen by the client and reused
// when it retries: a retry returns the first result and changes nothing.
// The actor recorded for a write is the caller (ui.Principal.Actor: the
// signed-in operator's ID, "token:<name>" or the setup actor); an "actor"
// in the body is optional and ignored. The one exception is the routes
// that speak for a device (starting and acting on sessions, raising and
// cancelling alarms, admins only): there a body actor "device:<id>" is
// kept, as the device itself would be recorded over MQTT, and a cancel
// needs it.
//
// Durations in request bodies are Go duration strings ("45m", "2s").
// Replies carry the stored records as the monitoring package encodes them,
// where durations are integer nanoseconds in fields ending in _ns.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/ui/auth"
	"github.com/vigilarc/vigil/ui/enrol"
)

// Limits of the monitoring routes.
const (
	// MaxActorLen is the longest actor a client may give.
	MaxActorLen = 200
	// DefaultKPIPeriod is the period GET /api/v1/kpis covers when the
	// client gives no "from".
	DefaultKPIPeriod = 24 * time.Hour
)

// monitoringService is what the API needs from the monitoring Service.
type monitoringService interface {
	PutOrganisation(ctx context.Context, cmdID, actor string, org monitoring.Organisation) (*monitoring.Organisation, error)
	Organisation(id string) (*monitoring.Organisation, error)
	Organisations() ([]monitoring.Organisation, error)

	PutWorker(ctx context.Context, cmdID, actor string, w monitoring.Worker) (*monitoring.Worker, error)
	Worker(id string) (*monitoring.Worker, error)
	Workers(orgID string) ([]monitoring.Worker, error)
	SetPINs(ctx context.Context, cmdID, actor, workerID, safePIN, duressPIN string) (uint64, error)

	PutDevice(ctx context.Context, cmdID, actor string, d monitoring.Device) (*monitoring.Device, error)
	Device(id string) (*monitoring.Device, error)
	Devices() ([]monitoring.Device, error)
	SetDeviceSecret(ctx context.Context, cmdID, actor, deviceID string) (string, error)

	StartSession(ctx context.Context, cmdID, actor string, req monitoring.StartSessionRequest) (*monitoring.Session, error)
	CheckIn(ctx context.Context, cmdID, actor, sessionID, pin string) (monitoring.SessionReply, error)
	Extend(ctx context.Context, cmdID, actor, sessionID, pin string, d time.Duration) (monitoring.SessionReply, error)
	EndSession(ctx context.Context, cmdID, actor, sessionID, pin string) (monitoring.SessionReply, error)
	ActiveSessions() ([]monitoring.ActiveSession, error)
	Session(id string) (*monitoring.Session, error)

	RaiseAlarm(ctx context.Context, cmdID, actor string, req monitoring.RaiseAlarmRequest) (*monitoring.Alarm, error)
	Acknowledge(ctx context.Context, cmdID, operator, alarmID string, takeover bool) (*monitoring.Alarm, error)
	LogAction(ctx context.Context, cmdID, operator, alarmID string, entry monitoring.TimelineEntry) (*monitoring.Alarm, error)
	RequestListen(ctx context.Context, cmdID, operator, alarmID string, seconds int) (*monitoring.Alarm, error)
	Close(ctx context.Context, cmdID, operator, alarmID string, resolution monitoring.Resolution, confirmation monitoring.Confirmation, note, noBriefingReason string) (*monitoring.Alarm, error)
	Reopen(ctx context.Context, cmdID, operator, alarmID, reason string) (*monitoring.Alarm, error)
	CancelAlarm(ctx context.Context, cmdID, actor, alarmID, pin string) (monitoring.CancelReply, error)
	OpenAlarms() ([]monitoring.Alarm, error)
	Alarm(id string) (*monitoring.Alarm, error)
	Timeline(alarmID string) ([]monitoring.TimelineEntry, error)
	URNFor(alarmID string) (*monitoring.URNCheck, error)

	KPIs(orgID string, from, to time.Time) (*monitoring.KPIs, error)
	MonthlyStats(orgID, month string) (*monitoring.MonthlyStats, error)
	SendBriefing(ctx context.Context, cmdID, operator, alarmID string) (*monitoring.EnqueueResult, error)
}

var _ monitoringService = (*monitoring.Service)(nil)

// Command holds the fields every monitoring write carries.
type Command struct {
	// ID is the command ID: unique per command, reused on retry.
	ID string `json:"id"`
	// Actor is optional and ignored: the caller is recorded. On the routes
	// that speak for a device, "device:<id>" is kept (bindDeviceCommand).
	Actor string `json:"actor,omitempty"`
}

// OrganisationBody is an organisation as a client writes it.
type OrganisationBody struct {
	ID               string                     `json:"id"`
	Name             string                     `json:"name"`
	Procedure        string                     `json:"procedure,omitempty"`
	ProcedureSteps   []monitoring.ProcedureStep `json:"procedure_steps,omitempty"`
	Contacts         []monitoring.Contact       `json:"contacts,omitempty"`
	DefaultSession   string                     `json:"default_session,omitempty"`   // Go duration; empty for DefaultSessionDuration
	DefaultCheckIn   string                     `json:"default_checkin,omitempty"`   // Go duration; empty for none
	Grace            string                     `json:"grace,omitempty"`             // Go duration; empty for DefaultGrace
	OfflineThreshold string                     `json:"offline_threshold,omitempty"` // Go duration; empty for DefaultOfflineThreshold
	// HeartbeatInterval and LocationInterval are how often its devices
	// report (down/config); Go durations, empty for the defaults.
	HeartbeatInterval string                       `json:"heartbeat_interval,omitempty"`
	LocationInterval  string                       `json:"location_interval,omitempty"`
	Priorities        map[monitoring.AlarmType]int `json:"priorities,omitempty"`
	// AccidentalPressWindow lets a worker's Safe-PIN reset within this
	// time of the raise close an alarm no operator has taken, as a false
	// alarm; Go duration up to 1m, empty (the default) for none: every
	// reset waits for an operator to confirm the worker is safe.
	AccidentalPressWindow string `json:"accidental_press_window,omitempty"`
	// LowBattery is the battery level, in percent, under which a device's
	// report raises a low-battery alarm; 0 or absent for the default (15).
	LowBattery int `json:"low_battery_percent,omitempty"`
	// URNs are its police lone-worker URNs: force, urn and expiry (RFC
	// 3339; the URN is not used from then on), any number per force.
	URNs []monitoring.PoliceURN `json:"urns,omitempty"`
	// ContactWait is how long an operator waits for an escalation
	// contact's answer before the next contact is due; Go duration from
	// 1m to 1h, empty for the default (5m).
	ContactWait string `json:"contact_wait,omitempty"`
	// Notify is who is told, by mail and webhook, of a genuine close, a
	// duress or discreet alarm, and an alarm not acknowledged in time
	// (docs/notifications.md).
	Notify monitoring.NotifyPolicy `json:"notify,omitzero"`
	// Retention is how many days closed alarms, audio, positions and
	// delivered notifications are kept (docs/retention.md); 0 or absent
	// keeps them for ever.
	Retention monitoring.Retention `json:"retention,omitzero"`
}

// OrganisationRequest is the body of POST /api/v1/organisations.
type OrganisationRequest struct {
	Command
	Org OrganisationBody `json:"org"`
}

// WorkerBody is a worker as a client writes it. PINs are set only by
// POST /api/v1/workers/:id/pins. URNs are kept for older clients; a police
// call uses the organisation's (OrganisationBody.URNs), never these.
type WorkerBody struct {
	ID        string                   `json:"id"`
	Name      string                   `json:"name"`
	Phone     string                   `json:"phone,omitempty"`
	OrgID     string                   `json:"org_id"`
	Team      string                   `json:"team,omitempty"`
	Important monitoring.ImportantInfo `json:"important"`
	Contacts  []monitoring.Contact     `json:"contacts,omitempty"`
	URNs      []monitoring.PoliceURN   `json:"urns,omitempty"`
}

// WorkerRequest is the body of POST /api/v1/workers.
type WorkerRequest struct {
	Command
	Worker WorkerBody `json:"worker"`
}

// PINsRequest is the body of POST /api/v1/workers/:id/pins. The PINs are
// hashed on the node that receives them and never echoed.
type PINsRequest struct {
	Command
	SafePIN   string `json:"safe_pin"`
	DuressPIN string `json:"duress_pin,omitempty"`
}

// PINsResponse is the reply to POST /api/v1/workers/:id/pins.
type PINsResponse struct {
	WorkerID   string `json:"worker_id"`
	PINVersion uint64 `json:"pin_version"`
}

// DeviceBody is a device's registration as a client writes it; its
// telemetry comes from the device.
type DeviceBody struct {
	ID       string                `json:"id"`
	Kind     monitoring.DeviceKind `json:"kind"`
	Label    string                `json:"label,omitempty"`
	OrgID    string                `json:"org_id"`
	WorkerID string                `json:"worker_id,omitempty"`
}

// DeviceRequest is the body of POST /api/v1/devices.
type DeviceRequest struct {
	Command
	Device DeviceBody `json:"device"`
}

// StartSessionBody is the body of POST /api/v1/sessions.
type StartSessionBody struct {
	Command
	SessionID       string               `json:"session_id,omitempty"` // empty: the node makes one
	WorkerID        string               `json:"worker_id"`
	DeviceID        string               `json:"device_id"`
	Duration        string               `json:"duration,omitempty"`         // Go duration; empty for the organisation's default
	CheckInInterval string               `json:"checkin_interval,omitempty"` // Go duration; empty for the organisation's default
	Location        *monitoring.Location `json:"location,omitempty"`
	Update          string               `json:"update,omitempty"`
}

// SessionPINRequest is the body of POST /api/v1/sessions/:id/checkin and
// /end.
type SessionPINRequest struct {
	Command
	PIN string `json:"pin,omitempty"` // required when the worker has a Safe PIN
}

// ExtendRequest is the body of POST /api/v1/sessions/:id/extend.
type ExtendRequest struct {
	Command
	PIN      string `json:"pin,omitempty"`
	ExtendBy string `json:"extend_by"` // Go duration
}

// RaiseAlarmBody is the body of POST /api/v1/alarms.
type RaiseAlarmBody struct {
	Command
	Type       monitoring.AlarmType `json:"type"`
	DeviceID   string               `json:"device_id,omitempty"`
	WorkerID   string               `json:"worker_id,omitempty"`
	SessionID  string               `json:"session_id,omitempty"`
	DeviceTime string               `json:"device_time,omitempty"` // RFC 3339
	Location   *monitoring.Location `json:"location,omitempty"`
}

// AcknowledgeRequest is the body of POST /api/v1/alarms/:id/acknowledge.
type AcknowledgeRequest struct {
	Command
	Takeover bool `json:"takeover,omitempty"` // take an alarm another operator holds
}

// ActionRequest is the body of POST /api/v1/alarms/:id/actions: one
// timeline entry. Which fields a kind needs is in monitoring.CheckAction.
type ActionRequest struct {
	Command
	Kind      monitoring.ActionKind `json:"kind"`
	Outcome   string                `json:"outcome,omitempty"`
	Force     string                `json:"force,omitempty"`
	Route     string                `json:"route,omitempty"`
	Reference string                `json:"reference,omitempty"`
	Contact   string                `json:"contact,omitempty"`
	Text      string                `json:"text,omitempty"`
}

// ListenRequest is the body of POST /api/v1/alarms/:id/listen: ask the
// alarm's device to stream its audio, silently.
type ListenRequest struct {
	Command
	// Seconds is how long the device streams, 10 to 600; 0 for
	// monitoring.DefaultListenSeconds (120).
	Seconds int `json:"seconds,omitempty"`
}

// CloseRequest is the body of POST /api/v1/alarms/:id/close.
type CloseRequest struct {
	Command
	Resolution monitoring.Resolution `json:"resolution"`
	// Confirmation is how the worker's safety was confirmed: required
	// (worker_confirmed, contact_confirmed, police_attended, in_person).
	Confirmation monitoring.Confirmation `json:"confirmation"`
	Note         string                  `json:"note,omitempty"`
	// NoBriefingReason is why no escalation contact was briefed: required
	// to close a genuine alarm (worker_safe, incident_handled) with no
	// contact entry briefed or welfare_confirmed.
	NoBriefingReason string `json:"no_briefing_reason,omitempty"`
}

// ReopenRequest is the body of POST /api/v1/alarms/:id/reopen.
type ReopenRequest struct {
	Command
	Reason string `json:"reason"`
}

// CancelAlarmRequest is the body of POST /api/v1/alarms/:id/cancel, sent
// by the alarm's device (actor "device:<id>").
type CancelAlarmRequest struct {
	Command
	PIN string `json:"pin"` // the worker's Safe PIN (or Duress PIN)
}

// OrganisationsResponse is the reply to GET /api/v1/organisations.
type OrganisationsResponse struct {
	Organisations []monitoring.Organisation `json:"organisations"`
}

// WorkersResponse is the reply to GET /api/v1/workers.
type WorkersResponse struct {
	Workers []monitoring.Worker `json:"workers"`
}

// DevicesResponse is the reply to GET /api/v1/devices.
type DevicesResponse struct {
	Devices []monitoring.Device `json:"devices"`
}

// SessionsResponse is the reply to GET /api/v1/sessions: the sessions not
// ended, the soonest due first.
type SessionsResponse struct {
	Sessions []monitoring.ActiveSession `json:"sessions"`
}

// AlarmsResponse is the reply to GET /api/v1/alarms: the open queue, by
// priority and then oldest first.
type AlarmsResponse struct {
	Alarms []monitoring.Alarm `json:"alarms"`
}

// AlarmResponse is the reply to GET /api/v1/alarms/:id.
type AlarmResponse struct {
	Alarm    monitoring.Alarm           `json:"alarm"`
	Timeline []monitoring.TimelineEntry `json:"timeline"`
}

// monitoringRoutes adds the monitoring routes, each to the group of the
// least role that may call it: reads and the work on alarms for operators,
// reopening and the KPIs for supervisors (as in the console), the
// directory for admins. Starting and acting on sessions, raising and
// cancelling alarms speak for a device, which the console never does: they
// are for integrations and tests, and need an admin.
func (a *api) monitoringRoutes(g groups) {
	g.admin.POST("/organisations", a.putOrganisation)
	g.operator.GET("/organisations", a.listOrganisations)
	g.operator.GET("/organisations/:id", a.getOrganisation)

	g.admin.POST("/workers", a.putWorker)
	g.operator.GET("/workers", a.listWorkers)
	g.operator.GET("/workers/:id", a.getWorker)
	g.admin.POST("/workers/:id/pins", a.setPINs)

	g.admin.POST("/devices", a.putDevice)
	g.operator.GET("/devices", a.listDevices)
	g.operator.GET("/devices/:id", a.getDevice)
	g.admin.POST("/devices/:id/secret", a.setDeviceSecret)

	g.admin.POST("/sessions", a.startSession)
	g.operator.GET("/sessions", a.listSessions)
	g.operator.GET("/sessions/:id", a.getSession)
	g.admin.POST("/sessions/:id/checkin", a.checkIn)
	g.admin.POST("/sessions/:id/extend", a.extendSession)
	g.admin.POST("/sessions/:id/end", a.endSession)

	g.admin.POST("/alarms", a.raiseAlarm)
	g.operator.GET("/alarms", a.listAlarms)
	g.operator.GET("/alarms/:id", a.getAlarm)
	g.operator.POST("/alarms/:id/acknowledge", a.acknowledge)
	g.operator.POST("/alarms/:id/actions", a.logAction)
	g.operator.GET("/alarms/:id/urn", a.urnFor)
	g.operator.POST("/alarms/:id/listen", a.requestListen)
	g.operator.POST("/alarms/:id/close", a.closeAlarm)
	g.operator.POST("/alarms/:id/briefing", a.sendBriefing)
	g.supervisor.POST("/alarms/:id/reopen", a.reopenAlarm)
	g.admin.POST("/alarms/:id/cancel", a.cancelAlarm)

	g.supervisor.GET("/kpis", a.kpis)
	g.supervisor.GET("/organisations/:id/statistics/:month", a.monthlyStats)
}

// POST /api/v1/organisations: create or replace an organisation.
func (a *api) putOrganisation(c *gin.Context) {
	var req OrganisationRequest
	if !bindCommand(c, &req, &req.Command) {
		return
	}
	o := req.Org
	org := monitoring.Organisation{
		ID: o.ID, Name: o.Name, Procedure: o.Procedure, ProcedureSteps: o.ProcedureSteps,
		Contacts: o.Contacts, Priorities: o.Priorities, LowBattery: o.LowBattery, URNs: o.URNs, Notify: o.Notify,
		Retention: o.Retention,
	}
	for _, d := range []struct {
		field, v string
		to       *time.Duration
	}{
		{"org.default_session", o.DefaultSession, &org.DefaultSession},
		{"org.default_checkin", o.DefaultCheckIn, &org.DefaultCheckIn},
		{"org.grace", o.Grace, &org.Grace},
		{"org.offline_threshold", o.OfflineThreshold, &org.OfflineThreshold},
		{"org.heartbeat_interval", o.HeartbeatInterval, &org.HeartbeatInterval},
		{"org.location_interval", o.LocationInterval, &org.LocationInterval},
		{"org.accidental_press_window", o.AccidentalPressWindow, &org.AccidentalPressWindow},
		{"org.contact_wait", o.ContactWait, &org.ContactWait},
	} {
		if !parseDuration(c, d.field, d.v, d.to) {
			return
		}
	}
	out, err := a.svc.PutOrganisation(c.Request.Context(), req.ID, req.Actor, org)
	reply(c, http.StatusCreated, out, err)
}

// GET /api/v1/organisations
func (a *api) listOrganisations(c *gin.Context) {
	out, err := a.svc.Organisations()
	reply(c, http.StatusOK, OrganisationsResponse{Organisations: nonNil(out)}, err)
}

// GET /api/v1/organisations/:id
func (a *api) getOrganisation(c *gin.Context) {
	out, err := a.svc.Organisation(c.Param("id"))
	reply(c, http.StatusOK, out, err)
}

// POST /api/v1/workers: create or update a worker.
func (a *api) putWorker(c *gin.Context) {
	var req WorkerRequest
	if !bindCommand(c, &req, &req.Command) {
		return
	}
	w := req.Worker
	out, err := a.svc.PutWorker(c.Request.Context(), req.ID, req.Actor, monitoring.Worker{
		ID: w.ID, Name: w.Name, Phone: w.Phone, OrgID: w.OrgID, Team: w.Team,
		Important: w.Important, Contacts: w.Contacts, URNs: w.URNs,
	})
	reply(c, http.StatusCreated, out, err)
}

// GET /api/v1/workers?org=: the workers of one organisation, or all.
func (a *api) listWorkers(c *gin.Context) {
	out, err := a.svc.Workers(c.Query("org"))
	reply(c, http.StatusOK, WorkersResponse{Workers: nonNil(out)}, err)
}

// GET /api/v1/workers/:id
func (a *api) getWorker(c *gin.Context) {
	out, err := a.svc.Worker(c.Param("id"))
	reply(c, http.StatusOK, out, err)
}

// POST /api/v1/workers/:id/pins {"id","actor","safe_pin","duress_pin"}
func (a *api) setPINs(c *gin.Context) {
	var req PINsRequest
	if !bindCommand(c, &req, &req.Command) {
		return
	}
	workerID := c.Param("id")
	v, err := a.svc.SetPINs(c.Request.Context(), req.ID, req.Actor, workerID, req.SafePIN, req.DuressPIN)
	reply(c, http.StatusOK, PINsResponse{WorkerID: workerID, PINVersion: v}, err)
}

// POST /api/v1/devices: register or update a device.
func (a *api) putDevice(c *gin.Context) {
	var req DeviceRequest
	if !bindCommand(c, &req, &req.Command) {
		return
	}
	d := req.Device
	out, err := a.svc.PutDevice(c.Request.Context(), req.ID, req.Actor, monitoring.Device{
		ID: d.ID, Kind: d.Kind, Label: d.Label, OrgID: d.OrgID, WorkerID: d.WorkerID,
	})
	reply(c, http.StatusCreated, out, err)
}

// GET /api/v1/devices
func (a *api) listDevices(c *gin.Context) {
	out, err := a.svc.Devices()
	reply(c, http.StatusOK, DevicesResponse{Devices: nonNil(out)}, err)
}

// GET /api/v1/devices/:id
func (a *api) getDevice(c *gin.Context) {
	out, err := a.svc.Device(c.Param("id"))
	reply(c, http.StatusOK, out, err)
}

// DeviceSecretResponse is the reply to POST /api/v1/devices/:id/secret. The
// secret is the device's MQTT password; it is shown this once, alone and
// in the device's configuration bundle.
type DeviceSecretResponse struct {
	DeviceID string        `json:"device_id"`
	Secret   string        `json:"secret"`
	Bundle   *enrol.Bundle `json:"bundle,omitempty"` // what the device needs to connect (docs/device-protocol.md)
}

// Bundler makes the configuration bundle of a device with its new secret;
// the console is one.
type Bundler interface {
	DeviceBundle(d *monitoring.Device, secret string) *enrol.Bundle
}

// Reply formats of POST /api/v1/devices/:id/secret.
const (
	mimePNG     = "image/png"
	formatQuery = "format" // ?format=json (the default) or ?format=qr
	formatQR    = "qr"
	formatJSON  = "json"
)

// POST /api/v1/devices/:id/secret {"id","actor"}: make a new secret for the
// device; the old one stops working. The reply is JSON with the secret and
// the configuration bundle, or, with ?format=qr or Accept: image/png, the
// PNG of the bundle's QR code.
func (a *api) setDeviceSecret(c *gin.Context) {
	asQR := false
	switch f := c.Query(formatQuery); f {
	case formatQR:
		asQR = true
	case formatJSON:
	case "":
		asQR = c.NegotiateFormat(gin.MIMEJSON, mimePNG) == mimePNG
	default:
		badRequest(c, formatQuery, fmt.Sprintf("format %q is neither %q nor %q", f, formatJSON, formatQR))
		return
	}
	if asQR && a.bundles == nil {
		c.JSON(http.StatusNotAcceptable, ErrorResponse{Error: "this node makes no configuration bundles: ask for JSON"})
		return
	}
	var req Command
	if !bindCommand(c, &req, &req) {
		return
	}
	deviceID := c.Param("id")
	secret, err := a.svc.SetDeviceSecret(c.Request.Context(), req.ID, req.Actor, deviceID)
	if err != nil {
		writeServiceError(c, err)
		return
	}
	out := DeviceSecretResponse{DeviceID: deviceID, Secret: secret}
	if d, err := a.svc.Device(deviceID); err == nil && a.bundles != nil {
		out.Bundle = a.bundles.DeviceBundle(d, secret)
	}
	c.Header("Cache-Control", "no-store")
	if !asQR {
		c.JSON(http.StatusOK, out)
		return
	}
	if out.Bundle == nil {
		writeError(c, fmt.Errorf("the secret was issued, but device %q cannot be read to make its bundle: ask again for JSON with a new id", deviceID))
		return
	}
	png, err := out.Bundle.QRPNG()
	if err != nil {
		writeError(c, fmt.Errorf("the secret was issued, but %w: ask again for JSON with a new id", err))
		return
	}
	c.Header("Content-Disposition", `attachment; filename="`+out.Bundle.FileName(".png")+`"`)
	c.Data(http.StatusOK, mimePNG, png)
}

// POST /api/v1/sessions: start a session.
func (a *api) startSession(c *gin.Context) {
	var req StartSessionBody
	if !bindDeviceCommand(c, &req, &req.Command) {
		return
	}
	sr := monitoring.StartSessionRequest{
		SessionID: req.SessionID, WorkerID: req.WorkerID, DeviceID: req.DeviceID,
		Location: req.Location, Update: req.Update,
	}
	if !parseDuration(c, "duration", req.Duration, &sr.Duration) ||
		!parseDuration(c, "checkin_interval", req.CheckInInterval, &sr.CheckInInterval) {
		return
	}
	out, err := a.svc.StartSession(c.Request.Context(), req.ID, req.Actor, sr)
	reply(c, http.StatusCreated, out, err)
}

// GET /api/v1/sessions: the sessions not ended, with the time left.
func (a *api) listSessions(c *gin.Context) {
	out, err := a.svc.ActiveSessions()
	reply(c, http.StatusOK, SessionsResponse{Sessions: nonNil(out)}, err)
}

// GET /api/v1/sessions/:id
func (a *api) getSession(c *gin.Context) {
	out, err := a.svc.Session(c.Param("id"))
	reply(c, http.StatusOK, out, err)
}

// POST /api/v1/sessions/:id/checkin {"id","actor","pin"}. The reply to the
// Duress PIN is the reply to the Safe PIN.
func (a *api) checkIn(c *gin.Context) {
	var req SessionPINRequest
	if !bindDeviceCommand(c, &req, &req.Command) {
		return
	}
	out, err := a.svc.CheckIn(c.Request.Context(), req.ID, req.Actor, c.Param("id"), req.PIN)
	reply(c, http.StatusOK, out, err)
}

// POST /api/v1/sessions/:id/extend {"id","actor","pin","extend_by"}
func (a *api) extendSession(c *gin.Context) {
	var req ExtendRequest
	if !bindDeviceCommand(c, &req, &req.Command) {
		return
	}
	if req.ExtendBy == "" {
		badRequest(c, "extend_by", `extend_by is required: a Go duration such as "30m"`)
		return
	}
	var d time.Duration
	if !parseDuration(c, "extend_by", req.ExtendBy, &d) {
		return
	}
	out, err := a.svc.Extend(c.Request.Context(), req.ID, req.Actor, c.Param("id"), req.PIN, d)
	reply(c, http.StatusOK, out, err)
}

// POST /api/v1/sessions/:id/end {"id","actor","pin"}
func (a *api) endSession(c *gin.Context) {
	var req SessionPINRequest
	if !bindDeviceCommand(c, &req, &req.Command) {
		return
	}
	out, err := a.svc.EndSession(c.Request.Context(), req.ID, req.Actor, c.Param("id"), req.PIN)
	reply(c, http.StatusOK, out, err)
}

// POST /api/v1/alarms: raise an alarm.
func (a *api) raiseAlarm(c *gin.Context) {
	var req RaiseAlarmBody
	if !bindDeviceCommand(c, &req, &req.Command) {
		return
	}
	rr := monitoring.RaiseAlarmRequest{
		Type: req.Type, DeviceID: req.DeviceID, WorkerID: req.WorkerID, SessionID: req.SessionID,
		Location: req.Location,
	}
	if req.DeviceTime != "" {
		t, err := time.Parse(time.RFC3339Nano, req.DeviceTime)
		if err != nil {
			badRequest(c, "device_time", fmt.Sprintf("device_time %q is not an RFC 3339 time", req.DeviceTime))
			return
		}
		if err := monitoring.CheckDeviceTime("device_time", t, time.Now()); err != nil {
			badRequest(c, "device_time", err.Error())
			return
		}
		rr.DeviceTime = t
	}
	out, err := a.svc.RaiseAlarm(c.Request.Context(), req.ID, req.Actor, rr)
	reply(c, http.StatusCreated, out, err)
}

// GET /api/v1/alarms: the open queue.
func (a *api) listAlarms(c *gin.Context) {
	out, err := a.svc.OpenAlarms()
	reply(c, http.StatusOK, AlarmsResponse{Alarms: nonNil(out)}, err)
}

// GET /api/v1/alarms/:id: the alarm and its timeline.
func (a *api) getAlarm(c *gin.Context) {
	id := c.Param("id")
	al, err := a.svc.Alarm(id)
	if err != nil {
		writeServiceError(c, err)
		return
	}
	tl, err := a.svc.Timeline(id)
	reply(c, http.StatusOK, AlarmResponse{Alarm: *al, Timeline: nonNil(tl)}, err)
}

// POST /api/v1/alarms/:id/acknowledge {"id","takeover"}. Taking over an
// alarm another operator holds needs a supervisor, as in the console.
func (a *api) acknowledge(c *gin.Context) {
	var req AcknowledgeRequest
	if !bindCommand(c, &req, &req.Command) {
		return
	}
	if p := auth.PrincipalOf(c); req.Takeover && !p.Role.AtLeast(monitoring.RoleSupervisor) {
		c.JSON(http.StatusForbidden, ErrorResponse{Field: "takeover",
			Error: "takeover: taking over an alarm another operator holds needs the supervisor role; the caller has the " + string(p.Role) + " role"})
		return
	}
	out, err := a.svc.Acknowledge(c.Request.Context(), req.ID, req.Actor, c.Param("id"), req.Takeover)
	reply(c, http.StatusOK, out, err)
}

// POST /api/v1/alarms/:id/actions: log a timeline entry.
func (a *api) logAction(c *gin.Context) {
	var req ActionRequest
	if !bindCommand(c, &req, &req.Command) {
		return
	}
	out, err := a.svc.LogAction(c.Request.Context(), req.ID, req.Actor, c.Param("id"), monitoring.TimelineEntry{
		Kind: req.Kind, Outcome: req.Outcome, Force: req.Force, Route: req.Route,
		Reference: req.Reference, Contact: req.Contact, Text: req.Text,
	})
	reply(c, http.StatusOK, out, err)
}

// GET /api/v1/alarms/:id/urn: whether a police call on a lone-worker URN
// about the alarm would be accepted now, why, and the organisation's URN of
// each force.
func (a *api) urnFor(c *gin.Context) {
	out, err := a.svc.URNFor(c.Param("id"))
	reply(c, http.StatusOK, out, err)
}

// POST /api/v1/alarms/:id/listen {"id","seconds"}: the alarm's device is
// asked to stream its audio for seconds, without showing anything; the
// request is on the timeline as a listen_in entry by the caller.
func (a *api) requestListen(c *gin.Context) {
	var req ListenRequest
	if !bindCommand(c, &req, &req.Command) {
		return
	}
	out, err := a.svc.RequestListen(c.Request.Context(), req.ID, req.Actor, c.Param("id"), req.Seconds)
	reply(c, http.StatusOK, out, err)
}

// POST /api/v1/alarms/:id/briefing {"id"}: mail the alarm's briefing to
// its escalation contacts with an email, once each.
func (a *api) sendBriefing(c *gin.Context) {
	var req Command
	if !bindCommand(c, &req, &req) {
		return
	}
	out, err := a.svc.SendBriefing(c.Request.Context(), req.ID, req.Actor, c.Param("id"))
	reply(c, http.StatusOK, out, err)
}

// POST /api/v1/alarms/:id/close {"id","actor","resolution","confirmation","note","no_briefing_reason"}
func (a *api) closeAlarm(c *gin.Context) {
	var req CloseRequest
	if !bindCommand(c, &req, &req.Command) {
		return
	}
	out, err := a.svc.Close(c.Request.Context(), req.ID, req.Actor, c.Param("id"), req.Resolution, req.Confirmation, req.Note, req.NoBriefingReason)
	reply(c, http.StatusOK, out, err)
}

// POST /api/v1/alarms/:id/reopen {"id","actor","reason"}
func (a *api) reopenAlarm(c *gin.Context) {
	var req ReopenRequest
	if !bindCommand(c, &req, &req.Command) {
		return
	}
	out, err := a.svc.Reopen(c.Request.Context(), req.ID, req.Actor, c.Param("id"), req.Reason)
	reply(c, http.StatusOK, out, err)
}

// POST /api/v1/alarms/:id/cancel {"id","actor","pin"}: the worker cancels
// a false alarm from the device. The reply to the Duress PIN is the reply
// to the Safe PIN.
func (a *api) cancelAlarm(c *gin.Context) {
	var req CancelAlarmRequest
	if !bindDeviceCommand(c, &req, &req.Command) {
		return
	}
	out, err := a.svc.CancelAlarm(c.Request.Context(), req.ID, req.Actor, c.Param("id"), req.PIN)
	reply(c, http.StatusOK, out, err)
}

// GET /api/v1/kpis?org=&from=&to=: the KPIs of the alarms raised in
// [from, to). to defaults to now, from to DefaultKPIPeriod before to.
func (a *api) kpis(c *gin.Context) {
	to := time.Now().UTC()
	if !parseTime(c, "to", &to) {
		return
	}
	from := to.Add(-DefaultKPIPeriod)
	if !parseTime(c, "from", &from) {
		return
	}
	out, err := a.svc.KPIs(c.Query("org"), from, to)
	reply(c, http.StatusOK, out, err)
}

// GET /api/v1/organisations/:id/statistics/:month[?format=csv]: an
// organisation's figures of a calendar month (yyyy-mm, UTC) as JSON, or as
// the CSV the monthly mail attaches.
func (a *api) monthlyStats(c *gin.Context) {
	format := c.DefaultQuery("format", "json")
	if format != "json" && format != "csv" {
		badRequest(c, "format", fmt.Sprintf("%q is not a format: use json or csv", format))
		return
	}
	out, err := a.svc.MonthlyStats(c.Param("id"), c.Param("month"))
	if err == nil && format == "csv" {
		c.Header("Content-Disposition", fmt.Sprintf(`attachment; filename="vigil-%s-%s.csv"`, out.OrgID, out.Month))
		c.Data(http.StatusOK, "text/csv; charset=utf-8", out.CSV())
		return
	}
	reply(c, http.StatusOK, out, err)
}

// deviceActorPrefix begins the actor of a command a device gives.
const deviceActorPrefix = "device:"

// bindCommand decodes the body into req and checks its command ID, and
// sets the actor to the caller's (auth.PrincipalOf): a body actor is
// ignored. It replies and returns false when either fails.
func bindCommand(c *gin.Context, req any, cmd *Command) bool {
	return bindCommandFor(c, req, cmd, false)
}

// bindDeviceCommand is bindCommand for the routes that may speak for a
// device: a body actor "device:<id>" is kept; any other is the caller's.
func bindDeviceCommand(c *gin.Context, req any, cmd *Command) bool {
	return bindCommandFor(c, req, cmd, true)
}

func bindCommandFor(c *gin.Context, req any, cmd *Command, forDevice bool) bool {
	if !bindJSON(c, req) {
		return false
	}
	p := auth.PrincipalOf(c)
	switch {
	case cmd.ID == "":
		badRequest(c, "id", "id is required: give every command a unique ID and reuse it when you retry")
	case len(cmd.ID) > MaxCommandIDLen:
		badRequest(c, "id", fmt.Sprintf("id is %d bytes, longer than the limit of %d", len(cmd.ID), MaxCommandIDLen))
	case len(cmd.Actor) > MaxActorLen:
		badRequest(c, "actor", fmt.Sprintf("actor is %d bytes, longer than the limit of %d", len(cmd.Actor), MaxActorLen))
	case p == nil: // never behind APIAuth
		c.JSON(http.StatusUnauthorized, ErrorResponse{Error: "not authenticated"})
	case forDevice && strings.HasPrefix(cmd.Actor, deviceActorPrefix):
		if strings.TrimSpace(strings.TrimPrefix(cmd.Actor, deviceActorPrefix)) == "" {
			badRequest(c, "actor", `actor "device:" names no device: write "device:<id>", or leave actor out`)
			return false
		}
		return true
	default:
		cmd.Actor = p.Actor
		return true
	}
	return false
}

// parseDuration parses s, a Go duration more than 0, into d; empty leaves
// d as it is. It replies 400 naming field and returns false when s is not
// a duration, or is 0 or negative: "0s" would silently mean the default
// (or nothing), which leaving the field out says.
func parseDuration(c *gin.Context, field, s string, d *time.Duration) bool {
	if s == "" {
		return true
	}
	v, err := time.ParseDuration(s)
	switch {
	case err != nil:
		badRequest(c, field, fmt.Sprintf(`%s %q is not a duration: write it as "45m", "2s" or "1h30m"`, field, s))
		return false
	case v <= 0:
		badRequest(c, field, fmt.Sprintf(`%s %q must be more than 0: leave the field out for the default`, field, s))
		return false
	}
	*d = v
	return true
}

// parseTime parses the query parameter name, an RFC 3339 time, into t;
// absent leaves t as it is.
func parseTime(c *gin.Context, name string, t *time.Time) bool {
	s := c.Query(name)
	if s == "" {
		return true
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		badRequest(c, name, fmt.Sprintf("%s %q is not an RFC 3339 time such as 2025-01-31T09:00:00Z", name, s))
		return false
	}
	*t = v
	return true
}

// reply writes v with status, or the error.
func reply(c *gin.Context, status int, v any, err error) {
	if err != nil {
		writeServiceError(c, err)
		return
	}
	c.JSON(status, v)
}

// writeServiceError replies to a refusal by the monitoring rules with the
// status that fits its code and the request field at fault; anything else
// goes to writeError.
func writeServiceError(c *gin.Context, err error) {
	var re *monitoring.RuleError
	if !errors.As(err, &re) {
		writeError(c, err)
		return
	}
	status := http.StatusConflict // also for codes this version does not know
	switch re.Code {
	case monitoring.CodeNotFound:
		status = http.StatusNotFound
	case monitoring.CodeInvalid:
		status = http.StatusBadRequest
	case monitoring.CodeNeedResolution, monitoring.CodeNeedConfirmation, monitoring.CodeURNRefused, monitoring.CodeNeedBriefing:
		status = http.StatusUnprocessableEntity
	case monitoring.CodeWrongPIN:
		status = http.StatusForbidden
	case monitoring.CodeUpgrading:
		status = http.StatusServiceUnavailable
	}
	field := apiField(re.Field)
	msg := re.Msg
	if field != "" {
		msg = field + ": " + msg
	}
	c.JSON(status, ErrorResponse{Error: msg, Field: field, Code: string(re.Code)})
}

// apiField turns the name of a field as the monitoring package gives it
// into its name in the request: durations drop their _ns (the API takes
// duration strings), the operator is the actor, and a timeline entry's
// fields are at the top of the body.
func apiField(f string) string {
	f = strings.TrimSuffix(f, "_ns")
	switch {
	case f == "operator":
		return "actor"
	case strings.HasPrefix(f, "entry."):
		return strings.TrimPrefix(f, "entry.")
	}
	return f
}

// nonNil returns s, or an empty slice for nil, so that JSON shows [].
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
