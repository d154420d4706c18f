package marketplace

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// TestSearchJSONMatchesEncoding: the hand-written catalogue body is byte for byte what encoding/json writes for
// the searchJSON shape (the one the OpenAPI document describes), for random pages with awkward text: quotes,
// backslashes, control characters, HTML, line separators, invalid UTF-8, accents, and scores of every size.
func TestSearchJSONMatchesEncoding(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(2, 7))
	pieces := []string{"", "a", "Modèle météo", `"quoted"`, `back\slash`, "<b>&amp;</b>", "tab\there", "nl\n", "\x00\x01\x1f\x7f",
		"\u2028\u2029", "\xff\xfe bad", "日本語", "é\u0301", "/", "\b\f\r", "emoji 🍁"}
	str := func() string {
		s := ""
		for range rng.IntN(4) {
			s += pieces[rng.IntN(len(pieces))]
		}
		return s
	}
	scores := []float64{0, 1, -1, 0.5, 1e-7, 1e-6, 3.25e-9, 1e20, 1e21, 123456789.125, math.SmallestNonzeroFloat64, math.MaxFloat64, 7.4e-310}
	for i := range 500 {
		res := SearchResult{Total: rng.Int64N(1 << 40), NextCursor: str()}
		if rng.IntN(4) > 0 {
			res.Facets = map[string][]FacetValue{}
			for range rng.IntN(7) {
				var vals []FacetValue
				if rng.IntN(5) > 0 {
					vals = []FacetValue{}
				}
				for range rng.IntN(4) {
					vals = append(vals, FacetValue{Value: str(), Label: str(), Count: rng.Int64N(1000)})
				}
				res.Facets[str()] = vals
			}
		}
		res.Items = []CatalogItem{}
		for range rng.IntN(4) {
			tags, _ := json.Marshal([]string{str(), str()}[:rng.IntN(3)])
			it := CatalogItem{ListingID: str(), Slug: str(), Kind: str(), Title: str(), Summary: str(), TitleFr: str(), SummaryFr: str(),
				VendorOrgID: str(), VendorName: str(), Tags: string(tags), License: str(), GPUModel: str(), Residency: str(),
				CanadianIP: rng.IntN(2) == 0, Gated: rng.IntN(2) == 0, PriceMinMicro: rng.Int64N(1<<50) - 1<<40,
				PublishedAt: rng.Int64N(1 << 62), Score: scores[rng.IntN(len(scores))] * float64(1-2*rng.IntN(2))}
			if rng.IntN(2) == 0 {
				it.tagList = it.TagList()
			}
			res.Items = append(res.Items, it)
		}
		want, err := json.Marshal(toSearchJSON(res))
		if err != nil {
			t.Fatal(err)
		}
		if got := appendSearchJSON(nil, res); !bytes.Equal(got, want) {
			t.Fatalf("page %d:\n got %s\nwant %s", i, got, want)
		}
	}
}

// toSearchJSON fills the documented shape (the OpenAPI document's SearchResult) from a result: encoding/json
// over it is the reference appendSearchJSON must match.
func toSearchJSON(res SearchResult) searchJSON {
	out := searchJSON{Items: make([]catalogItemJSON, len(res.Items)), NextCursor: res.NextCursor, Total: res.Total, Facets: res.Facets}
	for i, it := range res.Items {
		out.Items[i] = catalogItemJSON{ID: it.ListingID, Slug: it.Slug, Kind: it.Kind, Title: it.Title, Summary: it.Summary,
			TitleFr: it.TitleFr, SummaryFr: it.SummaryFr, Vendor: vendorJSON{it.VendorOrgID, it.VendorName}, Tags: it.TagList(), License: it.License, GPUModel: it.GPUModel,
			Residency: it.Residency, CanadianIP: it.CanadianIP, Gated: it.Gated, PriceFromMicro: it.PriceMinMicro, PublishedAt: time.Unix(0, it.PublishedAt).UTC(), Score: it.Score}
	}
	return out
}
