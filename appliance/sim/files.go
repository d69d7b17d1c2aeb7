package sim

import (
	"fmt"
	"syscall"
)

// fileMargin is the open files the simulator keeps for itself (stdout, a
// history file, the API client) beyond one socket per device.
const fileMargin = 64

// checkOpenFiles returns an error if this process may not open a socket
// for each of devices devices: better refused at the start than devices
// failing to connect one by one with "too many open files".
func checkOpenFiles(devices int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("cannot read the open-file limit: %w", err)
	}
	return fitsFileLimit(devices, lim.Cur)
}

// fitsFileLimit returns an error if devices sockets and fileMargin more
// files exceed limit.
func fitsFileLimit(devices int, limit uint64) error {
	if need := uint64(devices) + fileMargin; need > limit {
		return fmt.Errorf("devices: %d need %d open files, above this process's limit of %d (ulimit -n): "+
			"run fewer devices per process", devices, need, limit)
	}
	return nil
}
