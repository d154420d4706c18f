package testbed

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/web"
)

// MaxWait bounds how long GET /sandboxes/{id}?wait_until= holds a request: under the 30 s deadline every
// request gets (web.Config.RequestTimeout), so that a wait ends with an answer, not a cancelled context.
const MaxWait = 25 * time.Second

// waitRecheck is how often a waiting request reads the sandbox again without being woken: the changes this
// process commits wake it at once, those of another replica are seen at the next read.
const waitRecheck = 250 * time.Millisecond

// watchers wakes the requests waiting on a sandbox when this process commits a change to it.
type watchers struct {
	mu sync.Mutex
	m  map[string]map[chan struct{}]struct{}
}

// add registers a waiter on id: the channel is closed at the next change. done unregisters it.
func (w *watchers) add(id string) (ch <-chan struct{}, done func()) {
	c := make(chan struct{})
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		w.m = map[string]map[chan struct{}]struct{}{}
	}
	if w.m[id] == nil {
		w.m[id] = map[chan struct{}]struct{}{}
	}
	w.m[id][c] = struct{}{}
	return c, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		delete(w.m[id], c)
		if len(w.m[id]) == 0 {
			delete(w.m, id)
		}
	}
}

// wake wakes every waiter on id.
func (w *watchers) wake(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for c := range w.m[id] {
		close(c)
	}
	delete(w.m, id)
}

// reached reports whether a sandbox in state has reached until or gone past it in the lifecycle's order
// (requested, scheduled, provisioning, running, stopping, stopped); failed is past every state, as is
// stopped past running: a sandbox that ended will never be running.
func reached(state, until string) bool {
	order := []string{StateRequested, StateScheduled, StateProvisioning, StateRunning, StateStopping, StateStopped}
	if state == StateFailed || state == until {
		return true
	}
	i, j := slices.Index(order, state), slices.Index(order, until)
	return i >= 0 && j >= 0 && i >= j
}

// WaitFor returns the sandbox once it has reached the state until (or gone past it, see reached), or as it is
// when timeout (at most MaxWait) has passed: the caller reads the state to know which. It is how a client
// waits for a launch without polling.
func (s *Service) WaitFor(ctx context.Context, c web.Principal, id, until string, timeout time.Duration) (Sandbox, error) {
	if !validState(until) {
		return Sandbox{}, problem.Fields{{Field: "wait_until", Code: "invalid", Message: "a sandbox state"}}.Err()
	}
	timeout = min(max(timeout, 0), MaxWait)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		// Registered before the read, so that a change committed between the two still wakes us.
		woken, done := s.watch.add(id)
		sb, err := s.Get(context.WithoutCancel(ctx), c, id)
		if err != nil || reached(sb.State, until) {
			done()
			return sb, err
		}
		t := time.NewTimer(waitRecheck)
		select {
		case <-woken:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			done()
			return sb, nil
		}
		t.Stop()
		done()
	}
}
