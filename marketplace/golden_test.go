package marketplace

import (
	"testing"

	"github.com/tamarack-ai/tamarack/platform/openapi"
	"github.com/tamarack-ai/tamarack/platform/web"
)

// TestResponseShapes pins the JSON of the main responses in testdata/*.golden (go test -update rewrites them).
func TestResponseShapes(t *testing.T) {
	t.Parallel()
	e := newSQLiteEnv(t, Config{})
	l := e.publishListing(modelListing("golden"), map[string]string{"config.json": `{"a":1}`})
	c := e.createListing(vendorAdmin, computeListing("golden-gpu", "pool_one", "h100-80gb"))
	expect(t, e.do(vendorAdmin, "POST", "listings/"+c.ID+"/submit", nil), 200, "")

	for _, g := range []struct {
		name string
		as   web.Principal
		path string
	}{
		{"listing_public", anon, "listings/" + l.ID},
		{"listing_vendor_draft", vendorAdmin, "listings/" + c.ID},
		{"search", anon, "listings?q=maple&sort=relevance"},
		{"review_queue", staff, "reviews"},
		{"versions", vendorAdmin, "listings/" + l.ID + "/versions"},
	} {
		r := e.do(g.as, "GET", g.path, nil)
		expect(t, r, 200, "")
		golden(t, g.name, r.Body)
	}
	r := e.do(smeMember, "POST", "orders", map[string]any{"listing_id": l.ID, "plan_id": l.PublishedVersion.Plans[1].ID})
	expect(t, r, 201, "")
	golden(t, "order_pending", r.Body)
	r = e.do(vendorAdmin, "POST", "listings", modelListing("golden"))
	golden(t, "problem_slug_taken", r.Body)
}

// TestOpenAPICoversRoutes: every route the service serves is in its OpenAPI operations.
func TestOpenAPICoversRoutes(t *testing.T) {
	t.Parallel()
	e := newSQLiteEnv(t, Config{})
	doc := openapi.New("test", "test")
	e.svc.OpenAPI(doc)
	if missing := openapi.Missing(e.app, doc); len(missing) > 0 {
		t.Fatalf("routes missing from OpenAPI: %v", missing)
	}
	if _, err := doc.JSON(); err != nil {
		t.Fatal(err)
	}
}
