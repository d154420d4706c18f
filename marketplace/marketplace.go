// Package marketplace owns Tamarack's listings of models, datasets and accelerator time: their versions and
// review workflow, artifacts in a BlobStore, plans, the searchable catalogue, orders, entitlements, access
// requests, ratings and the staff audit trail. It learns about organisations and testbed pools only from
// events (projections in market_orgs and market_pools), announces every review transition and paid order
// through its outbox, and never imports another service.
package marketplace

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/tamarack-ai/tamarack/platform/rungroup"

	"github.com/google/uuid"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/tamarack-ai/tamarack/platform/clock"
	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
)

//go:embed migrations
var migrationsFS embed.FS

// Migrations returns the marketplace's SQL migrations (service "market"; the catalogue's full-text search
// lives in the sqlite/ and postgres/ folders).
func Migrations() sqldb.Migrations { return sqldb.EmbeddedMigrations("market", migrationsFS) }

// Config holds the marketplace's limits.
type Config struct {
	// MaxFileBytes caps one artifact; MaxVersionBytes all artifacts of one version together.
	MaxFileBytes    int64
	MaxVersionBytes int64
	// DownloadTTL is how long a signed download URL stays valid.
	DownloadTTL time.Duration
	// SearchCacheTTL bounds how long a catalogue answer is reused (local catalogue writes clear the cache at
	// once; the TTL bounds staleness after another process's write). Default 2s; negative disables the cache.
	SearchCacheTTL time.Duration
	// SearchEngine answers catalogue searches: "index" (default), an in-process index of the catalogue kept
	// current by local writes and the listing events of every replica; "sql", the database's full-text search.
	SearchEngine string
	// PoolWait bounds how long submitting a compute listing waits for the testbed's announcement of a pool the
	// marketplace has not heard of yet: a vendor script that declares a pool and submits a listing for it at
	// once must not fail because the event is a few milliseconds behind. Default 10s.
	PoolWait time.Duration
}

func (c Config) withDefaults() Config {
	if c.MaxFileBytes <= 0 {
		c.MaxFileBytes = 5 << 30
	}
	if c.MaxVersionBytes <= 0 {
		c.MaxVersionBytes = 20 << 30
	}
	if c.DownloadTTL <= 0 {
		c.DownloadTTL = 10 * time.Minute
	}
	if c.PoolWait <= 0 {
		c.PoolWait = 10 * time.Second
	}
	if c.SearchCacheTTL == 0 {
		c.SearchCacheTTL = 2 * time.Second
	}
	return c
}

// Deps are everything the service needs.
type Deps struct {
	DB     *gorm.DB
	Bus    *eventbus.Bus
	Blobs  BlobStore
	Log    *slog.Logger
	Clock  clock.Clock
	Config Config
}

// Service is the marketplace.
type Service struct {
	db      *gorm.DB
	bus     *eventbus.Bus
	blobs   BlobStore
	log     *slog.Logger
	clock   clock.Clock
	cfg     Config
	outbox  *eventbus.Outbox
	dialect sqldb.Dialect
	cache   *searchCache // nil when disabled
	index   *searchIndex // nil when searches go to SQL

	// poolWaitHook, when set by a test, runs each time Submit waits for a pool's announcement.
	poolWaitHook func()

	keyOnce sync.Once
	key     []byte
	keyErr  error
}

// New checks every dependency and returns the service.
func New(d Deps) (*Service, error) {
	var errs []error
	if d.DB == nil {
		errs = append(errs, errors.New("marketplace: no database"))
	}
	if d.Bus == nil {
		errs = append(errs, errors.New("marketplace: no event bus"))
	}
	if d.Blobs == nil {
		errs = append(errs, errors.New("marketplace: no blob store"))
	}
	if d.Clock == nil {
		errs = append(errs, errors.New("marketplace: no clock"))
	}
	if e := d.Config.SearchEngine; e != "" && e != "index" && e != "sql" {
		errs = append(errs, fmt.Errorf("marketplace: search engine %q: want index or sql", e))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	s := &Service{db: d.DB, bus: d.Bus, blobs: d.Blobs, log: d.Log, clock: d.Clock, cfg: d.Config.withDefaults(),
		outbox: eventbus.NewOutbox(d.DB, d.Bus, "market", d.Log), dialect: sqldb.DialectOf(d.DB)}
	if s.cfg.SearchCacheTTL > 0 {
		s.cache = newSearchCache(s.cfg.SearchCacheTTL, 4096)
	}
	if s.cfg.SearchEngine != "sql" {
		s.index = newSearchIndex(s.db, s.dialect)
	}
	return s, nil
}

// Outbox exposes the relay (tests flush it; the seed flushes it before exiting).
func (s *Service) Outbox() *eventbus.Outbox { return s.outbox }

// Run relays the outbox and runs the consumers until ctx ends, then flushes what is left.
func (s *Service) Run(ctx context.Context) error {
	err := rungroup.Run(ctx, s.log, rungroup.Loop{Name: "outbox", Run: s.outbox.Run},
		rungroup.Loop{Name: "orgs-created", Run: s.consumeOrgCreated}, rungroup.Loop{Name: "orgs-verified", Run: s.consumeOrgVerified},
		rungroup.Loop{Name: "pools", Run: s.consumePools}, rungroup.Loop{Name: "orders-settled", Run: s.consumeOrderSettled},
		rungroup.Loop{Name: "orders-failed", Run: s.consumeOrderFailed},
		rungroup.Loop{Name: "artifact-links", Run: s.serveArtifactLinks}, rungroup.Loop{Name: "catalog-follow", Run: s.followCatalog})
	fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.outbox.Flush(fctx); err != nil {
		s.log.Warn("marketplace outbox flush on exit", "err", err)
	}
	return err
}

func (s *Service) now() time.Time { return s.clock.Now().UTC() }

// newID returns a time-ordered ID with a type prefix (UUIDv7 keeps list order stable without a sort column).
func newID(prefix string) string {
	return prefix + "_" + uuid.Must(uuid.NewV7()).String()
}

// signingKey is the HMAC key of download URLs, shared through the database by every marketplace process.
func (s *Service) signingKey(ctx context.Context) ([]byte, error) {
	s.keyOnce.Do(func() {
		buf := make([]byte, 32)
		_, _ = rand.Read(buf)
		type keyRow struct {
			Name      string `gorm:"primaryKey"`
			Secret    string
			CreatedAt time.Time
		}
		row := keyRow{Name: "download", Secret: hex.EncodeToString(buf), CreatedAt: s.now()}
		db := s.db.WithContext(ctx).Table("market_keys")
		if err := db.Clauses(clause.OnConflict{DoNothing: true}).Create(&row).Error; err != nil {
			s.keyErr = err
			return
		}
		var got keyRow
		if err := s.db.WithContext(ctx).Table("market_keys").Where("name = ?", "download").Take(&got).Error; err != nil {
			s.keyErr = err
			return
		}
		s.key, s.keyErr = hex.DecodeString(got.Secret)
	})
	return s.key, s.keyErr
}
