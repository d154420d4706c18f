package marketplace

import (
	"math"
	"math/bits"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/tamarack-ai/tamarack/platform/web"
)

// The in-process catalogue index: every search is answered from memory, without SQL. It holds one entry per
// row of market_catalog with the full-text lexemes the database itself produced for it (FTS5's porter tokens on
// SQLite, the stored tsvector on Postgres; see index_load.go), so a query matches exactly the rows the SQL path
// would match. It is pure data: loading and keeping it current with the table is index_load.go's job.
//
// Matching, filters, visibility, facets, sorts and cursors are those of the SQL path. Relevance differs: the
// score is BM25 over the query's lexemes with the columns weighted as on SQLite (titles 10, summaries 4, the
// rest 1), the same on both engines, where SQL used bm25 (SQLite) or ts_rank_cd (Postgres). Ties still break
// by listing ID.

// Column weights of the score: titles (A), summaries (B), the body (C).
var ixWeights = [3]float32{10, 4, 1}

const (
	bm25K1 = 1.2
	bm25B  = 0.75
)

// ixTerm is one lexeme of an entry with its frequency in each weighted column group.
type ixTerm struct {
	lex string
	tf  [3]uint16
}

// ixEntry is what the index needs of one catalogue row.
type ixEntry struct {
	item       CatalogItem
	visibility string
	visibleTo  []string
	terms      []ixTerm
}

type ixDoc struct {
	item       CatalogItem
	body       []byte // the item's JSON but its score (appendItemBody), rendered when it changes
	public     bool
	visibleTo  []string
	filterTags []int32  // the tag filter's values (market_catalog_tags: the decoded tags) as tag value IDs
	facet      [6]int32 // value IDs per FacetNames entry except tag; -1 when the value is not counted
	facetTags  []int32  // tag facet value IDs, split from the JSON as the SQL path does
	terms      []string // its lexemes, to remove it from the postings
	length     float64  // weighted length, for BM25's average
	live       bool
}

// ixMeta is what the filters read of an entry, kept apart from the items so that a scan stays in cache.
type ixMeta struct {
	facet [6]int32
	tags  [4]int32 // the first tag facet value IDs (the rest in ixDoc.facetTags)
	ntags uint8
	more  bool // ixDoc.facetTags holds more than tags: only then is the entry's ixDoc read while counting
	price int64
}

type posting struct {
	slots []uint32  // ascending
	tfn   []float32 // BM25's saturated, length-normalised frequency per slot
}

type interner struct {
	ids    map[string]int32
	values []string
}

func (n *interner) id(v string) int32 {
	if id, ok := n.ids[v]; ok {
		return id
	}
	id := int32(len(n.values))
	n.ids[v] = id
	n.values = append(n.values, v)
	return id
}

// Facet positions in ixDoc.facet (FacetNames order without "tag").
const (
	fKind = iota
	fTag
	fLicense
	fGPU
	fResidency
	fVendor
)

type catalogIndex struct {
	mu     sync.RWMutex
	docs   []ixDoc
	meta   []ixMeta // by slot, as docs
	free   []uint32
	slot   map[string]uint32 // listing ID → slot
	vocab  []string          // sorted lexemes, for prefix matches
	post   map[string]*posting
	newest []uint32 // live slots by published_at DESC, listing_id DESC
	cheap  []uint32 // live slots by price_min_micro ASC, listing_id ASC
	facets [6]interner
	labels map[int32]string // vendor value ID → name
	// Bitmaps by slot, so that filters and facet counts work a word (64 entries) at a time: the live entries,
	// the public ones, the non-public ones each organisation may see, the entries of each facet value (for tags
	// the facet's split tags), and those of each tag filter value.
	// Ranks that stand in for strings where a search breaks ties, so that ordering compares packed integers:
	// each live slot's listing ID among the live ones (byID lists the slots in that order), and each facet
	// value's place among its facet's values.
	idRank      []uint32
	byID        []uint32
	valueRank   [6][]uint32
	valueByRank [6][]uint32
	liveBits    bitset
	publicBits  bitset
	privateTo   map[string]bitset
	valueBits   [6][]bitset
	tagFilter   []bitset
	lenSum      float64
	live        int
	ordered     bool // newest and cheap are current
}

