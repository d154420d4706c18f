package billing

import (
	"context"
	"errors"
	"time"

	"github.com/tamarack-ai/tamarack/billing/ledger"
)

// SpendOrder documents which credits a charge uses first.
const SpendOrder = "co-funded share from the programme fund first (verified organisations with a co-funding grant), then grants nearest expiry first, then purchased credits"

// GrantBalance is one grant in a wallet.
type GrantBalance struct {
	GrantID       string    `json:"grant_id"`
	AmountMicro   int64     `json:"amount_micro"`
	BalanceMicro  int64     `json:"balance_micro"`
	ExpiresAt     time.Time `json:"expires_at"`
	Expired       bool      `json:"expired"`
	Suspended     bool      `json:"suspended,omitempty"` // the organisation is not verified: not spendable until it is
	CofundPercent int       `json:"cofund_percent"`
	CapMicro      int64     `json:"cap_micro"`
	CofundedMicro int64     `json:"cofunded_micro"`
	Note          string    `json:"note"`
}

// Wallet is an organisation's balances.
type Wallet struct {
	OrganizationID  string         `json:"organization_id"`
	PurchasedMicro  int64          `json:"purchased_micro"`
	GrantedMicro    int64          `json:"granted_micro"`
	Grants          []GrantBalance `json:"grants"`
	HeldMicro       int64          `json:"held_micro"`
	AvailableMicro  int64          `json:"available_micro"`
	PayableMicro    int64          `json:"payable_micro,omitempty"` // vendors: earnings not yet paid out
	BudgetMicro     int64          `json:"monthly_budget_micro"`
	MonthSpentMicro int64          `json:"month_spent_micro"` // paid by the organisation this month (after co-funding)
	SpendOrder      string         `json:"spend_order"`
}

// WalletOf reads an organisation's wallet.
func (s *Service) WalletOf(ctx context.Context, orgID string) (Wallet, error) {
	db := s.db.WithContext(ctx)
	now := s.now()
	w := Wallet{OrganizationID: orgID, SpendOrder: SpendOrder, Grants: []GrantBalance{}}
	org, err := getOrg(db, orgID)
	if err != nil && !errors.Is(err, ErrOrgNotFound) {
		return w, err
	}
	own, err := orgLedgerOf(db, orgID)
	if err != nil {
		return w, err
	}
	bal := map[string]int64{}
	for _, a := range own.accts {
		bal[a.ID] = a.Balance
		if a.Kind == KindVendor {
			w.PayableMicro = a.Available()
		}
	}
	w.PurchasedMicro = bal[walletAcct(orgID)]
	grants, err := grantsOf(db, orgID)
	if err != nil {
		return w, err
	}
	for _, g := range grants {
		b := bal[grantAcct(g.ID)]
		expired := g.Expired || !g.ExpiresAt.After(now)
		suspended := !expired && !org.Verified
		if !expired && !suspended {
			w.GrantedMicro += b
		}
		w.Grants = append(w.Grants, GrantBalance{GrantID: g.ID, AmountMicro: g.Amount, BalanceMicro: b,
			ExpiresAt: g.ExpiresAt, Expired: expired, Suspended: suspended, CofundPercent: g.CofundPercent, CapMicro: g.Cap, CofundedMicro: g.Cofunded, Note: g.Note})
	}
	w.HeldMicro = org.Held
	w.BudgetMicro = org.BudgetMicro
	if w.MonthSpentMicro, err = spentSince(db, orgID, now.Format("2006-01")+"-01"); err != nil {
		return w, err
	}
	w.AvailableMicro = w.PurchasedMicro + w.GrantedMicro - w.HeldMicro
	return w, nil
}

// Line is one ledger line of an organisation's account, signed from the account's side.
type Line struct {
	TransferID   string    `json:"transfer_id"`
	At           time.Time `json:"at"`
	Kind         string    `json:"kind"`
	Phase        string    `json:"phase"`
	Account      string    `json:"account"`
	Counterparty string    `json:"counterparty"`
	AmountMicro  int64     `json:"amount_micro"` // + credit to the account, - debit
	Ref          string    `json:"ref"`
}

type lineCursor struct {
	At time.Time `json:"t"`
	ID string    `json:"i"`
}

