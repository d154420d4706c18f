package testbed

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"testing"

	"github.com/tamarack-ai/tamarack/testbed/backend"
	"github.com/tamarack-ai/tamarack/testbed/backend/sim"
)

// awayBackend is the simulator with its logs behind a backend that does not answer (a site agent that is
// away wraps backend.ErrUnavailable the same way).
type awayBackend struct{ *sim.Backend }

func (awayBackend) Logs(context.Context, string, bool) (io.ReadCloser, error) {
	return nil, fmt.Errorf("agent a1 of pool p1: %w: the agent did not answer", backend.ErrUnavailable)
}

// TestLogsOfAnUnreachableBackendAnswer503: a running sandbox whose backend does not answer has its logs
// refused with 503 backend_unavailable (retry later), not a 500 internal error.
func TestLogsOfAnUnreachableBackendAnswer503(t *testing.T) {
	eachFixture(t, 1, 1, Options{}, func(t *testing.T, f *fixture) {
		sb := f.launch(t, sme(), 1, 30)
		if got := f.get(t, sb.ID).State; got != StateRunning {
			t.Fatalf("sandbox %s", got)
		}
		svc, err := New(Deps{DB: f.db, Clock: f.clk, Holds: ApproveHolds{}, Backends: map[string]backend.Backend{"simulator": awayBackend{f.sim}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := svc.Load(context.Background()); err != nil {
			t.Fatal(err)
		}
		app, sign := newApp(t, svc)
		req := httptest.NewRequest("GET", "/api/v1/testbed/sandboxes/"+sb.ID+"/logs?follow=false", nil)
		req.Header.Set("Authorization", "Bearer "+sign.token(t, sme()))
		res, err := app.Test(req, -1)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var p struct {
			Code string `json:"code"`
		}
		_ = json.NewDecoder(res.Body).Decode(&p)
		if res.StatusCode != 503 || p.Code != ErrBackendUnavailable.Code {
			t.Fatalf("logs of a sandbox on an unreachable backend: %d %s, want 503 %s", res.StatusCode, p.Code, ErrBackendUnavailable.Code)
		}
	})
}
