package marketplace

import (
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestLifecycle is the whole story through the HTTP API: draft, upload, submit, changes requested, edit,
// resubmit, approve, search, order the free plan, download with a matching sha256; an unentitled organisation
// gets 404.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	each(t, Config{}, func(t *testing.T, e *env) {
		artifact := strings.Repeat("weights-0123456789abcdef\n", 4000)
		sum := sha256.Sum256([]byte(artifact))
		wantSum := hex.EncodeToString(sum[:])

		// Vendor drafts and uploads.
		l := e.createListing(vendorMem, modelListing("maple-7b"))
		if l.Status != StatusDraft || l.PendingVersion == nil || l.PendingVersion.State != StateDraft {
			t.Fatalf("new listing: %+v", l)
		}
		if !strings.Contains(l.PendingVersion.CardHTML, "<strong>Bold</strong>") {
			t.Fatalf("card_html not rendered: %q", l.PendingVersion.CardHTML)
		}
		r := e.do(vendorMem, "PUT", "listings/"+l.ID+"/versions/1/artifacts/model.safetensors", []byte(artifact), "X-Checksum-Sha256", wantSum)
		expect(t, r, 201, "")
		var art artifactJSON
		r.JSON(t, &art)
		if art.SHA256 != wantSum || art.SizeBytes != int64(len(artifact)) || art.ContentType == "" {
			t.Fatalf("artifact: %+v", art)
		}

		// Not yet visible to others, not in the catalogue.
		expect(t, e.do(smeMember, "GET", "listings/"+l.ID, nil), 404, "listing_not_found")

		// Submit; staff requests changes.
		expect(t, e.do(vendorMem, "POST", "listings/"+l.ID+"/submit", nil), 200, "")
		expect(t, e.do(vendorMem, "PATCH", "listings/"+l.ID, map[string]any{"title": "too late"}), 409, "version_not_editable")
		e.clock.Advance(90 * time.Minute)
		r = e.do(staff, "GET", "reviews", nil)
		expect(t, r, 200, "")
		var queue struct {
			Items []queueItemJSON `json:"items"`
		}
		r.JSON(t, &queue)
		if len(queue.Items) != 1 || queue.Items[0].ListingID != l.ID || queue.Items[0].AgeSeconds != 5400 || !queue.Items[0].FirstReview {
			t.Fatalf("queue: %+v", queue.Items)
		}
		vid := queue.Items[0].VersionID
		expect(t, e.do(staff, "POST", "reviews/"+vid+"/decision", map[string]any{"decision": "request_changes"}), 422, "validation_failed")
		expect(t, e.do(staff, "POST", "reviews/"+vid+"/decision", map[string]any{"decision": "request_changes", "comment": "Add evaluation results."}), 200, "")

		// Vendor edits and resubmits.
		expect(t, e.do(vendorMem, "PATCH", "listings/"+l.ID, map[string]any{
			"title": "Maple 7B instruct", "model": map[string]any{"framework": "pytorch", "task": "text-generation",
				"parameters": 7000000000, "evaluations": []map[string]any{{"benchmark": "MMLU", "metric": "accuracy", "value": "61.2"}}}}), 200, "")
		expect(t, e.do(vendorMem, "POST", "listings/"+l.ID+"/submit", nil), 200, "")

		// Staff approves: published.
		r = e.do(staff, "POST", "reviews/"+vid+"/decision", map[string]any{"decision": "approve"})
		expect(t, r, 200, "")
		r = e.do(anon, "GET", "listings/"+l.ID, nil)
		expect(t, r, 200, "")
		var pub listingOut
		r.JSON(t, &pub)
		if pub.Status != StatusPublished || pub.PublishedVersion == nil || pub.PublishedVersion.Title != "Maple 7B instruct" || pub.PendingVersion != nil {
			t.Fatalf("published listing: %s", r.Body)
		}

		expect(t, e.do(anon, "GET", "listings/maple-7b", nil), 200, "")

		// History records who changed what.
		r = e.do(vendorMem, "GET", "listings/"+l.ID+"/versions", nil)
		expect(t, r, 200, "")
		for _, want := range []string{`"action":"created"`, `"action":"artifact_uploaded"`, `"action":"changes_requested"`, `"action":"edited"`, `"approved"`, `"fields":["title","model"]`} {
			if !strings.Contains(string(r.Body), want) {
				t.Errorf("history lacks %s: %s", want, r.Body)
			}
		}

		// In the catalogue, found by text.
		r = e.do(anon, "GET", "listings?q=maple+instr&kind=model", nil)
		expect(t, r, 200, "")
		var found searchJSON
		r.JSON(t, &found)
		if len(found.Items) != 1 || found.Items[0].ID != l.ID || found.Total != 1 {
			t.Fatalf("search: %s", r.Body)
		}

		// A buyer orders the free plan and downloads.
		free := pub.PublishedVersion.Plans[0]
		r = e.do(smeMember, "POST", "orders", map[string]any{"listing_id": l.ID, "plan_id": free.ID})
		expect(t, r, 201, "")
		var o orderJSON
		r.JSON(t, &o)
		if o.State != OrderFulfilled || o.AmountMicro != 0 {
			t.Fatalf("order: %+v", o)
		}
		artID := pub.PublishedVersion.Artifacts[0].ID
		r = e.do(smeMember, "GET", "artifacts/"+artID+"/download", nil)
		expect(t, r, 302, "")
		loc := r.Header.Get("Location")
		if !strings.HasPrefix(loc, BasePath+"/artifacts/"+artID+"/blob?") {
			t.Fatalf("Location %q", loc)
		}
		r = e.do(anon, "GET", loc, nil)
		expect(t, r, 200, "")
		got := sha256.Sum256(r.Body)
		if hex.EncodeToString(got[:]) != wantSum || r.Header.Get("X-Checksum-Sha256") != wantSum {
			t.Fatalf("downloaded %d bytes with a different sha256", len(r.Body))
		}
		r = e.do(anon, "GET", loc, nil, "Range", "bytes=25-49")
		expect(t, r, 206, "")
		if string(r.Body) != artifact[25:50] || r.Header.Get("Content-Range") != "bytes 25-49/100000" {
			t.Fatalf("range: %q %q", r.Body, r.Header.Get("Content-Range"))
		}
		expect(t, e.do(anon, "GET", loc, nil, "Range", "bytes=200000-"), 416, "range_not_satisfiable")

		// A tampered or expired link is refused.
		u, _ := url.Parse(loc)
		q := u.Query()
		q.Set("org", orgVendor2)
		expect(t, e.do(anon, "GET", u.Path+"?"+q.Encode(), nil), 403, "invalid_signature")
		e.clock.Advance(time.Hour)
		expect(t, e.do(anon, "GET", loc, nil), 403, "invalid_signature")

		// An unentitled organisation gets 404, exactly like a missing artifact.
		expect(t, e.do(otherVendor, "GET", "artifacts/"+artID+"/download", nil), 404, "artifact_not_found")
		expect(t, e.do(otherVendor, "GET", "artifacts/art_missing/download", nil), 404, "artifact_not_found")

		// The buyer rates it; entitlements list it.
		expect(t, e.do(smeMember, "POST", "listings/"+l.ID+"/reviews", map[string]any{"stars": 4, "body": "Good French."}), 201, "")
		expect(t, e.do(smeMember, "PATCH", "listings/"+l.ID+"/reviews", map[string]any{"stars": 5}), 200, "")
		r = e.do(smeMember, "GET", "entitlements", nil)
		expect(t, r, 200, "")
		if !strings.Contains(string(r.Body), l.ID) {
			t.Fatalf("entitlements: %s", r.Body)
		}
		r = e.do(anon, "GET", "listings/"+l.ID, nil)
		var rated listingOut
		r.JSON(t, &rated)
		if rated.Rating["count"] != float64(1) || rated.Rating["average"] != float64(5) {
			t.Fatalf("rating: %v", rated.Rating)
		}
	})
}

