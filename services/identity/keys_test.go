package identity

import (
	"context"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/dbtest"
	"github.com/tamarack-ai/tamarack/platform/jwtauth"
)

// TestKeyRotation: tokens signed by the previous key verify until it is retired; new tokens use the new key;
// maintenance retires a superseded key once every token it signed has expired.
func TestKeyRotation(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *tenv) {
		ctx := t.Context()
		a := e.signup("rot@example.com", "Org", "sme")
		oldKid := kidOf(t, a.access)
		e.clk.Advance(time.Second) // keys are ordered by creation time

		newKid, err := e.svc.RotateSigningKey(ctx)
		if err != nil || newKid == oldKid {
			t.Fatalf("rotate: %v %s", err, newKid)
		}
		b := e.login("rot@example.com")
		if kidOf(t, b.access) != newKid {
			t.Fatalf("new tokens should use the new key")
		}
		want(t, e.do("GET", api+"/me", a.access, nil), 200, "") // old key still verifies
		want(t, e.do("GET", api+"/me", b.access, nil), 200, "")
		jwks := e.do("GET", api+"/.well-known/jwks.json", "", nil)
		if n := len(jwks.body["keys"].([]any)); n != 2 {
			t.Fatalf("jwks has %d keys during rotation, want 2", n)
		}

		// Maintenance before the grace period keeps the old key; after it, retires it.
		if err := e.svc.MaintainKeys(ctx); err != nil {
			t.Fatal(err)
		}
		want(t, e.do("GET", api+"/me", a.access, nil), 200, "")
		e.clk.Advance(18 * time.Minute)
		if err := e.svc.MaintainKeys(ctx); err != nil {
			t.Fatal(err)
		}
		c := e.login("rot@example.com")
		e.clk.Advance(-18 * time.Minute) // a's token would be unexpired again: only retirement refuses it now
		want(t, e.do("GET", api+"/me", a.access, nil), 401, "invalid_token")
		e.clk.Advance(18 * time.Minute)
		want(t, e.do("GET", api+"/me", c.access, nil), 200, "")
		jwks = e.do("GET", api+"/.well-known/jwks.json", "", nil)
		if n := len(jwks.body["keys"].([]any)); n != 1 {
			t.Fatalf("jwks has %d keys after retirement, want 1", n)
		}

		// Explicit retirement of the current key: the next sign-in makes a new one.
		if err := e.svc.RetireSigningKey(ctx, newKid); err != nil {
			t.Fatal(err)
		}
		want(t, e.do("GET", api+"/me", c.access, nil), 401, "invalid_token")
		d := e.login("rot@example.com")
		if kidOf(t, d.access) == newKid {
			t.Fatal("signed with a retired key")
		}
		want(t, e.do("GET", api+"/me", d.access, nil), 200, "")

		// Rotation by age.
		e.clk.Advance(91 * 24 * time.Hour)
		if err := e.svc.MaintainKeys(ctx); err != nil {
			t.Fatal(err)
		}
		f := e.login("rot@example.com")
		if kidOf(t, f.access) == kidOf(t, d.access) {
			t.Fatal("a 91-day-old key was not rotated")
		}
	})
}

func kidOf(t *testing.T, token string) string {
	t.Helper()
	var c jwtauth.Claims
	tok, _, err := jwtParser.ParseUnverified(token, &c)
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := tok.Header["kid"].(string)
	return kid
}

// TestKeysSharedThroughDatabase: two services on one database verify each other's tokens, including keys
// created after the other loaded its cache, and with different sealing secrets (each signs with its own key).
func TestKeysSharedThroughDatabase(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, migrations(), func(t *testing.T, db *gorm.DB) {
		for _, secrets := range [][2][]byte{{[]byte("s3cret"), []byte("s3cret")}, {[]byte("one"), []byte("two")}, {nil, []byte("x")}} {
			ctx := context.Background()
			a := newEnv(t, db, opts{secret: secrets[0]})
			b := newEnv(t, db, opts{secret: secrets[1], bus: a.bus})
			b.clk.Set(a.clk.Now())
			if err := b.svc.Start(ctx); err != nil { // b loads (or makes) its keys first
				t.Fatal(err)
			}
			email := "shared" + string(secrets[1]) + "@example.com"
			acc := a.signup(email, "Org", "sme")
			want(t, b.do("GET", api+"/me", acc.access, nil), 200, "")
			bl := b.login(email)
			want(t, a.do("GET", api+"/me", bl.access, nil), 200, "")
			// A rotation in a is verified by b.
			if _, err := a.svc.RotateSigningKey(ctx); err != nil {
				t.Fatal(err)
			}
			want(t, b.do("GET", api+"/me", a.login(email).access, nil), 200, "")
		}
	})
}

func TestSealedKeysAtRest(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, migrations(), func(t *testing.T, db *gorm.DB) {
		e := newEnv(t, db, opts{secret: []byte("top secret")})
		if err := e.svc.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		var k SigningKey
		if err := db.Take(&k).Error; err != nil {
			t.Fatal(err)
		}
		if k.PrivateKey[:4] != "gcm:" {
			t.Fatalf("private key stored as %q…", k.PrivateKey[:4])
		}
		if _, err := e.svc.keys.open(k.PrivateKey, "another-kid"); err == nil {
			t.Fatal("a sealed key opened under another kid")
		}
	})
}

func TestConcurrentFirstSignInsMakeOneKey(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *tenv) {
		ctx := t.Context()
		errs := make(chan error, 8)
		for i := 0; i < 8; i++ {
			go func() { _, err := e.svc.keys.current(ctx); errs <- err }()
		}
		for i := 0; i < 8; i++ {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		var n int64
		e.db.Model(&SigningKey{}).Count(&n)
		if n != 1 {
			t.Fatalf("%d keys made", n)
		}
	})
}
