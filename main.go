// Command vigil is the Vigil lone-worker alarm receiving appliance.
//
// It only turns signals into a context and hands over to the appliance
// package, which holds the command line and wires the parts.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/vigilarc/vigil/appliance"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// A second signal stops the process at once.
		<-ctx.Done()
		stop()
	}()
	os.Exit(appliance.Main(ctx, os.Args))
}
