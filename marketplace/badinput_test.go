package marketplace

import (
	"bytes"
	"strings"
	"testing"
)

// TestBadInput: each bad input gets a clear problem code and changes nothing.
func TestBadInput(t *testing.T) {
	t.Parallel()
	each(t, Config{MaxFileBytes: 4096, MaxVersionBytes: 6000}, func(t *testing.T, e *env) {
		l := e.createListing(vendorAdmin, modelListing("base"))
		upload := "listings/" + l.ID + "/versions/1/artifacts/"
		expect(t, e.do(vendorAdmin, "PUT", upload+"first.bin", bytes.Repeat([]byte{1}, 3000)), 201, "")
		tables := []string{"market_listings", "market_versions", "market_artifacts", "market_history", "market_outbox", "market_catalog"}
		before := map[string]int64{}
		for _, tb := range tables {
			before[tb] = count(t, e.db, tb)
		}
		blobsBefore := len(filesUnder(t, e.blobs))
		var versionBefore versionRow
		must(t, e.db.Where("listing_id = ?", l.ID).Take(&versionBefore).Error)

		with := func(mut func(m map[string]any)) map[string]any {
			m := modelListing("another")
			mut(m)
			return m
		}
		cases := []struct {
			name         string
			method, path string
			body         any
			headers      []string
			status       int
			code, field  string
		}{
			{"oversized upload (declared)", "PUT", upload + "big.bin", bytes.Repeat([]byte{2}, 5000), nil, 413, "artifact_too_large", ""},
			{"oversized upload (streamed, no length)", "PUT", upload + "big.bin", strings.NewReader(strings.Repeat("x", 5000)), []string{"Content-Length", "-1"}, 413, "artifact_too_large", ""},
			{"over the version limit", "PUT", upload + "second.bin", bytes.Repeat([]byte{3}, 3500), nil, 413, "artifact_too_large", ""},
			{"wrong checksum", "PUT", upload + "sum.bin", []byte("hello"), []string{"X-Checksum-Sha256", strings.Repeat("ab", 32)}, 422, "checksum_mismatch", ""},
			{"wrong Digest header", "PUT", upload + "sum.bin", []byte("hello"), []string{"Digest", "sha-256=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="}, 422, "checksum_mismatch", ""},
			{"malformed checksum", "PUT", upload + "sum.bin", []byte("hello"), []string{"X-Checksum-Sha256", "nope"}, 400, "invalid_checksum", ""},
			{"bad artifact name", "PUT", upload + "..hidden", []byte("hello"), nil, 422, "invalid_artifact_name", ""},
			{"script in markdown", "POST", "listings", with(func(m map[string]any) { m["card_markdown"] = "hi <script>alert(1)</script>" }), nil, 422, "validation_failed", "script_not_allowed"},
			{"event handler in markdown", "POST", "listings", with(func(m map[string]any) { m["card_markdown"] = `<img src=x onerror="alert(1)">` }), nil, 422, "validation_failed", "script_not_allowed"},
			{"javascript link in markdown", "PATCH", "listings/" + l.ID, map[string]any{"card_markdown": "[x](javascript:alert(1))"}, nil, 422, "validation_failed", "script_not_allowed"},
			{"invalid SPDX", "POST", "listings", with(func(m map[string]any) { m["license"] = map[string]any{"spdx": "Apache-3.0"} }), nil, 422, "validation_failed", "invalid_spdx"},
			{"custom licence without link", "POST", "listings", with(func(m map[string]any) { m["license"] = map[string]any{"spdx": "custom"} }), nil, 422, "validation_failed", "invalid_url"},
			{"unknown GPU model", "POST", "listings", computeListing("gpu", "pool_one", "h100-81gb"), nil, 422, "validation_failed", "unknown_gpu_model"},
			{"negative price", "POST", "listings", with(func(m map[string]any) {
				m["plans"] = []map[string]any{{"name": "Paid", "kind": "one_time", "price_micro": -5}}
			}), nil, 422, "validation_failed", "negative_price"},
			{"negative price on edit", "PATCH", "listings/" + l.ID, map[string]any{"plans": []map[string]any{{"name": "Paid", "kind": "subscription", "price_micro": -1}}}, nil, 422, "validation_failed", "negative_price"},
			{"duplicate slug", "POST", "listings", modelListing("base"), nil, 409, "slug_taken", ""},
			{"wrong plan kind for compute", "POST", "listings", with(func(m map[string]any) {
				m["kind"] = "compute"
			}), nil, 422, "validation_failed", "kind_mismatch"},
			{"unknown field", "POST", "listings", with(func(m map[string]any) { m["colour"] = "red" }), nil, 422, "validation_failed", "unknown_field"},
			{"malformed JSON", "POST", "listings", []byte(`{"kind":`), []string{"Content-Type", "application/json"}, 400, "malformed_json", ""},
			{"bad search parameter", "GET", "listings?gpu_model=tpu&price_min=-1", nil, nil, 422, "validation_failed", "unknown_gpu_model"},
			{"tampered cursor", "GET", "listings?cursor=%%%", nil, nil, 400, "invalid_cursor", ""},
		}
		for _, c := range cases {
			r := e.do(vendorAdmin, c.method, c.path, c.body, c.headers...)
			if r.Status != c.status || r.Code() != c.code {
				t.Errorf("%s: got %d %s, want %d %s: %s", c.name, r.Status, r.Code(), c.status, c.code, r.Body)
				continue
			}
			if c.field != "" && !strings.Contains(string(r.Body), `"code":"`+c.field+`"`) {
				t.Errorf("%s: no field error %s: %s", c.name, c.field, r.Body)
			}
		}
		for _, tb := range tables {
			if n := count(t, e.db, tb); n != before[tb] {
				t.Errorf("%s has %d rows, had %d", tb, n, before[tb])
			}
		}
		if n := len(filesUnder(t, e.blobs)); n != blobsBefore {
			t.Errorf("blob store has %d files, had %d: %v", n, blobsBefore, filesUnder(t, e.blobs))
		}
		var versionAfter versionRow
		must(t, e.db.Where("listing_id = ?", l.ID).Take(&versionAfter).Error)
		if versionAfter.Content != versionBefore.Content || !versionAfter.UpdatedAt.Equal(versionBefore.UpdatedAt) {
			t.Error("the draft changed")
		}

		// A matching Digest is accepted.
		expect(t, e.do(vendorAdmin, "PUT", upload+"ok.txt", []byte(""), "Digest", "sha-256=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="), 201, "")
	})
}

