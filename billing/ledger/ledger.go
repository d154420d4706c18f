// Package ledger is billing's double-entry core, modelled on TigerBeetle but kept in SQL: accounts with a
// no-overdraft flag, and immutable transfers of int64 micro-credits from a debit account to a credit account.
// A transfer is posted at once or pending (a reservation counted against the debit account's available
// balance) until a later post_pending or void_pending transfer resolves it, exactly once. Transfers given to one
// Apply call are linked: they all commit or none does.
//
// Every account stores balance = posted credits - posted debits, and the sums of its unresolved pending debits
// and credits, so the sum of all balances is always zero (credits are conserved). Verify recomputes all three
// from the transfers. Concurrency: Apply locks every account it touches in id order (SELECT ... FOR UPDATE on
// Postgres; SQLite's immediate transactions serialise writers), checks no-overdraft in memory, then applies
// one aggregated update per account. It knows nothing of wallets, grants or Stripe.
package ledger

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/tamarack-ai/tamarack/platform/sqldb"
)

// Transfer phases.
const (
	PhasePosted      = "posted"
	PhasePending     = "pending"
	PhasePostPending = "post_pending"
	PhaseVoidPending = "void_pending"
)

// Account is a ledger account. Balance is credit-normal: credits minus debits.
type Account struct {
	ID             string `gorm:"primaryKey"`
	Kind           string
	OrgID          string
	NoOverdraft    bool
	Balance        int64
	PendingDebits  int64
	PendingCredits int64
	CreatedAt      time.Time
}

// TableName maps Account.
func (Account) TableName() string { return "billing_accounts" }

// Available is what a no-overdraft account can still be debited.
func (a Account) Available() int64 { return a.Balance - a.PendingDebits }

// Transfer is one immutable ledger line. For post_pending and void_pending, PendingID names the pending
// transfer, and the accounts are copied from it by Apply; Amount of a post_pending is what is posted
// (at most the pending amount; the rest is released).
type Transfer struct {
	ID            string `gorm:"primaryKey"`
	Phase         string
	PendingID     *string
	DebitAccount  string
	CreditAccount string
	Amount        int64
	Kind          string
	Ref           string
	CreatedAt     time.Time
}

// TableName maps Transfer.
func (Transfer) TableName() string { return "billing_transfers" }

// Errors.
var (
	// ErrDuplicate means every transfer of the call is already recorded: the call already happened.
	ErrDuplicate = errors.New("ledger: transfers already recorded")
	// ErrPartialDuplicate means some but not all transfer IDs exist: a caller bug.
	ErrPartialDuplicate = errors.New("ledger: some transfers of a linked set already exist")
	ErrUnknownAccount   = errors.New("ledger: unknown account")
	ErrInvalid          = errors.New("ledger: invalid transfer")
	ErrNotPending       = errors.New("ledger: not a pending transfer")
	ErrResolved         = errors.New("ledger: pending transfer already posted or voided")
)

// InsufficientError is a refused debit of a no-overdraft account.
type InsufficientError struct {
	Account   string
	Shortfall int64
}

func (e *InsufficientError) Error() string {
	return fmt.Sprintf("ledger: account %s lacks %d micro-credits", e.Account, e.Shortfall)
}

// EnsureAccounts creates the accounts that do not exist yet; existing ones are left as they are.
func EnsureAccounts(tx *gorm.DB, now time.Time, accts ...Account) error {
	if len(accts) == 0 {
		return nil
	}
	for i := range accts {
		accts[i].Balance, accts[i].PendingDebits, accts[i].PendingCredits = 0, 0, 0
		if accts[i].CreatedAt.IsZero() {
			accts[i].CreatedAt = now
		}
	}
	return tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&accts).Error
}

// Delta is the aggregated change of one account.
type Delta struct{ Balance, PendingDebits, PendingCredits int64 }

