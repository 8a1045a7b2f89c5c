// Command ecmpscan finds the bad member of an ECMP group by sweeping TCP
// source ports. All logic lives in internal/cli and the packages below it.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/ecmpscan/ecmpscan/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal, restore the default action: a second
		// Ctrl-C ends the process at once.
		<-ctx.Done()
		stop()
	}()
	code := cli.Execute(ctx, os.Args[1:], cli.OSStreams())
	stop()
	os.Exit(code)
}
