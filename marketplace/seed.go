package marketplace

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/platform/web"
)

// SeedInput names the demo vendor and its testbed pool.
type SeedInput struct {
	VendorOrgID, VendorName, VendorUserID string
	PoolID, PoolName, GPUModel, Region    string
	// PricePerGPUHourMicro of the compute listing (default 2.50 credits).
	PricePerGPUHourMicro int64
}

// SeedResult names what the seed made (or found from an earlier run).
type SeedResult struct {
	ComputeListingID, ModelListingID, DatasetListingID string
	// PendingListingID waits in the staff review queue, so the first tour has something to review.
	PendingListingID string
}

// SeedDemo publishes the demo catalogue idempotently (by slug): an accelerator-time listing of the demo pool,
// a model and a dataset with a free plan and a small artifact each. It bypasses the review queue but writes
// the published events, so the testbed and billing project them like any other listing. A fourth listing is
// submitted through the ordinary path and left waiting for review. It also records the
// vendor (verified) and the pool in the marketplace's projections, since their events may not have arrived.
func (s *Service) SeedDemo(ctx context.Context, in SeedInput) (SeedResult, error) {
	if in.VendorOrgID == "" {
		return SeedResult{}, fmt.Errorf("seed: no vendor organisation")
	}
	if in.GPUModel == "" {
		in.GPUModel = "h100-80gb"
	}
	if in.Region == "" {
		in.Region = "ca-central"
	}
	if in.PricePerGPUHourMicro == 0 {
		in.PricePerGPUHourMicro = 2_500_000
	}
	now := s.now()
	cols := []string{"kind", "verified", "updated_at"}
	if in.VendorName != "" {
		cols = append(cols, "name")
	}
	err := sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error {
		if err := tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "org_id"}},
			DoUpdates: clause.AssignmentColumns(cols)}).
			Create(&orgRow{OrgID: in.VendorOrgID, Name: in.VendorName, Kind: "vendor", Verified: true, UpdatedAt: now}).Error; err != nil {
			return err
		}
		if in.PoolID == "" {
			return nil
		}
		// The testbed's own pool event wins when it has arrived: record the pool only when it is missing, then
		// sell what the projection says it has.
		if err := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&poolRow{PoolID: in.PoolID, VendorOrgID: in.VendorOrgID,
			Name: in.PoolName, Region: in.Region, GPUModels: in.GPUModel, UpdatedAt: now}).Error; err != nil {
			return err
		}
		var p poolRow
		if err := tx.Where("pool_id = ?", in.PoolID).Take(&p).Error; err != nil {
			return err
		}
		if p.Region != "" {
			in.Region = p.Region
		}
		if models := strings.Split(p.GPUModels, ","); p.GPUModels != "" && !contains(models, in.GPUModel) && KnownGPUModel(models[0]) {
			in.GPUModel = models[0]
		}
		return nil
	})
	if err != nil {
		return SeedResult{}, err
	}
	a := web.Principal{UserID: firstNonEmpty(in.VendorUserID, "seed"), OrgID: in.VendorOrgID, OrgKind: "vendor", Role: "owner"}
	var res SeedResult
	if in.PoolID != "" {
		res.ComputeListingID, err = s.publishDirect(ctx, a, KindCompute, "demo-"+in.GPUModel+"-time", Content{
			Title:   strings.ToUpper(in.GPUModel) + " accelerator time in Canada",
			Summary: "On-demand sandboxes on the programme testbed's " + in.GPUModel + " nodes, billed per GPU-hour.",
			CardMarkdown: "## What you get\n\nA sandbox with 1 to 8 **" + in.GPUModel + "** GPUs, PyTorch or JupyterLab templates, " +
				"and a web terminal.\n\n- Billed per GPU-hour, metered every 15 seconds\n- Data stays in Canada\n",
			Tags: []string{"gpu", "training", "inference"}, License: License{SPDX: "custom", URL: "https://tamarack.dev/terms/compute"},
			Residency: "CA", Jurisdiction: "CA", CanadianIP: true, Visibility: "public",
			Compute: &ComputeDetails{PoolID: in.PoolID, GPUModel: in.GPUModel, VRAMGB: gpuVRAM[in.GPUModel], DevicesPerNode: 8,
				Region: in.Region, MinDurationMinutes: 15, MaxDurationMinutes: 24 * 60},
			Plans: []Plan{{Name: "Per GPU-hour", Kind: PlanPerGPUHour, PriceMicro: in.PricePerGPUHourMicro}},
		}, nil)
		if err != nil {
			return res, err
		}
	}
	res.ModelListingID, err = s.publishDirect(ctx, a, KindModel, "demo-maple-7b", Content{
		Title: "Maple 7B bilingual instruct", Summary: "A 7-billion-parameter English/French instruction-tuned language model.",
		CardMarkdown: "# Maple 7B\n\nFine-tuned for **bilingual** (EN/FR) instructions.\n\n| benchmark | score |\n|---|---|\n| MMLU | 61.2 |\n",
		Tags:         []string{"llm", "bilingual", "text-generation"}, License: License{SPDX: "Apache-2.0"},
		Residency: "CA", Jurisdiction: "CA", CanadianIP: true, Visibility: "public",
		Model: &ModelDetails{Framework: "pytorch", Task: "text-generation", Parameters: 7_000_000_000, BaseModel: "mistral-7b",
			Evaluations: []Evaluation{{Benchmark: "MMLU", Metric: "accuracy", Value: "61.2"}}},
		Plans: []Plan{{Name: "Research", Kind: PlanFree}, {Name: "Commercial", Kind: PlanOneTime, PriceMicro: 500_000_000}},
	}, map[string][]byte{"config.json": []byte(`{"architectures":["MistralForCausalLM"],"hidden_size":4096}` + "\n")})
	if err != nil {
		return res, err
	}
	res.DatasetListingID, err = s.publishDirect(ctx, a, KindDataset, "demo-prairie-crops", Content{
		Title: "Prairie crop yields 2010-2025", Summary: "Field-level crop yields and weather for Saskatchewan and Alberta.",
		CardMarkdown: "Yields per field and season with daily weather.\n\n```\nfield_id,season,crop,yield_t_ha\n```\n",
		Tags:         []string{"agriculture", "tabular", "weather"}, License: License{SPDX: "CC-BY-4.0"},
		Residency: "CA", Jurisdiction: "CA", Visibility: "public",
		Dataset: &DatasetDetails{Format: "csv", SizeBytes: 64, Rows: 2, Schema: "field_id,season,crop,yield_t_ha",
			SamplePreview: "F-001,2024,wheat,3.1"},
		Plans: []Plan{{Name: "Open", Kind: PlanFree}},
	}, map[string][]byte{"sample.csv": []byte("field_id,season,crop,yield_t_ha\nF-001,2024,wheat,3.1\nF-002,2024,canola,2.4\n")})
	if err != nil {
		return res, err
	}
	res.PendingListingID, err = s.submitDirect(ctx, a, CreateListingInput{Kind: KindDataset, Slug: "demo-boreal-imagery", Content: Content{
		Title: "Boreal forest aerial imagery", Summary: "Labelled drone images of boreal forest stands in northern Québec.",
		CardMarkdown: "Orthomosaics at 5 cm per pixel with species labels per stand.\n",
		Tags:         []string{"imagery", "forestry", "segmentation"}, License: License{SPDX: "CC-BY-4.0"},
		Residency: "CA", Jurisdiction: "CA", Visibility: "public",
		Dataset: &DatasetDetails{Format: "geotiff", SizeBytes: 12 << 30, Rows: 4200},
		Plans:   []Plan{{Name: "Research", Kind: PlanFree}},
	}})
	if err != nil {
		return res, err
	}
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.outbox.Flush(fctx); err != nil {
		s.log.Warn("seed: events stay in the outbox until the server relays them", "err", err)
	}
	return res, nil
}