// Apply records the linked transfers ts in tx: all or nothing. Zero-amount posted transfers are dropped.
func Apply(tx *gorm.DB, now time.Time, ts ...Transfer) error {
	var keep []Transfer
	for _, t := range ts {
		if t.Phase == "" {
			t.Phase = PhasePosted
		}
		if t.Amount == 0 && (t.Phase == PhasePosted || t.Phase == PhasePending) {
			continue
		}
		if t.ID == "" || t.Amount < 0 {
			return fmt.Errorf("%w: %q amount %d", ErrInvalid, t.ID, t.Amount)
		}
		if t.CreatedAt.IsZero() {
			t.CreatedAt = now
		}
		keep = append(keep, t)
	}
	if len(keep) == 0 {
		return nil
	}
	ids := make([]string, len(keep))
	for i, t := range keep {
		ids[i] = t.ID
	}
	var existing []string
	if err := tx.Model(&Transfer{}).Where("id IN ?", ids).Pluck("id", &existing).Error; err != nil {
		return err
	}
	if len(existing) == len(keep) {
		return ErrDuplicate
	} else if len(existing) > 0 {
		return fmt.Errorf("%w: %s", ErrPartialDuplicate, strings.Join(existing, ","))
	}

	deltas := map[string]*Delta{}
	d := func(id string) *Delta {
		if deltas[id] == nil {
			deltas[id] = &Delta{}
		}
		return deltas[id]
	}
	overflow := false
	add := func(p *int64, v int64) {
		r, ok := addInt64(*p, v)
		overflow = overflow || !ok
		*p = r
	}
	for i := range keep {
		t := &keep[i]
		switch t.Phase {
		case PhasePosted, PhasePending:
			if t.DebitAccount == t.CreditAccount || t.DebitAccount == "" || t.CreditAccount == "" {
				return fmt.Errorf("%w: %s: accounts %q -> %q", ErrInvalid, t.ID, t.DebitAccount, t.CreditAccount)
			}
			if t.Phase == PhasePosted {
				add(&d(t.DebitAccount).Balance, -t.Amount)
				add(&d(t.CreditAccount).Balance, t.Amount)
			} else {
				add(&d(t.DebitAccount).PendingDebits, t.Amount)
				add(&d(t.CreditAccount).PendingCredits, t.Amount)
			}
		case PhasePostPending, PhaseVoidPending:
			if t.PendingID == nil {
				return fmt.Errorf("%w: %s has no pending_id", ErrInvalid, t.ID)
			}
			var p Transfer
			if err := tx.Where("id = ?", *t.PendingID).Take(&p).Error; err != nil {
				if sqldb.IsNotFound(err) {
					return fmt.Errorf("%w: %s", ErrNotPending, *t.PendingID)
				}
				return err
			}
			if p.Phase != PhasePending {
				return fmt.Errorf("%w: %s", ErrNotPending, p.ID)
			}
			var n int64
			if err := tx.Model(&Transfer{}).Where("pending_id = ?", p.ID).Count(&n).Error; err != nil {
				return err
			}
			if n > 0 {
				return fmt.Errorf("%w: %s", ErrResolved, p.ID)
			}
			t.DebitAccount, t.CreditAccount = p.DebitAccount, p.CreditAccount
			add(&d(p.DebitAccount).PendingDebits, -p.Amount)
			add(&d(p.CreditAccount).PendingCredits, -p.Amount)
			if t.Phase == PhaseVoidPending {
				t.Amount = 0
			} else {
				if t.Amount > p.Amount {
					return fmt.Errorf("%w: %s posts %d of %d pending", ErrInvalid, t.ID, t.Amount, p.Amount)
				}
				add(&d(p.DebitAccount).Balance, -t.Amount)
				add(&d(p.CreditAccount).Balance, t.Amount)
			}
		default:
			return fmt.Errorf("%w: phase %q", ErrInvalid, t.Phase)
		}
	}

	if overflow {
		return fmt.Errorf("%w: amounts out of range", ErrInvalid)
	}
	accts, err := lock(tx, changed(deltas))
	if err != nil {
		return err
	}
	for _, a := range accts {
		dl := deltas[a.ID]
		_, ok1 := addInt64(a.Balance, dl.Balance)
		_, ok2 := addInt64(a.PendingDebits, dl.PendingDebits)
		_, ok3 := addInt64(a.PendingCredits, dl.PendingCredits)
		if !ok1 || !ok2 || !ok3 {
			return fmt.Errorf("%w: account %s would leave the int64 range", ErrInvalid, a.ID)
		}
		if !a.NoOverdraft || (dl.Balance >= 0 && dl.PendingDebits <= 0) {
			continue
		}
		if avail := a.Balance + dl.Balance - (a.PendingDebits + dl.PendingDebits); avail < 0 {
			return &InsufficientError{Account: a.ID, Shortfall: -avail}
		}
	}
	if err := InsertTransfers(tx, keep); err != nil {
		return err
	}
	return UpdateBalances(tx, deltas)
}

