package testbed

import (
	"encoding/json"
	"io"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/web"
)

// TestPoolUtilisation: one node of 4 devices registered at t0 (09:00); a 2-GPU sandbox held its devices for 30
// minutes; at 10:00 the day shows 2 × 30 min used of 4 × 60 min offered, and the day before nothing.
func TestPoolUtilisation(t *testing.T) {
	eachFixture(t, 1, 4, Options{}, func(t *testing.T, f *fixture) {
		sb := f.launch(t, sme(), 2, 60)
		start := t0.Add(5 * time.Minute)
		if err := f.db.Model(&Sandbox{}).Where("id = ?", sb.ID).Updates(map[string]any{"state": StateStopped, "started_at": start,
			"ended_at": start.Add(30 * time.Minute)}).Error; err != nil {
			t.Fatal(err)
		}
		var nodeCreated time.Time
		if err := f.db.Model(&Node{}).Where("pool_id = ?", f.pool.ID).Pluck("created_at", &nodeCreated).Error; err != nil {
			t.Fatal(err)
		}
		f.clk.Set(t0.Add(time.Hour))
		app, sign := newApp(t, f.svc)
		get := func(c web.Principal, query string) (int, []byte) {
			t.Helper()
			req := httptest.NewRequest("GET", "/api/v1/testbed/utilisation"+query, nil)
			req.Header.Set("Authorization", "Bearer "+sign.token(t, c))
			res, err := app.Test(req, 10_000)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			return res.StatusCode, b
		}
		for _, c := range []web.Principal{vendor(), hostStaff()} {
			st, b := get(c, "?from=2026-11-21&to=2026-11-22")
			var u Utilisation
			if st != 200 || json.Unmarshal(b, &u) != nil {
				t.Fatalf("utilisation: %d %s", st, b)
			}
			want := []UtilisationDay{{Day: "2026-11-21"}, {Day: "2026-11-22", UsedMs: 2 * 30 * 60_000, AvailableMs: 4 * t0.Add(time.Hour).Sub(nodeCreated).Milliseconds()}}
			if len(u.Days) != 2 || u.Days[0] != want[0] || u.Days[1] != want[1] || len(u.PoolIDs) != 1 {
				t.Errorf("%s: %+v, want %+v", c.UserID, u, want)
			}
		}
		// In Honolulu (UTC−10) the same half hour, 09:05–09:35 UTC, is 23:05–23:35 the day before, and that local
		// day ends at 10:00 UTC, now: the day after has nothing yet.
		st, b := get(vendor(), "?from=2026-11-21&to=2026-11-22&tz=Pacific/Honolulu")
		var u Utilisation
		if st != 200 || json.Unmarshal(b, &u) != nil {
			t.Fatalf("utilisation in Honolulu: %d %s", st, b)
		}
		want := []UtilisationDay{{Day: "2026-11-21", UsedMs: 2 * 30 * 60_000, AvailableMs: 4 * t0.Add(time.Hour).Sub(nodeCreated).Milliseconds()}, {Day: "2026-11-22"}}
		if len(u.Days) != 2 || u.Days[0] != want[0] || u.Days[1] != want[1] {
			t.Errorf("utilisation in Honolulu: %+v, want %+v", u.Days, want)
		}
		for _, c := range []struct {
			who    web.Principal
			query  string
			status int
			code   string
		}{
			{sme(), "", 403, "forbidden"},
			{web.Principal{UserID: "u-v2", OrgID: "org-v2", OrgKind: "vendor"}, "?pool_id=" + f.pool.ID, 404, "pool_not_found"},
			{vendor(), "?from=2026-11-23", 422, "validation_failed"},
			{vendor(), "?from=2025-01-01&to=2026-11-22", 422, "validation_failed"},
			{vendor(), "?to=22-11-2026", 422, "validation_failed"},
			{vendor(), "?tz=Mars/Olympus_Mons", 422, "validation_failed"},
		} {
			st, b := get(c.who, c.query)
			var p struct{ Code string }
			_ = json.Unmarshal(b, &p)
			if st != c.status || p.Code != c.code {
				t.Errorf("%s %s: %d %s, want %d %s", c.who.UserID, c.query, st, b, c.status, c.code)
			}
		}
	})
}
