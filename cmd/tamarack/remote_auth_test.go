package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/golang-jwt/jwt/v5"

	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/jwtauth"
	"github.com/tamarack-ai/tamarack/platform/natstest"
	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/web"
	"github.com/tamarack-ai/tamarack/services/events"
)

// TestRemoteTokenChecksWhenIdentityIsDown: a process without identity checks API tokens by asking identity over
// NATS and access tokens with identity's JWKS over HTTP. When identity does not answer (no responder on a real
// NATS, a responder that never replies, a JWKS endpoint that is gone) the token is not known to be bad: 503
// unavailable with Retry-After, so the client keeps its token. When identity answers that the token is bad: 401.
func TestRemoteTokenChecksWhenIdentityIsDown(t *testing.T) {
	bus := natstest.Start(t)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)

	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(jwtauth.JWKS{Keys: []jwtauth.JWK{jwtauth.NewJWK("k1", pub)}})
	}))
	defer jwks.Close()
	gone := httptest.NewServer(http.NotFoundHandler())
	goneURL := gone.URL
	gone.Close() // nothing listens there any more

	newApp := func(jwksURL string) *fiber.App {
		app := web.New(web.Config{Logger: slog.New(slog.DiscardHandler)})
		authn := web.Chain{
			JWT:       web.JWTAuthenticator{Verifier: jwtauth.Verifier{Keys: &jwtauth.RemoteKeys{URL: jwksURL}}},
			APITokens: remoteAPITokens{bus: bus, timeout: 300 * time.Millisecond},
		}
		app.Get("/api/v1/me", web.Auth(authn), web.RequireAuth, func(c *fiber.Ctx) error { return c.SendStatus(204) })
		return app
	}
	type answer struct {
		status     int
		code       string
		retryAfter string
	}
	do := func(app *fiber.App, token string) answer {
		t.Helper()
		req := httptest.NewRequest("GET", "/api/v1/me", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := app.Test(req, -1)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		var p struct {
			Code string `json:"code"`
		}
		_ = json.Unmarshal(b, &p)
		return answer{res.StatusCode, p.Code, res.Header.Get("Retry-After")}
	}
	now := time.Now()
	jwtToken, err := jwtauth.Sign(jwtauth.Claims{RegisteredClaims: jwt.RegisteredClaims{
		Issuer: jwtauth.Issuer, Audience: jwt.ClaimStrings{jwtauth.Audience}, Subject: "u1",
		IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute)), ID: "j1",
	}, Org: "o1", OrgKind: "sme", Role: "member"}, "k1", priv)
	if err != nil {
		t.Fatal(err)
	}
	unavailable := answer{503, problem.ErrUnavailable.Code, "5"}

	// No identity on the bus at all: NATS says there is no responder.
	if got := do(newApp(jwks.URL), "tmk_nobody_answers"); got != unavailable {
		t.Fatalf("API token, no identity on NATS: %+v, want %+v", got, unavailable)
	}
	// Identity's JWKS endpoint is gone.
	if got := do(newApp(goneURL), jwtToken); got != unavailable {
		t.Fatalf("access token, JWKS unreachable: %+v, want %+v", got, unavailable)
	}
	// The same token with identity's keys reachable is good: the 503 was about identity, not the token.
	if got := do(newApp(jwks.URL), jwtToken); got.status != 204 {
		t.Fatalf("access token, JWKS up: %+v, want 204", got)
	}

	// Identity is subscribed but never replies: the request times out.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sub, err := eventbus.Serve(ctx, bus, events.TokenVerify, "identity", func(ctx context.Context, _ events.TokenVerifyV1) (events.TokenPrincipalV1, error) {
		<-ctx.Done()
		return events.TokenPrincipalV1{}, ctx.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := do(newApp(jwks.URL), "tmk_identity_hangs"); got != unavailable {
		t.Fatalf("API token, identity times out: %+v, want %+v", got, unavailable)
	}
	cancel()
	_ = sub.Unsubscribe()

	// Identity answers that the token is bad: 401, no Retry-After.
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	sub2, err := eventbus.Serve(ctx2, bus, events.TokenVerify, "identity", func(context.Context, events.TokenVerifyV1) (events.TokenPrincipalV1, error) {
		return events.TokenPrincipalV1{}, web.ErrBadToken
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub2.Unsubscribe() }()
	if got, want := do(newApp(jwks.URL), "tmk_bad"), (answer{401, web.ErrBadToken.Code, ""}); got != want {
		t.Fatalf("API token identity refuses: %+v, want %+v", got, want)
	}
}
