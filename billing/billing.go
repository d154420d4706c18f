// Package billing owns Tamarack's money: a double-entry credits ledger (package ledger), organisation wallets
// (purchased credits, programme grants with expiry, holds), metering of testbed usage events into charges
// exactly once, marketplace order settlement, Stripe Checkout purchases and refunds, programme co-funding,
// vendor payouts and reporting. It reads other services only through their events (projections of
// organisations, admins and compute prices) and never touches their tables. Money is int64 micro-credits;
// no float ever holds an amount.
package billing

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tamarack-ai/tamarack/platform/rungroup"

	"github.com/gofiber/fiber/v2"
	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/clock"
	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/mail"
	"github.com/tamarack-ai/tamarack/platform/money"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
)

// Migrations returns billing's schema.
//
//go:embed migrations
var migrationsFS embed.FS

func Migrations() sqldb.Migrations { return sqldb.EmbeddedMigrations("billing", migrationsFS) }

// StripeConfig configures card purchases; an empty Key disables them.
type StripeConfig struct {
	Key           string
	WebhookSecret string
	APIBase       string // stripe-mock in tests; empty is Stripe itself
}

// Deps are the service's dependencies.
type Deps struct {
	DB        *gorm.DB
	Bus       *eventbus.Bus
	Clock     clock.Clock
	Log       *slog.Logger
	Mailer    mail.Mailer
	PublicURL string
	Stripe    StripeConfig
	// CreditValue is what one credit is worth (--credit-value; zero: money.DefaultCreditValue, 1.00 CAD). The
	// UI shows amounts in credits and in this currency; card payments need it in CAD, in whole cents.
	CreditValue money.CreditValue
	// CADCentsPerCredit is the card price of one credit in Canadian cents (default: CreditValue in cents).
	CADCentsPerCredit int64
	// VendorShareBPS is the vendor's share of usage and orders in basis points (default 8500 = 85%).
	VendorShareBPS int64
	// RevenueShards spreads platform revenue over this many accounts (default 8).
	RevenueShards int
	// UsageBatch is the most usage events charged in one transaction (default 2000: the size the metering figures
	// of docs/performance.md are measured at; at 1000 the same bench charged about a fifth fewer events/s).
	UsageBatch int
	// ExpiryEvery is how often expired grants are swept (default 1 minute).
	ExpiryEvery time.Duration
	// UsageWorkers is how many batches are in flight at once in this process (default 2): while one commits,
	// another is fetched and decoded. Batches lock organisations, holds and accounts in id order, so they
	// never deadlock; batches of the same organisations serialise on the organisation rows.
	UsageWorkers int
	// UsageAckWait is how long JetStream waits for the ack of a usage batch before redelivering (default 30s).
	UsageAckWait time.Duration
	// ProgrammeLegalName is the programme's legal name, printed on receipts and statements
	// (default DefaultProgrammeLegalName).
	ProgrammeLegalName string
	// Tax is the sales tax included in credit prices (zero: none); see Tax.
	Tax Tax
	// AfterBatch, when set, is called after each committed usage batch with the IDs of the events it charged
	// (benchmarks and tests).
	AfterBatch func(eventIDs []string)
}

// Service is the billing service.
type Service struct {
	db           *gorm.DB
	bus          *eventbus.Bus
	clock        clock.Clock
	log          *slog.Logger
	mailer       mail.Mailer
	outbox       *eventbus.Outbox
	stripe       *client.API
	cfg          Deps
	beforeCommit func(ctx context.Context) // test hook, inside the usage transaction
}

// New checks the dependencies and builds the service.
func New(d Deps) (*Service, error) {
	var errs []error
	if d.DB == nil {
		errs = append(errs, errors.New("billing: no database"))
	}
	if d.Bus == nil {
		errs = append(errs, errors.New("billing: no bus"))
	}
	if d.Clock == nil {
		errs = append(errs, errors.New("billing: no clock"))
	}
	if d.Mailer == nil {
		errs = append(errs, errors.New("billing: no mailer"))
	}
	if d.PublicURL == "" {
		errs = append(errs, errors.New("billing: no public URL"))
	}
	if d.Stripe.Key != "" && d.Stripe.WebhookSecret == "" {
		errs = append(errs, errors.New("billing: a Stripe key needs a webhook secret"))
	}
	if d.CreditValue == (money.CreditValue{}) {
		d.CreditValue = money.DefaultCreditValue
	}
	if cents, whole := d.CreditValue.Cents(); d.Stripe.Key != "" && d.CADCentsPerCredit <= 0 && (d.CreditValue.Currency != "CAD" || !whole || cents == 0) {
		errs = append(errs, fmt.Errorf("billing: card payments charge whole Canadian cents; the credit value %s is not", d.CreditValue))
	}
	if err := d.Tax.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("billing: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.CADCentsPerCredit <= 0 {
		d.CADCentsPerCredit = 100
		if cents, whole := d.CreditValue.Cents(); d.CreditValue.Currency == "CAD" && whole && cents > 0 {
			d.CADCentsPerCredit = cents
		}
	}
	if d.VendorShareBPS <= 0 || d.VendorShareBPS > 10_000 {
		d.VendorShareBPS = 8500
	}
	if d.RevenueShards <= 0 {
		d.RevenueShards = 8
	}
	if d.UsageBatch <= 0 {
		d.UsageBatch = 2000
	}
	if d.UsageWorkers <= 0 {
		d.UsageWorkers = 2
	}
	if d.UsageAckWait <= 0 {
		d.UsageAckWait = 30 * time.Second
	}
	if d.ProgrammeLegalName == "" {
		d.ProgrammeLegalName = DefaultProgrammeLegalName
	}
	if d.ExpiryEvery <= 0 {
		d.ExpiryEvery = time.Minute
	}
	s := &Service{db: d.DB, bus: d.Bus, clock: d.Clock, log: d.Log, mailer: d.Mailer, cfg: d,
		outbox: eventbus.NewOutbox(d.DB, d.Bus, "billing", d.Log)}
	if d.Stripe.Key != "" {
		backends := &stripe.Backends{
			API:     stripe.GetBackend(stripe.APIBackend),
			Connect: stripe.GetBackend(stripe.ConnectBackend),
			Uploads: stripe.GetBackend(stripe.UploadsBackend),
		}
		if d.Stripe.APIBase != "" {
			cfg := &stripe.BackendConfig{URL: stripe.String(d.Stripe.APIBase)}
			backends.API = stripe.GetBackendWithConfig(stripe.APIBackend, cfg)
			backends.Connect = stripe.GetBackendWithConfig(stripe.ConnectBackend, cfg)
		}
		s.stripe = &client.API{}
		s.stripe.Init(d.Stripe.Key, backends)
	}
	return s, nil
}

// Outbox exposes the relay (tests flush it).
func (s *Service) Outbox() *eventbus.Outbox { return s.outbox }

// Run serves holds and runs every consumer and loop until ctx ends; the outbox is flushed on exit.
func (s *Service) Run(ctx context.Context) error {
	if err := s.Setup(ctx); err != nil {
		return err
	}
	var loops []rungroup.Loop
	for name, fn := range s.loops() {
		loops = append(loops, rungroup.Loop{Name: name, Run: fn})
	}
	err := rungroup.Run(ctx, s.log, loops...)
	fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.outbox.Flush(fctx)
	return err
}

// Setup creates the platform's own ledger accounts.
func (s *Service) Setup(ctx context.Context) error {
	return sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error { return s.ensurePlatformAccounts(tx) })
}

// Routes mounts the API on r (the /api/v1/billing group).
func (s *Service) Routes(r fiber.Router) { s.routes(r) }
