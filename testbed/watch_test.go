package testbed

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/tamarack-ai/tamarack/platform/web"
	"github.com/tamarack-ai/tamarack/testbed/backend"
	"github.com/tamarack-ai/tamarack/testbed/backend/sim"
)

// gatedSim is the simulator whose Start waits until the gate is closed: a sandbox stays provisioning
// for as long as the test wants.
type gatedSim struct {
	*sim.Backend
	gate chan struct{}
}

func (g gatedSim) Start(ctx context.Context, s backend.Spec) (backend.Status, error) {
	select {
	case <-g.gate:
	case <-ctx.Done():
		return backend.Status{}, ctx.Err()
	}
	return g.Backend.Start(ctx, s)
}

// TestWaitFor: GET /sandboxes/{id}?wait_until=running answers once the sandbox runs, not before; with a
// timeout it answers the state as it is; an ended sandbox is past running; bad parameters are refused.
func TestWaitFor(t *testing.T) {
	eachFixture(t, 1, 8, Options{}, func(t *testing.T, f *fixture) {
		g := gatedSim{Backend: f.sim, gate: make(chan struct{})}
		svc, err := New(Deps{DB: f.db, Clock: f.clk, Holds: ApproveHolds{}, Backends: map[string]backend.Backend{"simulator": g}})
		if err != nil {
			t.Fatal(err)
		}
		if err := svc.Load(context.Background()); err != nil {
			t.Fatal(err)
		}
		f.svc = svc
		app, sign := newApp(t, svc)
		get := func(c web.Principal, query string) (int, map[string]any) {
			t.Helper()
			req := httptest.NewRequest("GET", "/api/v1/testbed/sandboxes/"+query, nil)
			req.Header.Set("Authorization", "Bearer "+sign.token(t, c))
			res, err := app.Test(req, -1)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			body := map[string]any{}
			_ = json.NewDecoder(res.Body).Decode(&body)
			return res.StatusCode, body
		}

		sb, err := svc.Launch(context.Background(), sme(), LaunchInput{ListingID: f.listing.ID, GPUModel: "h100-80gb",
			GPUCount: 1, Template: "shell", DurationMinutes: 10})
		if err != nil {
			t.Fatal(err)
		}
		// The backend's Start is held: a short wait ends with the sandbox not yet running.
		if code, body := get(sme(), sb.ID+"?wait_until=running&timeout=1"); code != 200 || body["state"] == StateRunning {
			t.Fatalf("while Start is held: %d %v", code, body)
		}
		answered := make(chan map[string]any, 1)
		go func() {
			_, body := get(sme(), sb.ID+"?wait_until=running&timeout=25")
			answered <- body
		}()
		close(g.gate)
		if body := <-answered; body["state"] != StateRunning {
			t.Fatalf("waited for running, got %v", body)
		}

		// Stopped is past running: the wait answers at once (a timeout would not be reached within the test).
		if _, err := svc.Stop(context.Background(), sme(), sb.ID); err != nil {
			t.Fatal(err)
		}
		if code, body := get(sme(), sb.ID+"?wait_until=stopped&timeout=25"); code != 200 || body["state"] != StateStopped {
			t.Fatalf("wait for stopped: %d %v", code, body)
		}
		if code, body := get(sme(), sb.ID+"?wait_until=running&timeout=25"); code != 200 || body["state"] != StateStopped {
			t.Fatalf("wait for running after the end: %d %v", code, body)
		}
		svc.Wait()

		for _, q := range []struct{ query, field string }{
			{"?wait_until=runing", "wait_until"},
			{"?wait_until=running&timeout=0", "timeout"},
			{"?wait_until=running&timeout=26", "timeout"},
			{"?wait_until=running&timeout=1.5", "timeout"},
		} {
			code, body := get(sme(), sb.ID+q.query)
			fields, _ := body["fields"].([]any)
			if code != 422 || body["code"] != "validation_failed" || len(fields) != 1 || fields[0].(map[string]any)["field"] != q.field {
				t.Errorf("%s: %d %v, want 422 validation_failed on %s", q.query, code, body, q.field)
			}
		}
		if code, body := get(other(), sb.ID+"?wait_until=running"); code != 404 || body["code"] != "sandbox_not_found" {
			t.Errorf("another organisation waits: %d %v", code, body)
		}
	})
}

// TestWatchers: a waiter is woken by a change to its sandbox, not by one to another.
func TestWatchers(t *testing.T) {
	var w watchers
	a, doneA := w.add("sb-a")
	b, doneB := w.add("sb-b")
	defer doneA()
	defer doneB()
	w.wake("sb-a")
	select {
	case <-a:
	default:
		t.Fatal("the waiter on sb-a was not woken")
	}
	select {
	case <-b:
		t.Fatal("the waiter on sb-b was woken by sb-a")
	default:
	}
	doneB()
	if len(w.m) != 0 {
		t.Errorf("waiters left: %v", w.m)
	}
	for _, c := range []struct {
		state, until string
		want         bool
	}{
		{StateProvisioning, StateRunning, false}, {StateRunning, StateRunning, true}, {StateStopping, StateRunning, true},
		{StateFailed, StateRunning, true}, {StateStopped, StateRunning, true}, {StateRunning, StateStopped, false},
		{StateFailed, StateStopped, true}, {StateRequested, StateScheduled, false},
	} {
		if got := reached(c.state, c.until); got != c.want {
			t.Errorf("reached(%s, %s) = %v", c.state, c.until, got)
		}
	}
}
