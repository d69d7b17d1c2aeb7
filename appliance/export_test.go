package appliance

import (
	"context"
	"io"
)

// Internals of the command line, for the tests in package appliance_test
// (which may use appliancetest, as this package's own tests cannot).

// Exit codes of the command line.
const (
	ExitOK      = exitOK
	ExitFailure = exitFailure
	ExitUsage   = exitUsage
)

// RunCLI runs the vigil command line with args (as in os.Args) on the
// given outputs and environment, and returns its exit code.
func RunCLI(ctx context.Context, stdout, stderr io.Writer, lookupEnv func(string) (string, bool), args []string) int {
	c := &cli{stdout: stdout, stderr: stderr, lookupEnv: lookupEnv}
	return c.run(ctx, args)
}

// EnvFrom is a lookupEnv over the map m (config_test.go).
var EnvFrom = envFrom
