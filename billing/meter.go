package billing

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/billing/charge"
	"github.com/tamarack-ai/tamarack/billing/ledger"
	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/money"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/services/events"
)

// ChargeUsage charges a batch of usage events in one transaction, exactly once:
//
//   - Each event's ID is inserted into billing_usage (primary key) in the same transaction as the transfers it
//     causes; events already there are skipped, so redelivery, duplicates and a crash before the ack are
//     harmless, and a crash before the commit loses nothing (the events are redelivered).
//   - Rounding is cumulative per sandbox: after each event, charged = floor(price × device_ms / 3,600,000) over
//     the sandbox's whole metered time, and the event is charged the difference. The sum of a sandbox's
//     charges is therefore floor(price × total time), within one micro-credit of the exact product, whatever
//     the number or order of intervals.
//   - The co-funded part (a verified organisation's grant with a co-funding rule pays P% up to its cap) comes
//     from the programme fund; the organisation pays the rest from its grants (nearest expiry first) and then
//     its purchased credits. What it cannot pay is recorded as a shortfall (uncollected) and the wallet is
//     announced exhausted. The collected amount is split into the vendor's share and the platform fee.
//   - Transfers are aggregated per batch and account (sources → clearing:usage → vendors and a revenue shard),
//     with one multi-row insert and one update per table, so a batch costs a fixed number of statements.
func (s *Service) ChargeUsage(ctx context.Context, evs []eventbus.Event[events.SandboxUsageV1]) error {
	var (
		res usageResult
		err error
	)
	// First deliveries skip the look-up of processed IDs: the primary key of billing_usage arbitrates, and a
	// duplicate (a publisher retry outside JetStream's window, a concurrent consumer) aborts the transaction,
	// which then runs again with the look-up. Redeliveries look up at once.
	check := false
	for _, ev := range evs {
		check = check || ev.Delivered > 1
	}
	for attempt := 0; attempt < 5; attempt++ {
		err = sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error {
			var e error
			res, e = s.chargeTx(tx, evs, check)
			if e == nil && s.beforeCommit != nil {
				s.beforeCommit(ctx)
			}
			return e
		})
		// A duplicate or a concurrent consumer charged one of these events first: run again, it will be skipped.
		if err == nil || !sqldb.IsDuplicate(err) || ctx.Err() != nil {
			break
		}
		check = true
	}
	if err != nil {
		return fmt.Errorf("charge usage batch of %d events: %w", len(evs), err)
	}
	if len(res.exhausted)+len(res.thresholds) > 0 {
		s.outbox.Kick()
	}
	s.notify(ctx, res.thresholds)
	if s.cfg.AfterBatch != nil {
		s.cfg.AfterBatch(res.charged)
	}
	return nil
}

// usageEvent is one usage event as the meter reads it; a batch's working lists point into the delivered slice.
type usageEvent = eventbus.Event[events.SandboxUsageV1]

// usageResult is what a committed batch reports: the events it announced and the IDs it charged.
type usageResult struct {
	exhausted  []events.WalletExhaustedV1
	thresholds []events.BudgetThresholdV1
	charged    []string
}

type sandboxState struct {
	hold       *Hold
	isNew      bool
	lastCharge int64
	touched    bool
}

// usageBatch is one batch of usage events being charged inside its transaction: what it locked and read, and
// what it accumulates in memory before writing it with a fixed number of statements.
type usageBatch struct {
	s      *Service
	tx     *gorm.DB
	now    time.Time
	id     string   // the transfers' ref and the usage rows' batch_id
	orgIDs []string // sorted
	orgs   map[string]*Org
	sbs    map[string]*sandboxState
	funds  map[string]*funding

	src, dst  map[string]int64 // aggregated transfers into and out of clearing:usage, by account
	heldDelta map[string]int64 // change of each organisation's held amount
	grants    map[string]*Grant
	usage     []Usage
}

