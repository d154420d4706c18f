package billing

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/tamarack-ai/tamarack/billing/ledger"
	"github.com/tamarack-ai/tamarack/platform/problem"
)

// Readable transactions ("activity"): what an organisation's money did, one line a person can read per thing
// that happened. Metered usage is rolled up per sandbox per UTC day (a sample belongs to the day its interval
// ended, as billing_usage.day records it: the platform has no per-organisation time zone); purchases, grants,
// grant expiries, refunds, orders and payouts are their own lines, one per ledger transfer; a vendor's usage
// earnings are rolled up per UTC day. Every line's amount_micro is the signed change it made to the
// organisation's own accounts, so the lines of an organisation add up exactly to the sum of its account
// balances (a test holds this). Pending and voided transfers (a payout in flight) are not lines.

// Activity line kinds.
const (
	ActivityUsage       = "usage"
	ActivityPurchase    = "purchase"
	ActivityGrant       = "grant"
	ActivityGrantExpiry = "grant_expiry"
	ActivityRefund      = "refund"
	ActivityOrder       = "order"
	ActivityPayout      = "payout"
	ActivityEarning     = "earning"
)

// ActivityKinds are the kinds a filter may name.
var ActivityKinds = []string{ActivityUsage, ActivityPurchase, ActivityGrant, ActivityGrantExpiry, ActivityRefund, ActivityOrder, ActivityPayout, ActivityEarning}

// ErrLineNotFound answers an entries request for a line the organisation does not have.
var ErrLineNotFound = problem.New(http.StatusNotFound, "transaction_not_found", "No such transaction line for this organisation.")

// ActivityLine is one readable line. Usage lines carry the sandbox, its listing, duration, GPUs, rate, gross,
// co-funded share, shortfall and net; other lines carry the ledger reference.
type ActivityLine struct {
	ID             string    `json:"id"` // opaque; GET …/transactions/{id}/entries lists what it rolls up
	Kind           string    `json:"kind"`
	Date           string    `json:"date"` // yyyy-mm-dd, UTC
	At             time.Time `json:"at"`   // the latest moment the line covers
	AmountMicro    int64     `json:"amount_micro"`
	SandboxID      string    `json:"sandbox_id,omitempty"`
	ListingID      string    `json:"listing_id,omitempty"`
	ListingTitle   string    `json:"listing_title,omitempty"`
	GPUModel       string    `json:"gpu_model,omitempty"`
	GPUCount       int       `json:"gpu_count,omitempty"`
	DurationMs     int64     `json:"duration_ms,omitempty"`
	RateMicro      int64     `json:"rate_micro,omitempty"` // per GPU-hour
	GrossMicro     int64     `json:"gross_micro,omitempty"`
	CofundedMicro  int64     `json:"cofunded_micro,omitempty"`
	ShortfallMicro int64     `json:"shortfall_micro,omitempty"`
	NetMicro       int64     `json:"net_micro,omitempty"` // paid by the organisation: gross − co-funded − shortfall
	Entries        int       `json:"entries"`
	Ref            string    `json:"ref,omitempty"`
}

// ActivityFilter selects lines; zero fields select everything. From and To are UTC days, inclusive.
type ActivityFilter struct {
	Kinds     []string
	From, To  string
	SandboxID string
	ListingID string
	Ascending bool
}

// Validate lists every bad field at once.
func (f ActivityFilter) Validate() error {
	var fs problem.Fields
	for _, k := range f.Kinds {
		if !slices.Contains(ActivityKinds, k) {
			fs.AddMsg("kind", "invalid", "field.text.one_or_more_of", problem.Args{"Values": strings.Join(ActivityKinds, ", ")})
			break
		}
	}
	var from, to time.Time
	var err error
	if f.From != "" {
		if from, err = time.Parse(time.DateOnly, f.From); err != nil {
			fs.Add("from", "invalid", "use yyyy-mm-dd")
		}
	}
	if f.To != "" {
		if to, err = time.Parse(time.DateOnly, f.To); err != nil {
			fs.Add("to", "invalid", "use yyyy-mm-dd")
		}
	}
	if !from.IsZero() && !to.IsZero() && to.Before(from) {
		fs.Add("to", "out_of_range", "must not be before from")
	}
	for name, v := range map[string]string{"sandbox_id": f.SandboxID, "listing_id": f.ListingID} {
		if len(v) > 200 {
			fs.Add(name, "too_long", "at most 200 characters")
		}
	}
	return fs.Err()
}