// addInt64 returns a+b and false when the sum overflows int64.
func addInt64(a, b int64) (int64, bool) {
	s := a + b
	return s, !((b > 0 && s < a) || (b < 0 && s > a))
}

// changed lists the accounts of deltas whose changes do not net to zero. An account whose changes net to zero
// (a clearing account within one linked set) is neither locked nor updated: that keeps clearing accounts from
// becoming a point of contention.
func changed(deltas map[string]*Delta) []string {
	ids := make([]string, 0, len(deltas))
	for id, dl := range deltas {
		if *dl != (Delta{}) {
			ids = append(ids, id)
		}
	}
	return ids
}

// lock reads (and on Postgres row-locks, in id order) the accounts ids.
func lock(tx *gorm.DB, ids []string) ([]Account, error) {
	sort.Strings(ids)
	if len(ids) == 0 {
		return nil, nil
	}
	var accts []Account
	if err := sqldb.ForUpdate(tx).Where("id IN ?", ids).Order("id").Find(&accts).Error; err != nil {
		return nil, err
	}
	if len(accts) != len(ids) {
		found := map[string]bool{}
		for _, a := range accts {
			found[a.ID] = true
		}
		for _, id := range ids {
			if !found[id] {
				return nil, fmt.Errorf("%w: %s", ErrUnknownAccount, id)
			}
		}
	}
	return accts, nil
}

// Lock row-locks accounts in id order and returns them by id (callers that check balances themselves).
func Lock(tx *gorm.DB, ids ...string) (map[string]Account, error) {
	accts, err := lock(tx, append([]string(nil), ids...))
	if err != nil {
		return nil, err
	}
	out := make(map[string]Account, len(accts))
	for _, a := range accts {
		out[a.ID] = a
	}
	return out, nil
}

// InsertTransfers writes transfers with multi-row inserts. Callers that bypass Apply (the batched meter)
// must have locked and checked the accounts and must apply the matching UpdateBalances in the same tx.
func InsertTransfers(tx *gorm.DB, ts []Transfer) error {
	const cols = 9
	chunk := 500
	if sqldb.DialectOf(tx) == sqldb.SQLite {
		chunk = 64 // the SQLite driver binds parameters in quadratic time
	}
	for start := 0; start < len(ts); start += chunk {
		part := ts[start:min(start+chunk, len(ts))]
		var b strings.Builder
		b.WriteString("INSERT INTO billing_transfers (id, phase, pending_id, debit_account, credit_account, amount, kind, ref, created_at) VALUES ")
		args := make([]any, 0, len(part)*cols)
		for i, t := range part {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("(?,?,?,?,?,?,?,?,?)")
			args = append(args, t.ID, t.Phase, t.PendingID, t.DebitAccount, t.CreditAccount, t.Amount, t.Kind, t.Ref, t.CreatedAt.UTC())
		}
		if err := tx.Exec(b.String(), args...).Error; err != nil {
			return err
		}
	}
	return nil
}