// chargeTx charges a batch inside tx. Locks are always taken in the same order (organisations, holds, funding
// accounts, each by sorted ID) so that concurrent batches queue instead of deadlocking.
func (s *Service) chargeTx(tx *gorm.DB, evs []eventbus.Event[events.SandboxUsageV1], check bool) (usageResult, error) {
	b := &usageBatch{s: s, tx: tx, now: s.now(), id: newID("ub"), sbs: map[string]*sandboxState{}, funds: map[string]*funding{},
		src: map[string]int64{}, dst: map[string]int64{}, heldDelta: map[string]int64{}, grants: map[string]*Grant{}}
	batch := uniqueInSandboxOrder(evs)
	if err := b.lock(batch); err != nil {
		return usageResult{}, err
	}
	fresh, err := b.uncharged(batch, check)
	if err != nil || len(fresh) == 0 {
		return usageResult{}, err
	}
	if fresh, err = b.resolveHolds(fresh); err != nil || len(fresh) == 0 {
		return usageResult{}, err
	}
	if err := b.loadFunding(); err != nil {
		return usageResult{}, err
	}
	b.usage = make([]Usage, 0, len(fresh))
	for _, ev := range fresh {
		if err := b.charge(ev); err != nil {
			return usageResult{}, fmt.Errorf("charge usage event %s: %w", ev.ID, err)
		}
	}
	exhausted := b.settleHolds()
	if err := b.write(); err != nil {
		return usageResult{}, err
	}
	thresholds, err := b.grantThresholds()
	if err != nil {
		return usageResult{}, err
	}
	budgets, err := b.budgetThresholds()
	if err != nil {
		return usageResult{}, err
	}
	thresholds = append(thresholds, budgets...)
	if err := b.announce(exhausted, thresholds); err != nil {
		return usageResult{}, err
	}
	charged := make([]string, len(fresh))
	for i, ev := range fresh {
		charged[i] = ev.ID
	}
	return usageResult{exhausted: exhausted, thresholds: thresholds, charged: charged}, nil
}

// uniqueInSandboxOrder drops repeated event IDs and orders the rest by (sandbox, seq): the order in which
// cumulative rounding charges them.
func uniqueInSandboxOrder(evs []eventbus.Event[events.SandboxUsageV1]) []*usageEvent {
	seen := make(map[string]bool, len(evs))
	out := make([]*usageEvent, 0, len(evs))
	for i := range evs {
		if !seen[evs[i].ID] {
			seen[evs[i].ID] = true
			out = append(out, &evs[i])
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].Data, out[j].Data
		if a.SandboxID != b.SandboxID {
			return a.SandboxID < b.SandboxID
		}
		return a.Seq < b.Seq
	})
	return out
}

// lock creates the organisations' projections that do not exist yet, then row-locks the organisations and the
// holds of the batch's sandboxes (before looking for processed events: a concurrent batch with the same events
// then commits first and its rows are seen).
func (b *usageBatch) lock(batch []*usageEvent) error {
	var orgIDs, sbIDs []string
	for _, ev := range batch {
		orgIDs = append(orgIDs, ev.Data.OrganizationID)
		sbIDs = append(sbIDs, ev.Data.SandboxID)
	}
	b.orgIDs, sbIDs = uniqSorted(orgIDs), uniqSorted(sbIDs)
	known, err := knownOrgIDs(b.tx, b.orgIDs)
	if err != nil {
		return fmt.Errorf("look up organisations: %w", err)
	}
	if len(known) < len(b.orgIDs) {
		have := toSet(known)
		for _, o := range b.orgIDs {
			if !have[o] {
				if err := b.s.ensureOrg(b.tx, o); err != nil {
					return fmt.Errorf("project organisation %s: %w", o, err)
				}
			}
		}
	}
	orgs, err := lockOrgs(b.tx, b.orgIDs...)
	if err != nil {
		return fmt.Errorf("lock organisations: %w", err)
	}
	b.orgs = orgs
	hs, err := lockHolds(b.tx, sbIDs)
	if err != nil {
		return fmt.Errorf("lock holds: %w", err)
	}
	for i := range hs {
		b.sbs[hs[i].SandboxID] = &sandboxState{hold: &hs[i]}
	}
	return nil
}

// uncharged returns the events of batch not charged before (looked up only when check is set).
func (b *usageBatch) uncharged(batch []*usageEvent, check bool) ([]*usageEvent, error) {
	if !check {
		return batch, nil
	}
	ids := make([]string, len(batch))
	for i, ev := range batch {
		ids[i] = ev.ID
	}
	existing, err := chargedEvents(b.tx, ids)
	if err != nil {
		return nil, fmt.Errorf("look up charged events: %w", err)
	}
	fresh := batch[:0:0]
	for _, ev := range batch {
		if !existing[ev.ID] {
			fresh = append(fresh, ev)
		}
	}
	return fresh, nil
}

