package testbed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/natstest"
	"github.com/tamarack-ai/tamarack/platform/web"
	"github.com/tamarack-ai/tamarack/services/events"
)

// publishGated projects a gated compute listing on the fixture's pool.
func (f *fixture) publishGated(t testing.TB, id string) {
	t.Helper()
	err := f.svc.ApplyListing(context.Background(), "ev-"+id, "published", events.ListingChangedV1{ListingID: id,
		VersionID: "v1", Version: 1, VendorOrgID: vendorOrg, Kind: "compute", Title: "Gated H100", At: t0,
		Compute: &events.ComputeV1{PoolID: f.pool.ID, GPUModel: "h100-80gb", Region: "ca-montreal", MinDurationMinutes: 1,
			MaxDurationMinutes: 240, PricePerGPUHour: 2_500_000, PlanID: "plan-g", Gated: true}})
	if err != nil {
		t.Fatal(err)
	}
}

func entitlementEvent(org, listing string, at time.Time) events.EntitlementChangedV1 {
	return events.EntitlementChangedV1{EntitlementID: "ent-" + org + "-" + listing, ListingID: listing, OrganizationID: org,
		VendorOrgID: vendorOrg, Source: "access_request", SourceID: "acc-1", At: at}
}

// wantAccessRequired asserts err is the 403 access_required problem naming the listing.
func wantAccessRequired(t testing.TB, err error, listing string) {
	t.Helper()
	if !errors.Is(err, ErrAccessRequired) {
		t.Fatalf("want access_required, got %v", err)
	}
	p := asProblem(t, err)
	if p.Status != 403 || p.Code != "access_required" || !strings.Contains(p.Detail, "access-requests") || p.Extra["listing_id"] != listing {
		t.Fatalf("problem %+v", p)
	}
}

// TestGatedListingNeedsEntitlement: a gated compute listing is listed for everyone who may see it, but
// launching and reserving need an entitlement of the caller's organisation (its vendor and staff are
// exempt); a grant opens it, a revocation closes it again, an expired subscription closes it; events are
// applied once by ID and the newest (by At) wins whatever the order of delivery.
func TestGatedListingNeedsEntitlement(t *testing.T) {
	eachFixture(t, 1, 8, Options{}, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		f.publishGated(t, "lst-gated")
		launch := func(c web.Principal) error {
			t.Helper()
			sb, err := f.svc.Launch(ctx, c, LaunchInput{ListingID: "lst-gated", GPUModel: "h100-80gb", GPUCount: 1, Template: "shell", DurationMinutes: 10})
			f.svc.Wait()
			if err == nil {
				if _, err := f.svc.Stop(ctx, c, sb.ID); err != nil {
					t.Fatalf("stop: %v", err)
				}
				f.svc.Wait()
			}
			return err
		}
		reserve := func(c web.Principal) error {
			t.Helper()
			start := f.clk.Now().Add(time.Hour)
			r, err := f.svc.Reserve(ctx, c, ReserveInput{ListingID: "lst-gated", GPUCount: 1, StartsAt: start, EndsAt: start.Add(time.Hour)})
			if err == nil {
				if _, err := f.svc.CancelReservation(ctx, c, r.ID); err != nil {
					t.Fatalf("cancel reservation: %v", err)
				}
			}
			return err
		}
		refused := func(what string, c web.Principal) {
			t.Helper()
			t.Logf("refused: %s", what)
			wantAccessRequired(t, launch(c), "lst-gated")
			wantAccessRequired(t, reserve(c), "lst-gated")
		}
		allowed := func(what string, c web.Principal) {
			t.Helper()
			if err := launch(c); err != nil {
				t.Fatalf("%s: launch: %v", what, err)
			}
			if err := reserve(c); err != nil {
				t.Fatalf("%s: reserve: %v", what, err)
			}
		}

		// Listed (so the UI can offer "request access"), but not usable.
		ls, err := f.svc.Listings(ctx, sme())
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, l := range ls {
			found = found || (l.ID == "lst-gated" && l.Gated)
		}
		if !found {
			t.Fatalf("gated listing not listed: %+v", ls)
		}
		refused("before any grant", sme())
		// The ungated listing of the same pool stays open.
		f.launch(t, sme(), 1, 10)
		// The vendor and staff are exempt.
		allowed("vendor", vendor())
		if err := f.svc.checkAccess(ctx, hostStaff(), Listing{ID: "lst-gated", VendorOrgID: vendorOrg, Gated: true}); err != nil {
			t.Fatalf("staff: %v", err)
		}

		// Granted: the SME may; another organisation still may not.
		grant := entitlementEvent(smeOrg, "lst-gated", t0)
		for range 2 { // a redelivery is harmless
			if err := f.svc.ApplyEntitlement(ctx, "ent-granted-1", true, grant); err != nil {
				t.Fatal(err)
			}
		}
		allowed("after the grant", sme())
		refused("another organisation", other())

		// Revoked: refused again; a redelivered (or late, older) grant does not reopen it.
		f.clk.Advance(time.Minute)
		revoke := entitlementEvent(smeOrg, "lst-gated", f.clk.Now())
		revoke.Reason = "vendor revoked"
		for range 2 {
			if err := f.svc.ApplyEntitlement(ctx, "ent-revoked-1", false, revoke); err != nil {
				t.Fatal(err)
			}
		}
		refused("after the revocation", sme())
		if err := f.svc.ApplyEntitlement(ctx, "ent-granted-1", true, grant); err != nil {
			t.Fatal(err)
		}
		if err := f.svc.ApplyEntitlement(ctx, "ent-granted-old", true, entitlementEvent(smeOrg, "lst-gated", t0.Add(-time.Hour))); err != nil {
			t.Fatal(err)
		}
		refused("after old grants delivered late", sme())

		// A newer grant with an end (a subscription) opens it until it expires.
		f.clk.Advance(time.Minute)
		sub := entitlementEvent(smeOrg, "lst-gated", f.clk.Now())
		end := f.clk.Now().Add(2 * time.Hour)
		sub.ExpiresAt = &end
		if err := f.svc.ApplyEntitlement(ctx, "ent-granted-2", true, sub); err != nil {
			t.Fatal(err)
		}
		allowed("during the subscription", sme())
		f.clk.Advance(3 * time.Hour)
		refused("after the subscription ended", sme())

		var n int64
		if err := f.db.Model(&Entitlement{}).Count(&n).Error; err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Fatalf("%d entitlement rows, want 1 per (organisation, listing)", n)
		}
	})
}

