package marketplace

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/dbtest"
	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/natstest"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/platform/web"
	"github.com/tamarack-ai/tamarack/services/events"
)

// searchBoth answers in through the index and through SQL, as Search does (validation, default limit, cursor).
func searchBoth(t *testing.T, s *Service, in SearchInput) (idx, sql SearchResult) {
	t.Helper()
	must(t, in.Validate())
	if in.Limit <= 0 {
		in.Limit = web.DefaultLimit
	}
	var cur searchCursor
	if in.Cursor != "" {
		must(t, web.DecodeCursor(in.Cursor, &cur))
	}
	ctx := context.Background()
	x, err := s.index.ready(ctx)
	must(t, err)
	var words []ixWord
	if w := terms(in.Q); len(w) > 0 {
		var ok bool
		words, ok, err = s.index.analyse(ctx, w)
		must(t, err)
		if !ok {
			t.Fatalf("q=%q: the index refused ordinary words", in.Q)
		}
	}
	idx = x.search(in, cur, words)
	sql, err = s.searchSQL(ctx, in, cur)
	must(t, err)
	return idx, sql
}

// withoutScores clears what may differ between the engines: the score, and the tags the index keeps decoded.
func withoutScores(items []CatalogItem) []CatalogItem {
	out := slices.Clone(items)
	for i := range out {
		out[i].Score = 0
		out[i].tagList = nil
	}
	return out
}

// randomQuery draws a catalogue query: English and French words (some cut short, as typed, some stop words,
// some capitalised or accented), filters, a sort, a page size and a viewer.
func randomQuery(rng *rand.Rand, vendors []string) SearchInput {
	var in SearchInput
	vocab := [][]string{benchWords, BenchWordsFr, {"the", "and", "le", "les", "des", "pour", "of"}, {"modele", "meteo", "Érable", "CANADA", "salmon's", "zzzz", "h100"}}
	if rng.IntN(5) > 0 {
		var ws []string
		for range 1 + rng.IntN(3) {
			v := vocab[rng.IntN(len(vocab))]
			if rng.IntN(3) == 0 {
				v = vocab[rng.IntN(2)]
			}
			ws = append(ws, v[rng.IntN(len(v))])
		}
		if last := []rune(ws[len(ws)-1]); rng.IntN(3) == 0 && len(last) > 2 {
			ws[len(ws)-1] = string(last[:1+rng.IntN(len(last)-1)])
		}
		in.Q = strings.Join(ws, " ")
	}
	pick := func(p int, vals ...string) string {
		if rng.IntN(100) < p {
			return vals[rng.IntN(len(vals))]
		}
		return ""
	}
	in.Kind = pick(40, KindModel, KindDataset, KindCompute)
	in.License = pick(25, "Apache-2.0", "MIT", "CC-BY-4.0", "custom", "apache-2.0")
	in.Residency = pick(20, "CA", "ca", "US", "FR")
	in.GPUModel = pick(5, GPUModels...)
	in.Tag = pick(10, benchWords...)
	in.Vendor = pick(8, vendors...)
	if rng.IntN(8) == 0 {
		p := int64(rng.IntN(200)) * 250_000
		in.PriceMax = &p
	}
	if rng.IntN(12) == 0 {
		p := int64(rng.IntN(100)) * 250_000
		in.PriceMin = &p
	}
	in.Sort = pick(60, "newest", "price")
	if in.Sort == "" && in.Q != "" && rng.IntN(2) == 0 {
		in.Sort = "relevance"
	}
	in.Limit = []int{0, 1, 7, 20, 50}[rng.IntN(5)]
	switch rng.IntN(4) {
	case 0:
		in.ViewerOrg = orgSME
	case 1:
		in.ViewerOrg = orgVendor2
	case 2:
		in.ViewerStaff = true
	}
	return in
}