// resolveHolds gives every sandbox of fresh a hold (an implicit one, priced from the listing, when usage
// arrives without one) and makes sure the vendors' accounts exist.
//
// A sandbox's usage is charged to the organisation that holds it. An event naming another organisation is
// dropped, logged, and not charged to either: only the event's organisation is locked and funded in this batch.
func (b *usageBatch) resolveHolds(fresh []*usageEvent) ([]*usageEvent, error) {
	vendors := map[string]bool{}
	kept := fresh[:0:0]
	for _, ev := range fresh {
		d := ev.Data
		if st := b.sbs[d.SandboxID]; st == nil {
			h, err := b.s.implicitHold(b.tx, d.SandboxID, d.OrganizationID, d.ListingID, d.VendorOrgID, d.PoolID, d.GPUModel, d.DeviceCount, b.now)
			if err != nil {
				return nil, err
			}
			b.sbs[d.SandboxID] = &sandboxState{hold: &h, isNew: true}
		} else if st.hold.OrgID != d.OrganizationID {
			b.s.log.Error("usage event names another organisation than its sandbox's hold; not charged",
				"event", ev.ID, "sandbox", d.SandboxID, "event_org", d.OrganizationID, "hold_org", st.hold.OrgID)
			continue
		}
		kept = append(kept, ev)
		if v := b.sbs[d.SandboxID].hold.VendorOrgID; v != "" {
			vendors[v] = true
		}
	}
	if len(vendors) == 0 {
		return kept, nil
	}
	var accts []ledger.Account
	for _, v := range sortedKeys(vendors) {
		accts = append(accts, ledger.Account{ID: vendorAcct(v), Kind: KindVendor, OrgID: v, NoOverdraft: true})
	}
	have, err := existingAccounts(b.tx, accountIDs(accts))
	if err != nil {
		return nil, fmt.Errorf("look up vendor accounts: %w", err)
	}
	if len(have) < len(accts) {
		if err := ledger.EnsureAccounts(b.tx, b.now, accts...); err != nil {
			return nil, fmt.Errorf("create vendor accounts: %w", err)
		}
	}
	return kept, nil
}

// loadFunding locks and reads the grants and wallets of every organisation of the batch with two statements
// (the organisations' rows are locked already, so this order cannot deadlock with a single-organisation path).
func (b *usageBatch) loadFunding() error {
	funds, err := b.s.loadFundings(b.tx, b.orgIDs, b.orgs, b.now)
	if err != nil {
		return fmt.Errorf("funding: %w", err)
	}
	b.funds = funds
	return nil
}

// charge prices one event (cumulative rounding on its sandbox's meter), takes the co-funded part from the
// programme fund and the rest from the organisation's funding in spend order, records what it could not
// collect, and splits what it collected between the vendor and the platform.
func (b *usageBatch) charge(ev *usageEvent) error {
	d := ev.Data
	st := b.sbs[d.SandboxID]
	h := st.hold
	m := charge.Meter{Price: money.Micro(h.Price), DeviceMs: h.CumMs, Charged: money.Micro(h.Charged)}
	c, err := m.Add(d.DeviceCount, d.Millis)
	if err != nil {
		return fmt.Errorf("sandbox %s: %w", h.SandboxID, err)
	}
	amount := int64(c)
	if !h.Released {
		b.heldDelta[h.OrgID] -= min(amount, h.Remaining())
	}
	h.CumMs, h.Charged = m.DeviceMs, int64(m.Charged)
	h.Samples++
	h.MaxSeq = max(h.MaxSeq, int64(d.Seq))
	h.UpdatedAt = b.now
	st.touched, st.lastCharge = true, amount

	f := b.funds[d.OrganizationID]
	cofund, err := b.cofund(d.OrganizationID, f, amount)
	if err != nil {
		return err
	}
	takes, short := f.take(amount - cofund)
	for i, v := range takes {
		if v == 0 {
			continue
		}
		b.src[f.order[i]] += v
		if i < len(f.grants) { // grants come first in spend order
			b.grants[f.grants[i].ID] = &f.grants[i]
		}
	}
	if cofund > 0 {
		b.src[AcctFund] += cofund
	}
	vendorShare, fee, err := charge.Split(money.Micro(amount-short), b.s.cfg.VendorShareBPS)
	if err != nil {
		return err
	}
	if h.VendorOrgID != "" {
		b.dst[vendorAcct(h.VendorOrgID)] += int64(vendorShare)
	} else {
		fee += vendorShare
	}
	b.dst[b.s.revenueFor(b.id)] += int64(fee)
	h.Shortfall += short
	b.usage = append(b.usage, Usage{EventID: ev.ID, SandboxID: d.SandboxID, OrgID: d.OrganizationID, VendorOrgID: h.VendorOrgID,
		GPUModel: firstNonEmpty(h.GPUModel, d.GPUModel), Seq: int64(d.Seq), Millis: d.Millis, Charge: amount, Cofunded: cofund,
		Shortfall: short, BatchID: b.id, Day: d.End.UTC().Format("2006-01-02"), CreatedAt: b.now})
	return nil
}

