package testbed

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/dbtest"
	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/natstest"
	"github.com/tamarack-ai/tamarack/platform/openapi"
	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/web"
	"github.com/tamarack-ai/tamarack/platform/webtest"
	"github.com/tamarack-ai/tamarack/services/events"
)

type resp struct {
	status int
	body   map[string]any
}

func TestHTTPBadInput(t *testing.T) {
	eachFixture(t, 1, 8, Options{}, func(t *testing.T, f *fixture) {
		app, sign := newApp(t, f.svc)
		do := func(method, path string, c *web.Principal, body string) resp {
			t.Helper()
			var r io.Reader
			if body != "" {
				r = strings.NewReader(body)
			}
			req := httptest.NewRequest(method, "/api/v1/testbed"+path, r)
			if body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			if c != nil {
				req.Header.Set("Authorization", "Bearer "+sign.token(t, *c))
			}
			res, err := app.Test(req, 10_000)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			out := resp{status: res.StatusCode, body: map[string]any{}}
			_ = json.NewDecoder(res.Body).Decode(&out.body)
			f.svc.Wait()
			return out
		}
		want := func(r resp, status int, code string, fields ...string) {
			t.Helper()
			if r.status != status || (code != "" && r.body["code"] != code) {
				t.Fatalf("got %d %v, want %d %s", r.status, r.body, status, code)
			}
			got := map[string]string{}
			fl, _ := r.body["fields"].([]any)
			for _, x := range fl {
				m := x.(map[string]any)
				got[m["field"].(string)] = m["code"].(string)
			}
			for i := 0; i+1 < len(fields); i += 2 {
				if got[fields[i]] != fields[i+1] {
					t.Fatalf("field %s: got %q in %v", fields[i], got[fields[i]], r.body)
				}
			}
		}
		me, them, v := sme(), other(), vendor()
		launch := func(model string, count, minutes int) string {
			return `{"listing_id":"lst-h100","gpu_model":"` + model + `","gpu_count":` + itoa(count) + `,"template":"shell","duration_minutes":` + itoa(minutes) + `}`
		}

		want(do("POST", "/sandboxes", nil, launch("h100-80gb", 1, 10)), 401, "unauthorized")
		want(do("POST", "/sandboxes", &me, launch("h900-1tb", 1, 10)), 422, "validation_failed", "gpu_model", "unknown_gpu_model")
		want(do("POST", "/sandboxes", &me, launch("h100-80gb", 0, 10)), 422, "validation_failed", "gpu_count", "required")
		want(do("POST", "/sandboxes", &me, launch("h100-80gb", 9, 10)), 422, "validation_failed", "gpu_count", "too_large")
		want(do("POST", "/sandboxes", &me, launch("h100-80gb", -1, -1)), 422, "validation_failed", "gpu_count", "too_small", "duration_minutes", "too_small")
		want(do("POST", "/sandboxes", &me, launch("h100-80gb", 1, 241)), 422, "validation_failed", "duration_minutes", "too_long")
		want(do("POST", "/sandboxes", &me, launch("l4-24gb", 1, 10)), 422, "validation_failed", "gpu_model", "not_offered")
		want(do("POST", "/sandboxes", &me, strings.Replace(launch("h100-80gb", 1, 10), "lst-h100", "lst-nope", 1)), 404, "listing_not_found")
		want(do("POST", "/sandboxes", &me, `{"listing_id":"lst-h100","gpus":1}`), 422, "validation_failed", "gpus", "unknown_field")
		want(do("POST", "/sandboxes", &me, `{"listing_id":`), 400, "malformed_json")

		ok := do("POST", "/sandboxes", &me, launch("h100-80gb", 8, 30))
		want(ok, 202, "")
		if ok.body["state"] != "requested" {
			t.Fatalf("202 body %v", ok.body)
		}
		id := ok.body["id"].(string)
		full := do("POST", "/sandboxes", &them, launch("h100-80gb", 1, 10))
		want(full, 409, "no_capacity")
		if full.body["next_free_at"] != t0.Add(30*time.Minute).Format(time.RFC3339) {
			t.Fatalf("next_free_at %v", full.body)
		}
		got := do("GET", "/sandboxes/"+id, &me, "")
		want(got, 200, "")
		if got.body["state"] != "running" || len(got.body["devices"].([]any)) != 8 {
			t.Fatalf("sandbox %v", got.body)
		}
		want(do("GET", "/sandboxes/"+id, &them, ""), 404, "sandbox_not_found")
		want(do("POST", "/sandboxes/"+id+"/stop", &them, ""), 404, "sandbox_not_found")
		want(do("POST", "/sandboxes/"+id+"/extend", &them, `{"minutes":5}`), 404, "sandbox_not_found")
		want(do("GET", "/sandboxes/"+id+"/logs", &them, ""), 404, "sandbox_not_found")
		want(do("GET", "/sandboxes/"+id+"/terminal", nil, ""), 401, "unauthorized")
		want(do("GET", "/sandboxes/"+id+"/terminal?token=sbt_forged", nil, ""), 401, "invalid_sandbox_token")
		want(do("GET", "/sandboxes/"+id+"/terminal", &me, ""), 426, "upgrade_required")
		want(do("GET", "/sandboxes/"+id+"/terminal?cmd=echo&cmd=hi", &me, ""), 426, "upgrade_required")
		want(do("GET", "/sandboxes/"+id+"/terminal?cmd=&cmd=hi", &me, ""), 422, "validation_failed", "cmd", "required")
		want(do("GET", "/sandboxes/"+id+"/terminal?cmd="+strings.Repeat("x", 2100), &me, ""), 422, "validation_failed", "cmd", "too_long")
		want(do("GET", "/sandboxes/"+id+"/proxy/8888/", &me, ""), 404, "port_not_exposed")
		want(do("POST", "/sandboxes/"+id+"/extend", &me, `{"minutes":300}`), 422, "validation_failed", "minutes", "too_long")
		list := do("GET", "/sandboxes?limit=1", &me, "")
		if list.status != 200 || len(list.body["items"].([]any)) != 1 {
			t.Fatalf("list %v", list.body)
		}
		want(do("GET", "/sandboxes?limit=500", &me, ""), 422, "validation_failed", "limit", "out_of_range")
		want(do("POST", "/sandboxes/"+id+"/stop", &me, ""), 202, "")
		want(do("GET", "/sandboxes/"+id+"/terminal", &me, ""), 409, "sandbox_not_running")
		want(do("POST", "/sandboxes/"+id+"/stop", &me, ""), 409, "sandbox_ended")

		// Inventory.
		want(do("POST", "/pools", &me, `{"name":"x","region":"y","backend":"local"}`), 403, "forbidden")
		want(do("POST", "/pools", &v, `{"name":"","region":"y","backend":"lsf"}`), 422, "validation_failed", "name", "required", "backend", "invalid")
		want(do("POST", "/pools", &v, `{"name":"Test pool","region":"y","backend":"kubernetes"}`), 409, "pool_exists")
		want(do("POST", "/pools", &v, `{"name":"On the host","region":"y","backend":"local"}`), 403, "host_backend_staff_only")
		want(do("POST", "/pools/"+f.pool.ID+"/nodes", &v, `{"name":"n2","cpu_millis":1000,"memory_bytes":1000,"devices":[{"index":0,"gpu_model":"l4-24gb"}]}`), 403, "host_backend_staff_only")
		want(do("POST", "/pools/"+f.pool.ID+"/nodes", &v, `{"name":"n2","cpu_millis":1000,"memory_bytes":1000,"devices":[{"index":0,"gpu_model":"tpu-v5"}]}`), 422, "validation_failed", "devices.gpu_model", "unknown_gpu_model")
		want(do("POST", "/pools/"+f.pool.ID+"/nodes", &them, `{"name":"n2","cpu_millis":1000,"memory_bytes":1000,"devices":[{"index":0,"gpu_model":"l4-24gb"}]}`), 404, "pool_not_found")
		pools := do("GET", "/pools", nil, "")
		items := pools.body["items"].([]any)
		gpus := items[0].(map[string]any)["gpus"].([]any)
		if len(items) != 1 || gpus[0].(map[string]any)["total"].(float64) != 8 {
			t.Fatalf("pools %v", pools.body)
		}
		detail := do("GET", "/pools/"+f.pool.ID, nil, "")
		dev := detail.body["node_list"].([]any)[0].(map[string]any)["devices"].([]any)[0].(map[string]any)
		if dev["declared"] != true {
			t.Fatalf("declared device not labelled: %v", dev)
		}
		tm := do("GET", "/templates", nil, "")
		if len(tm.body["items"].([]any)) != 3 {
			t.Fatalf("templates %v", tm.body)
		}
		want(do("GET", "/availability?step=1h&gpu_model=h100-80gb", nil, ""), 200, "")
		want(do("GET", "/availability?step=1s", nil, ""), 422, "validation_failed", "step", "too_small")
		want(do("POST", "/reservations", &me, `{"listing_id":"lst-h100","gpu_count":65,"starts_at":"2020-01-01T00:00:00Z","ends_at":"2020-01-01T00:00:00Z"}`), 422, "validation_failed", "gpu_count", "invalid", "starts_at", "in_past", "ends_at", "before_start")
		want(do("POST", "/reservations", &me, `{}`), 422, "validation_failed", "listing_id", "required", "gpu_count", "required", "starts_at", "required", "ends_at", "required")

		// A caller acting for no organisation (a new account, staff outside one) is refused, and nothing is
		// recorded: a sandbox or reservation belongs to an organisation and is charged to its wallet.
		for _, lone := range []web.Principal{{UserID: "u-lone", Role: web.RoleAdmin}, hostStaff()} {
			start := f.clk.Now().Add(time.Hour).Format(time.RFC3339)
			end := f.clk.Now().Add(2 * time.Hour).Format(time.RFC3339)
			want(do("POST", "/sandboxes", &lone, launch("h100-80gb", 1, 10)), 403, "forbidden")
			want(do("POST", "/reservations", &lone, `{"listing_id":"lst-h100","gpu_count":1,"starts_at":"`+start+`","ends_at":"`+end+`"}`), 403, "forbidden")
		}
		for _, table := range []any{&Sandbox{}, &Reservation{}} {
			var n int64
			if err := f.db.Model(table).Where("org_id = ?", "").Count(&n).Error; err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Fatalf("%d %T rows of no organisation", n, table)
			}
		}
	})
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// TestHolds: billing's answers through NATS request/reply reach the API caller: insufficient credits as
// 402 with the shortfall, no answer as 503 billing_unavailable; nothing is recorded or started.
func TestHolds(t *testing.T) {
	db := dbtest.Open(t, dbtest.Dialects()[0], migrations()...)
	f := newFixture(t, db, 1, 8, Options{})
	bus := natstest.Start(t)
	f.svc.holds = BusHolds{Bus: bus, Timeout: 300 * time.Millisecond}
	ctx := context.Background()
	in := LaunchInput{ListingID: f.listing.ID, GPUModel: "h100-80gb", GPUCount: 2, Template: "shell", DurationMinutes: 90}
	_, err := f.svc.Launch(ctx, sme(), in)
	if p := asProblem(t, err); p.Status != 503 || p.Code != "billing_unavailable" {
		t.Fatalf("no billing: %v", err)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var seen events.HoldRequestV1
	if _, err := eventbus.Serve(sctx, bus, events.Hold, "billing", func(_ context.Context, r events.HoldRequestV1) (events.HoldReplyV1, error) {
		seen = r
		if r.OrganizationID == otherOrg {
			return events.HoldReplyV1{HoldID: "h-1", AmountMicro: 1}, nil
		}
		return events.HoldReplyV1{}, problem.New(402, "insufficient_credits", "Not enough credits.").WithExtra("shortfall_micro", 1234)
	}); err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.Launch(ctx, sme(), in)
	p := asProblem(t, err)
	if p.Status != 402 || p.Code != "insufficient_credits" || p.Extra["shortfall_micro"] != float64(1234) {
		t.Fatalf("insufficient: %v %v", err, p.Extra)
	}
	if seen.Action != "place" || seen.Seconds != 90*60 || seen.PricePerGPUHour != 2_500_000 || seen.GPUCount != 2 {
		t.Fatalf("hold request %+v", seen)
	}
	var n int64
	db.Model(&Sandbox{}).Count(&n)
	if n != 0 {
		t.Fatalf("%d sandboxes recorded without a hold", n)
	}
	sb, err := f.svc.Launch(ctx, other(), in)
	if err != nil {
		t.Fatal(err)
	}
	f.svc.Wait()
	if got := f.get(t, sb.ID); got.HoldID != "h-1" || got.State != StateRunning {
		t.Fatalf("with hold: %+v", got)
	}
	if _, err := f.svc.Extend(ctx, other(), sb.ID, 30); err != nil || seen.Action != "extend" || seen.Seconds != 1800 {
		t.Fatalf("extend: %v %+v", err, seen)
	}
}

// TestOpenAPICoversRoutes: every route the testbed serves is in its OpenAPI operations.
func TestOpenAPICoversRoutes(t *testing.T) {
	db := dbtest.Open(t, dbtest.Dialects()[0], migrations()...)
	f := newFixture(t, db, 1, 1, Options{})
	app, _ := newApp(t, f.svc)
	doc := openapi.New("t", "v")
	f.svc.OpenAPI(doc)
	if m := openapi.Missing(app, doc); len(m) > 0 {
		t.Fatalf("routes missing from OpenAPI: %v", m)
	}
	if _, err := doc.JSON(); err != nil {
		t.Fatal(err)
	}
}

// TestStaffAudit: a staff stop of another organisation's sandbox is recorded with reason staff and audited.
func TestStaffAudit(t *testing.T) {
	eachFixture(t, 1, 8, Options{}, func(t *testing.T, f *fixture) {
		sb := f.launch(t, sme(), 1, 30)
		staff := web.Principal{UserID: "u-staff", OrgID: "org-programme", Staff: true}
		if _, err := f.svc.Stop(context.Background(), staff, sb.ID); err != nil {
			t.Fatal(err)
		}
		f.svc.Wait()
		if s := f.get(t, sb.ID); s.StopReason != ReasonStaff || s.State != StateStopped {
			t.Fatalf("staff stop: %s %s", s.State, s.StopReason)
		}
		list, err := f.svc.Audit(context.Background(), 10, AuditCursor{})
		if err != nil || len(list) != 1 || list[0].Action != "sandbox.stop" || list[0].Target != sb.ID {
			t.Fatalf("audit %+v %v", list, err)
		}
	})
}

// TestHTTPInventoryAndReservations covers the remaining routes through HTTP: pool update, node drain,
// heartbeat and health, reservations (create, list, cancel), staff audit.
func TestHTTPInventoryAndReservations(t *testing.T) {
	db := dbtestOpenSQLite(t)
	f := newFixture(t, db, 1, 8, Options{})
	app, sign := newApp(t, f.svc)
	do := func(method, path string, c web.Principal, body string) (int, map[string]any) {
		t.Helper()
		var r io.Reader
		if body != "" {
			r = strings.NewReader(body)
		}
		req := httptest.NewRequest(method, "/api/v1/testbed"+path, r)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+sign.token(t, c))
		res, err := app.Test(req, 10_000)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		out := map[string]any{}
		_ = json.NewDecoder(res.Body).Decode(&out)
		return res.StatusCode, out
	}
	v, me, them := vendor(), sme(), other()
	staff := web.Principal{UserID: "u-staff", OrgID: "org-programme", Staff: true}
	if code, out := do("PATCH", "/pools/"+f.pool.ID, v, `{"region":"ca-quebec"}`); code != 200 || out["region"] != "ca-quebec" {
		t.Fatalf("patch pool: %d %v", code, out)
	}
	if code, out := do("PATCH", "/pools/"+f.pool.ID, them, `{"region":"x"}`); code != 404 || out["code"] != "pool_not_found" {
		t.Fatalf("patch by another org: %d %v", code, out)
	}
	var nodes []Node
	db.Find(&nodes)
	nodePath := "/pools/" + f.pool.ID + "/nodes/" + nodes[0].ID
	if code, out := do("POST", nodePath+"/drain", v, ""); code != 200 || out["health"] != "draining" {
		t.Fatalf("drain: %d %v", code, out)
	}
	if code, out := do("POST", "/sandboxes", me, `{"listing_id":"lst-h100","gpu_model":"h100-80gb","gpu_count":1,"template":"shell","duration_minutes":10}`); code != 409 || out["code"] != "no_capacity" {
		t.Fatalf("launch on a drained pool: %d %v", code, out)
	}
	if code, out := do("POST", nodePath+"/health", staff, `{"health":"ready"}`); code != 200 || out["health"] != "ready" {
		t.Fatalf("health by staff: %d %v", code, out)
	}
	if code, out := do("POST", nodePath+"/health", v, `{"health":"sleeping"}`); code != 422 {
		t.Fatalf("bad health: %d %v", code, out)
	}
	if code, _ := do("POST", nodePath+"/heartbeat", v, ""); code != 200 {
		t.Fatalf("heartbeat: %d", code)
	}
	start := t0.Add(time.Hour).Format(time.RFC3339)
	end := t0.Add(2 * time.Hour).Format(time.RFC3339)
	code, res := do("POST", "/reservations", me, `{"listing_id":"lst-h100","gpu_count":8,"starts_at":"`+start+`","ends_at":"`+end+`"}`)
	if code != 201 || res["state"] != "pending" {
		t.Fatalf("reserve: %d %v", code, res)
	}
	code, out := do("POST", "/reservations", them, `{"listing_id":"lst-h100","gpu_count":1,"starts_at":"`+start+`","ends_at":"`+end+`"}`)
	if code != 409 || out["code"] != "no_capacity" || out["next_free_at"] != end {
		t.Fatalf("overlapping reservation: %d %v", code, out)
	}
	if code, out := do("GET", "/reservations", me, ""); code != 200 || len(out["items"].([]any)) != 1 {
		t.Fatalf("list reservations: %d %v", code, out)
	}
	if code, out := do("POST", "/reservations/"+res["id"].(string)+"/cancel", them, ""); code != 404 || out["code"] != "reservation_not_found" {
		t.Fatalf("cancel by another org: %d %v", code, out)
	}
	if code, out := do("POST", "/reservations/"+res["id"].(string)+"/cancel", me, ""); code != 200 || out["state"] != "cancelled" {
		t.Fatalf("cancel: %d %v", code, out)
	}
	if code, out := do("POST", "/reservations/"+res["id"].(string)+"/cancel", me, ""); code != 409 || out["code"] != "reservation_not_cancellable" {
		t.Fatalf("cancel twice: %d %v", code, out)
	}
	if code, out := do("GET", "/audit", me, ""); code != 403 {
		t.Fatalf("audit by a non-staff: %d %v", code, out)
	}
	if code, out := do("GET", "/audit", staff, ""); code != 200 || len(out["items"].([]any)) != 1 {
		t.Fatalf("audit: %d %v", code, out)
	}
}

