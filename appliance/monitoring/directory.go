package monitoring

// Organisations, workers and devices: the directory. Each handler checks
// every rule before its first write (fsm.go).

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits of directory fields.
const (
	MaxIDLen   = 128
	MaxNameLen = 200
	// MaxAddressLen bounds a location's address as a worker typed it.
	MaxAddressLen = 300
	MaxTextLen    = 8000 // procedures, notes, Update messages
)

// validID reports why id cannot be the ID of a record: IDs appear in keys,
// so they are short and have no '/', spaces or control characters.
func validID(field, id string) error {
	switch {
	case id == "":
		return invalid(field, "must not be empty")
	case len(id) > MaxIDLen:
		return invalid(field, "is %d bytes, longer than %d", len(id), MaxIDLen)
	case strings.IndexFunc(id, func(r rune) bool { return r == '/' || unicode.IsSpace(r) || !unicode.IsPrint(r) }) >= 0:
		return invalid(field, "%q must not contain '/', spaces or control characters", id)
	}
	return nil
}

// validName reports why s cannot be a required name.
func validName(field, s string) error {
	switch {
	case strings.TrimSpace(s) == "":
		return invalid(field, "must not be empty")
	case len(s) > MaxNameLen:
		return invalid(field, "is %d bytes, longer than %d", len(s), MaxNameLen)
	}
	return validDisplay(field, s)
}

// HiddenChar returns the first character of s that a name shown to
// operators must not hold, and whether there is one: a control character
// (Unicode category Cc, such as a newline or an escape), a format
// character (Cf: the bidirectional overrides and isolates U+202A to U+202E
// and U+2066 to U+2069, zero-width characters, soft hyphens), or a line
// or paragraph separator. Each can hide, reorder or forge what the
// console shows beside the name.
func HiddenChar(s string) (rune, bool) {
	i := strings.IndexFunc(s, func(r rune) bool {
		return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp)
	})
	if i < 0 {
		return 0, false
	}
	r, _ := utf8.DecodeRuneInString(s[i:])
	return r, true
}

func hasHidden(s string) bool { _, ok := HiddenChar(s); return ok }

// validDisplay reports why s, a name or label shown to operators, holds a
// character it must not (HiddenChar).
func validDisplay(field, s string) error {
	if r, ok := HiddenChar(s); ok {
		return invalid(field, "contains the character %U, a control or formatting character (such as a right-to-left override) that would hide or reorder what operators read", r)
	}
	return nil
}

func validText(field, s string) error {
	if len(s) > MaxTextLen {
		return invalid(field, "is %d bytes, longer than %d", len(s), MaxTextLen)
	}
	return nil
}

func validContacts(field string, cs []Contact) error {
	for i, c := range cs {
		f := fmt.Sprintf("%s[%d]", field, i)
		if err := validName(f+".name", c.Name); err != nil {
			return err
		}
		if strings.TrimSpace(c.Phone) == "" {
			return invalid(f+".phone", "must not be empty")
		}
		if err := validDisplay(f+".phone", c.Phone); err != nil {
			return err
		}
		if c.Email != "" {
			if err := validMailAddress(f+".email", c.Email); err != nil {
				return err
			}
		}
	}
	return nil
}