// Transactions lists the ledger lines of an organisation's accounts, newest first.
func (s *Service) Transactions(ctx context.Context, orgID string, limit int, cursor string, from, to time.Time) ([]Line, string, error) {
	var c lineCursor
	if cursor != "" {
		// Checked first: a forged cursor is refused even for an organisation with no accounts yet.
		if err := decodeCursor(cursor, &c); err != nil {
			return nil, "", err
		}
	}
	db := s.db.WithContext(ctx)
	own, err := orgLedgerOf(db, orgID)
	if err != nil || own.empty() {
		return []Line{}, "", err
	}
	var after *lineCursor
	if cursor != "" {
		after = &c
	}
	fetch := 0
	if limit > 0 {
		fetch = limit + 1
	}
	ts, err := transfersNewestFirst(db, own, after, from, to, fetch)
	if err != nil {
		return nil, "", err
	}
	mine := toSet(own.ids())
	next := ""
	if limit > 0 && len(ts) > limit {
		ts = ts[:limit]
		last := ts[limit-1]
		next = encodeCursor(lineCursor{At: last.CreatedAt, ID: last.ID})
	}
	lines := []Line{}
	for _, t := range ts {
		if t.Phase == ledger.PhaseVoidPending {
			continue
		}
		if mine[t.DebitAccount] {
			lines = append(lines, Line{TransferID: t.ID, At: t.CreatedAt.UTC(), Kind: t.Kind, Phase: t.Phase, Account: t.DebitAccount,
				Counterparty: t.CreditAccount, AmountMicro: -t.Amount, Ref: t.Ref})
		}
		if mine[t.CreditAccount] {
			lines = append(lines, Line{TransferID: t.ID, At: t.CreatedAt.UTC(), Kind: t.Kind, Phase: t.Phase, Account: t.CreditAccount,
				Counterparty: t.DebitAccount, AmountMicro: t.Amount, Ref: t.Ref})
		}
	}
	return lines, next, nil
}

// UsageRow is metered usage grouped by day, GPU model and sandbox.
type UsageRow struct {
	Day            string `json:"day"`
	GPUModel       string `json:"gpu_model"`
	SandboxID      string `json:"sandbox_id"`
	Millis         int64  `json:"millis"`
	ChargeMicro    int64  `json:"charge_micro"`
	CofundedMicro  int64  `json:"cofunded_micro"`
	ShortfallMicro int64  `json:"shortfall_micro"`
}

// UsageOf groups an organisation's (or, for a vendor, its sold) usage; from/to are yyyy-mm-dd, inclusive.
func (s *Service) UsageOf(ctx context.Context, orgID, from, to string, asVendor bool) ([]UsageRow, error) {
	rows, err := usageRowsOf(s.db.WithContext(ctx), orgID, asVendor, from, to)
	if err != nil {
		return nil, err
	}
	if rows == nil {
		rows = []UsageRow{}
	}
	return rows, nil
}

// Statement is a monthly statement of an organisation's accounts.
type Statement struct {
	OrganizationID string `json:"organization_id"`
	Month          string `json:"month"`
	OpeningMicro   int64  `json:"opening_micro"`
	CreditsMicro   int64  `json:"credits_micro"`
	DebitsMicro    int64  `json:"debits_micro"`
	ClosingMicro   int64  `json:"closing_micro"`
	Lines          []Line `json:"lines"`
}

// StatementOf builds the statement of month (yyyy-mm): opening balance, every posted line, closing balance.
func (s *Service) StatementOf(ctx context.Context, orgID, month string) (Statement, error) {
	start, err := time.Parse("2006-01", month)
	if err != nil {
		return Statement{}, ErrBadMonth
	}
	end := start.AddDate(0, 1, 0)
	st := Statement{OrganizationID: orgID, Month: month, Lines: []Line{}}
	db := s.db.WithContext(ctx)
	own, err := orgLedgerOf(db, orgID)
	if err != nil || own.empty() {
		return st, err
	}
	if st.OpeningMicro, err = balanceBefore(db, own, start); err != nil {
		return st, err
	}
	lines, _, err := s.Transactions(ctx, orgID, 0, "", start, end)
	if err != nil {
		return st, err
	}
	// Oldest first on a statement; internal moves between the organisation's own accounts cancel out.
	for i := len(lines) - 1; i >= 0; i-- {
		l := lines[i]
		st.Lines = append(st.Lines, l)
		if l.AmountMicro > 0 {
			st.CreditsMicro += l.AmountMicro
		} else {
			st.DebitsMicro -= l.AmountMicro
		}
	}
	st.ClosingMicro = st.OpeningMicro + st.CreditsMicro - st.DebitsMicro
	return st, nil
}

// VendorPayable is one vendor's earnings statement.
type VendorPayable struct {
	VendorOrgID    string `json:"vendor_org_id"`
	Name           string `json:"name"`
	EarnedMicro    int64  `json:"earned_micro"`
	PaidOutMicro   int64  `json:"paid_out_micro"`
	PayableMicro   int64  `json:"payable_micro"`
	ConnectAccount string `json:"connect_account,omitempty"`
}