func newCatalogIndex(entries []ixEntry) *catalogIndex {
	x := &catalogIndex{slot: map[string]uint32{}, post: map[string]*posting{}, labels: map[int32]string{}, privateTo: map[string]bitset{}}
	for i := range x.facets {
		x.facets[i] = interner{ids: map[string]int32{}}
	}
	// Every entry's frequencies are normalised by the average length of the whole set; later upserts use the
	// average of the moment (a rebuild evens them out).
	var sum float64
	for _, e := range entries {
		sum += docLen(e.terms)
	}
	avg := sum / float64(max(len(entries), 1))
	for _, e := range entries {
		x.put(e, avg)
	}
	x.order()
	return x
}

func docLen(terms []ixTerm) float64 {
	var n float64
	for _, t := range terms {
		for g, f := range t.tf {
			n += float64(ixWeights[g]) * float64(f)
		}
	}
	return n
}

// upsert replaces (or adds) entries and removes the listings in gone, under the write lock.
func (x *catalogIndex) upsert(entries []ixEntry, gone []string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, id := range gone {
		x.remove(id)
	}
	for _, e := range entries {
		x.remove(e.item.ListingID)
		x.put(e, (x.lenSum+docLen(e.terms))/float64(x.live+1))
	}
	x.order()
}

// setVendorName renames a vendor in every entry (the catalogue's vendor_name follows the organisation's name).
func (x *catalogIndex) setVendorName(orgID, name string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for i := range x.docs {
		if d := &x.docs[i]; d.live && d.item.VendorOrgID == orgID {
			d.item.VendorName = name
			d.body = appendItemBody(nil, d.item)
			x.labels[d.facet[fVendor]] = name
		}
	}
}

func (x *catalogIndex) put(e ixEntry, avg float64) {
	var s uint32
	if n := len(x.free); n > 0 {
		s, x.free = x.free[n-1], x.free[:n-1]
	} else {
		s = uint32(len(x.docs))
		x.docs = append(x.docs, ixDoc{})
		x.meta = append(x.meta, ixMeta{})
	}
	it := e.item
	it.Score = 0
	it.tagList = it.TagList()
	d := ixDoc{item: it, body: appendItemBody(nil, it), public: e.visibility == "public", visibleTo: e.visibleTo, live: true}
	for _, t := range it.TagList() {
		d.filterTags = append(d.filterTags, x.facets[fTag].id(t))
	}
	d.facet[fKind] = x.facets[fKind].id(it.Kind)
	d.facet[fLicense] = x.facets[fLicense].id(it.License)
	d.facet[fGPU], d.facet[fResidency] = -1, -1
	if it.GPUModel != "" {
		d.facet[fGPU] = x.facets[fGPU].id(it.GPUModel)
	}
	if it.Residency != "" {
		d.facet[fResidency] = x.facets[fResidency].id(it.Residency)
	}
	d.facet[fVendor] = x.facets[fVendor].id(it.VendorOrgID)
	x.labels[d.facet[fVendor]] = it.VendorName
	for _, t := range facetTags(it.Tags) {
		d.facetTags = append(d.facetTags, x.facets[fTag].id(t))
	}
	dl := docLen(e.terms)
	x.lenSum += dl
	x.live++
	avg = max(avg, 1)
	norm := bm25K1 * (1 - bm25B + bm25B*dl/avg)
	d.terms = make([]string, len(e.terms))
	for i, t := range e.terms {
		d.terms[i] = t.lex
		var wtf float64
		for g, f := range t.tf {
			wtf += float64(ixWeights[g]) * float64(f)
		}
		p := x.post[t.lex]
		if p == nil {
			p = &posting{}
			x.post[t.lex] = p
			i := sort.SearchStrings(x.vocab, t.lex)
			x.vocab = slices.Insert(x.vocab, i, t.lex)
		}
		i := sort.Search(len(p.slots), func(i int) bool { return p.slots[i] >= s })
		p.slots = slices.Insert(p.slots, i, s)
		p.tfn = slices.Insert(p.tfn, i, float32(wtf/(wtf+norm)))
	}
	d.length = dl
	x.docs[s] = d
	m := ixMeta{facet: d.facet, price: it.PriceMinMicro}
	m.ntags = uint8(copy(m.tags[:], d.facetTags))
	m.more = len(d.facetTags) > len(m.tags)
	x.meta[s] = m
	x.markBits(s, &d, true)
	x.slot[it.ListingID] = s
	x.ordered = false
}