// cofund applies the first co-funding rule with cap left among a verified organisation's grants (nearest
// expiry first) to amount, and returns the programme's share.
func (b *usageBatch) cofund(orgID string, f *funding, amount int64) (int64, error) {
	if org := b.orgs[orgID]; org == nil || !org.Verified || amount <= 0 {
		return 0, nil
	}
	for i := range f.grants {
		g := &f.grants[i]
		if g.CofundPercent <= 0 || g.Cofunded >= g.Cap {
			continue
		}
		share, err := charge.Cofund(money.Micro(amount), g.CofundPercent, money.Micro(g.Cap-g.Cofunded))
		if err != nil {
			return 0, fmt.Errorf("grant %s: %w", g.ID, err)
		}
		g.Cofunded += int64(share)
		b.grants[g.ID] = g
		return int64(share), nil
	}
	return 0, nil
}

// settleHolds marks exhausted the running sandboxes whose charges outrun their funds, and releases the holds
// of stopped sandboxes whose every usage sample is now charged.
func (b *usageBatch) settleHolds() []events.WalletExhaustedV1 {
	var exhausted []events.WalletExhaustedV1
	for _, sb := range sortedKeys(b.sbs) {
		st := b.sbs[sb]
		h := st.hold
		if !st.touched || h.Released {
			continue
		}
		avail := b.funds[h.OrgID].total() - (b.orgs[h.OrgID].Held + b.heldDelta[h.OrgID])
		if !h.Exhausted && !h.Stopped && charge.Exhausted(money.Micro(h.Shortfall), money.Micro(st.lastCharge), money.Micro(h.Remaining()), money.Micro(avail)) {
			h.Exhausted = true
			exhausted = append(exhausted, events.WalletExhaustedV1{OrganizationID: h.OrgID, SandboxID: h.SandboxID, At: b.now})
		}
		if h.Stopped && h.Samples >= h.LastSeq {
			b.heldDelta[h.OrgID] -= h.Remaining()
			h.Released = true
		}
	}
	return exhausted
}

// write records the batch: one linked set of aggregated transfers (sources → clearing:usage → vendors and a
// revenue shard), the usage rows, the holds and the organisations' held amounts.
func (b *usageBatch) write() error {
	var ts []ledger.Transfer
	add := func(debit, credit string, amt int64) {
		ts = append(ts, ledger.Transfer{ID: fmt.Sprintf("%s:%d", b.id, len(ts)+1), DebitAccount: debit, CreditAccount: credit,
			Amount: amt, Kind: "usage", Ref: b.id})
	}
	for _, id := range sortedKeys(b.src) {
		add(id, AcctUsageClearing, b.src[id])
	}
	for _, id := range sortedKeys(b.dst) {
		add(AcctUsageClearing, id, b.dst[id])
	}
	if err := ledger.Apply(b.tx, b.now, ts...); err != nil {
		return fmt.Errorf("usage transfers: %w", err)
	}
	if err := insertUsage(b.tx, b.usage); err != nil {
		return fmt.Errorf("usage rows: %w", err)
	}
	if err := saveHolds(b.tx, b.sbs); err != nil {
		return fmt.Errorf("holds: %w", err)
	}
	if err := updateHeld(b.tx, b.heldDelta); err != nil {
		return fmt.Errorf("held amounts: %w", err)
	}
	return nil
}

