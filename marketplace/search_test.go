package marketplace

import (
	"context"
	"math/rand/v2"
	"net/url"
	"strings"
	"testing"

	"github.com/tamarack-ai/tamarack/platform/web"
)

// TestSearchPaginationAndFacets walks every sort through all pages and checks that pages neither repeat nor
// skip, that facets count every match, and that restricted listings show only to the organisations named.
func TestSearchPaginationAndFacets(t *testing.T) {
	t.Parallel()
	each(t, Config{SearchCacheTTL: -1}, func(t *testing.T, e *env) {
		must(t, e.svc.BulkPublish(context.Background(), 300, rand.New(rand.NewPCG(7, 7))))
		for _, q := range []string{"", "q=canada", "q=canada&kind=model", "kind=dataset&residency=CA", "tag=salmon", "license=mit&price_max=1000000"} {
			for _, sort := range []string{"newest", "price", "relevance"} {
				if sort == "relevance" && !strings.HasPrefix(q, "q=") {
					continue
				}
				var total int64
				seen := map[string]bool{}
				cursor := ""
				for pages := 0; ; pages++ {
					path := "listings?limit=7&sort=" + sort + "&" + q
					if cursor != "" {
						path += "&cursor=" + url.QueryEscape(cursor)
					}
					r := e.do(anon, "GET", path, nil)
					expect(t, r, 200, "")
					var s searchJSON
					r.JSON(t, &s)
					total = s.Total
					var kinds int64
					for _, f := range s.Facets["kind"] {
						kinds += f.Count
					}
					if kinds != s.Total {
						t.Fatalf("%s: kind facet sums to %d, total %d", path, kinds, s.Total)
					}
					for _, it := range s.Items {
						if seen[it.ID] {
							t.Fatalf("%s: %s repeated", path, it.ID)
						}
						seen[it.ID] = true
					}
					if s.NextCursor == "" {
						break
					}
					cursor = s.NextCursor
					if pages > 100 {
						t.Fatal("no end")
					}
				}
				if int64(len(seen)) != total {
					t.Fatalf("%s sort=%s: walked %d of %d", q, sort, len(seen), total)
				}
			}
		}
		// Restricted visibility.
		m := modelListing("private-model")
		m["visibility"] = "restricted"
		m["visible_to"] = []string{orgSME}
		l := e.publishListing(m, nil)
		for _, c := range []struct {
			a    web.Principal
			want int
		}{{anon, 0}, {otherVendor, 0}, {smeMember, 1}, {staff, 1}} {
			var s searchJSON
			e.do(c.a, "GET", "listings?q=private", nil).JSON(t, &s)
			if len(s.Items) != c.want {
				t.Errorf("%s sees %d restricted listings, want %d", c.a.OrgID, len(s.Items), c.want)
			}
		}
		expect(t, e.do(otherVendor, "GET", "listings/"+l.ID, nil), 404, "listing_not_found")
		expect(t, e.do(smeMember, "GET", "listings/"+l.ID, nil), 200, "")
		expect(t, e.do(anon, "GET", "listings?q=model&sort=relevance&cursor=eyJzIjoibmV3ZXN0In0", nil), 400, "invalid_cursor")
	})
}
