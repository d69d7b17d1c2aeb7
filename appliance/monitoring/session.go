package monitoring

// Timed sessions and their deadlines. (Being written: helper-5.)

func applyStartSession(c *applyCtx, body []byte) ([]byte, error)  { return nil, errTODO }
func applySessionAction(c *applyCtx, body []byte) ([]byte, error) { return nil, errTODO }
func applyFireDeadline(c *applyCtx, body []byte) ([]byte, error)  { return nil, errTODO }
