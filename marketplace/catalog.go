package marketplace

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"unicode"

	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/platform/web"
)

// CatalogItem is one published listing in search results.
type CatalogItem struct {
	ListingID     string
	VersionID     string
	VendorOrgID   string
	VendorName    string
	Kind          string
	Slug          string
	Title         string
	Summary       string
	Tags          string
	License       string
	GPUModel      string `gorm:"column:gpu_model"`
	Residency     string
	CanadianIP    bool
	Gated         bool
	PriceMinMicro int64
	PublishedAt   int64
	Score         float64
}

// TagList decodes the item's tags.
func (c CatalogItem) TagList() []string {
	var t []string
	_ = json.Unmarshal([]byte(c.Tags), &t)
	if t == nil {
		t = []string{}
	}
	return t
}

// FacetValue is one value of a facet with the number of matching listings.
type FacetValue struct {
	Value string `json:"value"`
	Label string `json:"label,omitempty"`
	Count int64  `json:"count"`
}

// SearchResult is a page of the catalogue with facet counts over every match.
type SearchResult struct {
	Items      []CatalogItem
	NextCursor string
	Total      int64
	Facets     map[string][]FacetValue
}

type searchCursor struct {
	S  string `json:"s"`
	K  int64  `json:"k,omitempty"`
	ID string `json:"id,omitempty"`
	O  int    `json:"o,omitempty"`
}

// FacetNames are the facets counted for every search.
var FacetNames = []string{"kind", "tag", "license", "gpu_model", "residency", "vendor"}

