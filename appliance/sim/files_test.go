package sim

import (
	"strings"
	"testing"
)

func TestFitsFileLimit(t *testing.T) {
	if err := fitsFileLimit(1000, 1000+fileMargin); err != nil {
		t.Errorf("1000 devices within a limit of %d: %v", 1000+fileMargin, err)
	}
	err := fitsFileLimit(1000, 1000+fileMargin-1)
	if err == nil || !strings.Contains(err.Error(), "ulimit -n") {
		t.Errorf("1000 devices above a limit of %d: %v, want an error naming ulimit -n", 1000+fileMargin-1, err)
	}
	if err := checkOpenFiles(1 << 40); err == nil {
		t.Error("checkOpenFiles of 2^40 devices: no error")
	}
}