// compareSearch walks every page of in through both paths: the same totals and facets on every page, the same
// pages (items and cursors) for newest and price; for relevance, whose score differs by design, the same
// listings over the walk with none repeated.
func compareSearch(t *testing.T, s *Service, in SearchInput) {
	t.Helper()
	seenIdx, seenSQL := map[string]bool{}, map[string]bool{}
	cursorIdx, cursorSQL := "", ""
	for page := 0; ; page++ {
		a, b := in, in
		a.Cursor, b.Cursor = cursorIdx, cursorSQL
		idx, _ := searchBoth(t, s, a)
		_, sql := searchBoth(t, s, b)
		name := fmt.Sprintf("%+v page %d", in, page)
		if idx.Total != sql.Total {
			t.Fatalf("%s: total %d, SQL %d", name, idx.Total, sql.Total)
		}
		if !reflect.DeepEqual(idx.Facets, sql.Facets) {
			t.Fatalf("%s: facets\n%v\nSQL\n%v", name, idx.Facets, sql.Facets)
		}
		// The index answers with the bodies it rendered when each listing was indexed (or its vendor renamed):
		// they must be what encoding/json writes for the items as they are now.
		if len(idx.bodies) != len(idx.Items) {
			t.Fatalf("%s: %d rendered bodies for %d items", name, len(idx.bodies), len(idx.Items))
		}
		if want, err := json.Marshal(toSearchJSON(idx)); err != nil || !bytes.Equal(appendSearchJSON(nil, idx), want) {
			t.Fatalf("%s: the index's body\n%s\nencoding/json (%v)\n%s", name, appendSearchJSON(nil, idx), err, want)
		}
		// What the HTTP handler sends (the index asked for bodies and scores only) is that same body.
		if got, err := s.AppendCatalogueJSON(context.Background(), nil, a); err != nil || !bytes.Equal(got, appendSearchJSON(nil, idx)) {
			t.Fatalf("%s: rendered for HTTP (%v)\n%s\nfrom the items\n%s", name, err, got, appendSearchJSON(nil, idx))
		}
		if len(idx.Items) != len(sql.Items) || (idx.NextCursor == "") != (sql.NextCursor == "") {
			t.Fatalf("%s: %d items (next %q), SQL %d (next %q)", name, len(idx.Items), idx.NextCursor, len(sql.Items), sql.NextCursor)
		}
		relevance := in.Q != "" && (in.Sort == "relevance" || in.Sort == "") && len(terms(in.Q)) > 0
		if !relevance && (!reflect.DeepEqual(withoutScores(idx.Items), withoutScores(sql.Items)) || idx.NextCursor != sql.NextCursor) {
			t.Fatalf("%s: pages differ\n%v\nSQL\n%v", name, idx.Items, sql.Items)
		}
		for _, it := range idx.Items {
			if seenIdx[it.ListingID] {
				t.Fatalf("%s: %s repeated", name, it.ListingID)
			}
			seenIdx[it.ListingID] = true
		}
		for _, it := range sql.Items {
			seenSQL[it.ListingID] = true
		}
		if idx.NextCursor == "" {
			break
		}
		cursorIdx, cursorSQL = idx.NextCursor, sql.NextCursor
		if page == 10 { // long walks (one item a page) are cut short: pages compared so far stand
			return
		}
	}
	if !reflect.DeepEqual(seenIdx, seenSQL) {
		t.Fatalf("%+v: the walks found %d and %d (SQL) listings, not the same", in, len(seenIdx), len(seenSQL))
	}
}

