package marketplace

import (
	"strings"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/web"
)

// reviewOut is a review as a client reads it.
type reviewOut struct {
	DisplayName string    `json:"display_name"`
	Stars       int       `json:"stars"`
	Body        string    `json:"body"`
	CreatedAt   time.Time `json:"created_at"`
	Mine        bool      `json:"mine"`
	OrgID       string    `json:"organization_id"`
	UserID      string    `json:"user_id"`
}

// TestReviewsShowADisplayNameNotWhoRated: the public, other organisations and the listing's vendor read stars,
// text, dates and the name the rater chose; only the rater's organisation and staff see which organisation
// and user wrote a review (anonymous readers saw both IDs: issue 9, item 5).
func TestReviewsShowADisplayNameNotWhoRated(t *testing.T) {
	t.Parallel()
	each(t, Config{}, func(t *testing.T, e *env) {
		l := e.publishListing(modelListing("rated"), nil)
		expect(t, e.do(smeMember, "POST", "orders", map[string]any{"listing_id": l.ID, "plan_id": l.PublishedVersion.Plans[0].ID}), 201, "")
		path := "listings/" + l.ID + "/reviews"

		// The name is checked; nothing is stored when it is bad.
		for _, bad := range []struct{ name, code string }{
			{"a\u0000b", "control_characters"}, {"line\nbreak", "control_characters"}, {"\u202eevil", "invalid"},
			{"zero\u200bwidth", "invalid"}, {strings.Repeat("x", 61), "too_long"},
		} {
			r := e.do(smeMember, "POST", path, map[string]any{"stars": 4, "display_name": bad.name})
			expect(t, r, 422, "validation_failed")
			if !strings.Contains(string(r.Body), `"field":"display_name","code":"`+bad.code+`"`) {
				t.Errorf("display_name %q: %s", bad.name, r.Body)
			}
		}

		// Without a name the review says "Verified buyer"; the rater's own answer says who rated.
		var mine reviewOut
		r := e.do(smeMember, "POST", path, map[string]any{"stars": 4, "body": "Fast and accurate."})
		expect(t, r, 201, "")
		r.JSON(t, &mine)
		if mine.DisplayName != "Verified buyer" || mine.OrgID != orgSME || mine.UserID != smeMember.UserID || !mine.Mine {
			t.Fatalf("created review: %s", r.Body)
		}
		r = e.do(smeMember, "PATCH", path, map[string]any{"stars": 5, "display_name": "  Small Co research team "})
		expect(t, r, 200, "")
		r.JSON(t, &mine)
		if mine.DisplayName != "Small Co research team" || mine.Stars != 5 {
			t.Fatalf("renamed review: %s", r.Body)
		}
		// A PATCH without a name keeps the chosen one.
		r = e.do(smeMember, "PATCH", path, map[string]any{"stars": 4, "body": "Fast."})
		expect(t, r, 200, "")
		r.JSON(t, &mine)
		if mine.DisplayName != "Small Co research team" || mine.Body != "Fast." {
			t.Fatalf("edited review: %s", r.Body)
		}

		for _, c := range []struct {
			who     string
			as      web.Principal
			sees    bool // which organisation and user rated
			ownView bool
		}{
			{"anonymous", anon, false, false}, {"another vendor", otherVendor, false, false},
			{"the listing's vendor", vendorAdmin, false, false}, {"the rater", smeMember, true, true}, {"staff", staff, true, false},
		} {
			r := e.do(c.as, "GET", path, nil)
			expect(t, r, 200, "")
			var page struct{ Items []reviewOut }
			r.JSON(t, &page)
			if len(page.Items) != 1 {
				t.Fatalf("%s: %s", c.who, r.Body)
			}
			got := page.Items[0]
			if got.DisplayName != "Small Co research team" || got.Stars != 4 || got.Body != "Fast." || got.CreatedAt.IsZero() || got.Mine != c.ownView {
				t.Errorf("%s read %s", c.who, r.Body)
			}
			leaks := strings.Contains(string(r.Body), orgSME) || strings.Contains(string(r.Body), smeMember.UserID)
			if leaks != c.sees || (c.sees && (got.OrgID != orgSME || got.UserID != smeMember.UserID)) {
				t.Errorf("%s: who rated shown = %v, want %v: %s", c.who, leaks, c.sees, r.Body)
			}
		}
	})
}
