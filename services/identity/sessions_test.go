package identity

import (
	"context"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/golang-jwt/jwt/v5"
	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/dbtest"
	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/jwtauth"
	"github.com/tamarack-ai/tamarack/platform/natstest"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/platform/web"
)

const firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"

func sidOf(t *testing.T, access string) string {
	t.Helper()
	var c jwtauth.Claims
	if _, _, err := jwtParser.ParseUnverified(access, &c); err != nil {
		t.Fatal(err)
	}
	return c.SessionID
}

func TestSessionList(t *testing.T) {
	each(t, func(t *testing.T, e *tenv) {
		r := e.doWith("POST", api+"/signup", "", map[string]any{"email": "s@test.example", "password": testPassword,
			"name": "S", "organization": map[string]any{"name": "S Ltd", "kind": "sme"}}, map[string]string{"User-Agent": firefox})
		want(t, r, 201, "")
		a := account{access: r.str("access_token"), refresh: r.str("refresh_token")}
		other := e.login("s@test.example")
		if sidOf(t, a.access) == "" || sidOf(t, a.access) == sidOf(t, other.access) {
			t.Fatalf("sid claims %q and %q", sidOf(t, a.access), sidOf(t, other.access))
		}

		l := e.do("GET", api+"/sessions", a.access, nil)
		want(t, l, 200, "")
		items := l.body["items"].([]any)
		if len(items) != 2 {
			t.Fatalf("sessions: %s", l.raw)
		}
		var mine map[string]any
		for _, it := range items {
			if m := it.(map[string]any); m["id"] == sidOf(t, a.access) {
				mine = m
			}
		}
		if mine == nil || mine["current"] != true || mine["device"] != "Firefox on Linux" || mine["ip"] == "" || mine["created_at"] == nil {
			t.Fatalf("own session: %v in %s", mine, l.raw)
		}

		// Refreshing keeps the session and moves its last use.
		e.clk.Advance(time.Minute)
		rr := e.do("POST", api+"/refresh", "", map[string]any{"refresh_token": a.refresh})
		want(t, rr, 200, "")
		if sidOf(t, rr.str("access_token")) != sidOf(t, a.access) {
			t.Fatal("a refresh changed the session")
		}

		// Someone else cannot see or end it.
		b := e.signup("b@test.example", "B Ltd", "sme")
		if l := e.do("GET", api+"/sessions", b.access, nil); len(l.body["items"].([]any)) != 1 {
			t.Fatalf("another user's list: %s", l.raw)
		}
		want(t, e.do("DELETE", api+"/sessions/"+sidOf(t, other.access), b.access, nil), 404, "session_not_found")
		want(t, e.do("GET", api+"/sessions", "", nil), 401, "")

		// Ending the other session: its refresh token dies, the audit log says so, the list shrinks.
		want(t, e.do("DELETE", api+"/sessions/"+sidOf(t, other.access), a.access, nil), 204, "")
		want(t, e.do("DELETE", api+"/sessions/"+sidOf(t, other.access), a.access, nil), 404, "session_not_found")
		want(t, e.do("POST", api+"/refresh", "", map[string]any{"refresh_token": other.refresh}), 401, "invalid_refresh_token")
		if l := e.do("GET", api+"/sessions", a.access, nil); len(l.body["items"].([]any)) != 1 {
			t.Fatalf("after ending one: %s", l.raw)
		}
		var n int64
		if err := e.db.Model(&AuditEntry{}).Where("action = ? AND target = ?", AuditSessionEnded, "session:"+sidOf(t, other.access)).
			Count(&n).Error; err != nil || n != 1 {
			t.Fatalf("audit entries %d, %v", n, err)
		}

		// Ending every session but one (a password change's call).
		third := e.login("s@test.example")
		if got, err := e.svc.EndUserSessions(context.Background(), mineUserID(t, e, a.access), sidOf(t, a.access), Meta{}); err != nil || got != 1 {
			t.Fatalf("EndUserSessions = %d, %v", got, err)
		}
		want(t, e.do("POST", api+"/refresh", "", map[string]any{"refresh_token": third.refresh}), 401, "invalid_refresh_token")
	})
}

func mineUserID(t *testing.T, e *tenv, access string) string {
	t.Helper()
	var c jwt.RegisteredClaims
	if _, _, err := jwtParser.ParseUnverified(access, &c); err != nil {
		t.Fatal(err)
	}
	return c.Subject
}

// verifier is one service instance's token check: its own NATS connection, revocation set and middleware.
type verifier struct {
	app   *fiber.App
	set   *jwtauth.Revocations
	ready chan struct{}
}