func TestRenderCardSanitises(t *testing.T) {
	t.Parallel()
	for _, src := range []string{
		"<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "[a](javascript:alert(1))",
		"<iframe src=https://evil.example></iframe>", "<a href=\"javascript:x\">x</a>", "<svg onload=alert(1)>",
	} {
		out := strings.ToLower(RenderCard(src))
		for _, bad := range []string{"<script", "onerror", "javascript:", "<iframe", "onload"} {
			if strings.Contains(out, bad) {
				t.Errorf("RenderCard(%q) = %q keeps %s", src, out, bad)
			}
		}
	}
	if got := RenderCard("**b** `c`"); !strings.Contains(got, "<strong>b</strong>") || !strings.Contains(got, "<code>c</code>") {
		t.Errorf("markdown not rendered: %q", got)
	}
}

func TestCanonicalSPDX(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"mit": "MIT", "apache-2.0": "Apache-2.0", "MIT OR Apache-2.0": "MIT OR Apache-2.0",
		"gpl-2.0-or-later WITH classpath-exception-2.0": "GPL-2.0-or-later WITH Classpath-exception-2.0", "cc-by-4.0 and mit": "CC-BY-4.0 AND MIT"} {
		if got, ok := CanonicalSPDX(in); !ok || got != want {
			t.Errorf("CanonicalSPDX(%q) = %q, %v", in, got, ok)
		}
	}
	for _, bad := range []string{"", "Apache-3.0", "MIT OR", "AND MIT", "MIT WITH", "MIT WITH nope", "(MIT)", "GPL"} {
		if _, ok := CanonicalSPDX(bad); ok {
			t.Errorf("CanonicalSPDX(%q) accepted", bad)
		}
	}
}

func TestParseRange(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		h     string
		start int64
		n     int64
		ok    bool
		whole bool
	}{{"", 0, 0, true, true}, {"bytes=0-9", 0, 10, true, false}, {"bytes=90-", 90, 10, true, false}, {"bytes=-5", 95, 5, true, false},
		{"bytes=95-200", 95, 5, true, false}, {"bytes=100-", 0, 0, false, false}, {"bytes=5-1", 0, 0, false, false},
		{"bytes=0-1,5-6", 0, 0, true, true}, {"items=1-2", 0, 0, true, true}} {
		r, ok := ParseRange(c.h, 100)
		if ok != c.ok || (r == nil) != (c.whole || !c.ok) || (r != nil && (r.Start != c.start || r.Length != c.n)) {
			t.Errorf("ParseRange(%q) = %+v, %v", c.h, r, ok)
		}
	}
}
