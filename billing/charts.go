package billing

import (
	"context"
	"errors"
	"time"

	"github.com/tamarack-ai/tamarack/platform/dayrange"
)

// Aggregates for charts: small, day-bucketed series over a bounded range. Days are calendar days (yyyy-mm-dd)
// of the viewer's time zone (the tz parameter, an IANA zone; UTC when absent): in UTC the sums run in SQL on
// the UTC day usage rows are metered in; in another zone each row counts on the local day of its instant.

// SpendDay is one day of an organisation's spend.
type SpendDay struct {
	Day           string `json:"day"`
	ChargeMicro   int64  `json:"charge_micro"`   // gross metered charges
	CofundedMicro int64  `json:"cofunded_micro"` // paid by the programme
	PaidMicro     int64  `json:"paid_micro"`     // paid by the organisation (charge − co-funded − shortfall)
	MonthToDate   int64  `json:"month_to_date_micro"`
}

// ListingSpend is spend on one listing over the range.
type ListingSpend struct {
	ListingID     string `json:"listing_id"`
	ListingTitle  string `json:"listing_title"`
	Millis        int64  `json:"millis"`
	ChargeMicro   int64  `json:"charge_micro"`
	CofundedMicro int64  `json:"cofunded_micro"`
	PaidMicro     int64  `json:"paid_micro"`
}

// SpendChart is an organisation's spend per day against its monthly budget, and by sandbox and listing.
type SpendChart struct {
	From               string         `json:"from"`
	To                 string         `json:"to"`
	MonthlyBudgetMicro int64          `json:"monthly_budget_micro"` // 0: no budget
	Days               []SpendDay     `json:"days"`
	BySandbox          []SandboxUsage `json:"by_sandbox"`
	ByListing          []ListingSpend `json:"by_listing"`
}

type daySums struct {
	Day      string
	Charge   int64
	Cofunded int64
	Short    int64
}

// SpendChartOf aggregates an organisation's metered usage over r.
func (s *Service) SpendChartOf(ctx context.Context, orgID string, r dayrange.Range) (SpendChart, error) {
	db := s.db.WithContext(ctx)
	out := SpendChart{From: r.From.Format("2006-01-02"), To: r.To.Format("2006-01-02"), Days: []SpendDay{}, ByListing: []ListingSpend{}}
	org, err := getOrg(db, orgID)
	if err != nil && !errors.Is(err, ErrOrgNotFound) {
		return out, err
	}
	out.MonthlyBudgetMicro = org.BudgetMicro
	// From the first of from's month, so that the month-to-date total of the first days is right.
	monthStart := time.Date(r.From.Year(), r.From.Month(), 1, 0, 0, 0, 0, time.UTC).Format("2006-01-02")
	end := r.To.AddDate(0, 0, 1).Format("2006-01-02")
	by := map[string]daySums{}
	if r.Local() {
		// Each metered row on the local day of its instant.
		first := dayrange.Range{From: time.Date(r.From.Year(), r.From.Month(), 1, 0, 0, 0, 0, time.UTC), To: r.To, Loc: r.Loc}
		if err := eachUsageBetween(db, orgID, first.Start(), first.End(), func(u Usage) {
			k := r.DayOf(u.CreatedAt)
			x := by[k]
			x.Day, x.Charge, x.Cofunded, x.Short = k, x.Charge+u.Charge, x.Cofunded+u.Cofunded, x.Short+u.Shortfall
			by[k] = x
		}); err != nil {
			return out, err
		}
	} else {
		sums, err := usageDaySums(db, orgID, monthStart, end)
		if err != nil {
			return out, err
		}
		for _, x := range sums {
			by[x.Day] = x
		}
	}
	var mtd int64
	for d := time.Date(r.From.Year(), r.From.Month(), 1, 0, 0, 0, 0, time.UTC); !d.After(r.To); d = d.AddDate(0, 0, 1) {
		if d.Day() == 1 {
			mtd = 0
		}
		k := d.Format("2006-01-02")
		x := by[k]
		paid := x.Charge - x.Cofunded - x.Short
		mtd += paid
		if !d.Before(r.From) {
			out.Days = append(out.Days, SpendDay{Day: k, ChargeMicro: x.Charge, CofundedMicro: x.Cofunded, PaidMicro: paid, MonthToDate: mtd})
		}
	}
	if r.Local() {
		out.BySandbox, err = sandboxUsageBetween(db, orgID, r.Start(), r.End())
	} else {
		out.BySandbox, err = sandboxUsageOnDays(db, orgID, out.From, end)
	}
	if err != nil {
		return out, err
	}
	idx := map[string]int{}
	for _, u := range out.BySandbox {
		i, ok := idx[u.ListingID]
		if !ok {
			i = len(out.ByListing)
			idx[u.ListingID] = i
			out.ByListing = append(out.ByListing, ListingSpend{ListingID: u.ListingID, ListingTitle: u.ListingTitle})
		}
		l := &out.ByListing[i]
		l.Millis += u.Millis
		l.ChargeMicro += u.ChargeMicro
		l.CofundedMicro += u.CofundedMicro
		l.PaidMicro += u.PaidMicro
	}
	return out, nil
}

