package identity

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/dbtest"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/platform/web"
)

func TestThrottleDelay(t *testing.T) {
	t.Parallel()
	p := DefaultLoginThrottle
	for _, tc := range []struct {
		failures, free int
		want           time.Duration
	}{
		{0, 5, 0}, {4, 5, 0}, {5, 5, time.Second}, {6, 5, 2 * time.Second}, {9, 5, 16 * time.Second},
		{13, 5, 256 * time.Second}, {14, 5, 5 * time.Minute}, {500, 5, 5 * time.Minute},
		{0, 1, 0}, {1, 1, time.Second}, {3, 1, 4 * time.Second},
	} {
		if got := p.delay(tc.failures, tc.free); got != tc.want {
			t.Errorf("delay(%d, %d) = %s, want %s", tc.failures, tc.free, got, tc.want)
		}
	}
	if d := (LoginThrottle{PairFree: 2, Max: 2 * time.Hour}).withDefaults(); d.PairFree != 2 || d.IPFree != 20 || d.Forget != 4*time.Hour {
		t.Errorf("withDefaults: %+v", d)
	}
}

// throttled is an environment whose app believes X-Forwarded-For from app.Test's peer, so that tests can
// play clients at different addresses.
func throttled(t *testing.T, fn func(t *testing.T, e *tenv)) {
	t.Helper()
	dbtestEach(t, fn, opts{trusted: "0.0.0.0/32"})
}

func (e *tenv) loginFrom(ip, email, password string) resp {
	e.t.Helper()
	return e.doWith("POST", api+"/login", "", map[string]any{"email": email, "password": password},
		map[string]string{"X-Forwarded-For": ip})
}

func retryAfter(t *testing.T, r resp) int {
	t.Helper()
	n, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || n < 1 {
		t.Fatalf("Retry-After %q: %s", r.header.Get("Retry-After"), r.raw)
	}
	if got, _ := r.body["retry_after_seconds"].(float64); int(got) != n {
		t.Fatalf("retry_after_seconds %v, Retry-After %d", r.body["retry_after_seconds"], n)
	}
	return n
}

const wrongPassword = "not the password at all"

// TestLoginThrottleGrowsAndClears: one client failing against one account waits longer after each failure,
// never more than the cap; a correct password after the wait clears its counter. An unknown e-mail meets
// exactly the same answers.
func TestLoginThrottleGrowsAndClears(t *testing.T) {
	t.Parallel()
	// Only the (account, IP) counter speaks here: the per-IP and per-account ones are out of reach.
	dbtestEach(t, func(t *testing.T, e *tenv) {
		e.signup("owner@example.com", "Org", "sme")
		walk := func(email string) []string {
			var seen []string
			for i := 0; i < 4; i++ {
				want(t, e.loginFrom("203.0.113.1", email, wrongPassword), 401, "invalid_credentials")
			}
			wait := 0
			for i := 0; i < 12; i++ {
				want(t, e.loginFrom("203.0.113.1", email, wrongPassword), 401, "invalid_credentials")
				r := e.loginFrom("203.0.113.1", email, wrongPassword)
				want(t, r, 429, "too_many_attempts")
				if r.str("detail") == "" {
					t.Fatalf("no detail: %s", r.raw)
				}
				next := retryAfter(t, r)
				if next <= wait && next != 300 || next > 300 {
					t.Fatalf("failure %d: Retry-After %d after %d", 5+i, next, wait)
				}
				wait = next
				seen = append(seen, strconv.Itoa(next))
				// A second refused try changes nothing; the wait is the same.
				if again := e.loginFrom("203.0.113.1", email, wrongPassword); retryAfter(t, again) != next {
					t.Fatalf("a refused attempt moved the wait: %s", again.raw)
				}
				e.clk.Advance(time.Duration(next) * time.Second)
			}
			return seen
		}
		known := walk("owner@example.com")
		if fmt.Sprint(known) != "[1 2 4 8 16 32 64 128 256 300 300 300]" {
			t.Fatalf("waits %v", known)
		}
		// The same answers for an address no account has.
		if unknown := walk("nobody@example.com"); fmt.Sprint(unknown) != fmt.Sprint(known) {
			t.Fatalf("unknown account: waits %v, known %v", unknown, known)
		}

		// Even the right password waits while the client is throttled; after the wait it works, and clears
		// the counter: the next mistakes are free again.
		want(t, e.loginFrom("203.0.113.1", "owner@example.com", wrongPassword), 401, "invalid_credentials")
		want(t, e.loginFrom("203.0.113.1", "owner@example.com", testPassword), 429, "too_many_attempts")
		e.clk.Advance(5 * time.Minute)
		want(t, e.loginFrom("203.0.113.1", "owner@example.com", testPassword), 200, "")
		for i := 0; i < 4; i++ {
			want(t, e.loginFrom("203.0.113.1", "owner@example.com", wrongPassword), 401, "invalid_credentials")
		}

		// Refusals are audited with the counter that refused.
		entries, err := e.svc.Audit(t.Context(), Actor{Principal: web.Principal{Staff: true}}, AuditFilter{Action: AuditLoginRateLimited, Limit: 1})
		if err != nil || len(entries) == 0 || entries[0].IP != "203.0.113.1" || entries[0].Detail == "" {
			t.Fatalf("audit: %v %+v", err, entries)
		}
	}, opts{trusted: "0.0.0.0/32", throttle: LoginThrottle{IPFree: 1000, AccountAlert: 1000}})
}

