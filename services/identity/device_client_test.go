package identity

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/services/identity/devicelogin"
)

// listen serves the app on a loopback port for real HTTP clients; the base URL it returns has no slash.
func (e *tenv) listen() string {
	e.t.Helper()
	e.listenOnce.Do(func() {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			e.t.Fatal(err)
		}
		go func() { _ = e.app.Listener(ln) }()
		e.t.Cleanup(func() { _ = e.app.Shutdown() })
		e.base = ln.Addr().String()
	})
	return "http://" + e.base
}

// The client package against the real service over HTTP: the user approves (or denies) through the API while
// the client polls; the client's sleeps move the service's clock, so no test waits.
func TestDeviceLoginClient(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *tenv) {
		base := e.listen()
		a := e.verifiedLogin(e.signup("cli@example.com", "CLI Org", "sme"))
		hc := &http.Client{Timeout: 30 * time.Second}
		ctx := context.Background()

		run := func(decide string) (devicelogin.TokenPair, []time.Duration, error) {
			var (
				code   string
				sleeps []time.Duration
			)
			f := &devicelogin.Flow{BaseURL: base + "/", HTTP: hc, ClientName: "tamarack CLI on test",
				Sleep: func(_ context.Context, d time.Duration) error {
					sleeps = append(sleeps, d)
					e.clk.Advance(d)
					if len(sleeps) == 2 { // the user acts after the first pending poll
						want(t, e.do("POST", api+"/device/"+code+"/"+decide, a.access, nil), 200, "")
					}
					return nil
				}}
			tok, err := f.Login(ctx, func(userCode, uri, complete string) {
				if uri != "http://tamarack.test/device" || complete != uri+"?code="+userCode {
					t.Errorf("show %q %q %q", userCode, uri, complete)
				}
				code = userCode
			})
			return tok, sleeps, err
		}

		tok, sleeps, err := run("approve")
		if err != nil {
			t.Fatal(err)
		}
		if len(sleeps) != 2 || sleeps[0] != 5*time.Second || sleeps[1] != 5*time.Second {
			t.Fatalf("sleeps %v", sleeps)
		}
		me := e.do("GET", api+"/me", tok.AccessToken, nil)
		want(t, me, 200, "")
		if me.body["user"].(map[string]any)["email"] != "cli@example.com" || tok.TokenType != "Bearer" || tok.RefreshToken == "" {
			t.Fatalf("me %s, tokens %+v", me.raw, tok)
		}

		if _, _, err := run("deny"); !errors.Is(err, devicelogin.ErrDenied) {
			t.Fatalf("denied: %v", err)
		}

		// Nobody acts: the code expires after 120 polls of 5 s.
		f := &devicelogin.Flow{BaseURL: base, HTTP: hc, Sleep: func(_ context.Context, d time.Duration) error { e.clk.Advance(d); return nil }}
		if _, err := f.Login(ctx, nil); !errors.Is(err, devicelogin.ErrExpired) {
			t.Fatalf("expired: %v", err)
		}
	})
}