// publishDirect creates a published listing without review, unless its slug exists (then it returns its ID).
func (s *Service) publishDirect(ctx context.Context, a web.Principal, kind, slug string, c Content, files map[string][]byte) (string, error) {
	var existing listingRow
	if err := s.db.WithContext(ctx).Where("slug = ?", slug).Take(&existing).Error; err == nil {
		return existing.ID, nil
	} else if !sqldb.IsNotFound(err) {
		return "", err
	}
	in := CreateListingInput{Kind: kind, Slug: slug, Content: c}
	if err := in.Validate(); err != nil {
		return "", fmt.Errorf("seed %s: %w", slug, err)
	}
	assignPlanIDs(in.Plans, nil)
	now := s.now()
	l := listingRow{ID: newID("lst"), VendorOrgID: a.OrgID, Kind: kind, Slug: slug, Status: StatusDraft, LatestVersion: 1,
		CreatedBy: a.UserID, CreatedAt: now, UpdatedAt: now}
	v := versionRow{ID: newID("ver"), ListingID: l.ID, Version: 1, State: StatePublished, Content: encodeContent(in.Content),
		CardHTML: RenderCard(in.CardMarkdown), CreatedBy: a.UserID, CreatedAt: now, UpdatedAt: now, SubmittedAt: &now,
		DecidedAt: &now, DecidedBy: "seed", Comment: "demo data"}
	var arts []artifactRow
	for name, b := range files {
		id := newID("art")
		key := "artifacts/" + id
		if _, err := s.blobs.Put(ctx, key, bytes.NewReader(b), "application/octet-stream"); err != nil {
			return "", err
		}
		sum := sha256.Sum256(b)
		arts = append(arts, artifactRow{ID: id, ListingID: l.ID, VersionID: v.ID, Name: name, BlobKey: key,
			SizeBytes: int64(len(b)), SHA256: hex.EncodeToString(sum[:]), ContentType: contentTypeOf(name, b),
			UploadedBy: a.UserID, CreatedAt: now})
	}
	err := sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error {
		if err := tx.Create(&l).Error; err != nil {
			return err
		}
		if err := tx.Create(&v).Error; err != nil {
			return err
		}
		for _, ar := range arts {
			if err := tx.Create(&ar).Error; err != nil {
				return err
			}
		}
		if err := writeHistory(tx, l, v, a, "seeded", contentFields(in.Content), "", now); err != nil {
			return err
		}
		return s.publish(tx, l, v, in.Content, a, now)
	})
	if err != nil {
		return "", err
	}
	s.catalogChanged(ctx, l.ID)
	s.outbox.Kick()
	return l.ID, nil
}