func (f ActivityFilter) keeps(l ActivityLine) bool {
	if len(f.Kinds) > 0 && !slices.Contains(f.Kinds, l.Kind) {
		return false
	}
	if (f.From != "" && l.Date < f.From) || (f.To != "" && l.Date > f.To) {
		return false
	}
	if (f.SandboxID != "" && l.SandboxID != f.SandboxID) || (f.ListingID != "" && l.ListingID != f.ListingID) {
		return false
	}
	return true
}

// activityKind maps a ledger transfer kind to a line kind; usage debits are rolled up from billing_usage.
func activityKind(transferKind string, credit bool, vendorAcct bool) string {
	switch {
	case transferKind == "usage" && vendorAcct:
		return ActivityEarning
	case transferKind == "usage":
		return ActivityUsage
	case slices.Contains(ActivityKinds, transferKind):
		return transferKind
	case credit:
		return ActivityPurchase
	default:
		return ActivityOrder
	}
}

func usageLineID(day, sandbox string) string { return "u." + day + "." + sandbox }
func earningLineID(day string) string        { return "e." + day }

// transferLineID names the line of every transfer of one kind with one reference (an order paid partly from a
// grant and partly from purchased credits is one line).
func transferLineID(t ledger.Transfer) string {
	return "t." + base64.RawURLEncoding.EncodeToString([]byte(t.Kind+"|"+transferRef(t)))
}

func transferRef(t ledger.Transfer) string {
	if t.Ref != "" {
		return t.Ref
	}
	return t.ID
}