func newVerifier(t *testing.T, e *tenv, url string) *verifier {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bus, err := eventbus.Connect(ctx, eventbus.Options{URL: url, Prefix: e.bus.Prefix(), Name: "verifier"})
	if err != nil {
		t.Fatal(err)
	}
	v := &verifier{set: &jwtauth.Revocations{}, ready: make(chan struct{})}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = jwtauth.FollowRevocations(runCtx, bus, v.set, e.svc.log, v.ready)
	}()
	t.Cleanup(func() { stop(); <-done; bus.Close() })
	v.app = web.New(web.Config{Logger: e.svc.log})
	v.app.Get("/whoami", web.Auth(web.JWTAuthenticator{Verifier: jwtauth.Verifier{Keys: e.svc.Keys(), Now: e.clk.Now, Revoked: v.set}}),
		web.RequireAuth, func(c *fiber.Ctx) error { return c.SendString(web.PrincipalOf(c).UserID) })
	return v
}

func (v *verifier) get(t *testing.T, token string) resp {
	t.Helper()
	e := &tenv{t: t, app: v.app}
	return e.do("GET", "/whoami", token, nil)
}

// eventuallyRefused waits (with a deadline, not a timing assert) until every verifier refuses token.
func eventuallyRefused(t *testing.T, token string, vs ...*verifier) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, v := range vs {
		for {
			r := v.get(t, token)
			if r.status == 401 && r.code() == "token_revoked" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("token still answered %d %s", r.status, r.code())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func TestRevocationReachesEveryVerifier(t *testing.T) {
	for _, kind := range natstest.Kinds() {
		t.Run("nats-"+kind, func(t *testing.T) {
			bus := natstest.Connect(t, kind)
			db := dbtest.Open(t, dbtest.Dialects()[len(dbtest.Dialects())-1], migrations()...)
			e := newEnv(t, db, opts{bus: bus})
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = bus.JetStream().DeleteKeyValue(ctx, bus.StreamName(jwtauth.RevocationBucket))
			})
			runCtx, stop := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- e.svc.Run(runCtx) }()
			t.Cleanup(func() { stop(); <-done })

			url := bus.ClientURL()
			if kind == "server" {
				url = bus.Conn().ConnectedUrl()
			}
			v1, v2 := newVerifier(t, e, url), newVerifier(t, e, url)

			// Sign-out.
			a := e.signup("r@test.example", "R Ltd", "sme")
			for _, v := range []*verifier{v1, v2} {
				want(t, v.get(t, a.access), 200, "")
			}
			want(t, e.do("POST", api+"/logout", "", map[string]any{"refresh_token": a.refresh}), 204, "")
			eventuallyRefused(t, a.access, v1, v2)

			// Ending a session from the list.
			b := e.login("r@test.example")
			c := e.login("r@test.example")
			want(t, v1.get(t, c.access), 200, "")
			want(t, e.do("DELETE", api+"/sessions/"+sidOf(t, c.access), b.access, nil), 204, "")
			eventuallyRefused(t, c.access, v1, v2)
			want(t, v1.get(t, b.access), 200, "") // the other session lives on

			// A replayed refresh token ends its session.
			d := e.login("r@test.example")
			want(t, e.do("POST", api+"/refresh", "", map[string]any{"refresh_token": d.refresh}), 200, "")
			want(t, e.do("POST", api+"/refresh", "", map[string]any{"refresh_token": d.refresh}), 401, "refresh_reused")
			eventuallyRefused(t, d.access, v1, v2)

			// A verifier that starts afterwards learns the earlier revocations before it is ready.
			v3 := newVerifier(t, e, url)
			select {
			case <-v3.ready:
			case <-time.After(10 * time.Second):
				t.Fatal("late verifier never finished its replay")
			}
			for _, tok := range []string{a.access, c.access, d.access} {
				want(t, v3.get(t, tok), 401, "token_revoked")
			}
			want(t, v3.get(t, b.access), 200, "")
		})
	}
}

func TestReconcileRepublishesRevocations(t *testing.T) {
	dbtest.Each(t, migrations(), func(t *testing.T, db *gorm.DB) {
		e := newEnv(t, db)
		a := e.signup("q@test.example", "Q Ltd", "sme")
		// A revocation committed while NATS was unreachable: only the database knows.
		now := e.clk.Now()
		if err := sqldb.Tx(context.Background(), db, func(tx *gorm.DB) error { return e.svc.endSessions(tx, now, sidOf(t, a.access)) }); err != nil {
			t.Fatal(err)
		}
		n, err := e.svc.ReconcileRevocations(context.Background())
		if err != nil || n != 1 {
			t.Fatalf("reconciled %d, %v", n, err)
		}
		v := newVerifier(t, e, e.bus.ClientURL())
		select {
		case <-v.ready:
		case <-time.After(10 * time.Second):
			t.Fatal("verifier never finished its replay")
		}
		want(t, v.get(t, a.access), 401, "token_revoked")
	})
}