// Payables lists vendors' payable balances (one vendor when vendorOrgID is set).
func (s *Service) Payables(ctx context.Context, vendorOrgID string) ([]VendorPayable, error) {
	db := s.db.WithContext(ctx)
	var accts []ledger.Account
	var err error
	if vendorOrgID != "" {
		accts, err = vendorAccountsOf(db, vendorOrgID)
	} else {
		accts, err = vendorAccountsAllOrgs(db)
	}
	if err != nil {
		return nil, err
	}
	out := []VendorPayable{}
	for _, a := range accts {
		earned, paid, err := vendorTotals(db, a)
		if err != nil {
			return nil, err
		}
		org, _ := getOrg(db, a.OrgID)
		out = append(out, VendorPayable{VendorOrgID: a.OrgID, Name: org.Name, EarnedMicro: earned, PaidOutMicro: paid,
			PayableMicro: a.Available(), ConnectAccount: org.StripeAccount})
	}
	return out, nil
}

// ProgrammeSpend is the programme's spend on one organisation.
type ProgrammeSpend struct {
	OrganizationID string `json:"organization_id"`
	Name           string `json:"name"`
	GrantedMicro   int64  `json:"granted_micro"`
	SpentMicro     int64  `json:"spent_micro"`    // granted credits used
	ReturnedMicro  int64  `json:"returned_micro"` // expired remainders back in the fund
	RemainingMicro int64  `json:"remaining_micro"`
	CofundedMicro  int64  `json:"cofunded_micro"`
	TotalMicro     int64  `json:"total_micro"` // spent + cofunded: what the programme paid for
}

// ProgrammeSpendByOrg reports grants and co-funding per organisation (staff).
func (s *Service) ProgrammeSpendByOrg(ctx context.Context) ([]ProgrammeSpend, error) {
	db := s.db.WithContext(ctx)
	grants, err := grantsAllOrgs(db)
	if err != nil {
		return nil, err
	}
	by := map[string]*ProgrammeSpend{}
	var order []string
	for _, g := range grants {
		p := by[g.OrgID]
		if p == nil {
			p = &ProgrammeSpend{OrganizationID: g.OrgID}
			by[g.OrgID] = p
			order = append(order, g.OrgID)
		}
		a, err := grantAccount(db, g.ID)
		if err != nil {
			return nil, err
		}
		ret, err := grantReturned(db, g.ID)
		if err != nil {
			return nil, err
		}
		p.GrantedMicro += g.Amount
		p.RemainingMicro += a.Balance
		p.ReturnedMicro += ret
		p.SpentMicro += g.Amount - a.Balance - ret
		p.CofundedMicro += g.Cofunded
	}
	out := []ProgrammeSpend{}
	for _, id := range order {
		p := by[id]
		org, _ := getOrg(db, id)
		p.Name = org.Name
		p.TotalMicro = p.SpentMicro + p.CofundedMicro
		out = append(out, *p)
	}
	return out, nil
}

// PriceRow is a published compute price.
type PriceRow struct {
	ListingID       string `json:"listing_id"`
	Title           string `json:"title"`
	VendorOrgID     string `json:"vendor_org_id"`
	PoolID          string `json:"pool_id"`
	GPUModel        string `json:"gpu_model"`
	Region          string `json:"region"`
	PerGPUHourMicro int64  `json:"price_per_gpu_hour_micro"`
}

// Prices lists published compute prices per GPU-hour by GPU model and pool.
func (s *Service) Prices(ctx context.Context) ([]PriceRow, error) {
	ps, err := priceList(s.db.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	out := []PriceRow{}
	for _, p := range ps {
		out = append(out, PriceRow{ListingID: p.ListingID, Title: p.Title, VendorOrgID: p.VendorOrgID, PoolID: p.PoolID, GPUModel: p.GPUModel,
			Region: p.Region, PerGPUHourMicro: p.PricePerGPUHour})
	}
	return out, nil
}

// Grants lists grants, newest first (one organisation when orgID is set).
func (s *Service) Grants(ctx context.Context, orgID string) ([]Grant, error) {
	if orgID == "" {
		return grantsAllOrgsNewestFirst(s.db.WithContext(ctx))
	}
	return grantsNewestFirst(s.db.WithContext(ctx), orgID)
}

// HasPurchase reports whether an organisation has a purchase with this reference (seeds use it to stay
// idempotent).
func (s *Service) HasPurchase(ctx context.Context, orgID, reference string) (bool, error) {
	return hasPurchaseRef(s.db.WithContext(ctx), orgID, reference)
}