// TestGatedListingHTTP: POST /sandboxes and /reservations answer 403 access_required with a detail saying
// how to get access; GET /listings shows the listing with gated and access_required for the caller.
func TestGatedListingHTTP(t *testing.T) {
	eachFixture(t, 1, 8, Options{}, func(t *testing.T, f *fixture) {
		f.publishGated(t, "lst-gated")
		app, sign := newApp(t, f.svc)
		do := func(method, path string, c web.Principal, body string) (int, map[string]any) {
			t.Helper()
			var r io.Reader
			if body != "" {
				r = strings.NewReader(body)
			}
			req := httptest.NewRequest(method, "/api/v1/testbed"+path, r)
			if body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			req.Header.Set("Authorization", "Bearer "+sign.token(t, c))
			res, err := app.Test(req, 10_000)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			raw, _ := io.ReadAll(res.Body)
			out := map[string]any{}
			_ = json.Unmarshal(raw, &out)
			f.svc.Wait()
			return res.StatusCode, out
		}
		launch := `{"listing_id":"lst-gated","gpu_model":"h100-80gb","gpu_count":1,"template":"shell","duration_minutes":10}`
		start := f.clk.Now().Add(time.Hour)
		reserve := fmt.Sprintf(`{"listing_id":"lst-gated","gpu_count":1,"starts_at":%q,"ends_at":%q}`,
			start.Format(time.RFC3339), start.Add(time.Hour).Format(time.RFC3339))
		for _, req := range [][2]string{{"/sandboxes", launch}, {"/reservations", reserve}} {
			st, body := do("POST", req[0], sme(), req[1])
			if st != 403 || body["code"] != "access_required" || !strings.Contains(fmt.Sprint(body["detail"]), "request access") ||
				body["listing_id"] != "lst-gated" {
				t.Fatalf("POST %s: %d %v", req[0], st, body)
			}
		}
		accessRequired := func(c web.Principal) (gated, required bool) {
			t.Helper()
			st, body := do("GET", "/listings", c, "")
			if st != 200 {
				t.Fatalf("GET /listings: %d %v", st, body)
			}
			items, _ := body["items"].([]any)
			for _, it := range items {
				m := it.(map[string]any)
				if m["id"] == "lst-gated" {
					return m["gated"] == true, m["access_required"] == true
				}
			}
			t.Fatalf("gated listing not listed: %v", body)
			return false, false
		}
		if g, r := accessRequired(sme()); !g || !r {
			t.Fatalf("sme: gated %v access_required %v", g, r)
		}
		if g, r := accessRequired(vendor()); !g || r {
			t.Fatalf("vendor: gated %v access_required %v", g, r)
		}
		if err := f.svc.ApplyEntitlement(context.Background(), "ent-g", true, entitlementEvent(smeOrg, "lst-gated", t0)); err != nil {
			t.Fatal(err)
		}
		if _, r := accessRequired(sme()); r {
			t.Fatal("sme still needs access after the grant")
		}
		if st, body := do("POST", "/sandboxes", sme(), launch); st != 202 {
			t.Fatalf("launch after the grant: %d %v", st, body)
		}
		if st, body := do("POST", "/reservations", sme(), reserve); st != 201 {
			t.Fatalf("reserve after the grant: %d %v", st, body)
		}
	})
}

