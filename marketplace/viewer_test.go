package marketplace

import (
	"testing"

	"github.com/tamarack-ai/tamarack/platform/web"
)

type viewerOut struct {
	Viewer  *viewerJSON `json:"viewer"`
	HubRepo string      `json:"hub_repo"`
}

func (e *env) viewerOf(a web.Principal, id string) viewerJSON {
	e.t.Helper()
	r := e.do(a, "GET", "listings/"+id, nil)
	expect(e.t, r, 200, "")
	var out viewerOut
	r.JSON(e.t, &out)
	if out.Viewer == nil || out.HubRepo != "aurora-ai/gated-viewer" {
		e.t.Fatalf("no viewer or hub_repo in %s", r.Body)
	}
	return *out.Viewer
}

// TestListingViewer: the listing's viewer object follows a gated listing's access request from nothing to
// pending, denied with the vendor's note, pending again and approved, and says who may download and rate,
// matching what the download and rating routes then answer.
func TestListingViewer(t *testing.T) {
	t.Parallel()
	each(t, Config{}, func(t *testing.T, e *env) {
		m := modelListing("gated-viewer")
		m["gated"] = true
		m["title_fr"] = "Érable fermé"
		l := e.publishListing(m, map[string]string{"weights.bin": "w"})
		art := l.PublishedVersion.Artifacts[0].ID

		if v := e.viewerOf(anon, l.ID); v != (viewerJSON{}) {
			t.Fatalf("anonymous viewer %+v, want nothing allowed", v)
		}
		v := e.viewerOf(smeMember, l.ID)
		if v.CanDownload || v.CanRate || v.Entitled || !v.CanRequestAccess || v.AccessRequest != nil {
			t.Fatalf("SME before asking: %+v", v)
		}
		expect(t, e.do(smeMember, "GET", "artifacts/"+art+"/download?redirect=false", nil), 404, "artifact_not_found")
		expect(t, e.do(smeMember, "POST", "listings/"+l.ID+"/reviews", map[string]any{"stars": 4}), 403, "entitlement_required")
		if v := e.viewerOf(vendorAdmin, l.ID); !v.CanDownload || v.CanRate || v.CanRequestAccess {
			t.Fatalf("vendor: %+v", v)
		}
		if v := e.viewerOf(staff, l.ID); !v.CanDownload || v.CanRate {
			t.Fatalf("staff: %+v", v)
		}

		var req accessRequestJSON
		r := e.do(smeMember, "POST", "listings/"+l.ID+"/access-requests", map[string]any{"purpose": "research"})
		expect(t, r, 201, "")
		r.JSON(t, &req)
		v = e.viewerOf(smeMember, l.ID)
		if v.CanRequestAccess || v.CanDownload || v.AccessRequest == nil || v.AccessRequest.State != AccessPending || v.AccessRequest.DecidedAt != nil {
			t.Fatalf("pending: %+v %+v", v, v.AccessRequest)
		}
		expect(t, e.do(vendorAdmin, "POST", "access-requests/"+req.ID+"/decision", map[string]any{"decision": "deny", "comment": "Tell us more"}), 200, "")
		v = e.viewerOf(smeMember, l.ID)
		if a := v.AccessRequest; a == nil || a.State != AccessDenied || a.Note != "Tell us more" || a.DecidedAt == nil || !v.CanRequestAccess || v.CanDownload {
			t.Fatalf("denied: %+v %+v", v, a)
		}
		// Another organisation sees none of it.
		if v := e.viewerOf(otherVendor, l.ID); v.AccessRequest != nil {
			t.Fatalf("another organisation sees the SME's request: %+v", v.AccessRequest)
		}

		r = e.do(smeMember, "POST", "listings/"+l.ID+"/access-requests", map[string]any{"purpose": "research, again"})
		expect(t, r, 201, "")
		r.JSON(t, &req)
		if a := e.viewerOf(smeMember, l.ID).AccessRequest; a == nil || a.ID != req.ID || a.State != AccessPending {
			t.Fatalf("second request not the newest: %+v", a)
		}
		expect(t, e.do(vendorAdmin, "POST", "access-requests/"+req.ID+"/decision", map[string]any{"decision": "approve", "comment": "Welcome"}), 200, "")
		v = e.viewerOf(smeMember, l.ID)
		if a := v.AccessRequest; a == nil || a.State != AccessApproved || a.Note != "Welcome" || a.DecidedAt == nil ||
			!v.Entitled || !v.CanDownload || !v.CanRate || v.CanRequestAccess {
			t.Fatalf("approved: %+v %+v", v, a)
		}
		expect(t, e.do(smeMember, "GET", "artifacts/"+art+"/download?redirect=false", nil), 200, "")
		var ents struct {
			Items []entitlementJSON `json:"items"`
		}
		e.do(smeMember, "GET", "entitlements", nil).JSON(t, &ents)
		if len(ents.Items) != 1 || ents.Items[0].ListingID != l.ID || ents.Items[0].TitleFr != "Érable fermé" {
			t.Fatalf("entitlements %+v", ents.Items)
		}
		expect(t, e.do(smeMember, "POST", "listings/"+l.ID+"/reviews", map[string]any{"stars": 4}), 201, "")
	})
}
