package marketplace

import (
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/tamarack-ai/tamarack/platform/problem"
)

// TestBilingualListing: a listing carries a French title and summary beside the English ones, validated like
// them, changed by PATCH, shown in the review diff, answered in the catalogue, and searched in both languages
// on both engines (accents as written: SQLite's tokenizer also matches "meteo" for "météo", Postgres without
// unaccent does not, so that is not asserted).
func TestBilingualListing(t *testing.T) {
	t.Parallel()
	each(t, Config{SearchCacheTTL: -1}, func(t *testing.T, e *env) {

		bad := modelListing("trop-long")
		bad["title_fr"] = strings.Repeat("é", 101) // 202 bytes, as the English title counts
		bad["summary_fr"] = strings.Repeat("x", 501)
		r := e.do(vendorAdmin, "POST", "listings", bad)
		expect(t, r, 422, "validation_failed")
		var p problem.Problem
		r.JSON(t, &p)
		var got []string
		for _, f := range p.Fields {
			got = append(got, f.Field+":"+f.Code)
		}
		slices.Sort(got)
		if strings.Join(got, " ") != "summary_fr:too_long title_fr:invalid" {
			t.Fatalf("fields %v", got)
		}

		m := modelListing("erable")
		m["title"], m["summary"] = "Maple weather model", "Forecasts frost for orchards"
		m["title_fr"], m["summary_fr"] = "  Modèle météo érable ", "Prévoit le gel pour les vergers"
		l := e.createListing(vendorAdmin, m)
		expect(t, e.do(vendorAdmin, "PATCH", "listings/"+l.ID, map[string]any{"summary_fr": "Prévoit les gelées des vergers"}), 200, "")
		expect(t, e.do(vendorAdmin, "POST", "listings/"+l.ID+"/submit", nil), 200, "")

		var queue struct {
			Items []struct {
				Diff []FieldDiff `json:"diff"`
			} `json:"items"`
		}
		e.do(staff, "GET", "reviews", nil).JSON(t, &queue)
		var diffed []string
		for _, it := range queue.Items {
			for _, d := range it.Diff {
				if strings.HasSuffix(d.Field, "_fr") {
					diffed = append(diffed, d.Field+"="+string(d.To))
				}
			}
		}
		if got := strings.Join(diffed, " "); got != `summary_fr="Prévoit les gelées des vergers" title_fr="Modèle météo érable"` {
			t.Fatalf("review diff of the French fields: %s", got)
		}
		expect(t, e.do(staff, "POST", "reviews/"+l.PendingVersion.ID+"/decision", map[string]any{"decision": "approve"}), 200, "")
		e.publishListing(modelListing("unrelated"), nil)

		for _, q := range []string{"météo", "vergers", "gelées", "orchards", "frost", "modèle érable", "ver"} {
			var s searchJSON
			r := e.do(anon, "GET", "listings?q="+url.QueryEscape(q), nil)
			expect(t, r, 200, "")
			r.JSON(t, &s)
			if len(s.Items) != 1 || s.Items[0].ID != l.ID {
				t.Fatalf("q=%s: %d items %+v", q, len(s.Items), s.Items)
			}
			it := s.Items[0]
			if it.Title != "Maple weather model" || it.TitleFr != "Modèle météo érable" || it.SummaryFr != "Prévoit les gelées des vergers" {
				t.Fatalf("q=%s item %+v", q, it)
			}
		}
		var shown struct {
			PublishedVersion versionJSON `json:"published_version"`
		}
		e.do(anon, "GET", "listings/"+l.ID, nil).JSON(t, &shown)
		if shown.PublishedVersion.TitleFr != "Modèle météo érable" || shown.PublishedVersion.Title != "Maple weather model" {
			t.Fatalf("listing %+v", shown.PublishedVersion)
		}
		// Removing the French title: the catalogue answers it empty (readers fall back to English).
		r = e.do(vendorAdmin, "POST", "listings/"+l.ID+"/versions", map[string]any{"title_fr": ""})
		expect(t, r, 201, "")
		var nv listingOut
		r.JSON(t, &nv)
		expect(t, e.do(vendorAdmin, "POST", "listings/"+l.ID+"/submit", nil), 200, "")
		expect(t, e.do(staff, "POST", "reviews/"+nv.PendingVersion.ID+"/decision", map[string]any{"decision": "approve"}), 200, "")
		var s searchJSON
		e.do(anon, "GET", "listings?q=orchards", nil).JSON(t, &s)
		if len(s.Items) != 1 || s.Items[0].TitleFr != "" {
			t.Fatalf("after removing the French title: %+v", s.Items)
		}
		e.do(anon, "GET", "listings?q="+url.QueryEscape("météo"), nil).JSON(t, &s)
		if len(s.Items) != 0 {
			t.Fatalf("the removed French title still matches: %+v", s.Items)
		}
	})
}
