package identity

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/mail"
	"github.com/tamarack-ai/tamarack/platform/web"

	"github.com/alexedwards/argon2id"

	"github.com/tamarack-ai/tamarack/platform/clock"
	"github.com/tamarack-ai/tamarack/platform/dbtest"
	"github.com/tamarack-ai/tamarack/platform/jwtauth"
	"github.com/tamarack-ai/tamarack/platform/natstest"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
)

func benchService(b *testing.B, params *argon2id.Params) *Service {
	b.Helper()
	db := dbtest.Open(b, sqldb.SQLite, Migrations())
	svc, err := New(Deps{DB: db, Bus: natstest.Start(b), Log: slog.New(slog.DiscardHandler), Clock: clock.System{}, Mailer: &mail.Memory{},
		AccessTTL: 15 * time.Minute, RefreshTTL: time.Hour, SignupPerMin: 1 << 30, Argon2: params})
	if err != nil {
		b.Fatal(err)
	}
	return svc
}

// BenchmarkVerifyAccessToken is the per-request cost every service pays: EdDSA verification with the
// cached key.
func BenchmarkVerifyAccessToken(b *testing.B) {
	svc := benchService(b, cheapArgon)
	ctx := context.Background()
	s, err := svc.Signup(ctx, SignupInput{Email: "b@example.com", Password: testPassword, Name: "B", OrgName: "O", OrgKind: KindSME})
	if err != nil {
		b.Fatal(err)
	}
	v := jwtauth.Verifier{Keys: svc.Keys()}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := v.Verify(ctx, s.AccessToken); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoginDefaultParams is a sign-in with production argon2id parameters (64 MiB, 1 pass).
func BenchmarkLoginDefaultParams(b *testing.B) {
	svc := benchService(b, argon2id.DefaultParams)
	ctx := context.Background()
	if _, err := svc.Signup(ctx, SignupInput{Email: "b@example.com", Password: testPassword, Name: "B", OrgName: "O", OrgKind: KindSME}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := svc.Login(ctx, LoginInput{Email: "b@example.com", Password: testPassword, Meta: Meta{IP: "127.0.0.1"}}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAPITokenAuth is a request authenticated by an API token (hash lookup, membership, user, org).
func BenchmarkAPITokenAuth(b *testing.B) {
	svc := benchService(b, cheapArgon)
	ctx := context.Background()
	s, err := svc.Signup(ctx, SignupInput{Email: "b@example.com", Password: testPassword, Name: "B", OrgName: "O", OrgKind: KindSME})
	if err != nil {
		b.Fatal(err)
	}
	_, tok, err := svc.CreateToken(ctx, Actor{Principal: web.Principal{UserID: s.User.ID, Email: s.User.Email, OrgID: s.Org.ID}},
		CreateTokenInput{Name: "b", Scopes: []string{"read"}, ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := svc.AuthenticateToken(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}