// markBits sets (or clears) slot s in every bitmap that d belongs to.
func (x *catalogIndex) markBits(s uint32, d *ixDoc, on bool) {
	mark := func(b *bitset) { b.put(s, on) }
	at := func(bs *[]bitset, id int32) *bitset {
		if int(id) >= len(*bs) {
			*bs = append(*bs, make([]bitset, int(id)+1-len(*bs))...)
		}
		return &(*bs)[id]
	}
	mark(&x.liveBits)
	if d.public {
		mark(&x.publicBits)
	} else {
		for _, org := range d.visibleTo {
			b := x.privateTo[org]
			b.put(s, on)
			x.privateTo[org] = b
		}
	}
	for f, id := range d.facet {
		if f != fTag && id >= 0 {
			mark(at(&x.valueBits[f], id))
		}
	}
	for _, id := range d.facetTags {
		mark(at(&x.valueBits[fTag], id))
	}
	for _, id := range d.filterTags {
		mark(at(&x.tagFilter, id))
	}
}

func (x *catalogIndex) remove(listingID string) {
	s, ok := x.slot[listingID]
	if !ok {
		return
	}
	d := &x.docs[s]
	for _, lex := range d.terms {
		p := x.post[lex]
		if p == nil {
			continue
		}
		i := sort.Search(len(p.slots), func(i int) bool { return p.slots[i] >= s })
		if i < len(p.slots) && p.slots[i] == s {
			p.slots = slices.Delete(p.slots, i, i+1)
			p.tfn = slices.Delete(p.tfn, i, i+1)
		}
		if len(p.slots) == 0 {
			delete(x.post, lex)
			if j := sort.SearchStrings(x.vocab, lex); j < len(x.vocab) && x.vocab[j] == lex {
				x.vocab = slices.Delete(x.vocab, j, j+1)
			}
		}
	}
	x.markBits(s, d, false)
	x.lenSum -= d.length
	x.live--
	x.docs[s] = ixDoc{}
	x.meta[s] = ixMeta{}
	x.free = append(x.free, s)
	delete(x.slot, listingID)
	x.ordered = false
}

func (x *catalogIndex) order() {
	if x.ordered {
		return
	}
	x.newest, x.cheap = x.newest[:0], x.cheap[:0]
	for s := range x.docs {
		if x.docs[s].live {
			x.newest = append(x.newest, uint32(s))
			x.cheap = append(x.cheap, uint32(s))
		}
	}
	sort.Slice(x.newest, func(i, j int) bool {
		a, b := &x.docs[x.newest[i]].item, &x.docs[x.newest[j]].item
		if a.PublishedAt != b.PublishedAt {
			return a.PublishedAt > b.PublishedAt
		}
		return a.ListingID > b.ListingID
	})
	sort.Slice(x.cheap, func(i, j int) bool {
		a, b := &x.docs[x.cheap[i]].item, &x.docs[x.cheap[j]].item
		if a.PriceMinMicro != b.PriceMinMicro {
			return a.PriceMinMicro < b.PriceMinMicro
		}
		return a.ListingID < b.ListingID
	})
	x.byID = append(x.byID[:0], x.cheap...)
	slices.SortFunc(x.byID, func(a, b uint32) int { return strings.Compare(x.docs[a].item.ListingID, x.docs[b].item.ListingID) })
	x.idRank = grow(x.idRank, len(x.docs))
	for r, s := range x.byID {
		x.idRank[s] = uint32(r)
	}
	for f := range x.facets {
		values := x.facets[f].values
		if len(x.valueRank[f]) == len(values) {
			continue // values are never removed: the same number is the same set
		}
		ids := make([]uint32, len(values))
		for id := range ids {
			ids[id] = uint32(id)
		}
		slices.SortFunc(ids, func(a, b uint32) int { return strings.Compare(values[a], values[b]) })
		x.valueByRank[f] = ids
		x.valueRank[f] = make([]uint32, len(values))
		for r, id := range ids {
			x.valueRank[f][id] = uint32(r)
		}
	}
	x.ordered = true
}