// TestGatedListingThroughJetStream: the gated flag and the entitlement events reach the testbed through a
// real JetStream; launching is refused before the grant, accepted after it, refused after the revocation,
// and redelivered events change nothing.
func TestGatedListingThroughJetStream(t *testing.T) {
	natstest.Each(t, func(t *testing.T, bus *eventbus.Bus) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if err := bus.EnsureStreams(ctx, events.AllStreams()...); err != nil {
			t.Fatal(err)
		}
		f := newFixture(t, dbtestOpenSQLite(t), 1, 8, Options{})
		svc, err := New(Deps{DB: f.db, Bus: bus, Clock: f.clk, Holds: ApproveHolds{}, Backends: f.svc.backends,
			Options: Options{SuperviseInterval: 10 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		f.svc = svc
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); _ = svc.Run(ctx) }()
		defer func() { cancel(); wg.Wait() }()

		// A unique listing per run: the real server's stream outlives the test.
		lst := fmt.Sprintf("lst-gated-js-%d", time.Now().UnixNano())
		now := f.clk.Now()
		if err := eventbus.Publish(ctx, bus, events.ListingPublished, "tamarack/marketplace", lst+"-pub", now, events.ListingChangedV1{
			ListingID: lst, Version: 1, VendorOrgID: vendorOrg, Kind: "compute", At: now,
			Compute: &events.ComputeV1{PoolID: f.pool.ID, GPUModel: "h100-80gb", MaxDurationMinutes: 30, PricePerGPUHour: 1, Gated: true}}); err != nil {
			t.Fatal(err)
		}
		in := LaunchInput{ListingID: lst, GPUModel: "h100-80gb", GPUCount: 1, Template: "shell", DurationMinutes: 10}
		try := func() error {
			sb, err := svc.Launch(ctx, sme(), in)
			svc.Wait()
			if err == nil {
				_, _ = svc.Stop(ctx, sme(), sb.ID)
				svc.Wait()
			}
			return err
		}
		eventually(t, "the gated listing to be projected and refused", func() bool { return errors.Is(try(), ErrAccessRequired) })

		grant := entitlementEvent(smeOrg, lst, now)
		for range 2 { // published twice under one ID: JetStream dedupes, the consumer would too
			if err := eventbus.Publish(ctx, bus, events.EntitlementGranted, "tamarack/marketplace", lst+"-granted", now, grant); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, "the grant to open the listing", func() bool { return try() == nil })

		f.clk.Advance(time.Minute)
		revoke := entitlementEvent(smeOrg, lst, f.clk.Now())
		if err := eventbus.Publish(ctx, bus, events.EntitlementRevoked, "tamarack/marketplace", lst+"-revoked", f.clk.Now(), revoke); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the revocation to close the listing", func() bool { return errors.Is(try(), ErrAccessRequired) })
		// The consumer applying the grant again (a redelivery) changes nothing.
		if err := svc.ApplyEntitlement(ctx, lst+"-granted", true, grant); err != nil {
			t.Fatal(err)
		}
		wantAccessRequired(t, try(), lst)
	})
}

