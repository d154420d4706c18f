package testbed

import (
	"encoding/json"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/dbtest"
	"github.com/tamarack-ai/tamarack/platform/web"
	"github.com/tamarack-ai/tamarack/services/events"
)

// TestSandboxAccessIsTheOrganisations: the sandbox's shell, output, ports, tokens and time belong to its
// organisation. Staff of another organisation may read and stop it (audited) but not get into it or charge
// it more time; a read-only token may read logs but not type into a shell or drive a port; what a sandbox
// serves through the proxy cannot run as the platform's origin (where the web UI keeps its tokens).
func TestSandboxAccessIsTheOrganisations(t *testing.T) {
	eachFixture(t, 1, 8, Options{}, func(t *testing.T, f *fixture) {
		app, sign := newApp(t, f.svc)
		type answer struct {
			status int
			header map[string]string
			body   map[string]any
		}
		do := func(method, path, token, body string) answer {
			t.Helper()
			var r io.Reader
			if body != "" {
				r = strings.NewReader(body)
			}
			req := httptest.NewRequest(method, "/api/v1/testbed"+path, r)
			if body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			res, err := app.Test(req, 10_000)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			out := answer{status: res.StatusCode, header: map[string]string{}, body: map[string]any{}}
			for k := range res.Header {
				out.header[k] = res.Header.Get(k)
			}
			raw, _ := io.ReadAll(res.Body)
			_ = json.Unmarshal(raw, &out.body)
			f.svc.Wait()
			return out
		}
		want := func(a answer, status int, code string) {
			t.Helper()
			if a.status != status || (code != "" && a.body["code"] != code) {
				t.Fatalf("got %d %v, want %d %s", a.status, a.body, status, code)
			}
		}
		me := sign.token(t, sme())
		staff := sign.token(t, web.Principal{UserID: "u-staff", OrgID: "org-programme", OrgKind: "partner", Staff: true})
		readOnly := sign.scoped(t, sme(), "read")

		launched := do("POST", "/sandboxes", me, `{"listing_id":"lst-h100","gpu_model":"h100-80gb","gpu_count":1,"template":"jupyterlab","duration_minutes":30}`)
		want(launched, 202, "")
		id := launched.body["id"].(string)
		if got := do("GET", "/sandboxes/"+id, me, ""); got.body["state"] != "running" {
			t.Fatalf("sandbox %v", got.body)
		}

		// Staff of another organisation: no shell, output, port, token or extension of its sandbox.
		want(do("GET", "/sandboxes/"+id+"/terminal", staff, ""), 404, "sandbox_not_found")
		want(do("GET", "/sandboxes/"+id+"/logs?follow=false", staff, ""), 404, "sandbox_not_found")
		want(do("GET", "/sandboxes/"+id+"/proxy/8888/", staff, ""), 404, "sandbox_not_found")
		want(do("POST", "/sandboxes/"+id+"/token", staff, ""), 404, "sandbox_not_found")
		want(do("POST", "/sandboxes/"+id+"/extend", staff, `{"minutes":5}`), 404, "sandbox_not_found")

		// A read-only token reads the logs but opens neither the shell nor a port.
		want(do("GET", "/sandboxes/"+id+"/logs?follow=false", readOnly, ""), 200, "")
		want(do("GET", "/sandboxes/"+id+"/terminal", readOnly, ""), 403, "forbidden")
		want(do("GET", "/sandboxes/"+id+"/proxy/8888/", readOnly, ""), 403, "forbidden")

		// The organisation's own access still works, and the proxied page runs in a sandboxed origin.
		want(do("GET", "/sandboxes/"+id+"/terminal", me, ""), 426, "upgrade_required")
		page := do("GET", "/sandboxes/"+id+"/proxy/8888/", me, "")
		want(page, 200, "")
		csp := page.header["Content-Security-Policy"]
		if !strings.Contains(csp, "sandbox") || strings.Contains(csp, "allow-same-origin") {
			t.Fatalf("proxied page served as the platform's origin: Content-Security-Policy %q", csp)
		}
		tok := do("POST", "/sandboxes/"+id+"/token", me, "")
		want(tok, 201, "")
		want(do("GET", "/sandboxes/"+id+"/proxy/8888/?token="+tok.body["token"].(string), "", ""), 200, "")

		// Staff may still stop it (audited, reason staff).
		want(do("POST", "/sandboxes/"+id+"/stop", staff, ""), 202, "")
	})
}

