package testbed

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/fasthttp/websocket"
	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/dbtest"
	"github.com/tamarack-ai/tamarack/testbed/backend"
	"github.com/tamarack-ai/tamarack/testbed/backend/sim"
)

// brokenTerminal is the simulator with a terminal that fails the way a host does: naming its files.
type brokenTerminal struct{ *sim.Backend }

func (brokenTerminal) Terminal(_ context.Context, id string, _ []string) (backend.Terminal, error) {
	return nil, fmt.Errorf("open /var/lib/tamarack/%s/launch.json: permission denied", id[:5])
}

// awayTerminal is the simulator behind a site agent that does not answer.
type awayTerminal struct{ *sim.Backend }

func (awayTerminal) Terminal(context.Context, string, []string) (backend.Terminal, error) {
	return nil, fmt.Errorf("agent a1 of pool p1: %w: the agent did not answer", backend.ErrUnavailable)
}

// terminalClose opens the terminal of a running sandbox whose backend is wrap(the simulator) and returns how
// the server closes the WebSocket.
func terminalClose(t *testing.T, db *gorm.DB, wrap func(*sim.Backend) backend.Backend) *websocket.CloseError {
	t.Helper()
	f := newFixture(t, db, 1, 8, Options{})
	sb := f.launch(t, sme(), 1, 30)
	svc, err := New(Deps{DB: db, Clock: f.clk, Holds: ApproveHolds{}, Backends: map[string]backend.Backend{"simulator": wrap(f.sim)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	base, sign := serveHTTP(t, svc)
	url := "ws" + strings.TrimPrefix(base, "http") + "/sandboxes/" + sb.ID + "/terminal?access_token=" + sign.token(t, sme())
	conn, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _, err = conn.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) {
		t.Fatalf("want a close, got %v", err)
	}
	return ce
}

// TestTerminalFailureSaysNothingOfInternals: a terminal that cannot start closes the WebSocket with a plain
// reason; the host's error (paths, tools) goes to the log, not to the client.
func TestTerminalFailureSaysNothingOfInternals(t *testing.T) {
	dbtest.Each(t, migrations(), func(t *testing.T, db *gorm.DB) {
		ce := terminalClose(t, db, func(b *sim.Backend) backend.Backend { return brokenTerminal{b} })
		if ce.Code != websocket.CloseInternalServerErr {
			t.Fatalf("want a 1011 close, got %v", ce)
		}
		if strings.Contains(ce.Text, "/var/lib") || strings.Contains(ce.Text, "launch.json") {
			t.Fatalf("the close reason names the host's internals: %q", ce.Text)
		}
	})
}

// TestTerminalOfAnUnreachableBackendSaysTryAgainLater: a backend that does not answer closes the terminal
// with 1013 Try Again Later and a reason starting with the problem code unavailable, as its logs answer 503.
func TestTerminalOfAnUnreachableBackendSaysTryAgainLater(t *testing.T) {
	dbtest.Each(t, migrations(), func(t *testing.T, db *gorm.DB) {
		ce := terminalClose(t, db, func(b *sim.Backend) backend.Backend { return awayTerminal{b} })
		if ce.Code != websocket.CloseTryAgainLater || !strings.HasPrefix(ce.Text, "unavailable: ") ||
			!strings.Contains(ce.Text, "try again later") || strings.Contains(ce.Text, "agent") {
			t.Fatalf("want a 1013 close saying unavailable, try again later, got %d %q", ce.Code, ce.Text)
		}
	})
}