// TestLoginThrottleStrangerCannotLockOutOwner: strangers failing from other addresses, even enough to put the
// account under attack, never refuse the owner's correct password from an address that has not been failing.
func TestLoginThrottleStrangerCannotLockOutOwner(t *testing.T) {
	t.Parallel()
	throttled(t, func(t *testing.T, e *tenv) {
		st := e.staff() // staff accounts are the prize
		for i := 0; i < 30; i++ {
			e.loginFrom("198.51.100.66", st.email, wrongPassword)
		}
		want(t, e.loginFrom("198.51.100.66", st.email, testPassword), 429, "too_many_attempts")
		want(t, e.loginFrom("192.0.2.10", st.email, testPassword), 200, "")

		// Many strangers' addresses, a couple of failures each: the account is under attack.
		for i := 0; i < 10; i++ {
			ip := fmt.Sprintf("198.51.100.%d", 100+i)
			want(t, e.loginFrom(ip, st.email, wrongPassword), 401, "invalid_credentials")
		}
		// A new stranger now waits after a single miss …
		want(t, e.loginFrom("198.51.100.200", st.email, wrongPassword), 401, "invalid_credentials")
		want(t, e.loginFrom("198.51.100.200", st.email, wrongPassword), 429, "too_many_attempts")
		// … and one that had failed a few times under the free allowance waits from its first miss on.
		if n := retryAfter(t, e.loginFrom("198.51.100.100", st.email, wrongPassword)); n != 1 {
			t.Fatalf("under attack, a client with one failure waits %d s", n)
		}
		// … while the owner, from a known or a new address, signs in.
		want(t, e.loginFrom("192.0.2.10", st.email, testPassword), 200, "")
		want(t, e.loginFrom("192.0.2.99", st.email, testPassword), 200, "")
	})
}

// TestLoginThrottleSprayingOneAddress: one client trying many accounts is throttled on all of them, known or
// not, and only that client.
func TestLoginThrottleSprayingOneAddress(t *testing.T) {
	t.Parallel()
	throttled(t, func(t *testing.T, e *tenv) {
		e.signup("target@example.com", "Org", "vendor")
		for i := 0; i < 20; i++ {
			want(t, e.loginFrom("203.0.113.7", fmt.Sprintf("user%d@example.com", i), wrongPassword), 401, "invalid_credentials")
		}
		r := e.loginFrom("203.0.113.7", "fresh@example.com", wrongPassword)
		want(t, r, 429, "too_many_attempts")
		if n := retryAfter(t, r); n != 1 {
			t.Fatalf("first IP wait %d", n)
		}
		want(t, e.loginFrom("203.0.113.7", "target@example.com", testPassword), 429, "too_many_attempts")
		want(t, e.loginFrom("203.0.113.8", "target@example.com", testPassword), 200, "")
		e.clk.Advance(time.Second)
		want(t, e.loginFrom("203.0.113.7", "user99@example.com", wrongPassword), 401, "invalid_credentials")
		if n := retryAfter(t, e.loginFrom("203.0.113.7", "user98@example.com", wrongPassword)); n != 2 {
			t.Fatalf("second IP wait %d", n)
		}
		// Correct sign-ins from a shared address (an office) take nothing from its budget.
		e.clk.Advance(time.Hour)
		for i := 0; i < 30; i++ {
			want(t, e.loginFrom("203.0.113.7", "target@example.com", testPassword), 200, "")
		}
	})
}

// TestLoginThrottleForwardedForNeedsTrustedProxy: without trusted proxies every X-Forwarded-For is ignored,
// so a client cannot dodge its counter by writing a new address into the header each time.
func TestLoginThrottleForwardedForNeedsTrustedProxy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		trusted string
		wantIP  string
	}{{"", "0.0.0.0"}, {"10.0.0.0/8", "0.0.0.0"}, {"0.0.0.0/32", "203.0.113.4"}} {
		t.Run("trusted="+tc.trusted, func(t *testing.T) {
			t.Parallel()
			dbtestEach(t, func(t *testing.T, e *tenv) {
				e.signup("xff@example.com", "Org", "sme")
				statuses := ""
				for i := 0; i < 6; i++ {
					r := e.loginFrom(fmt.Sprintf("203.0.113.%d", i), "xff@example.com", wrongPassword)
					statuses += strconv.Itoa(r.status) + " "
				}
				trusted := tc.wantIP != "0.0.0.0"
				if want := "401 401 401 401 401 429 "; !trusted && statuses != want {
					t.Fatalf("forged addresses dodged the throttle: %s", statuses)
				}
				if trusted && statuses != "401 401 401 401 401 401 " {
					t.Fatalf("addresses from a trusted proxy were not told apart: %s", statuses)
				}
				entries, err := e.svc.Audit(t.Context(), Actor{Principal: web.Principal{Staff: true}}, AuditFilter{Action: AuditLoginFailed, Limit: 100})
				if err != nil || len(entries) == 0 {
					t.Fatalf("audit: %v", err)
				}
				var ips []string
				for _, en := range entries {
					ips = append(ips, en.IP)
				}
				if !contains(ips, tc.wantIP) || (!trusted && len(uniq(ips)) != 1) {
					t.Fatalf("audited addresses %v, want %s", ips, tc.wantIP)
				}
			}, opts{trusted: tc.trusted})
		})
	}
}