// TestNewVersionKeepsPublishedLive: a new version goes through review while the published one stays in the
// catalogue, then replaces it.
func TestNewVersionKeepsPublishedLive(t *testing.T) {
	t.Parallel()
	each(t, Config{}, func(t *testing.T, e *env) {
		l := e.publishListing(modelListing("cedar-1b"), map[string]string{"README.md": "# Cedar\n"})
		r := e.do(vendorMem, "POST", "listings/"+l.ID+"/versions", map[string]any{"title": "Cedar 1B v2", "summary": "Now faster"})
		expect(t, r, 201, "")
		var nv listingOut
		r.JSON(t, &nv)
		if nv.PendingVersion == nil || nv.PendingVersion.Version != 2 || len(nv.PendingVersion.Artifacts) != 1 {
			t.Fatalf("new version: %s", r.Body)
		}
		if nv.PendingVersion.Plans[0].ID != l.PublishedVersion.Plans[0].ID {
			t.Fatalf("unchanged plans keep their IDs")
		}
		expect(t, e.do(vendorMem, "POST", "listings/"+l.ID+"/versions", nil), 409, "version_pending")
		expect(t, e.do(vendorMem, "POST", "listings/"+l.ID+"/submit", nil), 200, "")

		search := func(q string) int {
			var s searchJSON
			e.do(anon, "GET", "listings?q="+q, nil).JSON(t, &s)
			return len(s.Items)
		}
		if search("cedar") != 1 || search("faster") != 0 {
			t.Fatal("the published version must stay live until its successor is approved")
		}
		r = e.do(staff, "GET", "reviews", nil)
		var queue struct {
			Items []queueItemJSON `json:"items"`
		}
		r.JSON(t, &queue)
		if len(queue.Items) != 1 || queue.Items[0].FirstReview {
			t.Fatalf("queue: %s", r.Body)
		}
		fields := map[string]bool{}
		for _, d := range queue.Items[0].Diff {
			fields[d.Field] = true
		}
		if len(fields) != 2 || !fields["title"] || !fields["summary"] {
			t.Fatalf("diff should name title and summary: %+v", queue.Items[0].Diff)
		}
		expect(t, e.do(staff, "POST", "reviews/"+nv.PendingVersion.ID+"/decision", map[string]any{"decision": "approve"}), 200, "")
		if search("faster") != 1 {
			t.Fatal("the approved version replaces the published one")
		}
		r = e.do(anon, "GET", "listings/"+l.ID, nil)
		var after listingOut
		r.JSON(t, &after)
		if after.PublishedVersion.Version != 2 {
			t.Fatalf("published: %s", r.Body)
		}
		var old versionRow
		must(t, e.db.Where("id = ?", l.PublishedVersion.ID).Take(&old).Error)
		if old.State != StateSuperseded {
			t.Fatalf("old version is %s", old.State)
		}

		// Suspension hides it; retirement keeps entitlements.
		expect(t, e.do(staff, "POST", "listings/"+l.ID+"/suspend", map[string]any{"reason": "licence complaint"}), 200, "")
		if search("cedar") != 0 {
			t.Fatal("suspended listings leave the catalogue")
		}
		expect(t, e.do(anon, "GET", "listings/"+l.ID, nil), 404, "listing_not_found")
		r = e.do(staff, "GET", "audit", nil)
		if !strings.Contains(string(r.Body), "listing.suspended") || !strings.Contains(string(r.Body), "review.approved") {
			t.Fatalf("audit: %s", r.Body)
		}
	})
}