// TestSandboxCostThatOverflowsIsAnError: the cost so far is billing's formula; a price that cannot be charged
// (a corrupt row: listings' prices are bounded) answers an error instead of showing a cost of 0.
func TestSandboxCostThatOverflowsIsAnError(t *testing.T) {
	eachFixture(t, 1, 4, Options{}, func(t *testing.T, f *fixture) {
		sb := f.launch(t, sme(), 2, 60)
		if err := f.db.Model(&Sandbox{}).Where("id = ?", sb.ID).Updates(map[string]any{"state": StateRunning,
			"started_at": t0, "price_per_gpu_hour": int64(1) << 62}).Error; err != nil {
			t.Fatal(err)
		}
		f.clk.Set(t0.Add(time.Hour))
		app, sign := newApp(t, f.svc)
		for _, path := range []string{"/api/v1/testbed/sandboxes/" + sb.ID, "/api/v1/testbed/sandboxes"} {
			req := httptest.NewRequest("GET", path, nil)
			req.Header.Set("Authorization", "Bearer "+sign.token(t, sme()))
			res, err := app.Test(req, 10_000)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 500 {
				t.Errorf("GET %s with a price that overflows: %d %s, want 500", path, res.StatusCode, b)
			}
		}
	})
}

// TestAuditPagesKeepEntriesOfOneInstant: entries written in the same millisecond (the manual clock writes
// every one at t0, as one staff action writing several would) are each listed once when a page boundary falls
// between them, on both engines; a cursor of the instant alone, as earlier versions gave, still reads.
func TestAuditPagesKeepEntriesOfOneInstant(t *testing.T) {
	eachFixture(t, 1, 4, Options{}, func(t *testing.T, f *fixture) {
		for i := range 5 {
			e := &AuditEntry{ID: fmt.Sprintf("aud-%02d", i), At: stamp(t0), ActorUserID: "u-staff", ActorOrgID: "org-programme",
				Action: "node.health", Target: "node-x"}
			if i == 4 {
				e.ID, e.At = "aud-older", stamp(t0.Add(-time.Second))
			}
			if err := createAudit(f.db, e); err != nil {
				t.Fatal(err)
			}
		}
		app, sign := newApp(t, f.svc)
		staff := web.Principal{UserID: "u-staff", OrgID: "org-programme", Staff: true}
		page := func(cursor string) (ids []string, next string) {
			t.Helper()
			res := webtest.Do(t, app, "GET", "/api/v1/testbed/audit?limit=2&cursor="+cursor, sign.token(t, staff), nil)
			var out struct {
				Items []struct {
					ID string `json:"id"`
				} `json:"items"`
				NextCursor string `json:"next_cursor"`
			}
			if res.Status != 200 || json.Unmarshal(res.Body, &out) != nil {
				t.Fatalf("GET audit (cursor %q): %d %s", cursor, res.Status, res.Body)
			}
			for _, it := range out.Items {
				ids = append(ids, it.ID)
			}
			return ids, out.NextCursor
		}
		var got []string
		for cursor, pages := "", 0; ; pages++ {
			if pages > 5 {
				t.Fatalf("more pages than entries: %v", got)
			}
			ids, next := page(cursor)
			got = append(got, ids...)
			if next == "" {
				break
			}
			cursor = next
		}
		if fmt.Sprint(got) != "[aud-03 aud-02 aud-01 aud-00 aud-older]" {
			t.Fatalf("walked %v, want each entry once, newest first", got)
		}
		// An instant-only cursor: the entries strictly before it.
		if ids, _ := page(web.EncodeCursor(t0.UnixMilli())); fmt.Sprint(ids) != "[aud-older]" {
			t.Fatalf("instant-only cursor: %v", ids)
		}
	})
}
