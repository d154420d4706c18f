package marketplace

import (
	"encoding/json"
	"strings"
	"testing"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/services/events"
)

const tryItImage = "registry.example.com/aurora/maple-serve@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// publishedTryIts returns the try-it images of the listing's published events, oldest first (nil where an
// event had none).
func publishedTryIts(t *testing.T, db *gorm.DB, listingID string) []*events.TryItV1 {
	t.Helper()
	var payloads []string
	must(t, db.Table("market_outbox").Where("subject = ?", events.ListingPublished.Name).Order("created_at, id").Pluck("payload", &payloads).Error)
	var out []*events.TryItV1
	for _, p := range payloads {
		var ev events.ListingChangedV1
		must(t, json.Unmarshal([]byte(p), &ev))
		if ev.ListingID == listingID {
			must(t, ev.Validate())
			out = append(out, ev.TryIt)
		}
	}
	return out
}

// TestTryItImage: a model listing's "try it" image must be pinned by digest (a tag is refused with its own
// field code, every bad part at once), is part of the version staff review (in the version and in the review
// queue's diff), is shown on the published listing, and travels to the testbed in the published event with
// the listing's terms. A new version can replace it or withdraw it ({}); compute listings cannot have one.
func TestTryItImage(t *testing.T) {
	t.Parallel()
	each(t, Config{}, func(t *testing.T, e *env) {

		// Refused: a tag, a digest of the wrong form, no registry; bad command and ports; on a compute listing.
		for _, c := range []struct {
			name  string
			tryIt map[string]any
			field string
			code  string
		}{
			{"tag", map[string]any{"image": "registry.example.com/aurora/maple-serve:latest"}, "try_it.image", "not_pinned"},
			{"no tag or digest", map[string]any{"image": "registry.example.com/aurora/maple-serve"}, "try_it.image", "not_pinned"},
			{"short digest", map[string]any{"image": "registry.example.com/aurora/maple-serve@sha256:0123"}, "try_it.image", "invalid"},
			{"no registry", map[string]any{"image": "aurora/maple-serve@sha256:" + strings.Repeat("ab", 32)}, "try_it.image", "invalid"},
			{"no image", map[string]any{"ports": []int{8080}}, "try_it.image", "required"},
			{"port out of range", map[string]any{"image": tryItImage, "ports": []int{8080, 70000}}, "try_it.ports[1]", "invalid"},
			{"port twice", map[string]any{"image": tryItImage, "ports": []int{8080, 8080}}, "try_it.ports[1]", "duplicate"},
			{"empty program", map[string]any{"image": tryItImage, "command": []string{"", "x"}}, "try_it.command[0]", "invalid"},
		} {
			body := modelListing("refused-" + strings.ReplaceAll(c.name, " ", "-"))
			body["try_it"] = c.tryIt
			r := e.do(vendorAdmin, "POST", "listings", body)
			expect(t, r, 422, "validation_failed")
			if !strings.Contains(string(r.Body), `"field":"`+c.field+`","code":"`+c.code+`"`) {
				t.Errorf("%s: want %s %s: %s", c.name, c.field, c.code, r.Body)
			}
		}
		compute := computeListing("compute-try", "pool_one", "h100-80gb")
		compute["try_it"] = map[string]any{"image": tryItImage}
		r := e.do(vendorAdmin, "POST", "listings", compute)
		expect(t, r, 422, "validation_failed")
		if !strings.Contains(string(r.Body), `"field":"try_it","code":"kind_mismatch"`) {
			t.Errorf("compute listing with a try-it image: %s", r.Body)
		}
		// A tag sent in a PATCH is refused the same way, and the draft keeps what it had.
		draft := e.createListing(vendorAdmin, modelListing("patched"))
		r = e.do(vendorAdmin, "PATCH", "listings/"+draft.ID, map[string]any{"try_it": map[string]any{"image": "ghcr.io/aurora/maple:v1"}})
		expect(t, r, 422, "validation_failed")
		if !strings.Contains(string(r.Body), `"field":"try_it.image","code":"not_pinned"`) || !strings.Contains(string(r.Body), "sha256") {
			t.Errorf("tag in a PATCH: %s", r.Body)
		}

		// Accepted: pinned by digest, with the command and ports it serves.
		body := modelListing("maple-try")
		body["try_it"] = map[string]any{"image": " " + tryItImage + " ", "command": []string{"/usr/bin/serve", "--port", "8080"}, "ports": []int{8080}}
		l := e.createListing(vendorAdmin, body)
		expect(t, e.do(vendorAdmin, "POST", "listings/"+l.ID+"/submit", nil), 200, "")

		// Staff see it in the version they review: in the listing and in the queue's diff.
		r = e.do(staff, "GET", "listings/"+l.ID, nil)
		expect(t, r, 200, "")
		var pending struct {
			PendingVersion struct {
				ID    string `json:"id"`
				TryIt *TryIt `json:"try_it"`
			} `json:"pending_version"`
		}
		r.JSON(t, &pending)
		if ti := pending.PendingVersion.TryIt; ti == nil || ti.Image != tryItImage || len(ti.Ports) != 1 || ti.Ports[0] != 8080 ||
			strings.Join(ti.Command, " ") != "/usr/bin/serve --port 8080" {
			t.Fatalf("pending version's try-it image: %s", r.Body)
		}
		r = e.do(staff, "GET", "reviews", nil)
		expect(t, r, 200, "")
		var queue struct {
			Items []struct {
				VersionID string `json:"version_id"`
				Diff      []struct {
					Field string          `json:"field"`
					To    json.RawMessage `json:"to"`
				} `json:"diff"`
			} `json:"items"`
		}
		r.JSON(t, &queue)
		shown := false
		for _, it := range queue.Items {
			for _, d := range it.Diff {
				if d.Field == "try_it" && strings.Contains(string(d.To), tryItImage) {
					shown = true
				}
			}
		}
		if !shown {
			t.Fatalf("the review queue does not show the try-it image: %s", r.Body)
		}
		expect(t, e.do(staff, "POST", "reviews/"+pending.PendingVersion.ID+"/decision", map[string]any{"decision": "approve"}), 200, "")

		// Published: anyone reading the listing sees it; the event carries it.
		r = e.do(anon, "GET", "listings/"+l.ID, nil)
		expect(t, r, 200, "")
		if !strings.Contains(string(r.Body), `"try_it":{"image":"`+tryItImage+`","command":["/usr/bin/serve","--port","8080"],"ports":[8080]}`) {
			t.Fatalf("published listing: %s", r.Body)
		}
		got := publishedTryIts(t, e.db, l.ID)
		if len(got) != 1 || got[0] == nil || got[0].Image != tryItImage || got[0].Ports[0] != 8080 || got[0].Gated || len(got[0].VisibleTo) != 0 {
			t.Fatalf("published event's try-it image: %+v", got)
		}

		// A new version that withdraws it, reviewed and published: the event has none.
		r = e.do(vendorAdmin, "POST", "listings/"+l.ID+"/versions", map[string]any{"try_it": map[string]any{}})
		expect(t, r, 201, "")
		var v2 listingOut
		r.JSON(t, &v2)
		expect(t, e.do(vendorAdmin, "POST", "listings/"+l.ID+"/submit", nil), 200, "")
		expect(t, e.do(staff, "POST", "reviews/"+v2.PendingVersion.ID+"/decision", map[string]any{"decision": "approve"}), 200, "")
		if got := publishedTryIts(t, e.db, l.ID); len(got) != 2 || got[1] != nil {
			t.Fatalf("after withdrawing it: %+v", got)
		}
		r = e.do(anon, "GET", "listings/"+l.ID, nil)
		if strings.Contains(string(r.Body), "try_it") {
			t.Fatalf("withdrawn try-it image still shown: %s", r.Body)
		}

		// A gated dataset restricted to one organisation: the event says so.
		ds := map[string]any{
			"kind": "dataset", "slug": "wheat-try", "title": "Wheat yields", "license": map[string]any{"spdx": "CC-BY-4.0"},
			"visibility": "restricted", "visible_to": []string{orgSME}, "gated": true,
			"dataset": map[string]any{"format": "parquet", "size_bytes": 1024, "rows": 10},
			"try_it":  map[string]any{"image": tryItImage},
			"plans":   []map[string]any{{"name": "Research", "kind": "free", "price_micro": 0}},
		}
		d := e.publishListing(ds, nil)
		if got := publishedTryIts(t, e.db, d.ID); len(got) != 1 || got[0] == nil || !got[0].Gated ||
			strings.Join(got[0].VisibleTo, ",") != orgSME || len(got[0].Command) != 0 {
			t.Fatalf("dataset's try-it event: %+v", got)
		}
	})
}