// TestSearchIndexMatchesSQL: on a seeded catalogue with English and French text, restricted, gated, suspended
// and retired listings, a hundred random queries (of every filter, sort, page size and viewer) answer the same through the in-process index as through SQL
// on each engine, before and after the catalogue changes under the index.
func TestSearchIndexMatchesSQL(t *testing.T) {
	t.Parallel()
	each(t, Config{SearchCacheTTL: -1}, func(t *testing.T, e *env) {
		ctx := context.Background()
		must(t, e.svc.BulkPublish(ctx, 400, rand.New(rand.NewPCG(3, 5))))
		var vendors []string
		must(t, e.db.Raw(`SELECT DISTINCT vendor_org_id FROM market_catalog ORDER BY vendor_org_id LIMIT 5`).Scan(&vendors).Error)
		vendors = append(vendors, orgVendor, orgVendor2)

		publish := func(slug, title, titleFr, summaryFr, visibility string, gated bool) listingOut {
			m := modelListing(slug)
			m["title"], m["title_fr"], m["summary_fr"] = title, titleFr, summaryFr
			m["tags"] = []string{"salmon", "quebec-north"}
			if visibility != "" {
				m["visibility"] = visibility
				m["visible_to"] = []string{orgSME}
			}
			if gated {
				m["gated"] = true
			}
			return e.publishListing(m, nil)
		}
		publish("meteo-erable", "Maple weather", "Modèle météo de l'érable", "Prévisions des gelées pour les vergers du Québec", "", false)
		publish("saumon-prive", "Private salmon counts", "Comptage privé des saumons", "Les saumons des rivières", "restricted", false)
		publish("gated-speech", "Gated speech model", "Modèle de parole", "Reconnaissance de la parole", "", true)
		gone := publish("soon-suspended", "Salmon forecasting", "Prévision du saumon", "Saumons et rivières", "", false)
		retired := publish("soon-retired", "Canola imagery", "Imagerie du canola", "Champs de canola", "", false)
		// More tags than the index keeps beside its filters (four): the rest are counted from the entry itself.
		many := modelListing("many-tags")
		many["title"], many["tags"] = "Salmon rivers of the north", []string{"salmon", "quebec-north", "rivers", "frost", "maple", "north"}
		e.publishListing(many, nil)

		rng := rand.New(rand.NewPCG(11, 13))
		queries := make([]SearchInput, 100)
		for i := range queries {
			queries[i] = randomQuery(rng, vendors)
		}
		for _, q := range queries {
			compareSearch(t, e.svc, q)
		}
		// Changes after the index was built: a suspension, a retirement, a new restricted listing, a renamed vendor.
		expect(t, e.do(staff, "POST", "listings/"+gone.ID+"/suspend", map[string]any{"reason": "checking"}), 200, "")
		expect(t, e.do(vendorAdmin, "POST", "listings/"+retired.ID+"/retire", nil), 200, "")
		publish("late-restricted", "Late salmon weather", "Météo tardive", "Gelées et saumons", "restricted", false)
		must(t, e.svc.ApplyOrganizationCreated(ctx, "rename-1", events.OrganizationCreatedV1{OrganizationID: orgVendor, Name: "Aurora AI Renamed", Kind: "vendor", At: e.clock.Now()}))
		for _, q := range queries[:50] {
			compareSearch(t, e.svc, q)
		}
		for _, q := range []string{"saumon", "salmon", "météo", "meteo", "prévision", "érable", "the", "le", "gelée"} {
			compareSearch(t, e.svc, SearchInput{Q: q, ViewerOrg: orgSME})
			compareSearch(t, e.svc, SearchInput{Q: q, Sort: "newest", Limit: 3})
		}
	})
}

// TestSearchIndexReplicasConverge: two marketplace processes on one database and one JetStream, each with its
// own index. A listing published, then suspended, through one shows in, then leaves, the other's index; an
// organisation's new name reaches both; on every engine, on the embedded and the configured NATS server.
func TestSearchIndexReplicasConverge(t *testing.T) {
	t.Parallel()
	natstest.Each(t, func(t *testing.T, bus *eventbus.Bus) {
		dbtest.Each(t, migrations(), func(t *testing.T, db *gorm.DB) {
			a := newEnvBus(t, db, bus, Config{SearchCacheTTL: -1})
			b := newEnvBus(t, db, bus, Config{SearchCacheTTL: -1})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 2)
			for _, e := range []*env{a, b} {
				go func() { done <- e.svc.Run(ctx) }()
			}
			t.Cleanup(func() { cancel(); <-done; <-done })

			find := func(e *env, q string) []CatalogItem {
				idx, sql := searchBoth(t, e.svc, SearchInput{Q: q, Sort: "newest"})
				_ = sql
				return idx.Items
			}
			// Both indexes exist before the write (built on first use), so only events can bring it to b.
			if len(find(a, "zircon")) != 0 || len(find(b, "zircon")) != 0 {
				t.Fatal("zircon found before it was published")
			}
			m := modelListing("zircon-scope")
			m["title"], m["title_fr"] = "Zircon telescope imagery", "Imagerie du télescope zircon"
			l := a.publishListing(m, nil)
			if got := find(a, "zircon"); len(got) != 1 {
				t.Fatalf("the writing replica finds %d", len(got))
			}
			eventually(t, "the other replica's index to show the published listing", func() bool {
				got := find(b, "télescope")
				return len(got) == 1 && got[0].ListingID == l.ID
			})
			expect(t, a.do(staff, "POST", "listings/"+l.ID+"/suspend", map[string]any{"reason": "check"}), 200, "")
			eventually(t, "the other replica's index to drop the suspended listing", func() bool { return len(find(b, "zircon")) == 0 })

			// A renamed organisation reaches every replica's entries (the consumer updates the rows once).
			m2 := modelListing("zircon-two")
			m2["title"] = "Zircon second"
			a.publishListing(m2, nil)
			eventually(t, "the second listing on b", func() bool { return len(find(b, "zircon")) == 1 })
			must(t, eventbus.Publish(ctx, bus, events.OrganizationCreated, "test", "rename-"+l.ID, time.Now(),
				events.OrganizationCreatedV1{OrganizationID: orgVendor, Name: "Aurora Renamed", Kind: "vendor", At: time.Now()}))
			for _, e := range []*env{a, b} {
				eventually(t, "the new vendor name in both indexes", func() bool {
					got := find(e, "zircon")
					return len(got) == 1 && got[0].VendorName == "Aurora Renamed"
				})
			}
			eventually(t, "the new vendor name in the table", func() bool {
				_, sql := searchBoth(t, b.svc, SearchInput{Q: "zircon"})
				return len(sql.Items) == 1 && sql.Items[0].VendorName == "Aurora Renamed"
			})
		})
	})
}

