package monitoring

// Organisations, workers and devices. (Being written: helper-5.)

func applyPutOrganisation(c *applyCtx, body []byte) ([]byte, error) { return nil, errTODO }
func applyPutWorker(c *applyCtx, body []byte) ([]byte, error)       { return nil, errTODO }
func applySetPINs(c *applyCtx, body []byte) ([]byte, error)         { return nil, errTODO }
func applyPutDevice(c *applyCtx, body []byte) ([]byte, error)       { return nil, errTODO }
func applyDeviceStatus(c *applyCtx, body []byte) ([]byte, error)    { return nil, errTODO }
