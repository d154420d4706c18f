package rungroup_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/tamarack-ai/tamarack/platform/webtest"

	"github.com/tamarack-ai/tamarack/platform/rungroup"
)

func TestRunKeepsTheOthersWhenOneFailsAndWaitsForAll(t *testing.T) {
	t.Parallel()
	var logs webtest.Buffer
	boom := errors.New("boom")
	failed := make(chan struct{})
	stopped := make(chan string, 2)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- rungroup.Run(ctx, slog.New(slog.NewTextHandler(&logs, nil)),
			rungroup.Loop{Name: "broken", Run: func(context.Context) error { defer close(failed); return boom }},
			rungroup.Loop{Name: "relay", Run: func(ctx context.Context) error { <-ctx.Done(); stopped <- "relay"; return ctx.Err() }},
			rungroup.Loop{Name: "consumer", Run: func(ctx context.Context) error { <-ctx.Done(); stopped <- "consumer"; return nil }},
		)
	}()
	<-failed
	select {
	case err := <-done:
		t.Fatalf("Run returned %v while two loops still ran", err)
	default:
	}
	cancel()
	if err := <-done; !errors.Is(err, boom) {
		t.Fatalf("Run: %v, want boom", err)
	}
	if len(stopped) != 2 {
		t.Fatalf("%d loops saw the end, want 2", len(stopped))
	}
	if !strings.Contains(logs.String(), "loop=broken") || strings.Contains(logs.String(), "loop=relay") {
		t.Fatalf("log: %s", logs.String())
	}
}

func TestStartStops(t *testing.T) {
	t.Parallel()
	ran := make(chan struct{})
	stop := rungroup.Start(nil, rungroup.Loop{Name: "loop", Run: func(ctx context.Context) error {
		close(ran)
		<-ctx.Done()
		return ctx.Err()
	}})
	<-ran
	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
}
