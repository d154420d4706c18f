package marketplace

import (
	"strings"
	"testing"
)

// A JSON body over MaxBody answers 413 unread, with a Content-Length or chunked, and nothing is stored;
// artifact uploads (TestLargeUploadStreams) stream past it.
func TestBodiesOverTheLimitAre413(t *testing.T) {
	each(t, Config{}, func(t *testing.T, e *env) {
		l := e.createListing(vendorAdmin, modelListing("limits"))
		big := modelListing("too-big")
		big["card_markdown"] = strings.Repeat("# big\n", 3<<20/6)
		patch := map[string]any{"card_markdown": big["card_markdown"]}
		listings := count(t, e.db, "market_listings")
		for _, framing := range [][]string{nil, {"Content-Length", "-1"}} {
			expect(t, e.do(vendorAdmin, "POST", "listings", big, framing...), 413, "payload_too_large")
			expect(t, e.do(vendorAdmin, "PATCH", "listings/"+l.ID, patch, framing...), 413, "payload_too_large")
		}
		if n := count(t, e.db, "market_listings"); n != listings {
			t.Fatalf("%d listings stored from refused bodies", n-listings)
		}
	})
}
