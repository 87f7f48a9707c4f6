// Command server runs Nexus: the data-analyst and code-generator agents
// behind config-driven circuit breakers, served over HTTP.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/nexus/nexus/cmd/server/app"
	"github.com/nexus/nexus/internal/infra/dataset"
)

func main() {
	// The same binary runs the DuckDB worker processes that the dataset
	// store supervises.
	dataset.RunIfWorker()
	if len(os.Args) > 1 && os.Args[1] == app.HashKeyCommand {
		if err := app.HashKey(os.Args[2:], os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "nexus:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// After the first signal starts the drain, restore the default
		// handling so that a second Ctrl-C ends the process at once.
		<-ctx.Done()
		stop()
	}()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	// Never blocks: a SIGHUP while one is already pending is the same
	// request, and after shutdown begins nobody reads reload any more.
	reload := make(chan struct{}, 1)
	go func() {
		for range hup {
			select {
			case reload <- struct{}{}:
			default:
			}
		}
	}()
	if err := app.Run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr, nil, reload); err != nil {
		fmt.Fprintln(os.Stderr, "nexus:", err)
		os.Exit(1)
	}
}
