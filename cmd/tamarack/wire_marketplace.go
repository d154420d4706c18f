package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/tamarack-ai/tamarack/marketplace"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
)

// Marketplace's wiring.

func marketplaceMigrations() []sqldb.Migrations { return []sqldb.Migrations{marketplace.Migrations()} }

// newMarketplace builds the service on e's database and bus with the configured blob store.
func newMarketplace(e *env) (*marketplace.Service, error) {
	var blobs marketplace.BlobStore
	if e.cfg.BlobStore == "" {
		local, err := marketplace.NewLocalStore(filepath.Join(e.cfg.Data, "blobs"))
		if err != nil {
			return nil, err
		}
		blobs = local
	} else {
		s3, err := marketplace.NewS3Store(marketplace.S3Config{URL: e.cfg.BlobStore, AccessKey: e.cfg.S3AccessKey, SecretKey: e.cfg.S3SecretKey})
		if err != nil {
			return nil, err
		}
		blobs = s3
	}
	return marketplace.New(marketplace.Deps{DB: e.db, Bus: e.bus, Blobs: blobs, Log: e.log.With("service", "marketplace"),
		Clock: e.clock, Config: marketplace.Config{
			MaxFileBytes: int64(e.cfg.MaxArtifactMB) << 20, MaxVersionBytes: int64(e.cfg.MaxVersionMB) << 20}})
}

// wireMarketplace builds the marketplace service, mounts its routes on e.api and its Hub API on e.app, adds its
// OpenAPI operations to e.doc and its background loops with e.background.
func wireMarketplace(ctx context.Context, e *env) error {
	svc, err := newMarketplace(e)
	if err != nil {
		return err
	}
	svc.Routes(e.api.Group("/marketplace"))
	// The Hugging Face Hub download API lives at the root (/api/models/..., /<ns>/<repo>/resolve/...), where
	// its clients look; mounted here, before the catch-all /api/* 404 and the UI's fallback.
	svc.HFRoutes(e.app, e.authn)
	svc.OpenAPI(e.doc)
	e.background("marketplace", svc.Run)
	return nil
}

// seedMarketplace publishes the demo catalogue: accelerator time on the demo pool (its GPU model is what the
// testbed seed declares, h100-80gb), a model and a dataset with free plans and small artifacts.
func seedMarketplace(ctx context.Context, e *env, d *demo) error {
	if d.VendorOrgID == "" {
		d.Notes = append(d.Notes, "marketplace: no demo vendor organisation (identity seed missing); catalogue not seeded")
		return nil
	}
	svc, err := newMarketplace(e)
	if err != nil {
		return err
	}
	res, err := svc.SeedDemo(ctx, marketplace.SeedInput{VendorOrgID: d.VendorOrgID, VendorUserID: d.VendorUserID,
		PoolID: d.PoolID, PoolName: d.PoolName, GPUModel: "h100-80gb", Region: d.PoolRegion})
	if err != nil {
		return err
	}
	d.ComputeListingID = res.ComputeListingID
	d.Notes = append(d.Notes, fmt.Sprintf("marketplace: demo listings published (compute %s, model %s, dataset %s); "+
		"one waits in the staff review queue (%s)", orNone(res.ComputeListingID), res.ModelListingID, res.DatasetListingID,
		res.PendingListingID))
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "none: no demo pool"
	}
	return s
}
