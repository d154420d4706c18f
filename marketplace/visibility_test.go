package marketplace

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/tamarack-ai/tamarack/services/events"
)

// TestRestrictedComputeTellsTheTestbed: a restricted compute listing's published event names who may use
// it, so that the testbed does not offer it to every organisation.
func TestRestrictedComputeTellsTheTestbed(t *testing.T) {
	each(t, Config{}, func(t *testing.T, e *env) {
		body := computeListing("private-h100", "pool_one", "h100-80gb")
		body["visibility"], body["visible_to"] = "restricted", []string{orgSME}
		l := e.publishListing(body, nil)
		open := e.publishListing(computeListing("open-h100", "pool_one", "h100-80gb"), nil)
		var payloads []string
		must(t, e.db.Table("market_outbox").Where("subject = ?", events.ListingPublished.Name).Pluck("payload", &payloads).Error)
		seen := map[string]*events.ComputeV1{}
		for _, p := range payloads {
			var ev events.ListingChangedV1
			must(t, json.Unmarshal([]byte(p), &ev))
			seen[ev.ListingID] = ev.Compute
		}
		if c := seen[l.ID]; c == nil || !slices.Equal(c.VisibleTo, []string{orgSME}) {
			t.Fatalf("restricted listing's compute terms: %+v", c)
		}
		if c := seen[open.ID]; c == nil || len(c.VisibleTo) != 0 {
			t.Fatalf("public listing's compute terms: %+v", c)
		}
	})
}

// TestRestrictedListingHidesItsAudience: an organisation a listing is restricted to sees the listing, not the
// other organisations it is restricted to (other tenants, the vendor's other customers).
func TestRestrictedListingHidesItsAudience(t *testing.T) {
	each(t, Config{}, func(t *testing.T, e *env) {
		body := modelListing("private-model")
		body["visibility"], body["visible_to"] = "restricted", []string{orgSME, orgVendor2}
		l := e.publishListing(body, nil)
		r := e.do(smeMember, "GET", "listings/"+l.ID, nil)
		expect(t, r, 200, "")
		if strings.Contains(string(r.Body), orgVendor2) || strings.Contains(string(r.Body), "visible_to") {
			t.Fatalf("a buyer sees the listing's audience: %s", r.Body)
		}
		r = e.do(vendorAdmin, "GET", "listings/"+l.ID, nil)
		expect(t, r, 200, "")
		if !strings.Contains(string(r.Body), orgVendor2) {
			t.Fatalf("the vendor lost the audience: %s", r.Body)
		}
	})
}