// TestRestrictedListingsAreTheirOrganisations: a compute listing the vendor restricted to some organisations
// is neither listed to nor launchable or reservable by the others (404 as if it did not exist).
func TestRestrictedListingsAreTheirOrganisations(t *testing.T) {
	eachFixture(t, 1, 8, Options{}, func(t *testing.T, f *fixture) {
		if err := f.svc.ApplyListing(t.Context(), "ev-private", "published", events.ListingChangedV1{ListingID: "lst-private",
			VersionID: "v1", Version: 1, VendorOrgID: vendorOrg, Kind: "compute", Title: "Private H100", At: t0,
			Compute: &events.ComputeV1{PoolID: f.pool.ID, GPUModel: "h100-80gb", Region: "ca-montreal", MinDurationMinutes: 1,
				MaxDurationMinutes: 240, PricePerGPUHour: 2_500_000, PlanID: "plan-1", VisibleTo: []string{smeOrg}}}); err != nil {
			t.Fatal(err)
		}
		app, sign := newApp(t, f.svc)
		do := func(method, path, token, body string) (int, string) {
			t.Helper()
			req := httptest.NewRequest(method, "/api/v1/testbed"+path, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			res, err := app.Test(req, 10_000)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			raw, _ := io.ReadAll(res.Body)
			f.svc.Wait()
			return res.StatusCode, string(raw)
		}
		me, them, v := sign.token(t, sme()), sign.token(t, other()), sign.token(t, vendor())
		launch := `{"listing_id":"lst-private","gpu_model":"h100-80gb","gpu_count":1,"template":"shell","duration_minutes":10}`
		reserve := `{"listing_id":"lst-private","gpu_count":1,"starts_at":"` + t0.Add(2*time.Hour).Format(time.RFC3339) +
			`","ends_at":"` + t0.Add(3*time.Hour).Format(time.RFC3339) + `"}`

		for _, c := range []struct {
			who, token string
			listed     bool
		}{{"anonymous", "", false}, {"other organisation", them, false}, {"named organisation", me, true}, {"vendor", v, true}} {
			_, body := do("GET", "/listings", c.token, "")
			if strings.Contains(body, "lst-private") != c.listed || !strings.Contains(body, "lst-h100") {
				t.Errorf("%s: listings %s", c.who, body)
			}
		}
		if st, body := do("POST", "/sandboxes", them, launch); st != 404 || !strings.Contains(body, `"code":"listing_not_found"`) {
			t.Fatalf("other organisation launched on a restricted listing: %d %s", st, body)
		}
		if st, body := do("POST", "/reservations", them, reserve); st != 404 || !strings.Contains(body, `"code":"listing_not_found"`) {
			t.Fatalf("other organisation reserved a restricted listing: %d %s", st, body)
		}
		if st, body := do("POST", "/sandboxes", me, launch); st != 202 {
			t.Fatalf("named organisation: %d %s", st, body)
		}
		if st, body := do("POST", "/reservations", me, reserve); st != 201 {
			t.Fatalf("named organisation's reservation: %d %s", st, body)
		}
	})
}

// TestLogEventFraming: a carriage return in the sandbox's output (progress bars) ends an SSE line for the
// browser, so it must not let the sandbox's text start a field of its own (a forged "event: end").
func TestLogEventFraming(t *testing.T) {
	var b strings.Builder
	writeLogEvent(&b, "10%\revent: end\r\ndata: {}\n")
	want := "event: log\ndata: 10%\ndata: event: end\ndata: data: {}\n\n"
	if b.String() != want {
		t.Fatalf("framed %q, want %q", b.String(), want)
	}
}

// TestProxyTradesTheOrgTokenForASandboxToken: the page a sandbox serves can read its own URL (and gets it as
// Referer): an organisation token in ?access_token= is traded at once for a sandbox token by a redirect, so
// the sandbox's code never sees a credential wider than the sandbox itself.
func TestProxyTradesTheOrgTokenForASandboxToken(t *testing.T) {
	eachFixture(t, 1, 8, Options{}, func(t *testing.T, f *fixture) {
		app, sign := newApp(t, f.svc)
		sb, err := f.svc.Launch(t.Context(), sme(), LaunchInput{ListingID: f.listing.ID, GPUModel: "h100-80gb",
			GPUCount: 1, Template: "jupyterlab", DurationMinutes: 30})
		if err != nil {
			t.Fatal(err)
		}
		f.svc.Wait()
		me := sign.token(t, sme())
		req := httptest.NewRequest("GET", "/api/v1/testbed/sandboxes/"+sb.ID+"/proxy/8888/files/a.txt?x=1&access_token="+me, nil)
		res, err := app.Test(req, 10_000)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		loc := res.Header.Get("Location")
		if res.StatusCode != 307 || strings.Contains(loc, me) || !strings.Contains(loc, "token=sbt_") ||
			!strings.HasPrefix(loc, "/api/v1/testbed/sandboxes/"+sb.ID+"/proxy/8888/files/a.txt?") || !strings.Contains(loc, "x=1") {
			t.Fatalf("got %d Location %q, want 307 to the same page with a sandbox token", res.StatusCode, loc)
		}
		res, err = app.Test(httptest.NewRequest("GET", loc, nil), 10_000)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("following the redirect: %d", res.StatusCode)
		}
	})
}

