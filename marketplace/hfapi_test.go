package marketplace

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// hfExpect fails unless r has status and that X-Error-Code (empty: none); an error answer to anything but
// HEAD (which has no body) must carry an {"error"} message.
func hfExpect(t *testing.T, r resp, status int, code string) {
	t.Helper()
	if r.Status != status || r.Header.Get("X-Error-Code") != code {
		t.Fatalf("got %d %q, want %d %q: %s", r.Status, r.Header.Get("X-Error-Code"), status, code, r.Body)
	}
	if status >= 400 && r.Method != "HEAD" {
		var body struct {
			Error string `json:"error"`
		}
		r.JSON(t, &body)
		if body.Error == "" {
			t.Fatalf("no error message: %s", r.Body)
		}
	}
}

// hubTime is the Hub's time format, the only one older huggingface_hub releases parse.
var hubTime = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

type hfInfoOut struct {
	ID           string `json:"id"`
	SHA          string `json:"sha"`
	Private      bool   `json:"private"`
	Gated        any    `json:"gated"`
	LastModified string `json:"lastModified"`
	Siblings     []struct {
		RFilename string `json:"rfilename"`
		Size      int64  `json:"size"`
		LFS       struct {
			SHA256 string `json:"sha256"`
		} `json:"lfs"`
	} `json:"siblings"`
}