// TestLoginThrottleSharedByInstances: two services on one database see each other's counters, and a burst
// of concurrent guesses through both cannot get more than the free failures in.
func TestLoginThrottleSharedByInstances(t *testing.T) {
	t.Parallel()
	for _, d := range dbtest.Dialects() {
		t.Run(string(d), func(t *testing.T) {
			// Each instance has its own connection pool on the one database, as replicas do.
			dsn := dbtest.DSN(t, d, migrations()...)
			a := newEnv(t, openDSN(t, dsn, d == sqldb.SQLite), opts{trusted: "0.0.0.0/32"})
			b := newEnv(t, openDSN(t, dsn, false), opts{trusted: "0.0.0.0/32", bus: a.bus})
			sharedThrottle(t, a, b)
		})
	}
}

func openDSN(t *testing.T, dsn string, migrate bool) *gorm.DB {
	t.Helper()
	db, err := sqldb.Open(t.Context(), dsn, sqldb.Options{MaxOpenConns: 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sqldb.Close(db) })
	if migrate {
		if err := sqldb.Migrate(t.Context(), db, nil, migrations()...); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

func sharedThrottle(t *testing.T, a, b *tenv) {
	t.Helper()
	b.clk.Set(a.clk.Now())
	a.signup("shared@example.com", "Org", "sme")
	for i := 0; i < 5; i++ {
		want(t, a.loginFrom("203.0.113.5", "shared@example.com", wrongPassword), 401, "invalid_credentials")
	}
	want(t, b.loginFrom("203.0.113.5", "shared@example.com", testPassword), 429, "too_many_attempts")
	b.clk.Advance(time.Second)
	a.clk.Advance(time.Second)
	want(t, b.loginFrom("203.0.113.5", "shared@example.com", testPassword), 200, "")
	// b's success cleared the counter for a too.
	want(t, a.loginFrom("203.0.113.5", "shared@example.com", wrongPassword), 401, "invalid_credentials")
	want(t, a.loginFrom("203.0.113.5", "shared@example.com", testPassword), 200, "")

	// 24 concurrent wrong guesses from one address, half through each instance: the clock stands still,
	// so exactly the 5 free failures are answered and the rest wait.
	var wg sync.WaitGroup
	var mu sync.Mutex
	count := map[int]int{}
	for i := 0; i < 24; i++ {
		e := a
		if i%2 == 1 {
			e = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := e.loginFrom("203.0.113.6", "burst@example.com", wrongPassword)
			mu.Lock()
			count[r.status]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if count[401] != 5 || count[429] != 19 {
		t.Fatalf("answers %v, want 5 × 401 and 19 × 429", count)
	}
}

// TestLoginThrottlePrunes: counters are forgotten an hour after their last failure, and pruned.
func TestLoginThrottlePrunes(t *testing.T) {
	t.Parallel()
	throttled(t, func(t *testing.T, e *tenv) {
		for i := 0; i < 5; i++ {
			want(t, e.loginFrom("203.0.113.9", "old@example.com", wrongPassword), 401, "invalid_credentials")
		}
		want(t, e.loginFrom("203.0.113.9", "old@example.com", wrongPassword), 429, "too_many_attempts")
		var n int64
		if err := e.db.Model(&throttleRow{}).Count(&n).Error; err != nil || n != 3 {
			t.Fatalf("rows %d %v", n, err)
		}
		e.clk.Advance(30 * time.Minute)
		if pruned, err := e.svc.PruneLoginThrottle(t.Context()); err != nil || pruned != 0 {
			t.Fatalf("pruned early: %d %v", pruned, err)
		}
		e.clk.Advance(31 * time.Minute)
		if pruned, err := e.svc.PruneLoginThrottle(t.Context()); err != nil || pruned != 3 {
			t.Fatalf("pruned %d %v", pruned, err)
		}
		for i := 0; i < 5; i++ {
			want(t, e.loginFrom("203.0.113.9", "old@example.com", wrongPassword), 401, "invalid_credentials")
		}
	})
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

func uniq(xs []string) map[string]bool {
	m := map[string]bool{}
	for _, x := range xs {
		m[x] = true
	}
	return m
}