// EarningsDay is one day of a vendor's earnings (credited to its payable account).
type EarningsDay struct {
	Day         string `json:"day"`
	UsageMicro  int64  `json:"usage_micro"`  // accelerator time sold
	OrdersMicro int64  `json:"orders_micro"` // marketplace orders
}

// EarningsChart is a vendor's earnings per day.
type EarningsChart struct {
	From string        `json:"from"`
	To   string        `json:"to"`
	Days []EarningsDay `json:"days"`
}

// EarningsChartOf sums what the ledger credited to the vendor's payable account per day and kind.
func (s *Service) EarningsChartOf(ctx context.Context, vendorOrgID string, r dayrange.Range) (EarningsChart, error) {
	out := EarningsChart{From: r.From.Format("2006-01-02"), To: r.To.Format("2006-01-02"), Days: []EarningsDay{}}
	db := s.db.WithContext(ctx)
	usage, err := vendorEarningsByDay(db, vendorOrgID, "usage", r)
	if err != nil {
		return out, err
	}
	orders, err := vendorEarningsByDay(db, vendorOrgID, "order", r)
	if err != nil {
		return out, err
	}
	for _, d := range r.Days() {
		out.Days = append(out.Days, EarningsDay{Day: d, UsageMicro: usage[d], OrdersMicro: orders[d]})
	}
	return out, nil
}

// ProgrammeDay is one day of the programme's spend.
type ProgrammeDay struct {
	Day           string `json:"day"`
	GrantedMicro  int64  `json:"granted_micro"`     // new grants
	GrantSpent    int64  `json:"grant_spent_micro"` // grant credits spent on usage and orders
	CofundedMicro int64  `json:"cofunded_micro"`    // co-funded share of metered usage
}

// ProgrammeChart is the programme's spend and co-funding per day.
type ProgrammeChart struct {
	From string         `json:"from"`
	To   string         `json:"to"`
	Days []ProgrammeDay `json:"days"`
}

// ProgrammeChartOf aggregates grants, grant spend and co-funding per day (staff).
func (s *Service) ProgrammeChartOf(ctx context.Context, r dayrange.Range) (ProgrammeChart, error) {
	out := ProgrammeChart{From: r.From.Format("2006-01-02"), To: r.To.Format("2006-01-02"), Days: []ProgrammeDay{}}
	db := s.db.WithContext(ctx)
	g, err := grantedByDayAllOrgs(db, r)
	if err != nil {
		return out, err
	}
	sp, err := grantSpendByDayAllOrgs(db, r)
	if err != nil {
		return out, err
	}
	c, err := cofundedByDayAllOrgs(db, r)
	if err != nil {
		return out, err
	}
	for _, d := range r.Days() {
		out.Days = append(out.Days, ProgrammeDay{Day: d, GrantedMicro: g[d], GrantSpent: sp[d], CofundedMicro: c[d]})
	}
	return out, nil
}