// TestFacetCountersAgree: the two ways of counting facets (entry by entry for few matches, value bitmap by value
// bitmap for many) give the same counts for random match sets, from none to every live entry.
func TestFacetCountersAgree(t *testing.T) {
	t.Parallel()
	e := seededUncached(t, 300, 7)
	ctx := context.Background()
	x, err := e.svc.index.ready(ctx)
	must(t, err)
	rng := rand.New(rand.NewPCG(1, 4))
	for _, keep := range []int{0, 1, 5, 50, 100} {
		m := slices.Clone(x.liveBits)
		m.each(func(s uint32) {
			if rng.IntN(100) >= keep {
				m.put(s, false)
			}
		})
		var each, byValue scratch
		for f := range each.counts {
			each.counts[f] = make([]int32, len(x.facets[f].values))
			byValue.counts[f] = make([]int32, len(x.facets[f].values))
		}
		all := [6]bool{true, true, true, true, true, true}
		x.countEach(&each, m, all)
		x.countByValue(&byValue, m, all)
		if !reflect.DeepEqual(each.counts, byValue.counts) {
			t.Fatalf("keeping %d%% of %d entries: counts entry by entry %v, by value %v", keep, x.liveBits.count(), each.counts, byValue.counts)
		}
		// The search's own choice, facet by facet, counts the same.
		var chosen scratch
		for f := range chosen.counts {
			chosen.counts[f] = make([]int32, len(x.facets[f].values))
		}
		x.countFacets(&chosen, m, m.count())
		if !reflect.DeepEqual(chosen.counts, each.counts) {
			t.Fatalf("keeping %d%% of %d entries: counts as chosen %v, entry by entry %v", keep, x.liveBits.count(), chosen.counts, each.counts)
		}
		if keep == 100 && m.count() != x.live {
			t.Fatalf("every live entry: %d in the bitmap, %d live", m.count(), x.live)
		}
	}
}

// TestSearchScoresAreBM25: relevance pages hold exactly the entries a plain reading of the index's postings
// matches (every word of the English side or every word of the French one, the last as a prefix), ranked by
// the BM25 sum over the query's distinct lexemes, then listing ID, with those scores. The SQL comparison cannot
// check this: the engines rank differently by design.
func TestSearchScoresAreBM25(t *testing.T) {
	t.Parallel()
	each(t, Config{SearchCacheTTL: -1}, func(t *testing.T, e *env) {
		ctx := context.Background()
		must(t, e.svc.BulkPublish(ctx, 300, rand.New(rand.NewPCG(21, 34))))
		x, err := e.svc.index.ready(ctx)
		must(t, err)
		rng := rand.New(rand.NewPCG(8, 13))
		checked := 0
		for range 80 {
			q := randomQuery(rng, []string{orgVendor}).Q
			if q == "" {
				continue
			}
			words, ok, err := e.svc.index.analyse(ctx, terms(q))
			must(t, err)
			if !ok || len(words) == 0 {
				continue
			}
			type hit struct {
				id    string
				score float32
			}
			var want []hit
			for s := range x.docs {
				d := &x.docs[s]
				if !d.live {
					continue
				}
				has := func(lex string, prefix bool) bool {
					return slices.ContainsFunc(d.terms, func(t string) bool { return t == lex || (prefix && strings.HasPrefix(t, lex)) })
				}
				matches := func(side int) bool {
					any := false
					for i, w := range words {
						lex := [2]string{w.en, w.fr}[side]
						if lex == "" {
							continue
						}
						any = true
						if !has(lex, i == len(words)-1) {
							return false
						}
					}
					return any
				}
				if !matches(0) && !matches(1) {
					continue
				}
				var score float32
				var seen []ixKey
				for i, w := range words {
					for _, lex := range [2]string{w.en, w.fr} {
						k := ixKey{lex, i == len(words)-1}
						if lex == "" || slices.Contains(seen, k) {
							continue
						}
						seen = append(seen, k)
						for _, v := range x.vocab {
							if v != lex && !(k.prefix && strings.HasPrefix(v, lex)) {
								continue
							}
							p := x.post[v]
							if j, found := slices.BinarySearch(p.slots, uint32(s)); found {
								df := float64(len(p.slots))
								score += float32(math.Log(1+(float64(x.live)-df+0.5)/(df+0.5))) * p.tfn[j]
							}
						}
					}
				}
				want = append(want, hit{d.item.ListingID, score})
			}
			slices.SortFunc(want, func(a, b hit) int {
				if a.score != b.score {
					if a.score > b.score {
						return -1
					}
					return 1
				}
				return strings.Compare(a.id, b.id)
			})
			res, err := e.svc.Search(ctx, SearchInput{Q: q, Sort: "relevance", ViewerStaff: true, Limit: 50})
			must(t, err)
			if int(res.Total) != len(want) {
				t.Fatalf("%q: total %d, a plain reading of the postings matches %d", q, res.Total, len(want))
			}
			for i, it := range res.Items {
				if it.ListingID != want[i].id || math.Abs(it.Score-float64(want[i].score)) > 1e-6*math.Abs(float64(want[i].score)) {
					t.Fatalf("%q: item %d is %s scored %v, want %s scored %v", q, i, it.ListingID, it.Score, want[i].id, want[i].score)
				}
			}
			if len(res.Items) != min(50, len(want)) {
				t.Fatalf("%q: %d items of %d matches", q, len(res.Items), len(want))
			}
			checked++
		}
		if checked < 30 {
			t.Fatalf("only %d of the random queries had text the index analyses", checked)
		}
	})
}

