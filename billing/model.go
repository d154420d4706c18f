package billing

import (
	"fmt"
	"time"

	"github.com/tamarack-ai/tamarack/platform/problem"
)

// Account IDs. Every organisation has one purchased-credits wallet; every grant its own account; every vendor
// a payable account. Platform revenue is sharded (hot account); the programme fund and the clearing accounts
// are open (they may go negative: they stand for money outside the ledger).
const (
	AcctFund           = "programme:fund"
	AcctStripeClearing = "clearing:stripe"
	AcctOffline        = "clearing:offline"
	AcctPayouts        = "clearing:payouts"
	AcctUsageClearing  = "clearing:usage"
	AcctOrderClearing  = "clearing:orders"
)

// Account kinds.
const (
	KindWallet   = "wallet"
	KindGrant    = "grant"
	KindVendor   = "vendor"
	KindRevenue  = "revenue"
	KindFund     = "fund"
	KindClearing = "clearing"
)

func walletAcct(org string) string      { return "wallet:" + org }
func grantAcct(id string) string        { return "grant:" + id }
func vendorAcct(org string) string      { return "vendor:" + org }
func revenueAcct(shard int) string      { return fmt.Sprintf("revenue:%d", shard) }
func purchaseTransfer(id string) string { return "purchase:" + id }

// Org is billing's projection of an identity organisation plus billing's own per-org state.
type Org struct {
	ID             string `gorm:"primaryKey"`
	Name           string
	Kind           string
	Verified       bool
	Held           int64  // sum of the remaining amounts of unreleased holds
	BudgetMicro    int64  // monthly budget set by the organisation's admins (0: none)
	BudgetNotified string // "yyyy-mm:pct" of the last threshold announced
	StripeAccount  string // Stripe Connect account of a vendor, set by staff
	UpdatedAt      time.Time
}

func (Org) TableName() string { return "billing_orgs" }

// Admin is a projected owner/admin e-mail of an organisation.
type Admin struct {
	OrgID  string `gorm:"primaryKey"`
	UserID string `gorm:"primaryKey"`
	Email  string
	Role   string
}

func (Admin) TableName() string { return "billing_admins" }

// Price is a projected published compute listing.
type Price struct {
	ListingID       string `gorm:"primaryKey"`
	VendorOrgID     string
	Title           string
	PoolID          string
	GPUModel        string `gorm:"column:gpu_model"`
	Region          string
	PricePerGPUHour int64 `gorm:"column:price_per_gpu_hour"`
	UpdatedAt       time.Time
}

func (Price) TableName() string { return "billing_prices" }

// Grant is a programme grant of credits with an expiry and an optional co-funding rule.
type Grant struct {
	ID                string `gorm:"primaryKey"`
	OrgID             string
	Amount            int64
	ExpiresAt         time.Time
	CofundPercent     int
	Cap               int64
	Cofunded          int64
	Note              string
	CreatedBy         string
	Expired           bool
	NotifiedPct       int
	CofundNotifiedPct int
	CreatedAt         time.Time
}

func (Grant) TableName() string { return "billing_grants" }

