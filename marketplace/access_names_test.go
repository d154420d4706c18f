package marketplace

import (
	"testing"

	"github.com/tamarack-ai/tamarack/platform/web"
)

// TestAccessRequestsNameTheRequester: access-request JSON carries the requesting organisation's name (from the
// projection of identity's organisations) beside its id, on create, in the vendor's inbox and on a decision.
func TestAccessRequestsNameTheRequester(t *testing.T) {
	t.Parallel()
	each(t, Config{}, func(t *testing.T, e *env) {
		g := modelListing("gated-names")
		g["gated"] = true
		gl := e.publishListing(g, nil)

		r := e.do(smeMember, "POST", "listings/"+gl.ID+"/access-requests", map[string]any{"purpose": "Evaluate for a pilot"})
		expect(t, r, 201, "")
		var created accessRequestJSON
		r.JSON(t, &created)
		if created.OrgID != orgSME || created.OrgName != "Small Co" {
			t.Fatalf("created: organization_id %q requester_org_name %q", created.OrgID, created.OrgName)
		}

		r = e.do(vendorAdmin, "GET", "access-requests", nil)
		expect(t, r, 200, "")
		var inbox web.List[accessRequestJSON]
		r.JSON(t, &inbox)
		if len(inbox.Items) != 1 || inbox.Items[0].OrgName != "Small Co" || inbox.Items[0].OrgID != orgSME {
			t.Fatalf("inbox: %+v", inbox.Items)
		}
		if e.db.Dialector.Name() == "sqlite" {
			golden(t, "access_requests_vendor", r.Body)
		}

		r = e.do(vendorAdmin, "POST", "access-requests/"+created.ID+"/decision", map[string]any{"decision": "approve", "comment": "Welcome"})
		expect(t, r, 200, "")
		var decided accessRequestJSON
		r.JSON(t, &decided)
		if decided.OrgName != "Small Co" || decided.State != "approved" {
			t.Fatalf("decided: %+v", decided)
		}
	})
}
