package marketplace

import (
	"fmt"
	"testing"
)

// A listing's title with a control character ("a\u0000b") is a field error, on create and on edit, and
// nothing is stored; its card, being multi-line text, keeps line breaks and tabs but no other control.
func TestControlCharactersInListingsAreRefused(t *testing.T) {
	each(t, Config{}, func(t *testing.T, e *env) {
		fields := func(r resp) string {
			var p struct {
				Fields []struct{ Field, Code string }
			}
			r.JSON(t, &p)
			var out []string
			for _, f := range p.Fields {
				out = append(out, f.Field+":"+f.Code)
			}
			return fmt.Sprint(out)
		}
		listings := count(t, e.db, "market_listings")
		bad := modelListing("nul")
		bad["title"], bad["card_markdown"] = "a\u0000b", "# Card\n\n\tindented\r\nand a bell \u0007"
		r := e.do(vendorAdmin, "POST", "listings", bad)
		expect(t, r, 422, "validation_failed")
		if got := fields(r); got != "[card_markdown:control_characters title:control_characters]" {
			t.Fatalf("fields %s", got)
		}
		if n := count(t, e.db, "market_listings"); n != listings {
			t.Fatalf("%d listings stored from a refused body", n-listings)
		}

		good := modelListing("tabs")
		good["card_markdown"] = "# Card\n\n\tindented\r\nline"
		l := e.createListing(vendorAdmin, good)
		r = e.do(vendorAdmin, "PATCH", "listings/"+l.ID, map[string]any{"title": "a\u0000b", "tags": []string{"ok", "x\u0000"}})
		expect(t, r, 422, "validation_failed")
		if got := fields(r); got != "[tags[1]:control_characters title:control_characters]" {
			t.Fatalf("edit: fields %s", got)
		}
		r = e.do(vendorAdmin, "GET", "listings/"+l.ID, nil)
		var out listingOut
		r.JSON(t, &out)
		if out.PendingVersion == nil || out.PendingVersion.Title != "Maple tabs" {
			t.Fatalf("the draft changed: %s", r.Body)
		}
	})
}