// grantThresholds saves the grants the batch drew on (their co-funding used) and reports those whose credits
// or co-funding cap crossed 80% or 100%.
func (b *usageBatch) grantThresholds() ([]events.BudgetThresholdV1, error) {
	var out []events.BudgetThresholdV1
	for _, gid := range sortedKeys(b.grants) {
		g := b.grants[gid]
		used := g.Amount - b.funds[g.OrgID].accts[grantAcct(g.ID)].Balance
		upd := map[string]any{"cofunded": g.Cofunded}
		if p := charge.Crossed(g.NotifiedPct, money.Micro(used), money.Micro(g.Amount)); p > 0 {
			upd["notified_pct"] = p
			out = append(out, events.BudgetThresholdV1{OrganizationID: g.OrgID, GrantID: g.ID, Percent: p, UsedMicro: used, LimitMicro: g.Amount, At: b.now})
		}
		if p := charge.Crossed(g.CofundNotifiedPct, money.Micro(g.Cofunded), money.Micro(g.Cap)); p > 0 {
			upd["cofund_notified_pct"] = p
			out = append(out, events.BudgetThresholdV1{OrganizationID: g.OrgID, GrantID: "cofund:" + g.ID, Percent: p, UsedMicro: g.Cofunded, LimitMicro: g.Cap, At: b.now})
		}
		if err := updateGrant(b.tx, g.ID, upd); err != nil {
			return nil, fmt.Errorf("grant %s: %w", g.ID, err)
		}
	}
	return out, nil
}

// budgetThresholds reports the organisations whose own spending this month (charges minus co-funding and
// shortfalls, this batch's rows included) crossed 80% or 100% of their monthly budget.
func (b *usageBatch) budgetThresholds() ([]events.BudgetThresholdV1, error) {
	var out []events.BudgetThresholdV1
	month := b.now.Format("2006-01")
	for _, o := range b.orgIDs {
		org := b.orgs[o]
		if org == nil || org.BudgetMicro <= 0 {
			continue
		}
		spent, err := spentSince(b.tx, o, month+"-01")
		if err != nil {
			return nil, fmt.Errorf("month's spending of %s: %w", o, err)
		}
		notified := 0
		if m, pct, ok := strings.Cut(org.BudgetNotified, ":"); ok && m == month {
			_, _ = fmt.Sscan(pct, &notified) // a malformed mark counts as none notified: at worst one e-mail more
		}
		if p := charge.Crossed(notified, money.Micro(spent), money.Micro(org.BudgetMicro)); p > 0 {
			out = append(out, events.BudgetThresholdV1{OrganizationID: o, Percent: p, UsedMicro: spent, LimitMicro: org.BudgetMicro, At: b.now})
			if err := setBudgetNotified(b.tx, o, fmt.Sprintf("%s:%d", month, p)); err != nil {
				return nil, fmt.Errorf("budget mark of %s: %w", o, err)
			}
		}
	}
	return out, nil
}

// announce writes the batch's wallet-exhausted and threshold events to the outbox.
func (b *usageBatch) announce(exhausted []events.WalletExhaustedV1, thresholds []events.BudgetThresholdV1) error {
	for _, ev := range exhausted {
		if err := eventbus.Write(b.tx, b.s.outbox, events.WalletExhausted, "wallet-exhausted-"+ev.SandboxID+"-"+b.id, ev); err != nil {
			return fmt.Errorf("announce wallet exhausted: %w", err)
		}
	}
	month := b.now.Format("2006-01")
	for _, ev := range thresholds {
		key := ev.GrantID
		if key == "" {
			key = ev.OrganizationID + "-" + month
		}
		if err := eventbus.Write(b.tx, b.s.outbox, events.BudgetThreshold, fmt.Sprintf("budget-%s-%d", key, ev.Percent), ev); err != nil {
			return fmt.Errorf("announce budget threshold: %w", err)
		}
	}
	return nil
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func toSet(ids []string) map[string]bool {
	m := make(map[string]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return m
}

func accountIDs(as []ledger.Account) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.ID
	}
	return out
}

func chunks(ids []string, n int) [][]string {
	var out [][]string
	for start := 0; start < len(ids); start += n {
		out = append(out, ids[start:min(start+n, len(ids))])
	}
	return out
}

// saveHolds inserts the batch's new holds and updates the metering state of the changed ones.
func saveHolds(tx *gorm.DB, sbs map[string]*sandboxState) error {
	var fresh []Hold
	var upd []*Hold
	for _, id := range sortedKeys(sbs) {
		st := sbs[id]
		switch {
		case st.isNew:
			fresh = append(fresh, *st.hold)
		case st.touched || st.hold.Released:
			upd = append(upd, st.hold)
		}
	}
	if err := insertHolds(tx, fresh); err != nil {
		return err
	}
	return updateHoldMeters(tx, upd)
}