// Activity computes every line of an organisation that the filter keeps, ordered by time (then ID).
func (s *Service) Activity(ctx context.Context, orgID string, f ActivityFilter) ([]ActivityLine, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	db := s.db.WithContext(ctx)
	lines := []ActivityLine{}

	// Usage, rolled up per sandbox per day.
	rows, err := usageBySandboxDay(db, orgID, f.SandboxID)
	if err != nil {
		return nil, fmt.Errorf("activity usage of %s: %w", orgID, err)
	}
	if len(rows) > 0 {
		ids := make([]string, 0, len(rows))
		for _, r := range rows {
			ids = append(ids, r.SandboxID)
		}
		holds, err := holdsOf(db, orgID, ids)
		if err != nil {
			return nil, fmt.Errorf("activity holds of %s: %w", orgID, err)
		}
		byID := map[string]Hold{}
		var listingIDs []string
		for _, h := range holds {
			byID[h.SandboxID] = h
			listingIDs = append(listingIDs, h.ListingID)
		}
		prices, err := pricesOf(db, listingIDs)
		if err != nil {
			return nil, fmt.Errorf("activity listings of %s: %w", orgID, err)
		}
		titles := map[string]string{}
		for _, p := range prices {
			titles[p.ListingID] = p.Title
		}
		for _, r := range rows {
			h := byID[r.SandboxID]
			net := r.Charge - r.Cofunded - r.Shortfall
			lines = append(lines, ActivityLine{ID: usageLineID(r.Day, r.SandboxID), Kind: ActivityUsage, Date: r.Day, At: time.Time(r.Last).UTC(),
				AmountMicro: -net, SandboxID: r.SandboxID, ListingID: h.ListingID, ListingTitle: titles[h.ListingID],
				GPUModel: r.GPUModel, GPUCount: h.GPUCount, DurationMs: r.Millis, RateMicro: h.Price, GrossMicro: r.Charge,
				CofundedMicro: r.Cofunded, ShortfallMicro: r.Shortfall, NetMicro: net, Entries: r.N})
		}
	}

	// Every other movement of the organisation's accounts, from the ledger.
	own, err := orgLedgerOf(db, orgID)
	if err != nil {
		return nil, fmt.Errorf("activity accounts of %s: %w", orgID, err)
	}
	if !own.empty() {
		kind := map[string]string{}
		for _, a := range own.accts {
			kind[a.ID] = a.Kind
		}
		ts, err := settledTransfers(db, own)
		if err != nil {
			return nil, fmt.Errorf("activity transfers of %s: %w", orgID, err)
		}
		earnings := map[string]*ActivityLine{}
		grouped := map[string]*ActivityLine{}
		for _, t := range ts {
			var amount int64
			if _, ok := kind[t.CreditAccount]; ok {
				amount += t.Amount
			}
			if _, ok := kind[t.DebitAccount]; ok {
				amount -= t.Amount
			}
			_, credited := kind[t.CreditAccount]
			k := activityKind(t.Kind, credited && amount > 0, kind[t.CreditAccount] == KindVendor)
			day := t.CreatedAt.UTC().Format(time.DateOnly)
			switch k {
			case ActivityUsage:
				continue // the usage rows above are these debits, per sandbox and day
			case ActivityEarning:
				e := earnings[day]
				if e == nil {
					e = &ActivityLine{ID: earningLineID(day), Kind: ActivityEarning, Date: day}
					earnings[day] = e
				}
				e.AmountMicro += amount
				e.Entries++
				e.At = t.CreatedAt.UTC()
				continue
			}
			id := transferLineID(t)
			g := grouped[id]
			if g == nil {
				g = &ActivityLine{ID: id, Kind: k, Date: day, Ref: t.Ref}
				grouped[id] = g
			}
			g.AmountMicro += amount
			g.Entries++
			g.At = t.CreatedAt.UTC()
		}
		for _, e := range earnings {
			lines = append(lines, *e)
		}
		for _, g := range grouped {
			lines = append(lines, *g)
		}
	}

	kept := lines[:0]
	for _, l := range lines {
		if f.keeps(l) {
			kept = append(kept, l)
		}
	}
	slices.SortFunc(kept, func(a, b ActivityLine) int {
		c := a.At.Compare(b.At)
		if c == 0 {
			c = strings.Compare(a.ID, b.ID)
		}
		if !f.Ascending {
			c = -c
		}
		return c
	})
	return kept, nil
}

type activityCursor struct {
	At  time.Time `json:"t"`
	ID  string    `json:"i"`
	Asc bool      `json:"a"`
}

// pageActivity returns the lines after the cursor (in the filter's order) and the next cursor.
func pageActivity(lines []ActivityLine, limit int, cursor string, asc bool) ([]ActivityLine, string, error) {
	start := 0
	if cursor != "" {
		var c activityCursor
		if err := decodeCursor(cursor, &c); err != nil {
			return nil, "", err
		}
		if c.Asc != asc {
			return nil, "", problem.ErrBadCursor.WithDetailMsg("problem.invalid_cursor.other_order", nil)
		}
		start = len(lines)
		for i, l := range lines {
			cmp := l.At.Compare(c.At)
			if cmp == 0 {
				cmp = strings.Compare(l.ID, c.ID)
			}
			if (asc && cmp > 0) || (!asc && cmp < 0) {
				start = i
				break
			}
		}
	}
	lines = lines[start:]
	if len(lines) <= limit {
		return lines, "", nil
	}
	last := lines[limit-1]
	return lines[:limit], encodeCursor(activityCursor{At: last.At, ID: last.ID, Asc: asc}), nil
}

// ActivityEntry is one audited entry behind a line: a metered sample (usage) or a ledger leg (others).
type ActivityEntry struct {
	ID             string    `json:"id"` // usage event ID, or transfer ID
	At             time.Time `json:"at"`
	Seq            int64     `json:"seq,omitempty"`
	DurationMs     int64     `json:"duration_ms,omitempty"`
	GrossMicro     int64     `json:"gross_micro,omitempty"`
	CofundedMicro  int64     `json:"cofunded_micro,omitempty"`
	ShortfallMicro int64     `json:"shortfall_micro,omitempty"`
	AmountMicro    int64     `json:"amount_micro"` // signed change to the organisation's accounts
	Account        string    `json:"account,omitempty"`
	Counterparty   string    `json:"counterparty,omitempty"`
	BatchID        string    `json:"batch_id,omitempty"` // usage: the ledger transfers that charged it carry this ref
	Ref            string    `json:"ref,omitempty"`
}