// facetTags splits the catalogue's JSON tag array as the SQL path's facet counter does.
func facetTags(tags string) []string {
	t := strings.Trim(tags, "[]")
	if t == "" {
		return nil
	}
	parts := strings.Split(t, ",")
	for i, p := range parts {
		parts[i] = strings.Trim(p, `"`)
	}
	return parts
}

// ixWord is one query word as the engine analyses it: its English and French lexemes (Postgres; equal on
// SQLite), empty where the configuration drops it as a stop word.
type ixWord struct{ en, fr string }

// scratch is one search's working memory, pooled: the match bitmap, scores and facet counts.
type scratch struct {
	match  []uint64
	side   []uint64
	word   []uint64
	score  []float32
	counts [6][]int32
	hits   []uint32
	top    []uint64 // a facet's best values so far (facetResult's keys)
	keys   []uint64 // the best hits so far (topByScore's keys)
	slots  []uint32 // topByScore's answer
	seen   []ixKey  // the query lexemes scored so far
}

var scratchPool = sync.Pool{New: func() any { return &scratch{} }}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	s = s[:n]
	clear(s)
	return s
}

// search answers in from the index; words are q's analysed words (nil without text).
func (x *catalogIndex) search(in SearchInput, cur searchCursor, words []ixWord) SearchResult {
	x.mu.RLock()
	defer x.mu.RUnlock()
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	n := len(x.docs)
	nw := (n + 63) / 64
	text := len(words) > 0
	if text {
		sc.match = grow(sc.match, nw)
		sc.side = grow(sc.side, nw)
		sc.word = grow(sc.word, nw)
		sc.score = grow(sc.score, n)
		x.matchAndScore(sc, words)
	} else if in.Sort == "relevance" {
		in.Sort = "newest"
	}
	for f := range sc.counts {
		sc.counts[f] = grow(sc.counts[f], len(x.facets[f].values))
	}
	// Filter values are compared as the facets' value IDs: a value no entry has matches nothing.
	var want [6]int32
	for f := range want {
		want[f] = -1
	}
	for f, v := range [6]string{fKind: in.Kind, fLicense: in.License, fGPU: in.GPUModel, fResidency: in.Residency,
		fVendor: in.Vendor, fTag: strings.ToLower(in.Tag)} {
		if v == "" {
			continue
		}
		id, ok := x.facets[f].ids[v]
		if !ok {
			res := SearchResult{Items: []CatalogItem{}, page: x.page(in.render)}
			res.Facets = x.facetResult(sc, res.page)
			return res
		}
		want[f] = id
	}
	// The matches: the text's (or every live entry), visible to the viewer, with every filter's value, a word
	// of 64 entries at a time; then the price range, entry by entry.
	if !text {
		sc.match = grow(sc.match, nw)
		copy(sc.match, x.liveBits)
	}
	m := bitset(sc.match[:nw])
	m.and(x.liveBits)
	if !in.ViewerStaff {
		m.andEither(x.publicBits, x.privateTo[in.ViewerOrg])
	}
	for f, id := range want {
		switch {
		case id < 0:
		case f == fTag:
			m.and(bitAt(x.tagFilter, id))
		default:
			m.and(bitAt(x.valueBits[f], id))
		}
	}
	if in.PriceMin != nil || in.PriceMax != nil {
		m.each(func(s uint32) {
			if p := x.meta[s].price; (in.PriceMin != nil && p < *in.PriceMin) || (in.PriceMax != nil && p > *in.PriceMax) {
				m.put(s, false)
			}
		})
	}
	total := m.count()
	x.countFacets(sc, m, total)
	sc.hits = sc.hits[:0]
	if in.Sort == "relevance" {
		m.each(func(s uint32) { sc.hits = append(sc.hits, s) })
	}
	// A page's items (or scores) and bodies are allocated once, at their final size.
	size := min(in.Limit, total)
	res := SearchResult{Total: int64(total), page: x.page(in.render)}
	res.Facets = x.facetResult(sc, res.page)
	if p := res.page; p != nil {
		res.bodies, res.scores = p.bodies[:0], p.scores[:0]
	} else {
		res.bodies, res.Items = make([][]byte, 0, size), make([]CatalogItem, 0, size)
	}
	var last uint32 // the page's last slot so far, for its cursor
	add := func(s uint32) {
		last = s
		var score float64
		if text {
			score = float64(sc.score[s])
		}
		res.bodies = append(res.bodies, x.docs[s].body)
		if in.render {
			res.scores = append(res.scores, score)
			return
		}
		it := x.docs[s].item
		it.Score = score
		res.Items = append(res.Items, it)
	}
	if in.Sort == "relevance" {
		offset := max(cur.O, 0)
		top := x.topByScore(sc, offset+in.Limit+1)
		if offset < len(top) {
			page := top[offset:]
			for _, s := range page[:min(len(page), in.Limit)] {
				add(s)
			}
			if len(page) > in.Limit {
				res.NextCursor = nextCursor(x.docs[last].item, in.Sort, offset+in.Limit)
			}
		}
	} else {
		// Walk the sort order from the cursor, keeping matches.
		order := x.newest
		if in.Sort == "price" {
			order = x.cheap
		}
		start := 0
		if cur.ID != "" {
			start = sort.Search(len(order), func(i int) bool { return after(x.docs[order[i]].item, in.Sort, cur) })
		}
		for _, s := range order[start:] {
			if !m.has(s) {
				continue
			}
			if len(res.bodies) == in.Limit {
				res.NextCursor = nextCursor(x.docs[last].item, in.Sort, in.Limit)
				break
			}
			add(s)
		}
	}
	if res.Items == nil {
		res.Items = []CatalogItem{}
	}
	return res
}

