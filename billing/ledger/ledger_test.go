package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/billing"
	"github.com/tamarack-ai/tamarack/billing/ledger"
	"github.com/tamarack-ai/tamarack/platform/dbtest"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
)

var sets = []sqldb.Migrations{billing.Migrations()}

// TestPropertyConcurrent runs thousands of random concurrent transfers, holds, posts and voids, then checks
// that every stored balance equals the sum of its transfers, no no-overdraft account is negative and the
// total is zero.
func TestPropertyConcurrent(t *testing.T) {
	dbtest.Each(t, sets, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		const nAcct = 12
		var accts []ledger.Account
		for i := range nAcct {
			accts = append(accts, ledger.Account{ID: fmt.Sprintf("acct-%02d", i), Kind: "test", NoOverdraft: i > 1})
		}
		if err := ledger.EnsureAccounts(db, now, accts...); err != nil {
			t.Fatal(err)
		}
		// Fund the guarded accounts from the two open ones.
		for i := 2; i < nAcct; i++ {
			if err := ledger.Apply(db, now, ledger.Transfer{ID: fmt.Sprintf("fund-%d", i), DebitAccount: "acct-00",
				CreditAccount: accts[i].ID, Amount: 1_000_000, Kind: "fund"}); err != nil {
				t.Fatal(err)
			}
		}
		var (
			mu       sync.Mutex
			pendings []string
			seq      atomic.Int64
			refused  atomic.Int64
			applied  atomic.Int64
		)
		workers, per := 8, 400
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(w), 7))
				for range per {
					id := fmt.Sprintf("t-%d", seq.Add(1))
					a, b := rng.IntN(nAcct), rng.IntN(nAcct)
					if a == b {
						b = (b + 1) % nAcct
					}
					amt := rng.Int64N(300_000) + 1
					var ts []ledger.Transfer
					switch op := rng.IntN(10); {
					case op < 4:
						ts = []ledger.Transfer{{ID: id, DebitAccount: accts[a].ID, CreditAccount: accts[b].ID, Amount: amt, Kind: "x"}}
					case op < 6: // linked pair: both or neither
						c := (b + 1) % nAcct
						if c == a {
							c = (c + 1) % nAcct
						}
						ts = []ledger.Transfer{
							{ID: id + "a", DebitAccount: accts[a].ID, CreditAccount: accts[b].ID, Amount: amt, Kind: "x"},
							{ID: id + "b", DebitAccount: accts[b].ID, CreditAccount: accts[c].ID, Amount: amt * 2, Kind: "x"},
						}
					case op < 8:
						ts = []ledger.Transfer{{ID: id, Phase: ledger.PhasePending, DebitAccount: accts[a].ID, CreditAccount: accts[b].ID, Amount: amt, Kind: "hold"}}
					default:
						mu.Lock()
						if len(pendings) == 0 {
							mu.Unlock()
							continue
						}
						k := rng.IntN(len(pendings))
						p := pendings[k]
						pendings = append(pendings[:k], pendings[k+1:]...)
						mu.Unlock()
						if rng.IntN(2) == 0 {
							ts = []ledger.Transfer{{ID: id, Phase: ledger.PhaseVoidPending, PendingID: &p, Kind: "void"}}
						} else {
							ts = []ledger.Transfer{{ID: id, Phase: ledger.PhasePostPending, PendingID: &p, Amount: rng.Int64N(2), Kind: "post"}}
						}
					}
					err := sqldb.Tx(ctx, db, func(tx *gorm.DB) error { return ledger.Apply(tx, now, ts...) })
					var ie *ledger.InsufficientError
					switch {
					case err == nil:
						applied.Add(1)
						if ts[0].Phase == ledger.PhasePending {
							mu.Lock()
							pendings = append(pendings, id)
							mu.Unlock()
						}
					case errors.As(err, &ie):
						refused.Add(1)
					default:
						t.Errorf("apply %s: %v", id, err)
						return
					}
					// Replaying is a no-op.
					if err == nil && rng.IntN(20) == 0 {
						if err := ledger.Apply(db, now, ts...); !errors.Is(err, ledger.ErrDuplicate) {
							t.Errorf("replay %s: %v", id, err)
						}
					}
				}
			}()
		}
		wg.Wait()
		if applied.Load() < int64(workers*per/2) || refused.Load() == 0 {
			t.Logf("applied %d refused %d", applied.Load(), refused.Load())
		}
		diffs, n, err := ledger.Verify(db)
		if err != nil {
			t.Fatal(err)
		}
		if n != nAcct {
			t.Fatalf("%d accounts", n)
		}
		for _, d := range diffs {
			t.Error(d)
		}
		t.Logf("applied %d, refused %d", applied.Load(), refused.Load())
	})
}

func TestResolveOnce(t *testing.T) {
	dbtest.Each(t, sets, func(t *testing.T, db *gorm.DB) {
		now := time.Now().UTC()
		if err := ledger.EnsureAccounts(db, now, ledger.Account{ID: "a"}, ledger.Account{ID: "b", NoOverdraft: true}); err != nil {
			t.Fatal(err)
		}
		if err := ledger.Apply(db, now, ledger.Transfer{ID: "p", Phase: ledger.PhasePending, DebitAccount: "b", CreditAccount: "a", Amount: 5}); err == nil {
			t.Fatal("pending on an empty guarded account must be refused")
		}
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		must(ledger.Apply(db, now, ledger.Transfer{ID: "f", DebitAccount: "a", CreditAccount: "b", Amount: 10}))
		must(ledger.Apply(db, now, ledger.Transfer{ID: "p", Phase: ledger.PhasePending, DebitAccount: "b", CreditAccount: "a", Amount: 8}))
		var ie *ledger.InsufficientError
		if err := ledger.Apply(db, now, ledger.Transfer{ID: "x", DebitAccount: "b", CreditAccount: "a", Amount: 3}); !errors.As(err, &ie) || ie.Shortfall != 1 {
			t.Fatalf("held credits must not be spendable: %v", err)
		}
		p := "p"
		must(ledger.Apply(db, now, ledger.Transfer{ID: "pp", Phase: ledger.PhasePostPending, PendingID: &p, Amount: 6}))
		if err := ledger.Apply(db, now, ledger.Transfer{ID: "pv", Phase: ledger.PhaseVoidPending, PendingID: &p}); !errors.Is(err, ledger.ErrResolved) {
			t.Fatalf("second resolution: %v", err)
		}
		accts, err := ledger.Lock(db, "a", "b")
		must(err)
		if accts["b"].Balance != 4 || accts["b"].PendingDebits != 0 || accts["a"].Balance != -4 {
			t.Fatalf("balances %+v", accts)
		}
		diffs, _, err := ledger.Verify(db)
		must(err)
		if len(diffs) > 0 {
			t.Fatal(diffs)
		}
	})
}