// validateOrganisation checks an organisation's fields.
func validateOrganisation(o *Organisation) error {
	if err := validID("org.id", o.ID); err != nil {
		return err
	}
	if err := validName("org.name", o.Name); err != nil {
		return err
	}
	if err := validateRetention(o.Retention); err != nil {
		return err
	}
	if err := validText("org.procedure", o.Procedure); err != nil {
		return err
	}
	for i, s := range o.ProcedureSteps {
		if err := validName(fmt.Sprintf("org.procedure_steps[%d].title", i), s.Title); err != nil {
			return err
		}
		if s.Action != "" && s.Action != ActionAcknowledged && !slices.Contains(LoggableActions, s.Action) {
			return invalid(fmt.Sprintf("org.procedure_steps[%d].action", i), "%q is not an action an operator logs", s.Action)
		}
	}
	if err := validContacts("org.contacts", o.Contacts); err != nil {
		return err
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{
		{"org.default_session_ns", o.DefaultSession},
		{"org.default_checkin_ns", o.DefaultCheckIn},
		{"org.grace_ns", o.Grace},
		{"org.offline_threshold_ns", o.OfflineThreshold},
		{"org.heartbeat_interval_ns", o.HeartbeatInterval},
		{"org.location_interval_ns", o.LocationInterval},
	} {
		if d.v < 0 {
			return invalid(d.field, "must not be negative")
		}
	}
	if err := validDeviceIntervals(o); err != nil {
		return err
	}
	if o.LowBattery < 0 || o.LowBattery > MaxLowBattery {
		return invalid("org.low_battery_percent", "%d is outside 0..%d (0: the default, %d)", o.LowBattery, MaxLowBattery, DefaultLowBattery)
	}
	if o.AccidentalPressWindow < 0 || o.AccidentalPressWindow > MaxAccidentalPressWindow {
		return invalid("org.accidental_press_window_ns", "%s is outside 0..%s (0: every reset waits for an operator)",
			o.AccidentalPressWindow, MaxAccidentalPressWindow)
	}
	if o.ContactWait != 0 && (o.ContactWait < MinContactWait || o.ContactWait > MaxContactWait) {
		return invalid("org.contact_wait_ns", "%s is outside %s..%s (0: the default, %s)",
			o.ContactWait, MinContactWait, MaxContactWait, DefaultContactWait)
	}
	if o.DefaultSession > MaxSessionDuration {
		return invalid("org.default_session_ns", "is longer than %s", MaxSessionDuration)
	}
	if err := validCheckInInterval("org.default_checkin_ns", o.DefaultCheckIn); err != nil {
		return err
	}
	if err := validNotifyPolicy(o.Notify); err != nil { // outboxnotice.go
		return err
	}
	if err := validURNs("org.urns", o.URNs, true); err != nil {
		return err
	}
	// Sorted, so the refusal is the same on every node whatever the map order.
	types := make([]string, 0, len(o.Priorities))
	for t := range o.Priorities {
		types = append(types, string(t))
	}
	slices.Sort(types)
	for _, t := range types {
		if _, ok := DefaultPriorities[AlarmType(t)]; !ok {
			return invalid("org.priorities", "unknown alarm type %q", t)
		}
		if p := o.Priorities[AlarmType(t)]; p < 1 || p > MaxPriority {
			return invalid("org.priorities", "priority %d of %q is outside 1..%d", p, t, MaxPriority)
		}
	}
	return nil
}

// validDeviceIntervals checks the intervals devices report at (0 for the
// defaults): within MinDeviceInterval..MaxDeviceInterval, and a heartbeat
// set at least twice within the offline threshold, so that one lost
// heartbeat does not look like a device gone.
func validDeviceIntervals(o *Organisation) error {
	for _, d := range []struct {
		field string
		v     time.Duration
	}{
		{"org.heartbeat_interval_ns", o.HeartbeatInterval},
		{"org.location_interval_ns", o.LocationInterval},
	} {
		if d.v != 0 && (d.v < MinDeviceInterval || d.v > MaxDeviceInterval) {
			return invalid(d.field, "%s is outside %s..%s (or 0 for the default)", d.v, MinDeviceInterval, MaxDeviceInterval)
		}
	}
	offline := o.OfflineThreshold
	if offline == 0 {
		offline = DefaultOfflineThreshold
	}
	if o.HeartbeatInterval != 0 && 2*o.HeartbeatInterval > offline {
		return invalid("org.heartbeat_interval_ns", "%s is more than half the offline threshold of %s", o.HeartbeatInterval, offline)
	}
	return nil
}

// checkLowBattery raises a low-battery alarm for device d, whose battery
// was just reported, when it is under its organisation's level and none
// was raised for this low spell; and ends the spell once the battery is
// back over the level by LowBatteryHysteresis. The alarm's ID comes from
// the command's log index, the same on every node.
func checkLowBattery(c *applyCtx, d *Device) error {
	if d.Battery < 0 {
		return nil // unknown
	}
	level := DefaultLowBattery
	org, err := getOrg(c.txn, d.OrgID)
	switch {
	case err == nil && org.LowBattery > 0:
		level = org.LowBattery
	case err != nil && !errors.Is(err, ErrNotFound):
		return err
	}
	switch {
	case d.LowBatteryAlarm != "" && d.Battery >= level+LowBatteryHysteresis:
		d.LowBatteryAlarm = ""
	case d.LowBatteryAlarm == "" && d.Battery < level:
		id := fmt.Sprintf("low-battery-%d-%s", c.entry.Index, d.ID)
		if _, err := raiseAlarm(c, RaiseAlarmCmd{Header: c.hdr, AlarmID: id, Type: AlarmLowBattery, DeviceID: d.ID,
			Location: d.Location}); err != nil {
			return err
		}
		d.LowBatteryAlarm = id
	}
	return nil
}

// applyPutOrganisation creates or replaces an organisation.
func applyPutOrganisation(c *applyCtx, body []byte) ([]byte, error) {
	var cmd putOrganisationCmd
	if err := c.decode(body, &cmd); err != nil {
		return nil, err
	}
	o := cmd.Org
	if err := validateOrganisation(&o); err != nil {
		return nil, err
	}
	o.UpdatedAt = c.now()
	if err := putJSON(c.txn, pOrg+o.ID, &o); err != nil {
		return nil, err
	}
	if err := c.audit(CmdPutOrganisation, "org/"+o.ID, o.Name); err != nil {
		return nil, err
	}
	c.emit(Event{Type: EventOrgUpdated, Org: &o})
	return json.Marshal(&o)
}

// publicWorker returns a copy of w without its PIN hashes, for events and
// queries.
func publicWorker(w *Worker) *Worker {
	p := *w
	p.SafePINHash, p.DuressPINHash = "", ""
	return &p
}

// validateWorker checks a worker's own fields (not its organisation).
func validateWorker(w *Worker) error {
	if err := validID("worker.id", w.ID); err != nil {
		return err
	}
	if err := validName("worker.name", w.Name); err != nil {
		return err
	}
	if err := validID("worker.org_id", w.OrgID); err != nil {
		return err
	}
	for _, f := range []struct{ field, v string }{
		{"worker.phone", w.Phone}, {"worker.team", w.Team},
	} {
		if len(f.v) > MaxNameLen {
			return invalid(f.field, "is %d bytes, longer than %d", len(f.v), MaxNameLen)
		}
		if err := validDisplay(f.field, f.v); err != nil {
			return err
		}
	}
	for _, f := range []struct{ field, v string }{
		{"worker.important.medical", w.Important.Medical},
		{"worker.important.special_handling", w.Important.SpecialHandling},
		{"worker.important.duress_word", w.Important.DuressWord},
	} {
		if err := validText(f.field, f.v); err != nil {
			return err
		}
	}
	if err := validContacts("worker.contacts", w.Contacts); err != nil {
		return err
	}
	return validURNs("worker.urns", w.URNs, false)
}

// validURNs checks police URNs: a force and a URN, both shown to
// operators; when org (an organisation's), also a URN no longer than a
// name and an expiry date. A worker's, kept from before URNs moved to the
// organisation, are checked as they always were.
func validURNs(field string, us []PoliceURN, org bool) error {
	for i, u := range us {
		f := fmt.Sprintf("%s[%d]", field, i)
		if err := validName(f+".force", u.Force); err != nil {
			return err
		}
		if strings.TrimSpace(u.URN) == "" {
			return invalid(f+".urn", "must not be empty")
		}
		if org && len(u.URN) > MaxNameLen {
			return invalid(f+".urn", "is %d bytes, longer than %d", len(u.URN), MaxNameLen)
		}
		if err := validDisplay(f+".urn", u.URN); err != nil {
			return err
		}
		if org && u.Expiry.IsZero() {
			return invalid(f+".expiry", "the URN of %s needs its expiry date", u.Force)
		}
	}
	return nil
}

// applyPutWorker creates or updates a worker. The PIN hashes, PINVersion and
// WrongPINs are kept from the stored worker: PINs change only by SetPINs.
func applyPutWorker(c *applyCtx, body []byte) ([]byte, error) {
	var cmd putWorkerCmd
	if err := c.decode(body, &cmd); err != nil {
		return nil, err
	}
	w := cmd.Worker
	if err := validateWorker(&w); err != nil {
		return nil, err
	}
	if _, err := getOrg(c.txn, w.OrgID); err != nil {
		return nil, err
	}
	var old Worker
	found, err := getJSON(c.txn, pWorker+w.ID, &old)
	if err != nil {
		return nil, err
	}
	w.SafePINHash, w.DuressPINHash, w.PINVersion, w.WrongPINs = "", "", 0, 0
	w.LastUpdate, w.LastUpdateAt = old.LastUpdate, old.LastUpdateAt // set only by PostUpdate (update.go)
	if found {
		w.SafePINHash, w.DuressPINHash = old.SafePINHash, old.DuressPINHash
		w.PINVersion, w.WrongPINs = old.PINVersion, old.WrongPINs
	}
	w.UpdatedAt = c.now()
	if err := putJSON(c.txn, pWorker+w.ID, &w); err != nil {
		return nil, err
	}
	if err := c.audit(CmdPutWorker, "worker/"+w.ID, w.Name); err != nil {
		return nil, err
	}
	pub := publicWorker(&w)
	c.emit(Event{Type: EventWorkerUpdated, Worker: pub})
	return json.Marshal(pub)
}

// pinChange is the response to SetPINs.
type pinChange struct {
	WorkerID   string `json:"worker_id"`
	PINVersion uint64 `json:"pin_version"`
}

// applySetPINs replaces a worker's PIN hashes.
func applySetPINs(c *applyCtx, body []byte) ([]byte, error) {
	var cmd setPINsCmd
	if err := c.decode(body, &cmd); err != nil {
		return nil, err
	}
	for _, h := range []struct{ field, v string }{
		{"safe_pin_hash", cmd.SafePINHash}, {"duress_pin_hash", cmd.DuressPINHash},
	} {
		if h.v == "" {
			continue
		}
		if _, err := parsePINHash(h.v); err != nil {
			return nil, invalid(h.field, "%v", err)
		}
	}
	switch {
	case cmd.DuressPINHash != "" && cmd.SafePINHash == "":
		return nil, invalid("duress_pin_hash", "a Duress PIN needs a Safe PIN")
	case cmd.DuressPINHash != "" && cmd.DuressPINHash == cmd.SafePINHash:
		return nil, invalid("duress_pin_hash", "must differ from the Safe PIN")
	}
	w, err := getWorker(c.txn, cmd.WorkerID)
	if err != nil {
		return nil, err
	}
	w.SafePINHash, w.DuressPINHash = cmd.SafePINHash, cmd.DuressPINHash
	w.PINVersion++
	w.WrongPINs = 0
	w.UpdatedAt = c.now()
	if err := putJSON(c.txn, pWorker+w.ID, w); err != nil {
		return nil, err
	}
	detail := fmt.Sprintf("PINs set (version %d)", w.PINVersion)
	if err := c.audit(CmdSetPINs, "worker/"+w.ID, detail); err != nil {
		return nil, err
	}
	c.emit(Event{Type: EventWorkerUpdated, Worker: publicWorker(w)})
	return json.Marshal(pinChange{WorkerID: w.ID, PINVersion: w.PINVersion})
}

var deviceKinds = []DeviceKind{DevicePhoneApp, DeviceDedicated, DevicePooled}

// applyPutDevice creates or updates a device's registration. Its telemetry
// (battery, location, presence) is kept: it changes only by DeviceStatus.
func applyPutDevice(c *applyCtx, body []byte) ([]byte, error) {
	var cmd putDeviceCmd
	if err := c.decode(body, &cmd); err != nil {
		return nil, err
	}
	d := cmd.Device
	if err := validID("device.id", d.ID); err != nil {
		return nil, err
	}
	if !slices.Contains(deviceKinds, d.Kind) {
		return nil, invalid("device.kind", "%q is not one of %v", d.Kind, deviceKinds)
	}
	if len(d.Label) > MaxNameLen {
		return nil, invalid("device.label", "is longer than %d bytes", MaxNameLen)
	}
	if err := validDisplay("device.label", d.Label); err != nil {
		return nil, err
	}
	if _, err := getOrg(c.txn, d.OrgID); err != nil {
		return nil, err
	}
	switch {
	case d.WorkerID == "" && d.Kind != DevicePooled:
		return nil, invalid("device.worker_id", "a %s device needs an assigned worker; only pooled devices may be unassigned", d.Kind)
	case d.WorkerID != "":
		w, err := getWorker(c.txn, d.WorkerID)
		if err != nil {
			return nil, err
		}
		if w.OrgID != d.OrgID {
			return nil, ruleErr(CodeConflict, "device.worker_id", "worker %q is in organisation %q, the device in %q", w.ID, w.OrgID, d.OrgID)
		}
	}
	var old Device
	found, err := getJSON(c.txn, pDevice+d.ID, &old)
	if err != nil {
		return nil, err
	}
	if found {
		if old.WorkerID != d.WorkerID {
			// A device may not change hands under a running session.
			s, err := deviceSession(c, &old)
			if err != nil {
				return nil, err
			}
			if s != nil {
				return nil, ruleErr(CodeConflict, "device.worker_id", "device %q is in session %q of worker %q; end it first", d.ID, s.ID, s.WorkerID)
			}
		}
		d.Battery, d.Location, d.LastSeen, d.Connected, d.Node = old.Battery, old.Location, old.LastSeen, old.Connected, old.Node
		if d.Firmware == "" {
			d.Firmware = old.Firmware
		}
	} else {
		d.Battery, d.Location, d.LastSeen, d.Connected, d.Node = -1, nil, time.Time{}, false, ""
	}
	d.UpdatedAt = c.now()
	if err := putJSON(c.txn, pDevice+d.ID, &d); err != nil {
		return nil, err
	}
	detail := fmt.Sprintf("%s, worker %q", d.Kind, d.WorkerID)
	if err := c.audit(CmdPutDevice, "device/"+d.ID, detail); err != nil {
		return nil, err
	}
	c.emit(Event{Type: EventDeviceUpdated, Device: &d})
	return json.Marshal(&d)
}

// deviceStatusResult is the response to DeviceStatus.
type deviceStatusResult struct {
	Updated int `json:"updated"`
	Skipped int `json:"skipped"` // unknown devices, or older than what is stored
}

// validateDeviceStatus checks one entry of a DeviceStatus batch.
func validateDeviceStatus(i int, s *DeviceStatus) error {
	f := fmt.Sprintf("devices[%d]", i)
	switch {
	case s.DeviceID == "":
		return invalid(f+".device_id", "must not be empty")
	case s.SeenAt.IsZero():
		return invalid(f+".seen_at", "must be set")
	case s.Battery != nil && (*s.Battery < -1 || *s.Battery > 100):
		return invalid(f+".battery", "%d is outside -1..100", *s.Battery)
	}
	return nil
}

// applyDeviceStatus records a batch of telemetry and presence. Telemetry:
// latest wins per device, an entry older than what is stored is not
// recorded. Presence follows the rules of presence.go. An unknown device is
// skipped (a batch is not refused for one device), as is an entry of which
// nothing was recorded.
func applyDeviceStatus(c *applyCtx, body []byte) ([]byte, error) {
	var cmd deviceStatusCmd
	if err := c.decode(body, &cmd); err != nil {
		return nil, err
	}
	for i := range cmd.Devices {
		if err := validateDeviceStatus(i, &cmd.Devices[i]); err != nil {
			return nil, err
		}
	}
	var res deviceStatusResult
	type before struct {
		connected bool
		node      string
	}
	changed := map[string]*Device{}
	prev := map[string]before{}
	var order []string
	presence := 0 // devices whose presence changed
	for i := range cmd.Devices {
		s := &cmd.Devices[i]
		d, ok := changed[s.DeviceID]
		if !ok {
			var dev Device
			found, err := getJSON(c.txn, pDevice+s.DeviceID, &dev)
			if err != nil {
				return nil, err
			}
			if !found {
				res.Skipped++
				continue
			}
			d = &dev
		}
		fresh := !s.SeenAt.Before(d.LastSeen)
		if !ok {
			prev[s.DeviceID] = before{connected: d.Connected, node: d.Node}
		}
		moved := applyPresence(s, d, fresh)
		if fresh {
			d.LastSeen = s.SeenAt
			if s.Battery != nil {
				d.Battery = *s.Battery
			}
			if s.Location != nil {
				loc := *s.Location
				d.Location = &loc
			}
			if s.Firmware != "" {
				d.Firmware = s.Firmware
			}
		}
		if !fresh && !moved {
			res.Skipped++
			continue
		}
		d.UpdatedAt = c.now()
		if !ok {
			changed[s.DeviceID] = d
			order = append(order, s.DeviceID)
		}
		res.Updated++
	}
	for _, id := range order {
		d, p := changed[id], prev[id]
		if cmd.Rules >= RulesLowBattery {
			if err := checkLowBattery(c, d); err != nil {
				return nil, err
			}
		}
		if err := putJSON(c.txn, pDevice+id, d); err != nil {
			return nil, err
		}
		if p.connected != d.Connected || p.node != d.Node {
			presence++
			if err := indexPresence(c.txn, d, p.connected, p.node); err != nil {
				return nil, err
			}
		}
		// A device that stays connected has no offline deadline: only a
		// change of presence touches it, not every heartbeat.
		if p.connected != d.Connected {
			if err := trackOffline(c, d, p.connected && !d.Connected); err != nil {
				return nil, err
			}
		}
		c.emit(Event{Type: EventDeviceUpdated, Device: d})
	}
	if presence > 0 {
		// Telemetry alone is high-rate and leaves no audit record; a change
		// of presence does, one per batch.
		detail := fmt.Sprintf("presence of %d devices changed (telemetry of %d, %d entries skipped)", presence, len(order), res.Skipped)
		if err := c.audit(CmdDeviceStatus, "devices", detail); err != nil {
			return nil, err
		}
	}
	return json.Marshal(res)
}