// countFacets fills sc.counts over the matches m (total of them), each facet the cheaper way: entry by entry
// (a step per match) or value by value with the values' bitmaps (a word of 64 slots per value at a time). Facets
// of a few values (kind, licence, residency, GPU) are nearly always cheaper by value, vendors and tags by entry
// unless most entries match.
func (x *catalogIndex) countFacets(sc *scratch, m bitset, total int) {
	var byEntry, byValue [6]bool
	for f := range x.valueBits {
		if total*8 < len(x.valueBits[f])*len(m) {
			byEntry[f] = true
		} else {
			byValue[f] = true
		}
	}
	x.countEach(sc, m, byEntry)
	x.countByValue(sc, m, byValue)
}

// countEach adds each match's values of the facets in which to sc.counts.
func (x *catalogIndex) countEach(sc *scratch, m bitset, which [6]bool) {
	if which == [6]bool{} {
		return
	}
	c := &sc.counts
	m.each(func(s uint32) {
		e := &x.meta[s]
		for _, f := range [...]int{fKind, fLicense, fVendor, fGPU, fResidency} {
			if which[f] && e.facet[f] >= 0 {
				c[f][e.facet[f]]++
			}
		}
		if !which[fTag] {
			return
		}
		for _, v := range e.tags[:e.ntags] {
			c[fTag][v]++
		}
		if e.more {
			for _, v := range x.docs[s].facetTags[len(e.tags):] {
				c[fTag][v]++
			}
		}
	})
}

// countByValue sets sc.counts of the facets in which to the size of each value's bitmap intersected with the
// matches.
func (x *catalogIndex) countByValue(sc *scratch, m bitset, which [6]bool) {
	for f, bs := range x.valueBits {
		if !which[f] {
			continue
		}
		for id, b := range bs {
			sc.counts[f][id] = int32(m.andCount(b))
		}
	}
}

// bitset is a set of slots, 64 to a word; words past its length are empty.
type bitset []uint64

func (b *bitset) put(s uint32, on bool) {
	w := int(s / 64)
	if w >= len(*b) {
		if !on {
			return
		}
		*b = append(*b, make([]uint64, w+1-len(*b))...)
	}
	if on {
		(*b)[w] |= 1 << (s % 64)
	} else {
		(*b)[w] &^= 1 << (s % 64)
	}
}

func (b bitset) has(s uint32) bool {
	w := int(s / 64)
	return w < len(b) && b[w]&(1<<(s%64)) != 0
}

// and keeps in b the slots that are also in o.
func (b bitset) and(o bitset) {
	n := min(len(b), len(o))
	for i := range n {
		b[i] &= o[i]
	}
	clear(b[n:])
}

