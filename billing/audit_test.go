package billing

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/web"
)

func TestAuditLogPagesNewestFirst(t *testing.T) {
	eachFx(t, func(t *testing.T, f *fx) {
		a := newAPI(t, f)
		f.org("sme", "sme", true)
		// Three offline payments at one instant (the test clock stands still), then two grants a second later.
		for i := range 3 {
			a.expect(staff, "POST", "/api/v1/billing/offline-payments", map[string]any{"organization_id": "sme", "credits": 1 + i,
				"reference": fmt.Sprintf("PO-%d", i)}, 201, "")
		}
		f.clk.Advance(time.Second)
		for range 2 {
			a.expect(staff, "POST", "/api/v1/billing/grants", map[string]any{"organization_id": "sme", "amount_micro": 1_000_000,
				"expires_at": t0.Add(time.Hour)}, 201, "")
		}

		a.expect(nobody, "GET", "/api/v1/billing/audit", nil, 401, "unauthorized")
		a.expect(smeAdmin, "GET", "/api/v1/billing/audit", nil, 403, "forbidden")
		a.expect(staff, "GET", "/api/v1/billing/audit?action=payment.nope", nil, 422, "validation_failed")
		a.expect(staff, "GET", "/api/v1/billing/audit?cursor=zzz", nil, 400, "invalid_cursor")

		// Pages of two hold every entry once, newest first, those of one instant by ID: a page boundary falls
		// between the three entries of the first instant.
		var got []AuditEntry
		cursor := ""
		for pages := 0; ; pages++ {
			if pages > 5 {
				t.Fatalf("paging does not end: %+v", got)
			}
			var page web.List[AuditEntry]
			must(t, json.Unmarshal(a.expect(staff, "GET", "/api/v1/billing/audit?limit=2&cursor="+cursor, nil, 200, ""), &page))
			got = append(got, page.Items...)
			if cursor = page.NextCursor; cursor == "" {
				break
			}
		}
		want := []string{"grant.create", "grant.create", "payment.offline", "payment.offline", "payment.offline"}
		if len(got) != len(want) {
			t.Fatalf("%d entries, want %d: %+v", len(got), len(want), got)
		}
		seen := map[string]bool{}
		for i, e := range got {
			if e.Action != want[i] || e.ActorUserID != staff.user || e.Target == "" || e.Detail == "" || seen[e.ID] {
				t.Errorf("entry %d: %+v, want a distinct %s by %s with its target and detail", i, e, want[i], staff.user)
			}
			seen[e.ID] = true
			if i > 0 && (e.At.After(got[i-1].At) || (e.At.Equal(got[i-1].At) && e.ID > got[i-1].ID)) {
				t.Errorf("entry %d (%s %s) is not older than entry %d (%s %s)", i, e.At, e.ID, i-1, got[i-1].At, got[i-1].ID)
			}
		}
		if got[2].ActionDisplay != "Offline payment recorded" {
			t.Errorf("action_display %q", got[2].ActionDisplay)
		}

		var only web.List[AuditEntry]
		must(t, json.Unmarshal(a.expect(staff, "GET", "/api/v1/billing/audit?action=payment.offline", nil, 200, ""), &only))
		if len(only.Items) != 3 || only.NextCursor != "" {
			t.Fatalf("action filter: %+v", only)
		}
		for _, e := range only.Items {
			if e.Action != "payment.offline" {
				t.Errorf("action filter let through %+v", e)
			}
		}
		st, fr := a.do(staff, "GET", "/api/v1/billing/audit?action=grant.create&limit=1", nil, "Accept-Language", "fr")
		if st != 200 || !json.Valid(fr) || !strings.Contains(string(fr), `"action_display":"Subvention créée"`) {
			t.Errorf("French: %d %s", st, fr)
		}
	})
}
