package marketplace

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/dbtest"
	"github.com/tamarack-ai/tamarack/platform/natstest"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
)

// BenchmarkCatalogueSearch: a text query and two filters (kind, licence) with facet counts over 10,000
// published listings, on each engine of this environment (Postgres when TAMARACK_TEST_POSTGRES is set):
// the in-process index, the database's own search (-sql), and the answer cache (-cached).
func BenchmarkCatalogueSearch(b *testing.B) {
	for _, d := range dbtest.Dialects() {
		db := dbtest.Open(b, d, migrations()...)
		blobs, err := NewLocalStore(b.TempDir())
		must(b, err)
		bus := natstest.Start(b)
		svc, err := New(Deps{DB: db, Bus: bus, Blobs: blobs, Clock: clockSystem{}, Config: Config{SearchCacheTTL: -1}})
		must(b, err)
		sql, err := New(Deps{DB: db, Bus: bus, Blobs: blobs, Clock: clockSystem{}, Config: Config{SearchCacheTTL: -1, SearchEngine: "sql"}})
		must(b, err)
		cached, err := New(Deps{DB: db, Bus: bus, Blobs: blobs, Clock: clockSystem{}, Config: Config{SearchCacheTTL: time.Minute}})
		must(b, err)
		ctx := context.Background()
		must(b, svc.BulkPublish(ctx, 10_000, rand.New(rand.NewPCG(1, 2))))
		if d == sqldb.Postgres {
			must(b, db.Exec("ANALYZE").Error)
		}
		run := func(name string, svc *Service) {
			b.Run(name, func(b *testing.B) {
				b.ReportAllocs()
				var hits int64
				for i := 0; b.Loop(); i++ {
					body, err := svc.CatalogueJSON(ctx, SearchInput{Q: benchWords[i%len(benchWords)], Kind: KindModel, License: "Apache-2.0", Limit: 20})
					if err != nil || len(body) == 0 {
						b.Fatal(err)
					}
					hits++
				}
				_ = hits
			})
		}
		// The index and the engine's SQL (no cache), then the service as deployed (answers cached for a while).
		run(string(d), svc)
		run(string(d)+"-sql", sql)
		run(string(d)+"-cached", cached)
	}
}

// BenchmarkCatalogueSearchVaried: the query mix of the equivalence test (English and French words, some cut
// short, filters, sorts, viewers; first pages) over 10,000 listings, answered by the index and by SQL, without
// the answer cache and without HTTP: the engine's own cost per search.
func BenchmarkCatalogueSearchVaried(b *testing.B) {
	for _, d := range dbtest.Dialects() {
		db := dbtest.Open(b, d, migrations()...)
		blobs, err := NewLocalStore(b.TempDir())
		must(b, err)
		bus := natstest.Start(b)
		ctx := context.Background()
		for _, engine := range []string{"index", "sql"} {
			svc, err := New(Deps{DB: db, Bus: bus, Blobs: blobs, Clock: clockSystem{}, Config: Config{SearchCacheTTL: -1, SearchEngine: engine}})
			must(b, err)
			if engine == "index" {
				must(b, svc.BulkPublish(ctx, 10_000, rand.New(rand.NewPCG(1, 2))))
				if d == sqldb.Postgres {
					must(b, db.Exec("ANALYZE").Error)
				}
			}
			rng := rand.New(rand.NewPCG(5, 8))
			queries := make([]SearchInput, 512)
			for i := range queries {
				queries[i] = randomQuery(rng, []string{"org_bench_vendor_07", "org_bench_vendor_21"})
				if _, err := svc.Search(ctx, queries[i]); err != nil { // warm: the index, the word analyses
					b.Fatal(err)
				}
			}
			b.Run(string(d)+"-"+engine, func(b *testing.B) {
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					if _, err := svc.Search(ctx, queries[i%len(queries)]); err != nil {
						b.Fatal(err)
					}
				}
			})
			// The HTTP handler's path: the answer rendered into a reused buffer.
			b.Run(string(d)+"-"+engine+"-render", func(b *testing.B) {
				b.ReportAllocs()
				var buf []byte
				for i := 0; b.Loop(); i++ {
					var err error
					if buf, err = svc.AppendCatalogueJSON(ctx, buf[:0], queries[i%len(queries)]); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