// andEither keeps in b the slots that are also in o or in p.
func (b bitset) andEither(o, p bitset) {
	for i := range b {
		var v uint64
		if i < len(o) {
			v = o[i]
		}
		if i < len(p) {
			v |= p[i]
		}
		b[i] &= v
	}
}

func (b bitset) count() int {
	n := 0
	for _, w := range b {
		n += bits.OnesCount64(w)
	}
	return n
}

// andCount counts the slots in both b and o.
func (b bitset) andCount(o bitset) int {
	n := 0
	for i := range min(len(b), len(o)) {
		n += bits.OnesCount64(b[i] & o[i])
	}
	return n
}

// each calls fn with every slot of b in ascending order.
func (b bitset) each(fn func(uint32)) {
	for i, w := range b {
		for w != 0 {
			t := bits.TrailingZeros64(w)
			w &= w - 1
			fn(uint32(i*64 + t))
		}
	}
}

func bitAt(bs []bitset, id int32) bitset {
	if int(id) < len(bs) {
		return bs[id]
	}
	return nil
}

func sameSides(words []ixWord) bool {
	for _, w := range words {
		if w.en != w.fr {
			return false
		}
	}
	return true
}

// matchAndScore leaves in sc.match the entries holding every non-stop word of one language or of the other (the
// last word as a prefix; a language whose words are all stop words matches nothing, as an empty tsquery), and
// adds each distinct query lexeme's BM25 weight to the score of every entry holding it, walking each posting
// once for both. sc.side holds the French side's matches while they are built, sc.word one word's.
func (x *catalogIndex) matchAndScore(sc *scratch, words []ixWord) {
	french := !sameSides(words)
	n := float64(x.live)
	sc.seen = sc.seen[:0]
	var started [2]bool
	for i, w := range words {
		prefix := i == len(words)-1
		for side, lex := range [2]string{w.en, w.fr} {
			if lex == "" || (side == 1 && !french) {
				continue
			}
			acc := sc.match
			if side == 1 {
				acc = sc.side
			}
			// The first word of a side is written into the side itself; later ones are intersected with it.
			dst := sc.word
			if !started[side] {
				dst = acc
			}
			clear(dst)
			k := ixKey{lex, prefix}
			score := !slices.Contains(sc.seen, k)
			if score {
				sc.seen = append(sc.seen, k)
			}
			scores := sc.score
			x.eachPosting(lex, prefix, func(p *posting) {
				if !score {
					for _, s := range p.slots {
						dst[s/64] |= 1 << (s % 64)
					}
					return
				}
				df := float64(len(p.slots))
				idf := float32(math.Log(1 + (n-df+0.5)/(df+0.5)))
				// Locals and one length: the loop (most of a text search) runs without reloading slices or
				// checking tfn's bounds.
				tfn := p.tfn[:len(p.slots)]
				for j, s := range p.slots {
					dst[s/64] |= 1 << (s % 64)
					scores[s] += idf * tfn[j]
				}
			})
			if started[side] {
				for j := range acc {
					acc[j] &= dst[j]
				}
			}
			started[side] = true
		}
	}
	if !started[0] {
		clear(sc.match)
	}
	if french {
		if !started[1] {
			clear(sc.side)
		}
		for j := range sc.match {
			sc.match[j] |= sc.side[j]
		}
	}
}

// ixKey is a query lexeme as scored: the last word's is a prefix.
type ixKey struct {
	lex    string
	prefix bool
}

// eachPosting calls fn with the posting of lex, or with those of every lexeme starting with it.
func (x *catalogIndex) eachPosting(lex string, prefix bool, fn func(*posting)) {
	if !prefix {
		if p := x.post[lex]; p != nil {
			fn(p)
		}
		return
	}
	for i := sort.SearchStrings(x.vocab, lex); i < len(x.vocab) && strings.HasPrefix(x.vocab[i], lex); i++ {
		fn(x.post[x.vocab[i]])
	}
}