// ActivityEntries lists what one line rolls up, oldest first.
func (s *Service) ActivityEntries(ctx context.Context, orgID, lineID string) ([]ActivityEntry, error) {
	db := s.db.WithContext(ctx)
	out := []ActivityEntry{}
	switch {
	case strings.HasPrefix(lineID, "u.") && len(lineID) > 13 && lineID[12] == '.':
		day, sandbox := lineID[2:12], lineID[13:]
		us, err := usageEntries(db, orgID, sandbox, day)
		if err != nil {
			return nil, fmt.Errorf("entries of %s: %w", lineID, err)
		}
		for _, u := range us {
			out = append(out, ActivityEntry{ID: u.EventID, At: u.CreatedAt.UTC(), Seq: u.Seq, DurationMs: u.Millis, GrossMicro: u.Charge,
				CofundedMicro: u.Cofunded, ShortfallMicro: u.Shortfall, AmountMicro: -(u.Charge - u.Cofunded - u.Shortfall), BatchID: u.BatchID})
		}
	case strings.HasPrefix(lineID, "t.") || strings.HasPrefix(lineID, "e."):
		var ts []ledger.Transfer
		own, err := orgLedgerOf(db, orgID)
		if err != nil {
			return nil, err
		}
		if own.empty() {
			break
		}
		if strings.HasPrefix(lineID, "t.") {
			raw, err := base64.RawURLEncoding.DecodeString(lineID[2:])
			if err != nil {
				return nil, ErrLineNotFound
			}
			kind, ref, ok := strings.Cut(string(raw), "|")
			if !ok {
				return nil, ErrLineNotFound
			}
			if ts, err = lineTransfers(db, own, kind, ref); err != nil {
				return nil, fmt.Errorf("entries of %s: %w", lineID, err)
			}
		} else {
			day, err := time.Parse(time.DateOnly, lineID[2:])
			if err != nil {
				return nil, ErrLineNotFound
			}
			if ts, err = earningTransfers(db, own, day); err != nil {
				return nil, fmt.Errorf("entries of %s: %w", lineID, err)
			}
		}
		mine := toSet(own.ids())
		for _, t := range ts {
			if mine[t.DebitAccount] {
				out = append(out, ActivityEntry{ID: t.ID, At: t.CreatedAt.UTC(), AmountMicro: -t.Amount, Account: t.DebitAccount, Counterparty: t.CreditAccount, Ref: t.Ref})
			}
			if mine[t.CreditAccount] {
				out = append(out, ActivityEntry{ID: t.ID, At: t.CreatedAt.UTC(), AmountMicro: t.Amount, Account: t.CreditAccount, Counterparty: t.DebitAccount, Ref: t.Ref})
			}
		}
	}
	if len(out) == 0 {
		return nil, ErrLineNotFound
	}
	return out, nil
}

// dbTime scans an aggregate of a time column: Postgres gives a time, SQLite the text it stored.
type dbTime time.Time

func (t *dbTime) Scan(v any) error {
	switch x := v.(type) {
	case time.Time:
		*t = dbTime(x)
		return nil
	case []byte:
		return t.Scan(string(x))
	case string:
		for _, layout := range []string{"2006-01-02 15:04:05.999999999-07:00", time.RFC3339Nano, "2006-01-02 15:04:05.999999999"} {
			if p, err := time.Parse(layout, x); err == nil {
				*t = dbTime(p)
				return nil
			}
		}
		return fmt.Errorf("not a time: %q", x)
	case nil:
		*t = dbTime{}
		return nil
	}
	return fmt.Errorf("not a time: %T", v)
}