// submitDirect creates a listing and submits it for review through the ordinary path, unless its slug exists
// (then it returns its ID as it is, reviewed or not).
func (s *Service) submitDirect(ctx context.Context, a web.Principal, in CreateListingInput) (string, error) {
	var existing listingRow
	if err := s.db.WithContext(ctx).Where("slug = ?", in.Slug).Take(&existing).Error; err == nil {
		return existing.ID, nil
	} else if !sqldb.IsNotFound(err) {
		return "", err
	}
	l, err := s.CreateListing(ctx, a, in)
	if err != nil {
		return "", fmt.Errorf("seed %s: %w", in.Slug, err)
	}
	if _, err := s.Submit(ctx, a, l.Listing.ID); err != nil {
		return "", fmt.Errorf("seed %s: submit: %w", in.Slug, err)
	}
	return l.Listing.ID, nil
}

// BulkPublish fills the catalogue with n synthetic published listings from rng, in batches, without events or
// review: for benchmarks and load tests only. Listings use 50 synthetic vendors and a fixed vocabulary.
func (s *Service) BulkPublish(ctx context.Context, n int, rng *rand.Rand) error {
	kinds := []string{KindModel, KindDataset, KindCompute}
	licenses := []string{"Apache-2.0", "MIT", "CC-BY-4.0", "CC-BY-SA-4.0", "BSD-3-Clause", "OpenRAIL", "custom"}
	residencies := []string{"CA", "CA", "CA", "US", "FR", "DE"}
	word := func() string { return benchWords[rng.IntN(len(benchWords))] }
	words := func(k int) string {
		w := make([]string, k)
		for i := range w {
			w[i] = word()
		}
		return strings.Join(w, " ")
	}
	const batch = 500
	for start := 0; start < n; start += batch {
		err := sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error {
			for i := start; i < min(start+batch, n); i++ {
				kind := kinds[rng.IntN(len(kinds))]
				vendor := fmt.Sprintf("org_bench_vendor_%02d", rng.IntN(50))
				c := Content{Title: strings.ToUpper(word()[:1]) + words(4)[1:], Summary: words(14), CardMarkdown: words(60),
					Tags: uniq([]string{word(), word(), word()}), Residency: residencies[rng.IntN(len(residencies))],
					Visibility: "public", License: License{SPDX: licenses[rng.IntN(len(licenses))]}}
				if rng.IntN(2) == 0 { // half the catalogue also has a French title and summary
					fr := func(k int) string {
						w := make([]string, k)
						for i := range w {
							w[i] = BenchWordsFr[rng.IntN(len(BenchWordsFr))]
						}
						return strings.Join(w, " ")
					}
					c.TitleFr, c.SummaryFr = fr(4), fr(14)
				}
				if c.License.SPDX == "custom" {
					c.License.URL = "https://example.com/terms"
				}
				price := int64(rng.IntN(200)) * 250_000
				switch kind {
				case KindModel:
					c.Model = &ModelDetails{Framework: "pytorch", Task: word(), Parameters: int64(rng.IntN(70)+1) * 1e9}
					c.Plans = []Plan{{ID: newID("pln"), Name: "Standard", Kind: PlanOneTime, PriceMicro: price + 1}}
				case KindDataset:
					c.Dataset = &DatasetDetails{Format: "parquet", Rows: int64(rng.IntN(1e6))}
					c.Plans = []Plan{{ID: newID("pln"), Name: "Open", Kind: PlanFree}}
				case KindCompute:
					g := GPUModels[rng.IntN(len(GPUModels))]
					c.Compute = &ComputeDetails{PoolID: "pool_bench", GPUModel: g, VRAMGB: gpuVRAM[g], DevicesPerNode: 8,
						Region: "ca-central", MinDurationMinutes: 15, MaxDurationMinutes: 1440}
					c.Plans = []Plan{{ID: newID("pln"), Name: "Per GPU-hour", Kind: PlanPerGPUHour, PriceMicro: price + 1}}
				}
				at := s.now().Add(-time.Duration(rng.IntN(365*24)) * time.Hour)
				l := listingRow{ID: newID("lst"), VendorOrgID: vendor, Kind: kind, Slug: fmt.Sprintf("bench-%d-%d", i, rng.IntN(1e9)),
					Status: StatusPublished, LatestVersion: 1, CreatedBy: "bench", CreatedAt: at, UpdatedAt: at}
				v := versionRow{ID: newID("ver"), ListingID: l.ID, Version: 1, State: StatePublished, Content: encodeContent(c),
					CardHTML: RenderCard(c.CardMarkdown), CreatedBy: "bench", CreatedAt: at, UpdatedAt: at}
				l.PublishedVersionID = v.ID
				if err := tx.Create(&l).Error; err != nil {
					return err
				}
				if err := tx.Create(&v).Error; err != nil {
					return err
				}
				if err := putCatalog(tx, newCatalogRow(l, v, c, "Vendor "+vendor[len(vendor)-2:], at), c.Tags, nil); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	s.cache.invalidate()
	if s.index != nil && s.index.cur.Load() != nil {
		return s.index.rebuild(ctx)
	}
	return nil
}

func uniq(in []string) []string {
	var out []string
	for _, s := range in {
		if !contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func contentTypeOf(name string, b []byte) string {
	switch {
	case strings.HasSuffix(name, ".json"):
		return "application/json"
	case strings.HasSuffix(name, ".csv"):
		return "text/csv; charset=utf-8"
	}
	return "application/octet-stream"
}

// BenchWordsFr is the French vocabulary of the synthetic catalogue's titles and summaries (benchmarks query it).
var BenchWordsFr = strings.Fields(`modèle langue vision parole traduction bilingue français anglais juridique médical
	clinique finance fraude commerce prévision prévisions météo climat agriculture récoltes blé canola forêt forêts mines
	énergie réseau solaire éolien hydroélectricité pétrole transport transports logistique navires ports arctique pêches
	océan satellite imagerie radar robotique fabrication défaut défauts inspection qualité entretien capteur capteurs
	télémétrie anomalie détection segmentation classification recherche classement recommandation résumé réponse
	questions génération musique vidéo suivi document factures contrat assurance santé génomique protéine chimie
	matériaux batterie quantique physique astronomie séisme incendies inondation sécheresse neige glace pergélisol
	faune oiseaux saumon bovins laitier érable sirop québec ontario prairies côtier nordique autochtones langues
	recensement logement éducation accessibilité sous-titrage modération sécurité confidentialité synthétique données
	graphe connaissances évaluation petit grand rapide efficace`)

// BenchWords is the synthetic catalogue's English vocabulary (benchmarks query it).
var BenchWords = benchWords

// benchWords is the synthetic catalogue's vocabulary (benchmarks query it).
var benchWords = strings.Fields(`language vision speech translation bilingual french english legal medical clinical
	finance fraud retail forecasting weather climate agriculture crops wheat canola forestry mining energy grid solar
	wind hydro oil pipeline traffic transit logistics shipping ports arctic fisheries ocean satellite imagery radar
	lidar robotics manufacturing defect inspection quality maintenance sensor telemetry anomaly detection segmentation
	classification regression embedding retrieval search ranking recommendation summarization question answering chat
	instruct reasoning code generation diffusion audio music video tracking pose depth ocr document invoice receipt
	contract policy insurance claims health genomics protein molecule chemistry materials battery quantum physics
	astronomy seismic earthquake wildfire flood drought snow ice permafrost biodiversity wildlife birds salmon cattle
	dairy maple syrup canada quebec ontario alberta prairie coastal northern indigenous languages cree inuktitut
	census housing education tutoring accessibility captioning sign moderation safety privacy federated synthetic
	tabular timeseries graph knowledge ontology benchmark evaluation small large distilled quantized sparse efficient`)