// TestUncachedAnswersMatchCached: without the answer cache the handler renders into a reused buffer; over
// interleaved requests of different sizes its bodies are byte for byte what the cached path answers, with the
// JSON content type, on both engines.
func TestUncachedAnswersMatchCached(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, migrations(), func(t *testing.T, db *gorm.DB) {
		off := newEnv(t, db, Config{SearchCacheTTL: -1})
		on := newEnv(t, db, Config{SearchCacheTTL: time.Minute})
		must(t, off.svc.BulkPublish(context.Background(), 120, rand.New(rand.NewPCG(2, 3))))
		paths := []string{"listings?limit=50", "listings?q=zzzz", "listings?q=weather&limit=3", "listings?kind=dataset&sort=price",
			"listings?limit=50&sort=newest", "listings?q=lang"}
		for round := range 3 {
			for _, p := range paths {
				a, b := off.do(anon, "GET", p, nil), on.do(anon, "GET", p, nil)
				expect(t, a, 200, "")
				if !bytes.Equal(a.Body, b.Body) {
					t.Fatalf("round %d, %s: uncached answer\n%s\ncached\n%s", round, p, a.Body, b.Body)
				}
				if ct := a.Header.Get("Content-Type"); ct != "application/json" {
					t.Fatalf("%s: content type %q", p, ct)
				}
			}
		}
	})
}

// TestConcurrentRendersKeepTheirAnswers: answers rendered for HTTP borrow pooled memory (their facet lists,
// bodies and scores) and give it back once written. Searches rendered from many goroutines at once each get the
// answer the same query gets alone.
func TestConcurrentRendersKeepTheirAnswers(t *testing.T) {
	t.Parallel()
	e := seededUncached(t, 300, 4)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(8, 9))
	queries := make([]SearchInput, 40)
	alone := make([][]byte, len(queries))
	for i := range queries {
		queries[i] = randomQuery(rng, []string{"org_bench_vendor_07", "org_bench_vendor_21"})
		body, err := e.svc.AppendCatalogueJSON(ctx, nil, queries[i])
		must(t, err)
		alone[i] = body
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			var buf []byte
			for round := range 200 {
				i := (g*7 + round) % len(queries)
				var err error
				if buf, err = e.svc.AppendCatalogueJSON(ctx, buf[:0], queries[i]); err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(buf, alone[i]) {
					errs <- fmt.Errorf("query %+v: concurrently\n%s\nalone\n%s", queries[i], buf, alone[i])
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// seededUncached is a marketplace on SQLite without the answer cache, with n synthetic listings drawn from seed.
func seededUncached(t *testing.T, n int, seed uint64) *env {
	t.Helper()
	e := newEnv(t, dbtest.Open(t, sqldb.SQLite, migrations()...), Config{SearchCacheTTL: -1})
	must(t, e.svc.BulkPublish(context.Background(), n, rand.New(rand.NewPCG(seed, seed+2))))
	return e
}
