package testbed

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/fasthttp/websocket"

	"github.com/tamarack-ai/tamarack/testbed/backend"
	"github.com/tamarack-ai/tamarack/testbed/backend/sim"
)

// brokenTerminal is the simulator with a terminal that fails the way a host does: naming its files.
type brokenTerminal struct{ *sim.Backend }

func (brokenTerminal) Terminal(_ context.Context, id string, _ []string) (backend.Terminal, error) {
	return nil, fmt.Errorf("open /var/lib/tamarack/%s/launch.json: permission denied", id[:5])
}

// TestTerminalFailureSaysNothingOfInternals: a terminal that cannot start closes the WebSocket with a plain
// reason; the host's error (paths, tools) goes to the log, not to the client.
func TestTerminalFailureSaysNothingOfInternals(t *testing.T) {
	eachFixture(t, 1, 8, Options{}, func(t *testing.T, f *fixture) {
		sb := f.launch(t, sme(), 1, 30)
		svc, err := New(Deps{DB: f.db, Clock: f.clk, Holds: ApproveHolds{}, Backends: map[string]backend.Backend{"simulator": brokenTerminal{f.sim}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := svc.Load(t.Context()); err != nil {
			t.Fatal(err)
		}
		app, sign := newApp(t, svc)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = app.Listener(ln) }()
		defer func() { _ = app.Shutdown() }()
		url := "ws://" + ln.Addr().String() + "/api/v1/testbed/sandboxes/" + sb.ID + "/terminal?access_token=" + sign.token(t, sme())
		conn, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, _, err = conn.ReadMessage()
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseInternalServerErr {
			t.Fatalf("want a 1011 close, got %v", err)
		}
		if strings.Contains(ce.Text, "/var/lib") || strings.Contains(ce.Text, "launch.json") {
			t.Fatalf("the close reason names the host's internals: %q", ce.Text)
		}
	})
}