// terms splits a user query into at most ten lowercase words of letters and digits: nothing of the engines'
// query syntax survives, so a query can never be malformed or inject operators.
func terms(q string) []string {
	words := strings.FieldsFunc(strings.ToLower(q), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	if len(words) > 10 {
		words = words[:10]
	}
	return words
}

// ftsQuery builds the engine's query: every word must match (stemmed); the last also as a prefix, for
// search-as-you-type.
func ftsQuery(d sqldb.Dialect, words []string) string {
	if d == sqldb.Postgres {
		parts := make([]string, len(words))
		for i, w := range words {
			parts[i] = w
			if i == len(words)-1 {
				parts[i] = w + ":*"
			}
		}
		return strings.Join(parts, " & ")
	}
	parts := make([]string, len(words))
	for i, w := range words {
		parts[i] = `"` + w + `"`
		if i == len(words)-1 {
			parts[i] = `("` + w + `" OR "` + w + `"*)`
		}
	}
	return strings.Join(parts, " AND ")
}

// Search queries the published catalogue: full text (FTS5 with bm25 on SQLite, tsvector with ts_rank_cd on
// Postgres), filters, a sort, keyset pagination (offset for relevance) and facet counts over every match.
func (s *Service) Search(ctx context.Context, in SearchInput) (SearchResult, error) {
	if err := in.Validate(); err != nil {
		return SearchResult{}, err
	}
	var cur searchCursor
	if in.Cursor != "" {
		if err := web.DecodeCursor(in.Cursor, &cur); err != nil || cur.S != in.Sort {
			return SearchResult{}, problem.ErrBadCursor
		}
	}
	from := "market_catalog c"
	var where []string
	var args []any
	score := "0.0"
	words := terms(in.Q)
	if len(words) > 0 {
		fq := ftsQuery(s.dialect, words)
		if s.dialect == sqldb.Postgres {
			where = append(where, "c.search @@ to_tsquery('english', ?)")
			args = append(args, fq)
			score = "ts_rank_cd(c.search, to_tsquery('english', '" + strings.ReplaceAll(fq, "'", "") + "'))"
		} else {
			from = "market_catalog_fts f JOIN market_catalog c ON c.doc_id = f.rowid"
			where = append(where, "market_catalog_fts MATCH ?")
			args = append(args, fq)
			score = "-bm25(market_catalog_fts, 10.0, 4.0, 1.0)"
		}
	} else if in.Sort == "relevance" {
		in.Sort = "newest"
	}
	eq := func(col, v string) {
		if v != "" {
			where = append(where, col+" = ?")
			args = append(args, v)
		}
	}
	eq("c.kind", in.Kind)
	eq("c.license", in.License)
	eq("c.gpu_model", in.GPUModel)
	eq("c.residency", in.Residency)
	eq("c.vendor_org_id", in.Vendor)
	if in.Tag != "" {
		where = append(where, "c.listing_id IN (SELECT listing_id FROM market_catalog_tags WHERE tag = ?)")
		args = append(args, strings.ToLower(in.Tag))
	}
	if in.PriceMin != nil {
		where = append(where, "c.price_min_micro >= ?")
		args = append(args, *in.PriceMin)
	}
	if in.PriceMax != nil {
		where = append(where, "c.price_min_micro <= ?")
		args = append(args, *in.PriceMax)
	}
	switch {
	case in.ViewerStaff:
	case in.ViewerOrg != "":
		where = append(where, "(c.visibility = 'public' OR c.listing_id IN (SELECT listing_id FROM market_catalog_orgs WHERE org_id = ?))")
		args = append(args, in.ViewerOrg)
	default:
		where = append(where, "c.visibility = 'public'")
	}
	filter := ""
	if len(where) > 0 {
		filter = " WHERE " + strings.Join(where, " AND ")
	}

	// The page.
	pageWhere, pageArgs := filter, append([]any(nil), args...)
	and := func(cond string, a ...any) {
		if pageWhere == "" {
			pageWhere = " WHERE " + cond
		} else {
			pageWhere += " AND " + cond
		}
		pageArgs = append(pageArgs, a...)
	}
	order := ""
	offset := 0
	switch in.Sort {
	case "newest":
		order = "c.published_at DESC, c.listing_id DESC"
		if cur.ID != "" {
			and("(c.published_at < ? OR (c.published_at = ? AND c.listing_id < ?))", cur.K, cur.K, cur.ID)
		}
	case "price":
		order = "c.price_min_micro ASC, c.listing_id ASC"
		if cur.ID != "" {
			and("(c.price_min_micro > ? OR (c.price_min_micro = ? AND c.listing_id > ?))", cur.K, cur.K, cur.ID)
		}
	case "relevance":
		order = "score DESC, c.listing_id ASC"
		offset = max(cur.O, 0)
	}
	limit := in.Limit
	if limit <= 0 {
		limit = web.DefaultLimit
	}
	db := s.db.WithContext(ctx)
	var items []CatalogItem
	q := `SELECT c.listing_id, c.version_id, c.vendor_org_id, c.vendor_name, c.kind, c.slug, c.title, c.summary, c.tags,
		c.license, c.gpu_model, c.residency, c.canadian_ip, c.gated, c.price_min_micro, c.published_at, ` + score + ` AS score
		FROM ` + from + pageWhere + ` ORDER BY ` + order + ` LIMIT ? OFFSET ?`
	if err := db.Raw(q, append(pageArgs, limit+1, offset)...).Scan(&items).Error; err != nil {
		return SearchResult{}, err
	}
	res := SearchResult{Items: items, Facets: map[string][]FacetValue{}}
	if len(items) > limit {
		res.Items = items[:limit]
		last := items[limit-1]
		c := searchCursor{S: in.Sort, ID: last.ListingID}
		switch in.Sort {
		case "newest":
			c.K = last.PublishedAt
		case "price":
			c.K = last.PriceMinMicro
		case "relevance":
			c = searchCursor{S: in.Sort, O: offset + limit}
		}
		res.NextCursor = web.EncodeCursor(c)
	}

	// Facets over every match, in one statement.
	type facetRow struct {
		Facet, Value, Label string
		N                   int64
	}
	var rows []facetRow
	fq := `WITH m AS (SELECT c.listing_id, c.kind, c.license, c.gpu_model, c.residency, c.vendor_org_id, c.vendor_name
			FROM ` + from + filter + `)
		SELECT 'kind' AS facet, kind AS value, '' AS label, COUNT(*) AS n FROM m GROUP BY kind
		UNION ALL SELECT 'license', license, '', COUNT(*) FROM m GROUP BY license
		UNION ALL SELECT 'gpu_model', gpu_model, '', COUNT(*) FROM m WHERE gpu_model <> '' GROUP BY gpu_model
		UNION ALL SELECT 'residency', residency, '', COUNT(*) FROM m WHERE residency <> '' GROUP BY residency
		UNION ALL SELECT 'vendor', vendor_org_id, MAX(vendor_name), COUNT(*) FROM m GROUP BY vendor_org_id
		UNION ALL SELECT 'tag', t.tag, '', COUNT(*) FROM m JOIN market_catalog_tags t ON t.listing_id = m.listing_id GROUP BY t.tag`
	if err := db.Raw(fq, args...).Scan(&rows).Error; err != nil {
		return SearchResult{}, err
	}
	for _, name := range FacetNames {
		res.Facets[name] = []FacetValue{}
	}
	for _, r := range rows {
		res.Facets[r.Facet] = append(res.Facets[r.Facet], FacetValue{Value: r.Value, Label: r.Label, Count: r.N})
		if r.Facet == "kind" {
			res.Total += r.N
		}
	}
	for name, vals := range res.Facets {
		sort.Slice(vals, func(i, j int) bool {
			if vals[i].Count != vals[j].Count {
				return vals[i].Count > vals[j].Count
			}
			return vals[i].Value < vals[j].Value
		})
		if len(vals) > 25 {
			res.Facets[name] = vals[:25]
		}
	}
	return res, nil
}
