package monitoring

// Alarms and their lifecycle. (Being written: helper-6.)

var errTODO = ruleErr(CodeInvalid, "", "not implemented yet")

func applyRaiseAlarm(c *applyCtx, body []byte) ([]byte, error)  { return nil, errTODO }
func applyAcknowledge(c *applyCtx, body []byte) ([]byte, error) { return nil, errTODO }
func applyLogAction(c *applyCtx, body []byte) ([]byte, error)   { return nil, errTODO }
func applyCloseAlarm(c *applyCtx, body []byte) ([]byte, error)  { return nil, errTODO }
func applyReopenAlarm(c *applyCtx, body []byte) ([]byte, error) { return nil, errTODO }

// raiseAlarm checks r, then raises the alarm: it writes the alarm, its
// indexes, its first timeline entry and an audit record, links it to an
// incident, and emits EventAlarmRaised. Sessions call it for missed
// check-ins and duress. It writes nothing when it refuses.
func raiseAlarm(c *applyCtx, r RaiseAlarmCmd) (*Alarm, error) { return nil, errTODO }