// TestRevokedAccessStopsGatedSandboxes: a revocation of an organisation's entitlement to a gated compute
// listing stops that organisation's sandboxes launched from it (reason access_revoked), once however often it
// is delivered, and cancels its reservations of the listing; another organisation's entitled sandbox and
// reservation, the vendor's own sandbox and the organisation's sandbox of an ungated listing are untouched.
func TestRevokedAccessStopsGatedSandboxes(t *testing.T) {
	eachFixture(t, 1, 8, Options{}, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		f.publishGated(t, "lst-gated")
		for i, org := range []string{smeOrg, otherOrg} {
			if err := f.svc.ApplyEntitlement(ctx, fmt.Sprintf("ent-granted-%d", i), true, entitlementEvent(org, "lst-gated", t0)); err != nil {
				t.Fatal(err)
			}
		}
		launch := func(c web.Principal) string {
			t.Helper()
			sb, err := f.svc.Launch(ctx, c, LaunchInput{ListingID: "lst-gated", GPUModel: "h100-80gb", GPUCount: 1, Template: "shell", DurationMinutes: 10})
			if err != nil {
				t.Fatalf("launch: %v", err)
			}
			f.svc.Wait()
			return sb.ID
		}
		reserve := func(c web.Principal) string {
			t.Helper()
			start := f.clk.Now().Add(time.Hour)
			r, err := f.svc.Reserve(ctx, c, ReserveInput{ListingID: "lst-gated", GPUCount: 1, StartsAt: start, EndsAt: start.Add(time.Hour)})
			if err != nil {
				t.Fatalf("reserve: %v", err)
			}
			return r.ID
		}
		myReservation, theirReservation := reserve(sme()), reserve(other())
		mine, theirs, vendors := launch(sme()), launch(other()), launch(vendor())
		ungated := f.launch(t, sme(), 1, 10).ID // another listing of the same pool
		for _, id := range []string{mine, theirs, vendors, ungated} {
			if sb := f.get(t, id); sb.State != StateRunning {
				t.Fatalf("%s before the revocation: %s", id, sb.State)
			}
		}

		f.clk.Advance(time.Minute)
		revoke := entitlementEvent(smeOrg, "lst-gated", f.clk.Now())
		for range 2 { // a redelivery stops nothing more
			if err := f.svc.ApplyEntitlement(ctx, "ent-revoked-1", false, revoke); err != nil {
				t.Fatal(err)
			}
			f.svc.Wait()
		}
		if sb := f.get(t, mine); sb.State != StateStopped || sb.StopReason != ReasonAccessRevoked {
			t.Fatalf("the SME's sandbox after its revocation: %s (%s), want stopped (%s)", sb.State, sb.StopReason, ReasonAccessRevoked)
		}
		for _, id := range []string{theirs, vendors, ungated} {
			if sb := f.get(t, id); sb.State != StateRunning {
				t.Fatalf("%s after another organisation's revocation: %s (%s)", id, sb.State, sb.StopReason)
			}
		}
		// Its reservation is cancelled; the other organisation's stands.
		for id, want := range map[string]string{myReservation: ResCancelled, theirReservation: ResPending} {
			var r Reservation
			if err := f.db.First(&r, "id = ?", id).Error; err != nil {
				t.Fatal(err)
			}
			if r.State != want {
				t.Fatalf("reservation %s after the SME's revocation: %s, want %s", id, r.State, want)
			}
		}
		// Eight GPUs, three running: five free now, of which the window keeps one for the other organisation's
		// reservation. A sandbox running into the window gets the other four only if the cancelled reservation
		// left the scheduler too.
		if _, err := f.svc.Launch(ctx, vendor(), LaunchInput{ListingID: "lst-gated", GPUModel: "h100-80gb", GPUCount: 4, Template: "shell", DurationMinutes: 120}); err != nil {
			t.Fatalf("launching into the window the cancelled reservation held: %v", err)
		}
		f.svc.Wait()
	})
}