// topByScore returns the k best hits by score, then listing ID, in sc's memory (valid until sc is reused). Each
// hit is compared as one integer: its score's bits above (a BM25 score is never negative, and non-negative
// floats order as their bits do) and its listing ID's rank, inverted, below.
func (x *catalogIndex) topByScore(sc *scratch, k int) []uint32 {
	key := func(s uint32) uint64 { return uint64(math.Float32bits(sc.score[s]))<<32 | uint64(^x.idRank[s]) }
	slot := func(key uint64) uint32 { return x.byID[^uint32(key)] }
	var keys []uint64
	if k >= len(sc.hits)/4 {
		keys = grow(sc.keys, len(sc.hits))
		for i, s := range sc.hits {
			keys[i] = key(s)
		}
		slices.Sort(keys)
		slices.Reverse(keys)
		keys = keys[:min(k, len(keys))]
	} else {
		// Fewer than a quarter: keep the best k so far, best first, as inverted keys (ascending, for
		// slices.BinarySearch).
		keys = sc.keys[:0]
		for _, s := range sc.hits {
			kk := ^key(s)
			if len(keys) == k && kk >= keys[k-1] {
				continue
			}
			i, _ := slices.BinarySearch(keys, kk)
			if len(keys) < k {
				keys = append(keys, 0)
			}
			copy(keys[i+1:], keys[i:len(keys)-1])
			keys[i] = kk
		}
		for i := range keys {
			keys[i] = ^keys[i]
		}
	}
	sc.keys = keys
	top := grow(sc.slots, len(keys))
	for i, kk := range keys {
		top[i] = slot(kk)
	}
	sc.slots = top
	return top
}

// facetResult lists each facet's values by count, then value; at most 25 per facet (as facetCounter.result).
// Only the best 25 are kept as the counts are read, so a facet of many values (tags) is never sorted whole.
// The lists are carved from page when there is one.
func (x *catalogIndex) facetResult(sc *scratch, page *renderPage) map[string][]FacetValue {
	const keep = facetKeep
	var (
		out  map[string][]FacetValue
		vals []FacetValue
	)
	if page != nil {
		out, vals = page.lists, page.values[:0]
		clear(out)
	} else {
		out = make(map[string][]FacetValue, len(FacetNames))
	}
	for f, name := range FacetNames {
		values, rank := x.facets[f].values, x.valueRank[f]
		// A value is compared as one integer: its count above, its rank in the facet's order, inverted, below.
		top := sc.top[:0]
		for id, c := range sc.counts[f] {
			if c == 0 {
				continue
			}
			kk := uint64(c)<<32 | uint64(^rank[id])
			if len(top) == keep && kk <= top[keep-1] {
				continue
			}
			// At most 25 to step over: a linear walk from the end beats a binary search's calls.
			if len(top) < keep {
				top = append(top, 0)
			}
			i := len(top) - 1
			for ; i > 0 && top[i-1] < kk; i-- {
				top[i] = top[i-1]
			}
			top[i] = kk
		}
		sc.top = top
		var list []FacetValue
		if page != nil {
			list, vals = vals[len(vals):len(vals)+len(top):len(vals)+len(top)], vals[:len(vals)+len(top)]
		} else {
			list = make([]FacetValue, len(top))
		}
		for i, kk := range top {
			id := x.valueByRank[f][^uint32(kk)]
			list[i] = FacetValue{Value: values[id], Count: int64(kk >> 32)}
			if f == fVendor {
				list[i].Label = x.labels[int32(id)]
			}
		}
		out[name] = list
	}
	return out
}

// facetKeep is the most values listed per facet.
const facetKeep = 25

// renderPage is the memory of one answer that is rendered as soon as it is found (SearchInput.render): its
// facet lists, bodies and scores, pooled, given back by SearchResult.release.
type renderPage struct {
	lists  map[string][]FacetValue
	values []FacetValue
	bodies [][]byte
	scores []float64
}

var renderPages = sync.Pool{New: func() any {
	// Never nil, so that a rendered result with no items still reads as one of scores.
	return &renderPage{lists: make(map[string][]FacetValue, len(FacetNames)), values: make([]FacetValue, 0, len(FacetNames)*facetKeep),
		bodies: make([][]byte, 0, web.DefaultLimit), scores: make([]float64, 0, web.DefaultLimit)}
}}

// page is a pooled renderPage when render is set, else nil.
func (x *catalogIndex) page(render bool) *renderPage {
	if !render {
		return nil
	}
	return renderPages.Get().(*renderPage)
}
