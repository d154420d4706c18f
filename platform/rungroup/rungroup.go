// Package rungroup runs a service's long-running loops (outbox relays, consumers, schedulers) until their
// context ends and waits for every one of them. It owns no loop and knows no service.
package rungroup

import (
	"context"
	"errors"
	"log/slog"

	"golang.org/x/sync/errgroup"
)

// Loop is one named long-running function; it returns when ctx ends.
type Loop struct {
	Name string
	Run  func(ctx context.Context) error
}

// Run runs every loop in its own goroutine until ctx ends and returns when all have returned. A loop that fails
// before ctx ends is logged with its name and the others keep running (one broken consumer must not stop a
// service's other work); Run then returns the first such error. Errors after ctx ends are the loops' shutdown,
// not failures.
func Run(ctx context.Context, log *slog.Logger, loops ...Loop) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var g errgroup.Group
	for _, l := range loops {
		g.Go(func() error {
			err := l.Run(ctx)
			if err == nil || ctx.Err() != nil || errors.Is(err, context.Canceled) {
				return nil
			}
			log.Error("loop stopped", "loop", l.Name, "err", err)
			return err
		})
	}
	return g.Wait()
}

// Start is Run in the background under its own context: stop cancels the loops, waits for them and returns
// Run's error.
func Start(log *slog.Logger, loops ...Loop) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, log, loops...) }()
	return func() error {
		cancel()
		return <-done
	}
}
