package billing

import (
	"log/slog"
	"net"
	"strconv"
	"testing"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/tamarack-ai/tamarack/platform/clock"
	"github.com/tamarack-ai/tamarack/platform/mail"
	"github.com/tamarack-ai/tamarack/platform/natstest"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/platform/webtest"
)

// A billing process whose Postgres went down answers 503 unavailable with Retry-After, as every service does
// (platform/web's error handler), not 500 internal.
func TestUnreachableDatabaseAnswersUnavailable(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close() // nothing listens there now: every connection is refused
	dsn := "postgres://postgres@127.0.0.1:" + strconv.Itoa(port) + "/test?sslmode=disable&connect_timeout=5"
	db, err := gorm.Open(postgres.Open(dsn), &gorm.Config{TranslateError: true, Logger: logger.Discard, DisableAutomaticPing: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sqldb.Close(db) })
	s, err := New(Deps{DB: db, Bus: natstest.Start(t), Clock: clock.NewManual(t0), Mailer: &mail.Memory{},
		PublicURL: "http://tamarack.test", Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	a := newAPI(t, &fx{t: t, s: s, db: db})
	r := webtest.Do(t, a.app, "GET", "/api/v1/billing/wallet", a.token(smeAdmin), nil)
	if r.Status != 503 || r.Code() != "unavailable" || r.Header.Get("Retry-After") == "" {
		t.Fatalf("GET /wallet with Postgres down: %d %s Retry-After=%q, want 503 unavailable with Retry-After",
			r.Status, r.Body, r.Header.Get("Retry-After"))
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q", ct)
	}
}