// TestHFAPI drives the Hub download API through every endpoint: repository and revision lookup, tree pages,
// HEAD and GET with ranges, the Hub's error codes, and the marketplace's visibility and entitlement rules.
func TestHFAPI(t *testing.T) {
	each(t, Config{}, func(t *testing.T, e *env) {
		weights := strings.Repeat("0123456789", 1000)
		files := map[string]string{"config.json": `{"model_type":"maple"}`, "model.safetensors": weights, "README.md": "# Maple"}
		l := e.publishListing(modelListing("maple-hf"), files)
		const repo = "aurora-ai/maple-hf" // the vendor is "Aurora AI"

		// Anyone sees a public listing's repository; the siblings are its artifacts.
		r := e.do(anon, "GET", "/api/models/"+repo+"/revision/main", nil)
		hfExpect(t, r, 200, "")
		var info hfInfoOut
		r.JSON(t, &info)
		if info.ID != repo || len(info.SHA) != 40 || info.Private || info.Gated != "auto" || len(info.Siblings) != 3 || !hubTime.MatchString(info.LastModified) {
			t.Fatalf("info: %s", r.Body)
		}
		sum := sha256.Sum256([]byte(weights))
		if s := info.Siblings[2]; s.RFilename != "model.safetensors" || s.Size != int64(len(weights)) || s.LFS.SHA256 != hex.EncodeToString(sum[:]) {
			t.Fatalf("sibling: %+v", s)
		}
		// The same revision by number, by sha, without a revision, and by the vendor's organisation ID.
		for _, p := range []string{"/api/models/" + repo + "/revision/v1", "/api/models/" + repo + "/revision/1", "/api/models/" + repo + "/revision/HEAD",
			"/api/models/" + repo + "/revision/" + info.SHA, "/api/models/" + repo, "/api/models/" + orgVendor + "/maple-hf/revision/main"} {
			r := e.do(smeMember, "GET", p, nil)
			hfExpect(t, r, 200, "")
			var again hfInfoOut
			r.JSON(t, &again)
			if again.SHA != info.SHA || again.ID != repo {
				t.Fatalf("%s: %s", p, r.Body)
			}
		}

		// Errors, with the Hub's codes: 401 for anonymous callers, 404 otherwise.
		hfExpect(t, e.do(anon, "GET", "/api/models/aurora-ai/nothing/revision/main", nil), 401, "RepoNotFound")
		hfExpect(t, e.do(smeMember, "GET", "/api/models/aurora-ai/nothing/revision/main", nil), 404, "RepoNotFound")
		hfExpect(t, e.do(smeMember, "GET", "/api/models/borealis-labs/maple-hf/revision/main", nil), 404, "RepoNotFound")
		hfExpect(t, e.do(smeMember, "GET", "/api/datasets/"+repo+"/revision/main", nil), 404, "RepoNotFound")
		hfExpect(t, e.do(smeMember, "GET", "/api/models/"+repo+"/revision/v9", nil), 404, "RevisionNotFound")
		hfExpect(t, e.do(smeMember, "GET", "/api/models/"+repo+"/revision/dev", nil), 404, "RevisionNotFound")
		hfExpect(t, e.do(smeMember, "GET", "/"+repo+"/resolve/main/missing.bin", nil), 404, "EntryNotFound")
		r = e.do(smeMember, "GET", "/"+repo+"/resolve/main/a%0d%0aX-Injected:%20yes%c3%a9", nil)
		hfExpect(t, r, 404, "EntryNotFound")
		if r.Header.Get("X-Injected") != "" || !strings.HasPrefix(r.Header.Get("X-Error-Message"), "a??X-Injected: yes? does not exist") {
			t.Fatalf("error message header: %v", r.Header)
		}
		hfExpect(t, e.do(smeMember, "GET", "/api/models/"+repo+"/revision/main", nil, "Authorization", "Bearer hf_nonsense"), 401, "")

		// Tree pages follow Link: rel="next".
		r = e.do(smeMember, "GET", "/api/models/"+repo+"/tree/main?limit=2", nil)
		hfExpect(t, r, 200, "")
		var page []hfTreeJSON
		r.JSON(t, &page)
		link := r.Header.Get("Link")
		if len(page) != 2 || page[0].Path != "README.md" || page[0].Type != "file" || !strings.HasSuffix(link, `>; rel="next"`) {
			t.Fatalf("tree page 1: %s Link %q", r.Body, link)
		}
		next := strings.TrimPrefix(link[:strings.Index(link, ">")], "<")
		next = next[strings.Index(next, "/api/"):]
		r = e.do(smeMember, "GET", next, nil)
		hfExpect(t, r, 200, "")
		r.JSON(t, &page)
		if len(page) != 1 || page[0].Path != "model.safetensors" || page[0].Size != int64(len(weights)) || page[0].LFS == nil ||
			page[0].LFS.OID != hex.EncodeToString(sum[:]) || len(page[0].OID) != 40 || r.Header.Get("Link") != "" {
			t.Fatalf("tree page 2: %s", r.Body)
		}
		hfExpect(t, e.do(smeMember, "GET", "/api/models/"+repo+"/tree/main/sub", nil), 404, "EntryNotFound")

		// Seeing a repository is not downloading from it: that takes an entitlement.
		file := "/" + repo + "/resolve/main/model.safetensors"
		hfExpect(t, e.do(anon, "HEAD", file, nil), 401, "GatedRepo")
		hfExpect(t, e.do(smeMember, "GET", file, nil), 403, "GatedRepo")
		hfExpect(t, e.do(vendorMem, "HEAD", file, nil), 200, "") // the vendor always may
		r = e.do(smeMember, "POST", "orders", map[string]any{"listing_id": l.ID, "plan_id": l.PublishedVersion.Plans[0].ID})
		expect(t, r, 201, "")

		r = e.do(smeMember, "HEAD", file, nil)
		hfExpect(t, r, 200, "")
		etag := `"` + hex.EncodeToString(sum[:]) + `"`
		if r.Header.Get("X-Repo-Commit") != info.SHA || r.Header.Get("ETag") != etag || r.Header.Get("X-Linked-Etag") != etag ||
			r.Header.Get("Content-Length") != "10000" || r.Header.Get("Accept-Ranges") != "bytes" || len(r.Body) != 0 {
			t.Fatalf("HEAD headers: %v (%d bytes)", r.Header, len(r.Body))
		}
		r = e.do(smeMember, "GET", file, nil)
		hfExpect(t, r, 200, "")
		if string(r.Body) != weights {
			t.Fatalf("GET: %d bytes", len(r.Body))
		}
		r = e.do(smeMember, "GET", "/"+repo+"/resolve/"+info.SHA+"/model.safetensors", nil, "Range", "bytes=9990-")
		hfExpect(t, r, 206, "")
		if string(r.Body) != weights[9990:] || r.Header.Get("Content-Range") != "bytes 9990-9999/10000" {
			t.Fatalf("range: %q %q", r.Body, r.Header.Get("Content-Range"))
		}
		r = e.do(smeMember, "GET", file, nil, "Range", "bytes=0-0")
		hfExpect(t, r, 206, "")
		if string(r.Body) != "0" || r.Header.Get("Content-Range") != "bytes 0-0/10000" {
			t.Fatalf("probe: %q %q", r.Body, r.Header.Get("Content-Range"))
		}
		hfExpect(t, e.do(smeMember, "GET", file, nil, "Range", "bytes=20000-"), http.StatusRequestedRangeNotSatisfiable, "")

		// A restricted listing is not there for an organisation outside its audience; a gated one is, but
		// its files are GatedRepo until the vendor approves an access request.
		restricted := modelListing("hidden-hf")
		restricted["visibility"], restricted["visible_to"] = "restricted", []string{orgVendor2}
		e.publishListing(restricted, map[string]string{"a.bin": "secret"})
		hfExpect(t, e.do(smeMember, "GET", "/api/models/aurora-ai/hidden-hf/revision/main", nil), 404, "RepoNotFound")
		hfExpect(t, e.do(smeMember, "HEAD", "/aurora-ai/hidden-hf/resolve/main/a.bin", nil), 404, "RepoNotFound")
		r = e.do(otherVendor, "GET", "/api/models/aurora-ai/hidden-hf/revision/main", nil)
		hfExpect(t, r, 200, "")
		r.JSON(t, &info)
		if !info.Private {
			t.Fatalf("restricted listing not private: %s", r.Body)
		}

		gated := modelListing("gated-hf")
		gated["gated"] = true
		gl := e.publishListing(gated, map[string]string{"w.bin": "gated weights"})
		r = e.do(smeMember, "GET", "/api/models/aurora-ai/gated-hf/revision/main", nil)
		hfExpect(t, r, 200, "")
		r.JSON(t, &info)
		if info.Gated != "manual" {
			t.Fatalf("gated: %s", r.Body)
		}
		hfExpect(t, e.do(smeMember, "GET", "/aurora-ai/gated-hf/resolve/main/w.bin", nil), 403, "GatedRepo")
		r = e.do(smeMember, "POST", "listings/"+gl.ID+"/access-requests", map[string]any{"purpose": "Evaluate"})
		expect(t, r, 201, "")
		var ar struct {
			ID string `json:"id"`
		}
		r.JSON(t, &ar)
		hfExpect(t, e.do(smeMember, "GET", "/aurora-ai/gated-hf/resolve/main/w.bin", nil), 403, "GatedRepo") // pending
		expect(t, e.do(vendorAdmin, "POST", "access-requests/"+ar.ID+"/decision", map[string]any{"decision": "approve"}), 200, "")
		r = e.do(smeMember, "GET", "/aurora-ai/gated-hf/resolve/main/w.bin", nil)
		hfExpect(t, r, 200, "")
		if string(r.Body) != "gated weights" {
			t.Fatalf("gated download: %q", r.Body)
		}

		// Datasets live under /api/datasets and /datasets/.
		ds := map[string]any{
			"kind": "dataset", "slug": "tides-hf", "title": "Tides", "summary": "Tide tables",
			"license": map[string]any{"spdx": "cc-by-4.0"}, "residency": "CA", "visibility": "public",
			"dataset": map[string]any{"format": "csv", "size_bytes": 20, "rows": 2},
			"plans":   []map[string]any{{"name": "Open", "kind": "free", "price_micro": 0}},
		}
		dl := e.publishListing(ds, map[string]string{"tides.csv": "day,height\n1,2.5\n"})
		expect(t, e.do(smeMember, "POST", "orders", map[string]any{"listing_id": dl.ID, "plan_id": dl.PublishedVersion.Plans[0].ID}), 201, "")
		r = e.do(smeMember, "GET", "/api/datasets/aurora-ai/tides-hf/revision/main", nil)
		hfExpect(t, r, 200, "")
		r.JSON(t, &info)
		if info.ID != "aurora-ai/tides-hf" || len(info.Siblings) != 1 {
			t.Fatalf("dataset info: %s", r.Body)
		}
		r = e.do(smeMember, "GET", "/datasets/aurora-ai/tides-hf/resolve/main/tides.csv", nil)
		hfExpect(t, r, 200, "")
		if string(r.Body) != "day,height\n1,2.5\n" {
			t.Fatalf("dataset file: %q", r.Body)
		}
		hfExpect(t, e.do(smeMember, "GET", "/aurora-ai/tides-hf/resolve/main/tides.csv", nil), 404, "RepoNotFound")
	})
}

func TestHFNamespaceAndSHA(t *testing.T) {
	if a, b := hfVersionSHA("ver_1"), hfVersionSHA("ver_2"); len(a) != 40 || a == b || a != hfVersionSHA("ver_1") {
		t.Fatalf("sha: %s %s", a, b)
	}
}