// TestLogStreamFramingOverHTTP: the same through the logs route with the simulator's output.
func TestLogStreamFramingOverHTTP(t *testing.T) {
	eachFixture(t, 1, 8, Options{}, func(t *testing.T, f *fixture) {
		app, sign := newApp(t, f.svc)
		sb := f.launch(t, sme(), 1, 30)
		if err := f.sim.WriteLog(sb.ID, "epoch 1 10%\revent: end\rdata: forged\n"); err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest("GET", "/api/v1/testbed/sandboxes/"+sb.ID+"/logs?follow=false", nil)
		req.Header.Set("Authorization", "Bearer "+sign.token(t, sme()))
		res, err := app.Test(req, 10_000)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		body := string(raw)
		if res.StatusCode != 200 || strings.Contains(body, "\r") || strings.Count(body, "event: end") != 2 ||
			!strings.Contains(body, "data: epoch 1 10%\ndata: event: end\ndata: data: forged\n\n") {
			t.Fatalf("%d %q", res.StatusCode, body)
		}
	})
}

// TestDiscoveryOnlyForThePoolsManagers: GPU discovery runs a program on the testbed host and reports its
// errors; a caller who may not manage the pool gets the pool's 404 before anything runs.
func TestDiscoveryOnlyForThePoolsManagers(t *testing.T) {
	eachFixture(t, 1, 8, Options{}, func(t *testing.T, f *fixture) {
		app, sign := newApp(t, f.svc)
		body := `{"name":"n9","cpu_millis":1000,"memory_bytes":1000,"discover":true}`
		for _, c := range []struct {
			who  string
			tok  string
			pool string
		}{{"another organisation", sign.token(t, other()), f.pool.ID}, {"a missing pool", sign.token(t, other()), "pool-nope"}} {
			req := httptest.NewRequest("POST", "/api/v1/testbed/pools/"+c.pool+"/nodes", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+c.tok)
			res, err := app.Test(req, 10_000)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 404 || !strings.Contains(string(raw), `"code":"pool_not_found"`) {
				t.Fatalf("%s: %d %s", c.who, res.StatusCode, raw)
			}
		}
	})
}

// TestStaffReservationCancelIsAudited: staff cancelling another organisation's reservation leaves an audit
// entry, like every other staff action on another organisation's objects.
func TestStaffReservationCancelIsAudited(t *testing.T) {
	eachFixture(t, 1, 8, Options{}, func(t *testing.T, f *fixture) {
		r, err := f.svc.Reserve(t.Context(), sme(), ReserveInput{ListingID: f.listing.ID, GPUCount: 1,
			StartsAt: t0.Add(2 * time.Hour), EndsAt: t0.Add(3 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		staff := web.Principal{UserID: "u-staff", OrgID: "org-programme", Staff: true}
		if _, err := f.svc.CancelReservation(t.Context(), staff, r.ID); err != nil {
			t.Fatal(err)
		}
		list, err := f.svc.Audit(t.Context(), 10, AuditCursor{})
		if err != nil || len(list) != 1 || list[0].Action != "reservation.cancel" || list[0].Target != r.ID {
			t.Fatalf("audit %+v %v", list, err)
		}
	})
}

// Backend settings of a pool are for its managers: the public list and detail leave them out.
func TestPoolSettingsAreForItsManagers(t *testing.T) {
	dbtest.Each(t, migrations(), func(t *testing.T, db *gorm.DB) { poolSettingsForManagers(t, db) })
}

func poolSettingsForManagers(t *testing.T, db *gorm.DB) {
	f := newFixture(t, db, 1, 1, Options{})
	if _, err := f.svc.UpdatePool(t.Context(), hostStaff(), f.pool.ID, UpdatePoolInput{Settings: map[string]string{"partition": "secret-gpu"}}); err != nil {
		t.Fatal(err)
	}
	app, sign := newApp(t, f.svc)
	for _, c := range []struct {
		who  *web.Principal
		want bool
	}{{nil, false}, {ptr(sme()), false}, {ptr(vendor()), true}, {ptr(hostStaff()), true}} {
		for _, path := range []string{"/api/v1/testbed/pools", "/api/v1/testbed/pools/" + f.pool.ID} {
			req := httptest.NewRequest("GET", path, nil)
			if c.who != nil {
				req.Header.Set("Authorization", "Bearer "+sign.token(t, *c.who))
			}
			resp, err := app.Test(req, -1)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			if got := strings.Contains(string(b), "secret-gpu"); got != c.want {
				t.Errorf("%s as %+v: settings shown = %v, want %v", path, c.who, got, c.want)
			}
		}
	}
}

func ptr[T any](v T) *T { return &v }
