package marketplace

import (
	"context"
	"errors"
	"testing"

	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/web"
	"github.com/tamarack-ai/tamarack/services/events"
)

// TestArtifactLinks: the testbed's question "which files of this listing may this organisation have, and
// where are they", answered over NATS as the download endpoint decides: refused (403 access_required, gated
// said) without an entitlement, 404 for a compute listing or an unknown one; with the entitlement (a free
// order) the published files come with signed links that the blob route serves; the vendor has them without.
func TestArtifactLinks(t *testing.T) {
	each(t, Config{}, func(t *testing.T, e *env) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- e.svc.serveArtifactLinks(ctx) }()
		defer func() { cancel(); <-done }()
		l := e.publishListing(modelListing("linked"), map[string]string{"weights.bin": "weights\n", "config.json": "{}"})
		call := func(org string) (events.ArtifactLinksReplyV1, error) {
			var r events.ArtifactLinksReplyV1
			var err error
			eventually(t, "the artifact links endpoint answers", func() bool {
				r, err = eventbus.Call(ctx, e.bus, events.ArtifactLinks, events.ArtifactLinksV1{ListingID: l.ID, OrganizationID: org})
				return !errors.Is(err, eventbus.ErrNoResponder)
			})
			return r, err
		}

		_, err := call(orgSME)
		if p, ok := problem.From(err); !ok || p.Status != 403 || p.Code != "access_required" || p.Extra["gated"] != false {
			t.Fatalf("links without an entitlement: %v", err)
		}
		if _, err := eventbus.Call(ctx, e.bus, events.ArtifactLinks, events.ArtifactLinksV1{ListingID: "lst_none", OrganizationID: orgSME}); !isCode(err, "listing_not_found") {
			t.Fatalf("links of an unknown listing: %v", err)
		}

		expect(t, e.do(smeMember, "POST", "orders", map[string]any{"listing_id": l.ID, "plan_id": l.PublishedVersion.Plans[0].ID}), 201, "")
		r, err := call(orgSME)
		if err != nil {
			t.Fatal(err)
		}
		if r.Kind != "model" || r.Version != 1 || r.Slug != "linked" || len(r.Artifacts) != 2 || r.Artifacts[1].Name != "weights.bin" {
			t.Fatalf("links: %+v", r)
		}
		res := e.do(web.Principal{}, "GET", r.Artifacts[1].URL[len(BasePath)+1:], nil)
		if res.Status != 200 || string(res.Body) != "weights\n" {
			t.Fatalf("the signed link: %d %q", res.Status, res.Body)
		}
		if v, err := call(orgVendor); err != nil || len(v.Artifacts) != 2 {
			t.Fatalf("the vendor's links: %+v, %v", v, err)
		}
	})
}

func isCode(err error, code string) bool {
	p, ok := problem.From(err)
	return ok && p.Code == code
}
