package billing

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"

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
	var org Org
	if err := db.Where("id = ?", orgID).Take(&org).Error; err != nil && !isNotFound(err) {
		return w, err
	}
	var accts []ledger.Account
	if err := db.Where("org_id = ?", orgID).Find(&accts).Error; err != nil {
		return w, err
	}
	bal := map[string]int64{}
	for _, a := range accts {
		bal[a.ID] = a.Balance
		if a.Kind == KindVendor {
			w.PayableMicro = a.Available()
		}
	}
	w.PurchasedMicro = bal[walletAcct(orgID)]
	var grants []Grant
	if err := db.Where("org_id = ?", orgID).Order("expires_at, id").Find(&grants).Error; err != nil {
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
	var spent struct{ S int64 }
	if err := db.Model(&Usage{}).Select("COALESCE(SUM(charge - cofunded - shortfall), 0) AS s").
		Where("org_id = ? AND day >= ?", orgID, now.Format("2006-01")+"-01").Scan(&spent).Error; err != nil {
		return w, err
	}
	w.MonthSpentMicro = spent.S
	w.AvailableMicro = w.PurchasedMicro + w.GrantedMicro - w.HeldMicro
	return w, nil
}

func isNotFound(err error) bool { return errors.Is(err, gorm.ErrRecordNotFound) }

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

func (s *Service) orgAccounts(db *gorm.DB, orgID string) ([]string, error) {
	var ids []string
	err := db.Model(&ledger.Account{}).Where("org_id = ?", orgID).Order("id").Pluck("id", &ids).Error
	return ids, err
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
	ids, err := s.orgAccounts(db, orgID)
	if err != nil || len(ids) == 0 {
		return []Line{}, "", err
	}
	q := db.Model(&ledger.Transfer{}).Where("(debit_account IN ? OR credit_account IN ?) AND phase <> ?", ids, ids, ledger.PhasePending)
	if cursor != "" {
		q = q.Where("created_at < ? OR (created_at = ? AND id < ?)", c.At, c.At, c.ID)
	}
	if !from.IsZero() {
		q = q.Where("created_at >= ? AND created_at < ?", from, to)
	}
	var ts []ledger.Transfer
	if limit > 0 {
		q = q.Limit(limit + 1)
	}
	if err := q.Order("created_at DESC, id DESC").Find(&ts).Error; err != nil {
		return nil, "", err
	}
	mine := toSet(ids)
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
	col := "org_id"
	if asVendor {
		col = "vendor_org_id"
	}
	q := s.db.WithContext(ctx).Model(&Usage{}).Select("day, gpu_model, sandbox_id, SUM(millis) AS millis, SUM(charge) AS charge_micro, "+
		"SUM(cofunded) AS cofunded_micro, SUM(shortfall) AS shortfall_micro").Where(col+" = ?", orgID)
	if from != "" {
		q = q.Where("day >= ?", from)
	}
	if to != "" {
		q = q.Where("day <= ?", to)
	}
	var rows []UsageRow
	if err := q.Group("day, gpu_model, sandbox_id").Order("day DESC, gpu_model, sandbox_id").Scan(&rows).Error; err != nil {
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
	ids, err := s.orgAccounts(db, orgID)
	if err != nil || len(ids) == 0 {
		return st, err
	}
	var in, out struct{ S int64 }
	posted := []string{ledger.PhasePosted, ledger.PhasePostPending}
	if err := db.Model(&ledger.Transfer{}).Select("COALESCE(SUM(amount),0) AS s").Where("credit_account IN ? AND phase IN ? AND created_at < ?", ids, posted, start).Scan(&in).Error; err != nil {
		return st, err
	}
	if err := db.Model(&ledger.Transfer{}).Select("COALESCE(SUM(amount),0) AS s").Where("debit_account IN ? AND phase IN ? AND created_at < ?", ids, posted, start).Scan(&out).Error; err != nil {
		return st, err
	}
	st.OpeningMicro = in.S - out.S
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
	q := db.Where("kind = ?", KindVendor)
	if vendorOrgID != "" {
		q = q.Where("org_id = ?", vendorOrgID)
	}
	var accts []ledger.Account
	if err := q.Order("id").Find(&accts).Error; err != nil {
		return nil, err
	}
	out := []VendorPayable{}
	for _, a := range accts {
		var earned, paid struct{ S int64 }
		if err := db.Model(&ledger.Transfer{}).Select("COALESCE(SUM(amount),0) AS s").Where("credit_account = ? AND phase = ?", a.ID, ledger.PhasePosted).Scan(&earned).Error; err != nil {
			return nil, err
		}
		if err := db.Model(&ledger.Transfer{}).Select("COALESCE(SUM(amount),0) AS s").Where("debit_account = ? AND phase IN ?", a.ID,
			[]string{ledger.PhasePosted, ledger.PhasePostPending}).Scan(&paid).Error; err != nil {
			return nil, err
		}
		var org Org
		_ = db.Where("id = ?", a.OrgID).Take(&org).Error
		out = append(out, VendorPayable{VendorOrgID: a.OrgID, Name: org.Name, EarnedMicro: earned.S, PaidOutMicro: paid.S,
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
	var grants []Grant
	if err := db.Order("org_id, id").Find(&grants).Error; err != nil {
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
		var a ledger.Account
		if err := db.Where("id = ?", grantAcct(g.ID)).Take(&a).Error; err != nil {
			return nil, err
		}
		var ret struct{ S int64 }
		if err := db.Model(&ledger.Transfer{}).Select("COALESCE(SUM(amount),0) AS s").Where("id = ?", "grant-expiry:"+g.ID).Scan(&ret).Error; err != nil {
			return nil, err
		}
		p.GrantedMicro += g.Amount
		p.RemainingMicro += a.Balance
		p.ReturnedMicro += ret.S
		p.SpentMicro += g.Amount - a.Balance - ret.S
		p.CofundedMicro += g.Cofunded
	}
	out := []ProgrammeSpend{}
	for _, id := range order {
		p := by[id]
		var org Org
		_ = db.Where("id = ?", id).Take(&org).Error
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
	var ps []Price
	if err := s.db.WithContext(ctx).Order("gpu_model, pool_id, listing_id").Find(&ps).Error; err != nil {
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
	q := s.db.WithContext(ctx).Order("created_at DESC, id DESC")
	if orgID != "" {
		q = q.Where("org_id = ?", orgID)
	}
	var gs []Grant
	return gs, q.Find(&gs).Error
}

// HasPurchase reports whether an organisation has a purchase with this reference (seeds use it to stay
// idempotent).
func (s *Service) HasPurchase(ctx context.Context, orgID, reference string) (bool, error) {
	var n int64
	err := s.db.WithContext(ctx).Model(&Purchase{}).Where("org_id = ? AND reference = ?", orgID, reference).Count(&n).Error
	return n > 0, err
}
