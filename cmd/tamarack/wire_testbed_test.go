package main

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tamarack-ai/tamarack/platform/clock"
	"github.com/tamarack-ai/tamarack/platform/natstest"
	"github.com/tamarack-ai/tamarack/platform/openapi"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/services/events"
	"github.com/tamarack-ai/tamarack/testbed"
)

func TestSeedTestbedIdempotent(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sqldb.Open(ctx, filepath.Join(dir, "t.db"), sqldb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sqldb.Close(db)
	if err := sqldb.Migrate(ctx, db, nil, testbedMigrations()...); err != nil {
		t.Fatal(err)
	}
	bus := natstest.Start(t)
	if err := bus.EnsureStreams(ctx, events.TestbedStream); err != nil {
		t.Fatal(err)
	}
	e := &env{cfg: &config{Data: dir, SandboxBackend: "simulator"}, log: slog.New(slog.DiscardHandler), db: db, bus: bus,
		clock: clock.System{}, registry: prometheus.NewRegistry(), doc: openapi.New("t", "v")}
	var ids, regions []string
	for range 2 {
		d := &demo{VendorOrgID: "org-vendor"}
		if err := seedTestbed(ctx, e, d); err != nil {
			t.Fatal(err)
		}
		ids, regions = append(ids, d.PoolID), append(regions, d.PoolRegion)
	}
	if ids[0] == "" || ids[0] != ids[1] {
		t.Fatalf("pool ids %v", ids)
	}
	var devs []testbed.Device
	if err := db.Where("pool_id = ?", ids[0]).Find(&devs).Error; err != nil {
		t.Fatal(err)
	}
	if len(devs) != 8 {
		t.Fatalf("%d devices", len(devs))
	}
	for _, d := range devs {
		if !d.Declared || d.GPUModel != "h100-80gb" {
			t.Fatalf("device %+v", d)
		}
	}
	var pool testbed.Pool
	if err := db.First(&pool, "id = ?", ids[0]).Error; err != nil || pool.VendorOrgID != "org-vendor" || pool.Backend != "local" ||
		!strings.Contains(pool.Name, "Montréal") {
		t.Fatalf("pool %+v %v", pool, err)
	}
	// The marketplace's seed sells the pool in the pool's own region, on the first run and on later ones.
	if regions[0] != pool.Region || regions[1] != pool.Region {
		t.Fatalf("seed handed regions %v to the marketplace, pool is in %s", regions, pool.Region)
	}
	var pending int64
	db.Table("testbed_outbox").Count(&pending)
	if pending != 0 {
		t.Fatalf("%d events not relayed", pending)
	}
}

func TestTestbedPreflight(t *testing.T) {
	c := &config{SandboxBackend: "local"}
	t.Setenv("PATH", t.TempDir())
	var logs bytes.Buffer
	// serve still starts without runc; the log says what to install.
	if err := testbedPreflight(c, slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
		t.Fatalf("preflight without runc: %v", err)
	}
	if !strings.Contains(logs.String(), "apt-get install runc") {
		t.Fatalf("preflight without runc logged %q, want how to install it", logs.String())
	}
}
