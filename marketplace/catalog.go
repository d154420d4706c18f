package marketplace

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"unicode"

	"gorm.io/gorm"

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
	TitleFr       string
	SummaryFr     string
	Tags          string
	License       string
	GPUModel      string `gorm:"column:gpu_model"`
	Residency     string
	CanadianIP    bool
	Gated         bool
	PriceMinMicro int64
	PublishedAt   int64
	Score         float64
	tagList       []string // Tags decoded once, for the items the index holds (read-only, shared by searches)
}

// TagList decodes the item's tags.
func (c CatalogItem) TagList() []string {
	if c.tagList != nil {
		return c.tagList
	}
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
	// bodies, when the index answered, are the items' JSON as the index rendered it when the listing was
	// indexed (up to the score): the answer copies them instead of encoding the same text on every search.
	bodies [][]byte
	// scores replace Items when the search was asked for rendering only (SearchInput.render): bodies[i]'s.
	scores []float64
	// page, when set, holds Facets' lists, bodies and scores, to be given back (release) once rendered.
	page *renderPage
}

// release gives a rendered result's pooled memory back; the result must not be read after.
func (r *SearchResult) release() {
	p := r.page
	if p == nil {
		return
	}
	clear(r.bodies)
	p.bodies, p.scores = r.bodies[:0], r.scores[:0]
	renderPages.Put(p)
	*r = SearchResult{}
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
	if in.Limit <= 0 {
		in.Limit = web.DefaultLimit
	}
	var cur searchCursor
	if in.Cursor != "" {
		if err := web.DecodeCursor(in.Cursor, &cur); err != nil || cur.S != in.Sort {
			return SearchResult{}, problem.ErrBadCursor
		}
	}
	return s.search(ctx, in, cur)
}

// CatalogueJSON answers a catalogue query as the JSON body of GET /listings, from the answer cache when it
// is enabled.
func (s *Service) CatalogueJSON(ctx context.Context, in SearchInput) ([]byte, error) {
	load := func() ([]byte, error) { return s.AppendCatalogueJSON(ctx, make([]byte, 0, 32<<10), in) }
	if s.cache == nil {
		return load()
	}
	if err := in.Validate(); err != nil {
		return nil, err
	}
	if in.Limit <= 0 {
		in.Limit = web.DefaultLimit
	}
	return s.cache.get(cacheKey(in), load)
}

// AppendCatalogueJSON appends the answer to a catalogue search to dst, never from the answer cache: the HTTP
// handler renders into a buffer it reuses when the cache is off, instead of allocating one per answer.
func (s *Service) AppendCatalogueJSON(ctx context.Context, dst []byte, in SearchInput) ([]byte, error) {
	in.render = true
	res, err := s.Search(ctx, in)
	if err != nil {
		return dst, err
	}
	dst = appendSearchJSON(dst, res)
	res.release()
	return dst, nil
}

const itemColumns = `c.listing_id, c.version_id, c.vendor_org_id, c.vendor_name, c.kind, c.slug, c.title, c.summary, c.tags,
	c.license, c.gpu_model, c.residency, c.canadian_ip, c.gated, c.price_min_micro, c.published_at,
	c.title_fr, c.summary_fr`

// search answers from the in-process index when there is one, else (and for the rare query word the index
// cannot take) from SQL.
func (s *Service) search(ctx context.Context, in SearchInput, cur searchCursor) (SearchResult, error) {
	if s.index == nil {
		return s.searchSQL(ctx, in, cur)
	}
	x, err := s.index.ready(ctx)
	if err != nil {
		s.log.Warn("catalogue index unavailable; searching with SQL", "err", err)
		return s.searchSQL(ctx, in, cur)
	}
	var words []ixWord
	if w := terms(in.Q); len(w) > 0 {
		var ok bool
		if words, ok, err = s.index.analyse(ctx, w); err != nil {
			return SearchResult{}, err
		}
		if !ok {
			return s.searchSQL(ctx, in, cur)
		}
	}
	return x.search(in, cur, words), nil
}

// catalogChanged runs after a write to market_catalog commits: the answer cache forgets, and the index
// re-reads the listings (this replica's readers see the write at once; the others when its event arrives).
func (s *Service) catalogChanged(ctx context.Context, listingIDs ...string) {
	s.cache.invalidate()
	if s.index == nil {
		return
	}
	if err := s.index.refresh(context.WithoutCancel(ctx), listingIDs...); err != nil {
		// Stale entries must not linger: the next search rebuilds the index from the table.
		s.log.Error("catalogue index refresh failed; rebuilding", "listings", listingIDs, "err", err)
		s.index.cur.Store(nil)
	}
}