// UpdateBalances applies aggregated deltas with one statement per 300 accounts.
func UpdateBalances(tx *gorm.DB, deltas map[string]*Delta) error {
	ids := make([]string, 0, len(deltas))
	for id, dl := range deltas {
		if *dl != (Delta{}) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for start := 0; start < len(ids); start += 300 {
		part := ids[start:min(start+300, len(ids))]
		var b strings.Builder
		var args []any
		b.WriteString("UPDATE billing_accounts SET ")
		for k, col := range []string{"balance", "pending_debits", "pending_credits"} {
			if k > 0 {
				b.WriteString(", ")
			}
			b.WriteString(col + " = " + col + " + CASE id")
			for _, id := range part {
				dl := deltas[id]
				v := [3]int64{dl.Balance, dl.PendingDebits, dl.PendingCredits}[k]
				b.WriteString(" WHEN ? THEN CAST(? AS BIGINT)")
				args = append(args, id, v)
			}
			b.WriteString(" ELSE 0 END")
		}
		b.WriteString(" WHERE id IN ?")
		args = append(args, part)
		res := tx.Exec(b.String(), args...)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected != int64(len(part)) {
			return fmt.Errorf("%w: updated %d of %d accounts", ErrUnknownAccount, res.RowsAffected, len(part))
		}
	}
	return nil
}

// Difference is one account whose stored figures differ from its transfers, or a broken global invariant.
type Difference struct {
	Account  string
	Field    string
	Stored   int64
	Computed int64
}

func (d Difference) String() string {
	return fmt.Sprintf("%s %s: stored %d, from transfers %d", d.Account, d.Field, d.Stored, d.Computed)
}

// Verify recomputes every account's balance and pending sums from the transfers and reports each difference,
// each no-overdraft account below zero, and a non-zero total.
func Verify(db *gorm.DB) ([]Difference, int, error) {
	var accts []Account
	if err := db.Order("id").Find(&accts).Error; err != nil {
		return nil, 0, err
	}
	type sum struct {
		A string
		S int64
	}
	load := func(q string) (map[string]int64, error) {
		var rows []sum
		if err := db.Raw(q).Scan(&rows).Error; err != nil {
			return nil, err
		}
		m := map[string]int64{}
		for _, r := range rows {
			m[r.A] = r.S
		}
		return m, nil
	}
	bal, err := load(`SELECT a, SUM(s) AS s FROM (
		SELECT credit_account AS a, amount AS s FROM billing_transfers WHERE phase IN ('posted','post_pending')
		UNION ALL SELECT debit_account AS a, -amount AS s FROM billing_transfers WHERE phase IN ('posted','post_pending')
	) x GROUP BY a`)
	if err != nil {
		return nil, 0, err
	}
	open := `FROM billing_transfers t WHERE t.phase = 'pending' AND NOT EXISTS (SELECT 1 FROM billing_transfers r WHERE r.pending_id = t.id)`
	pd, err := load(`SELECT t.debit_account AS a, SUM(t.amount) AS s ` + open + ` GROUP BY t.debit_account`)
	if err != nil {
		return nil, 0, err
	}
	pc, err := load(`SELECT t.credit_account AS a, SUM(t.amount) AS s ` + open + ` GROUP BY t.credit_account`)
	if err != nil {
		return nil, 0, err
	}
	var diffs []Difference
	var total int64
	known := map[string]bool{}
	for _, a := range accts {
		known[a.ID] = true
		total += a.Balance
		for _, f := range []struct {
			name     string
			st, comp int64
		}{{"balance", a.Balance, bal[a.ID]}, {"pending_debits", a.PendingDebits, pd[a.ID]}, {"pending_credits", a.PendingCredits, pc[a.ID]}} {
			if f.st != f.comp {
				diffs = append(diffs, Difference{Account: a.ID, Field: f.name, Stored: f.st, Computed: f.comp})
			}
		}
		if a.NoOverdraft && a.Balance-a.PendingDebits < 0 {
			diffs = append(diffs, Difference{Account: a.ID, Field: "available (no overdraft)", Stored: a.Balance - a.PendingDebits, Computed: 0})
		}
	}
	for id, v := range bal {
		if !known[id] {
			diffs = append(diffs, Difference{Account: id, Field: "missing account", Computed: v})
		}
	}
	if total != 0 {
		diffs = append(diffs, Difference{Account: "*", Field: "sum of balances", Stored: total, Computed: 0})
	}
	return diffs, len(accts), nil
}