// Hold is the reservation and metering state of one sandbox, at the price locked when it was placed.
type Hold struct {
	SandboxID   string `gorm:"primaryKey"`
	OrgID       string
	ListingID   string
	VendorOrgID string
	PoolID      string
	GPUModel    string `gorm:"column:gpu_model"`
	GPUCount    int    `gorm:"column:gpu_count"`
	Price       int64  // micro-credits per GPU-hour
	Amount      int64  // total reserved (gross charges)
	Charged     int64  // gross charged so far = floor(Price × CumMs / 3,600,000)
	CumMs       int64  // cumulative device-milliseconds metered
	Samples     int64  // distinct usage events charged
	MaxSeq      int64
	LastSeq     int64 // from the stopped/failed event
	Stopped     bool
	Released    bool
	Exhausted   bool
	Shortfall   int64 // charges the wallet could not pay (uncollected)
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

func (Hold) TableName() string { return "billing_holds" }

// Remaining is what the hold still reserves.
func (h Hold) Remaining() int64 {
	if h.Released {
		return 0
	}
	return max(h.Amount-h.Charged, 0)
}

// Usage is one charged usage event.
type Usage struct {
	EventID     string `gorm:"primaryKey"`
	SandboxID   string
	OrgID       string
	VendorOrgID string
	GPUModel    string `gorm:"column:gpu_model"`
	Seq         int64
	Millis      int64
	Charge      int64
	Cofunded    int64
	Shortfall   int64
	BatchID     string
	Day         string
	CreatedAt   time.Time
}

func (Usage) TableName() string { return "billing_usage" }

// Purchase is a credit purchase: Stripe Checkout or an offline payment.
type Purchase struct {
	ID                string `gorm:"primaryKey"`
	OrgID             string
	Credits           int64
	Amount            int64 // micro-credits
	CADCents          int64 `gorm:"column:cad_cents"` // what the buyer pays, tax included
	TaxCents          int64 // the tax in CADCents (see Tax), fixed when the purchase is created
	TaxRateBP         int64 `gorm:"column:tax_rate_bp"`
	TaxName           string
	Method            string
	Status            string // pending, paid, refunded, failed (no session), amount_mismatch (paid another amount: not credited)
	SessionID         string
	PaymentIntent     string
	Reference         string
	Refunded          int64 // micro-credits reversed from the wallet
	RefundUnrecovered int64 // refunded by Stripe but already spent: flagged for staff
	CreatedBy         string
	CreatedAt         time.Time
	UpdatedAt         time.Time
}

func (Purchase) TableName() string { return "billing_purchases" }

type processed struct {
	ID        string `gorm:"primaryKey"`
	CreatedAt time.Time
}

func (processed) TableName() string { return "billing_events" }

type audit struct {
	ID          string `gorm:"primaryKey"`
	ActorUserID string
	Action      string
	Target      string
	Detail      string
	CreatedAt   time.Time
}

func (audit) TableName() string { return "billing_audit" }

// MaxGrantMicro bounds a grant's credits and co-funding cap (one billion credits), so that no sum of grants can
// overflow the programme fund's int64 balance.
const MaxGrantMicro = 1_000_000_000 * 1_000_000

// GrantInput creates a grant (staff).
type GrantInput struct {
	OrganizationID string    `json:"organization_id" validate:"required"`
	AmountMicro    int64     `json:"amount_micro"`
	ExpiresAt      time.Time `json:"expires_at"`
	CofundPercent  int       `json:"cofund_percent"`
	CapMicro       int64     `json:"cap_micro"`
	Note           string    `json:"note" validate:"max=500"`
	ActorUserID    string    `json:"-"`
}

// Validate lists every bad field.
func (in GrantInput) Validate() error {
	var f problem.Fields
	if in.AmountMicro < 0 || in.AmountMicro > MaxGrantMicro {
		f.Add("amount_micro", "out_of_range", "must be 0 to 1,000,000,000 credits")
	}
	if in.ExpiresAt.IsZero() {
		f.Add("expires_at", "required", "an expiry is required")
	}
	if in.CofundPercent < 0 || in.CofundPercent > 100 {
		f.Add("cofund_percent", "out_of_range", "must be 0 to 100")
	}
	if in.CapMicro < 0 || in.CapMicro > MaxGrantMicro {
		f.Add("cap_micro", "out_of_range", "must be 0 to 1,000,000,000 credits")
	} else if in.CofundPercent > 0 && in.CapMicro == 0 {
		f.Add("cap_micro", "required", "co-funding needs a cap")
	}
	if in.AmountMicro == 0 && in.CofundPercent == 0 {
		f.Add("amount_micro", "required", "a grant gives credits, co-funding, or both")
	}
	return f.Err()
}

// OfflinePaymentInput records a purchase paid outside Stripe (purchase order), by staff.
type OfflinePaymentInput struct {
	OrganizationID string `json:"organization_id" validate:"required"`
	Credits        int64  `json:"credits"`
	Reference      string `json:"reference" validate:"required,max=200"`
	ActorUserID    string `json:"-"`
}

// Validate lists every bad field.
func (in OfflinePaymentInput) Validate() error {
	var f problem.Fields
	if in.Credits < 1 || in.Credits > 10_000_000 {
		f.Add("credits", "out_of_range", "must be 1 to 10,000,000 credits")
	}
	return f.Err()
}