// searchSQL is the database's own catalogue search: the reference the index is tested against.
func (s *Service) searchSQL(ctx context.Context, in SearchInput, cur searchCursor) (SearchResult, error) {
	from := "market_catalog c"
	var where []string
	var args []any
	words := terms(in.Q)
	score := ""
	if len(words) > 0 {
		fq := ftsQuery(s.dialect, words)
		if s.dialect == sqldb.Postgres {
			// English and French titles are indexed with their own stemmers: the query matches when all its
			// words match under either one.
			where = append(where, "c.search @@ (to_tsquery('english', ?) || to_tsquery('french', ?))")
			args = append(args, fq, fq)
			lit := "'" + strings.ReplaceAll(fq, "'", "") + "'"
			score = "ts_rank_cd(c.search, to_tsquery('english', " + lit + ") || to_tsquery('french', " + lit + "))"
		} else {
			// The words match the text columns; equality filters also match their tokens in the filters
			// column, so FTS5 intersects them before any row is joined.
			fq = "{title summary body title_fr summary_fr} : (" + fq + ")"
			for _, ft := range []struct {
				f byte
				v string
			}{{'k', in.Kind}, {'l', in.License}, {'r', in.Residency}, {'g', in.GPUModel}} {
				if ft.v != "" {
					fq += ` AND filters : "` + filterToken(ft.f, ft.v) + `"`
				}
			}
			from = "market_catalog_fts f JOIN market_catalog c ON c.doc_id = f.rowid"
			where = append(where, "market_catalog_fts MATCH ?")
			args = append(args, fq)
			score = "-bm25(market_catalog_fts, 10.0, 4.0, 1.0, 0.0, 10.0, 4.0)"
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
	db := s.db.WithContext(ctx)
	res := SearchResult{Facets: map[string][]FacetValue{}}
	f := newFacetCounter()

	if score != "" && s.dialect == sqldb.SQLite {
		// A text query on SQLite: one pass over the matches gives the facets, the ranking and the page (the
		// FTS5 match and its join are the expensive part; running them twice doubled the cost). Postgres is
		// faster with the two statements below (its top-N sort and index-only facet scan win).
		all, err := scanItems(db, `SELECT `+itemColumns+`, `+score+` AS score FROM `+from+filter, args)
		if err != nil {
			return SearchResult{}, err
		}
		for _, it := range all {
			f.add(it.Kind, it.License, it.GPUModel, it.Residency, it.VendorOrgID, it.VendorName, it.Tags)
		}
		sortItems(all, in.Sort)
		start := 0
		switch {
		case in.Sort == "relevance":
			start = min(max(cur.O, 0), len(all))
		case cur.ID != "":
			start = sort.Search(len(all), func(i int) bool { return after(all[i], in.Sort, cur) })
		}
		page := all[start:]
		if len(page) > in.Limit {
			res.NextCursor = nextCursor(page[in.Limit-1], in.Sort, start+in.Limit)
			page = page[:in.Limit]
		}
		res.Items = page
	} else {
		// The page in SQL (in index order without text); the facets from one scan of the facet columns.
		if score == "" {
			score = "0.0"
		}
		pageWhere, pageArgs := filter, append([]any(nil), args...)
		and := func(cond string, a ...any) {
			if pageWhere == "" {
				pageWhere = " WHERE " + cond
			} else {
				pageWhere += " AND " + cond
			}
			pageArgs = append(pageArgs, a...)
		}
		order, offset := "c.published_at DESC, c.listing_id DESC", 0
		switch in.Sort {
		case "price":
			order = "c.price_min_micro ASC, c.listing_id ASC"
		case "relevance":
			order, offset = "score DESC, c.listing_id ASC", max(cur.O, 0)
		}
		if cur.ID != "" && in.Sort != "relevance" {
			if in.Sort == "price" {
				and("(c.price_min_micro > ? OR (c.price_min_micro = ? AND c.listing_id > ?))", cur.K, cur.K, cur.ID)
			} else {
				and("(c.published_at < ? OR (c.published_at = ? AND c.listing_id < ?))", cur.K, cur.K, cur.ID)
			}
		}
		items, err := scanItems(db, `SELECT `+itemColumns+`, `+score+` AS score FROM `+from+pageWhere+` ORDER BY `+order+` LIMIT ? OFFSET ?`,
			append(pageArgs, in.Limit+1, offset))
		if err != nil {
			return SearchResult{}, err
		}
		if len(items) > in.Limit {
			res.NextCursor = nextCursor(items[in.Limit-1], in.Sort, offset+in.Limit)
			items = items[:in.Limit]
		}
		res.Items = items
		rows, err := db.Raw(`SELECT c.kind, c.license, c.gpu_model, c.residency, c.vendor_org_id, c.vendor_name, c.tags FROM `+from+filter, args...).Rows()
		if err != nil {
			return SearchResult{}, err
		}
		defer rows.Close()
		var k, l, g, r, v, vn, t string
		for rows.Next() {
			if err := rows.Scan(&k, &l, &g, &r, &v, &vn, &t); err != nil {
				return SearchResult{}, err
			}
			f.add(k, l, g, r, v, vn, t)
		}
		if err := rows.Err(); err != nil {
			return SearchResult{}, err
		}
	}
	if res.Items == nil {
		res.Items = []CatalogItem{}
	}
	res.Total = f.total
	res.Facets = f.result()
	return res, nil
}

// scanItems reads catalogue rows without GORM's reflection (the hot path of every uncached search).
func scanItems(db *gorm.DB, q string, args []any) ([]CatalogItem, error) {
	rows, err := db.Raw(q, args...).Rows()
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []CatalogItem
	for rows.Next() {
		var it CatalogItem
		if err := rows.Scan(&it.ListingID, &it.VersionID, &it.VendorOrgID, &it.VendorName, &it.Kind, &it.Slug, &it.Title,
			&it.Summary, &it.Tags, &it.License, &it.GPUModel, &it.Residency, &it.CanadianIP, &it.Gated, &it.PriceMinMicro,
			&it.PublishedAt, &it.TitleFr, &it.SummaryFr, &it.Score); err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	return out, rows.Err()
}

func sortItems(items []CatalogItem, by string) {
	sort.Slice(items, func(i, j int) bool {
		a, b := items[i], items[j]
		switch by {
		case "relevance":
			if a.Score != b.Score {
				return a.Score > b.Score
			}
			return a.ListingID < b.ListingID
		case "price":
			if a.PriceMinMicro != b.PriceMinMicro {
				return a.PriceMinMicro < b.PriceMinMicro
			}
			return a.ListingID < b.ListingID
		}
		if a.PublishedAt != b.PublishedAt {
			return a.PublishedAt > b.PublishedAt
		}
		return a.ListingID > b.ListingID
	})
}

// after reports whether it sorts after the cursor's item.
func after(it CatalogItem, by string, c searchCursor) bool {
	if by == "price" {
		return it.PriceMinMicro > c.K || (it.PriceMinMicro == c.K && it.ListingID > c.ID)
	}
	return it.PublishedAt < c.K || (it.PublishedAt == c.K && it.ListingID < c.ID)
}

func nextCursor(last CatalogItem, by string, offset int) string {
	c := searchCursor{S: by, ID: last.ListingID}
	switch by {
	case "newest":
		c.K = last.PublishedAt
	case "price":
		c.K = last.PriceMinMicro
	case "relevance":
		c = searchCursor{S: by, O: offset}
	}
	return web.EncodeCursor(c)
}

type facetCounter struct {
	total  int64
	counts map[string]map[string]int64
	labels map[string]string
}

func newFacetCounter() *facetCounter {
	f := &facetCounter{counts: map[string]map[string]int64{}, labels: map[string]string{}}
	for _, name := range FacetNames {
		f.counts[name] = map[string]int64{}
	}
	return f
}

func (f *facetCounter) add(kind, license, gpu, residency, vendor, vendorName, tags string) {
	f.total++
	f.counts["kind"][kind]++
	f.counts["license"][license]++
	if gpu != "" {
		f.counts["gpu_model"][gpu]++
	}
	if residency != "" {
		f.counts["residency"][residency]++
	}
	f.counts["vendor"][vendor]++
	f.labels[vendor] = vendorName
	// Tags are a JSON array of [a-z0-9+.-] words: split without a JSON decoder.
	if t := strings.Trim(tags, "[]"); t != "" {
		for _, tag := range strings.Split(t, ",") {
			f.counts["tag"][strings.Trim(tag, `"`)]++
		}
	}
}

// result lists each facet's values by count, then value; at most 25 per facet.
func (f *facetCounter) result() map[string][]FacetValue {
	out := make(map[string][]FacetValue, len(FacetNames))
	for _, name := range FacetNames {
		vals := make([]FacetValue, 0, len(f.counts[name]))
		for v, n := range f.counts[name] {
			fv := FacetValue{Value: v, Count: n}
			if name == "vendor" {
				fv.Label = f.labels[v]
			}
			vals = append(vals, fv)
		}
		sort.Slice(vals, func(i, j int) bool {
			if vals[i].Count != vals[j].Count {
				return vals[i].Count > vals[j].Count
			}
			return vals[i].Value < vals[j].Value
		})
		if len(vals) > 25 {
			vals = vals[:25]
		}
		out[name] = vals
	}
	return out
}
