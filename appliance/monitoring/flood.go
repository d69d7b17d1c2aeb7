package monitoring

// A device that floods. The gateway limits the messages of each device
// (broker/DESIGN.md, "Rate limits"); at the first message of a flood it
// refuses, it proposes one DeviceFlooding command. Applying it raises a
// device-flooding alarm for the operators, unless the device has one open
// already: then the new flood is noted on that alarm's timeline. So a flood
// puts one alarm in the queue, however long it lasts and whichever nodes the
// device moves between, and never takes the place of the device's own
// alarms: those that got through stay as they are, first in the queue.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/vigilarc/vigil/cluster"
)

// ActionFlooding is the timeline entry of a flood on a device-flooding
// alarm: Text says which node refused how many messages since when.
const ActionFlooding ActionKind = "device_flooding"

// pFlood keys a device's flood record: flood/<device id> -> floodRecord.
const pFlood = "flood/"

// Rate limits a flood can go over (DeviceFloodingRequest.Limit).
const (
	FloodLimitMessages = "messages" // every message of the device
	FloodLimitAlarms   = "alarms"   // messages that can raise an alarm
)

// DeviceFloodingRequest reports a device's flood, as one node saw it.
type DeviceFloodingRequest struct {
	DeviceID string
	// Limit is the limit that refused the flood's first message:
	// FloodLimitMessages or FloodLimitAlarms.
	Limit string
	// Since is when the node refused the flood's first message.
	Since time.Time
	// Refused counts the messages the node has refused in the flood so
	// far (at least 1).
	Refused int
}

// DeviceFloodingResult is the outcome of a DeviceFlooding command.
type DeviceFloodingResult struct {
	AlarmID string `json:"alarm_id"` // the device-flooding alarm
	// Raised is true when the command raised the alarm, false when it
	// noted the flood on the device's flooding alarm already open.
	Raised bool `json:"raised"`
}

// deviceFloodingCmd records a flood of a device.
type deviceFloodingCmd struct {
	Header
	AlarmID  string    `json:"alarm_id"` // for a new alarm, made by the proposer
	DeviceID string    `json:"device_id"`
	Limit    string    `json:"limit"`
	Since    time.Time `json:"since"`
	Refused  int       `json:"refused"`
}

// floodRecord names a device's latest device-flooding alarm.
type floodRecord struct {
	AlarmID string `json:"alarm_id"`
	Floods  int    `json:"floods"` // floods recorded on it
}

// checkFlooding checks a flood report: the Service before proposing, the
// state machine again on apply.
func checkFlooding(deviceID, limit string, since time.Time, refused int) error {
	if err := validID("device_id", deviceID); err != nil {
		return err
	}
	switch {
	case limit != FloodLimitMessages && limit != FloodLimitAlarms:
		return invalid("limit", "%q is not %s or %s", limit, FloodLimitMessages, FloodLimitAlarms)
	case since.IsZero():
		return invalid("since", "must be set")
	case refused < 1:
		return invalid("refused", "must be at least 1, not %d", refused)
	}
	return nil
}

// floodText describes a flood for the timeline and the audit log.
func floodText(cmd *deviceFloodingCmd) string {
	what := "messages"
	if cmd.Limit == FloodLimitAlarms {
		what = "alarm messages"
	}
	return fmt.Sprintf("device %s sent %s faster than its rate limit: node %s refused %d since %s",
		cmd.DeviceID, what, cmd.Node, cmd.Refused, cmd.Since.UTC().Format(time.RFC3339))
}

func applyDeviceFlooding(c *applyCtx, body []byte) ([]byte, error) {
	var cmd deviceFloodingCmd
	if err := c.decode(body, &cmd); err != nil {
		return nil, err
	}
	if err := checkFlooding(cmd.DeviceID, cmd.Limit, cmd.Since, cmd.Refused); err != nil {
		return nil, err
	}
	dev, err := getDevice(c.txn, cmd.DeviceID)
	if err != nil {
		return nil, err
	}
	text := floodText(&cmd)
	entry := TimelineEntry{Kind: ActionFlooding, Actor: "system", Text: text}
	var rec floodRecord
	found, err := getJSON(c.txn, pFlood+dev.ID, &rec)
	if err != nil {
		return nil, err
	}
	if found {
		a, err := getAlarm(c.txn, rec.AlarmID)
		var re *RuleError
		switch {
		case errors.As(err, &re) && re.Code == CodeNotFound:
		case err != nil:
			return nil, err
		case a.Status != StatusClosed:
			// Still open: the operators know. One more line on it, not
			// another alarm.
			rec.Floods++
			if err := putJSON(c.txn, pFlood+dev.ID, rec); err != nil {
				return nil, err
			}
			if err := noteOnAlarm(c, a, entry); err != nil {
				return nil, err
			}
			if err := c.audit(CmdDeviceFlooding, "device/"+dev.ID, text+": noted on alarm "+a.ID); err != nil {
				return nil, err
			}
			return json.Marshal(DeviceFloodingResult{AlarmID: a.ID})
		}
	}
	if err := validID("alarm_id", cmd.AlarmID); err != nil {
		return nil, err
	}
	a, err := raiseAlarm(c, RaiseAlarmCmd{Header: c.hdr, AlarmID: cmd.AlarmID, Type: AlarmDeviceFlooding, DeviceID: dev.ID})
	if err != nil {
		return nil, err
	}
	if err := putJSON(c.txn, pFlood+dev.ID, floodRecord{AlarmID: a.ID, Floods: 1}); err != nil {
		return nil, err
	}
	if err := noteOnAlarm(c, a, entry); err != nil {
		return nil, err
	}
	if err := c.audit(CmdDeviceFlooding, "device/"+dev.ID, text+": alarm "+a.ID); err != nil {
		return nil, err
	}
	return json.Marshal(DeviceFloodingResult{AlarmID: a.ID, Raised: true})
}

// ReportDeviceFlooding records a device's flood (req): it raises a
// device-flooding alarm, or notes the flood on the device's one still
// open. cmdID names the flood, so a retry records it once.
func (s *Service) ReportDeviceFlooding(ctx context.Context, cmdID, actor string, req DeviceFloodingRequest) (*DeviceFloodingResult, error) {
	if actor == "" {
		return nil, invalid("actor", "who reports the flood is missing")
	}
	if err := checkFlooding(req.DeviceID, req.Limit, req.Since, req.Refused); err != nil {
		return nil, err
	}
	cmd := deviceFloodingCmd{Header: s.header(actor), AlarmID: s.NewID(), DeviceID: req.DeviceID,
		Limit: req.Limit, Since: req.Since.UTC(), Refused: req.Refused}
	res, err := s.propose(ctx, cmdID, CmdDeviceFlooding, &cmd)
	if err != nil {
		return nil, err
	}
	return decodeResponse[DeviceFloodingResult](res.Response)
}

// CommandApplied reports whether this node has applied the command of type
// t with ID cmdID (the ID given to the Service method that proposed it),
// such as a device's alarm: the gateway asks it to tell a device's resend
// of an event already recorded from a new one. It reads this node's state,
// which may be a few milliseconds behind.
func (s *Service) CommandApplied(t CmdType, cmdID string) (bool, error) {
	var applied bool
	err := s.view(func(txn *badger.Txn) error {
		var err error
		applied, err = cluster.CommandApplied(txn, t.String()+"/"+cmdID)
		return err
	})
	return applied, err
}
