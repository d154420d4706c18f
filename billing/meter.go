package billing

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/billing/ledger"
	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/money"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/services/events"
)

// msPerHour divides price × device-milliseconds into micro-credits.
const msPerHour = 3_600_000

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
		exhausted  []events.WalletExhaustedV1
		thresholds []events.BudgetThresholdV1
		charged    []string
		err        error
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
			exhausted, thresholds, charged, e = s.chargeTx(tx, evs, check)
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
		return fmt.Errorf("charge usage batch: %w", err)
	}
	if len(exhausted)+len(thresholds) > 0 {
		s.outbox.Kick()
	}
	s.notify(ctx, thresholds)
	if s.cfg.AfterBatch != nil {
		s.cfg.AfterBatch(charged)
	}
	return nil
}

type sandboxState struct {
	hold       *Hold
	isNew      bool
	lastCharge int64
	touched    bool
}

func (s *Service) chargeTx(tx *gorm.DB, evs []eventbus.Event[events.SandboxUsageV1], check bool) ([]events.WalletExhaustedV1, []events.BudgetThresholdV1, []string, error) {
	now := s.now()
	// Unique events of the batch, in (sandbox, seq) order.
	seen := map[string]bool{}
	var batch []eventbus.Event[events.SandboxUsageV1]
	for _, ev := range evs {
		if !seen[ev.ID] {
			seen[ev.ID] = true
			batch = append(batch, ev)
		}
	}
	sort.Slice(batch, func(i, j int) bool {
		a, b := batch[i].Data, batch[j].Data
		if a.SandboxID != b.SandboxID {
			return a.SandboxID < b.SandboxID
		}
		return a.Seq < b.Seq
	})
	var orgIDs, sbIDs, ids []string
	for _, ev := range batch {
		orgIDs = append(orgIDs, ev.Data.OrganizationID)
		sbIDs = append(sbIDs, ev.Data.SandboxID)
		ids = append(ids, ev.ID)
	}
	orgIDs, sbIDs = uniqSorted(orgIDs), uniqSorted(sbIDs)

	// Projections and wallets that may not exist yet.
	var known []string
	if err := tx.Model(&Org{}).Where("id IN ?", orgIDs).Pluck("id", &known).Error; err != nil {
		return nil, nil, nil, err
	}
	if len(known) < len(orgIDs) {
		have := toSet(known)
		for _, o := range orgIDs {
			if !have[o] {
				if err := s.ensureOrg(tx, o); err != nil {
					return nil, nil, nil, err
				}
			}
		}
	}
	// Lock organisations then holds (always in this order, ids sorted) before looking for processed events:
	// a concurrent batch with the same events then commits first and its rows are seen here.
	orgs, err := lockOrgs(tx, orgIDs...)
	if err != nil {
		return nil, nil, nil, err
	}
	var holds []Hold
	for _, part := range chunks(sbIDs, 500) {
		var hs []Hold
		if err := sqldb.ForUpdate(tx).Where("sandbox_id IN ?", part).Order("sandbox_id").Find(&hs).Error; err != nil {
			return nil, nil, nil, err
		}
		holds = append(holds, hs...)
	}
	existing := map[string]bool{}
	for _, part := range chunks(ids, 500) {
		if !check {
			break
		}
		var ex []string
		if err := tx.Model(&Usage{}).Where("event_id IN ?", part).Pluck("event_id", &ex).Error; err != nil {
			return nil, nil, nil, err
		}
		for _, id := range ex {
			existing[id] = true
		}
	}
	fresh := batch[:0:0]
	for _, ev := range batch {
		if !existing[ev.ID] {
			fresh = append(fresh, ev)
		}
	}
	if len(fresh) == 0 {
		return nil, nil, nil, nil
	}
	sbs := map[string]*sandboxState{}
	for i := range holds {
		sbs[holds[i].SandboxID] = &sandboxState{hold: &holds[i]}
	}
	vendors := map[string]bool{}
	for _, ev := range fresh {
		d := ev.Data
		if sbs[d.SandboxID] == nil {
			h := s.implicitHold(tx, d.SandboxID, d.OrganizationID, d.ListingID, d.VendorOrgID, d.PoolID, d.GPUModel, d.DeviceCount, now)
			sbs[d.SandboxID] = &sandboxState{hold: &h, isNew: true}
		}
		if v := sbs[d.SandboxID].hold.VendorOrgID; v != "" {
			vendors[v] = true
		}
	}
	if len(vendors) > 0 {
		var accts []ledger.Account
		for _, v := range sortedKeys(vendors) {
			accts = append(accts, ledger.Account{ID: vendorAcct(v), Kind: KindVendor, OrgID: v, NoOverdraft: true})
		}
		var have []string
		if err := tx.Model(&ledger.Account{}).Where("id IN ?", accountIDs(accts)).Pluck("id", &have).Error; err != nil {
			return nil, nil, nil, err
		}
		if len(have) < len(accts) {
			if err := ledger.EnsureAccounts(tx, now, accts...); err != nil {
				return nil, nil, nil, err
			}
		}
	}
	funds := map[string]*funding{}
	for _, o := range orgIDs {
		f, err := s.loadFunding(tx, o, orgs[o] != nil && orgs[o].Verified, now)
		if err != nil {
			return nil, nil, nil, err
		}
		funds[o] = f
	}

	batchID := newID("ub")
	day := now.Format("2006-01-02")
	src := map[string]int64{}
	dst := map[string]int64{}
	heldDelta := map[string]int64{}
	grantsTouched := map[string]*Grant{}
	usage := make([]Usage, 0, len(fresh))
	for _, ev := range fresh {
		d := ev.Data
		st := sbs[d.SandboxID]
		h := st.hold
		org := orgs[d.OrganizationID]
		f := funds[d.OrganizationID]
		h.CumMs += int64(d.DeviceCount) * d.Millis
		total, err := money.MulDiv(money.Micro(h.Price), h.CumMs, msPerHour)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("sandbox %s: %w", h.SandboxID, err)
		}
		charge := int64(total) - h.Charged
		if !h.Released {
			heldDelta[h.OrgID] -= min(charge, h.Remaining())
		}
		h.Charged = int64(total)
		h.Samples++
		h.MaxSeq = max(h.MaxSeq, int64(d.Seq))
		h.UpdatedAt = now
		st.touched, st.lastCharge = true, charge

		var cofund int64
		if org != nil && org.Verified && charge > 0 {
			for i := range f.grants {
				g := &f.grants[i]
				if g.CofundPercent <= 0 || g.Cofunded >= g.Cap {
					continue
				}
				share, _ := money.MulDiv(money.Micro(charge), int64(g.CofundPercent), 100)
				cofund = min(int64(share), g.Cap-g.Cofunded)
				g.Cofunded += cofund
				grantsTouched[g.ID] = g
				break
			}
		}
		parts, short := f.allocate(charge - cofund)
		for id, v := range parts {
			src[id] += v
			if strings.HasPrefix(id, "grant:") {
				for i := range f.grants {
					if grantAcct(f.grants[i].ID) == id {
						grantsTouched[f.grants[i].ID] = &f.grants[i]
					}
				}
			}
		}
		src[AcctFund] += cofund
		collected := charge - short
		vendorShare, fee := s.split(collected)
		if h.VendorOrgID != "" {
			dst[vendorAcct(h.VendorOrgID)] += vendorShare
		} else {
			fee += vendorShare
		}
		dst[s.revenueFor(batchID)] += fee
		h.Shortfall += short
		usage = append(usage, Usage{EventID: ev.ID, SandboxID: d.SandboxID, OrgID: d.OrganizationID, VendorOrgID: h.VendorOrgID,
			GPUModel: firstNonEmpty(h.GPUModel, d.GPUModel), Seq: int64(d.Seq), Millis: d.Millis, Charge: charge, Cofunded: cofund,
			Shortfall: short, BatchID: batchID, Day: d.End.UTC().Format("2006-01-02"), CreatedAt: now})
	}
	_ = day

	// Exhaustion and settlement.
	var exhausted []events.WalletExhaustedV1
	for _, sb := range sortedKeys(sbs) {
		st := sbs[sb]
		h := st.hold
		if !st.touched || h.Released {
			continue
		}
		org := orgs[h.OrgID]
		avail := funds[h.OrgID].total() - (org.Held + heldDelta[h.OrgID])
		next := st.lastCharge
		if !h.Exhausted && !h.Stopped && (h.Shortfall > 0 || (next > 0 && h.Remaining() < next && avail < next-h.Remaining())) {
			h.Exhausted = true
			exhausted = append(exhausted, events.WalletExhaustedV1{OrganizationID: h.OrgID, SandboxID: h.SandboxID, At: now})
		}
		if h.Stopped && h.Samples >= h.LastSeq {
			heldDelta[h.OrgID] -= h.Remaining()
			h.Released = true
		}
	}

	// Ledger: sources → clearing:usage → vendors and a revenue shard, all linked.
	var ts []ledger.Transfer
	n := 0
	add := func(debit, credit string, amt int64) {
		n++
		ts = append(ts, ledger.Transfer{ID: fmt.Sprintf("%s:%d", batchID, n), DebitAccount: debit, CreditAccount: credit, Amount: amt, Kind: "usage", Ref: batchID})
	}
	for _, id := range sortedKeys(src) {
		add(id, AcctUsageClearing, src[id])
	}
	for _, id := range sortedKeys(dst) {
		add(AcctUsageClearing, id, dst[id])
	}
	if err := ledger.Apply(tx, now, ts...); err != nil {
		return nil, nil, nil, err
	}
	if err := insertUsage(tx, usage); err != nil {
		return nil, nil, nil, err
	}
	if err := saveHolds(tx, sbs); err != nil {
		return nil, nil, nil, err
	}
	for _, o := range sortedKeys(heldDelta) {
		if heldDelta[o] == 0 {
			continue
		}
		if err := tx.Model(&Org{}).Where("id = ?", o).Update("held", gorm.Expr("held + ?", heldDelta[o])).Error; err != nil {
			return nil, nil, nil, err
		}
	}
	// Thresholds of grants (credits used and co-funding used).
	var thresholds []events.BudgetThresholdV1
	for _, gid := range sortedKeys(grantsTouched) {
		g := grantsTouched[gid]
		f := funds[g.OrgID]
		used := g.Amount - f.accts[grantAcct(g.ID)].Balance
		upd := map[string]any{"cofunded": g.Cofunded}
		if p := crossed(g.NotifiedPct, used, g.Amount); p > 0 {
			upd["notified_pct"] = p
			thresholds = append(thresholds, events.BudgetThresholdV1{OrganizationID: g.OrgID, GrantID: g.ID, Percent: p, UsedMicro: used, LimitMicro: g.Amount, At: now})
		}
		if p := crossed(g.CofundNotifiedPct, g.Cofunded, g.Cap); p > 0 {
			upd["cofund_notified_pct"] = p
			thresholds = append(thresholds, events.BudgetThresholdV1{OrganizationID: g.OrgID, GrantID: "cofund:" + g.ID, Percent: p, UsedMicro: g.Cofunded, LimitMicro: g.Cap, At: now})
		}
		if err := tx.Model(&Grant{}).Where("id = ?", g.ID).Updates(upd).Error; err != nil {
			return nil, nil, nil, err
		}
	}
	// Monthly budgets: what the organisation itself paid this month (charges minus co-funding).
	month := now.Format("2006-01")
	for _, o := range orgIDs {
		org := orgs[o]
		if org == nil || org.BudgetMicro <= 0 {
			continue
		}
		var spent struct{ S int64 }
		if err := tx.Model(&Usage{}).Select("COALESCE(SUM(charge - cofunded - shortfall), 0) AS s").
			Where("org_id = ? AND day >= ?", o, month+"-01").Scan(&spent).Error; err != nil {
			return nil, nil, nil, err
		}
		notified := 0
		if m, pct, ok := strings.Cut(org.BudgetNotified, ":"); ok && m == month {
			_, _ = fmt.Sscan(pct, &notified)
		}
		if p := crossed(notified, spent.S, org.BudgetMicro); p > 0 {
			thresholds = append(thresholds, events.BudgetThresholdV1{OrganizationID: o, Percent: p, UsedMicro: spent.S, LimitMicro: org.BudgetMicro, At: now})
			if err := tx.Model(&Org{}).Where("id = ?", o).Update("budget_notified", fmt.Sprintf("%s:%d", month, p)).Error; err != nil {
				return nil, nil, nil, err
			}
		}
	}
	for _, ev := range exhausted {
		if err := eventbus.Write(tx, s.outbox, events.WalletExhausted, "wallet-exhausted-"+ev.SandboxID+"-"+batchID, ev); err != nil {
			return nil, nil, nil, err
		}
	}
	for _, ev := range thresholds {
		key := ev.GrantID
		if key == "" {
			key = ev.OrganizationID + "-" + month
		}
		if err := eventbus.Write(tx, s.outbox, events.BudgetThreshold, fmt.Sprintf("budget-%s-%d", key, ev.Percent), ev); err != nil {
			return nil, nil, nil, err
		}
	}
	charged := make([]string, len(fresh))
	for i, ev := range fresh {
		charged[i] = ev.ID
	}
	return exhausted, thresholds, charged, nil
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

func insertUsage(tx *gorm.DB, rows []Usage) error {
	// Multi-row inserts of a few hundred rows: larger statements cost more to parse and bind than they save
	// (and SQLite's driver binds parameters in time quadratic in their number).
	chunk := 256
	if sqldb.DialectOf(tx) == sqldb.SQLite {
		chunk = 64
	}
	for start := 0; start < len(rows); start += chunk {
		part := rows[start:min(start+chunk, len(rows))]
		var b strings.Builder
		b.WriteString("INSERT INTO billing_usage (event_id, sandbox_id, org_id, vendor_org_id, gpu_model, seq, millis, charge, cofunded, shortfall, batch_id, day, created_at) VALUES ")
		args := make([]any, 0, len(part)*13)
		for i, u := range part {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("(?,?,?,?,?,?,?,?,?,?,?,?,?)")
			args = append(args, u.EventID, u.SandboxID, u.OrgID, u.VendorOrgID, u.GPUModel, u.Seq, u.Millis, u.Charge, u.Cofunded, u.Shortfall, u.BatchID, u.Day, u.CreatedAt)
		}
		if err := tx.Exec(b.String(), args...).Error; err != nil {
			return err
		}
	}
	return nil
}

// saveHolds inserts new holds and updates the changed ones with one statement per 300 rows
// (WITH v(...) AS (VALUES ...) UPDATE ... FROM v: both engines support it).
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
	if len(fresh) > 0 {
		if err := tx.CreateInBatches(&fresh, 200).Error; err != nil {
			return err
		}
	}
	ts := "?" // SQLite stores times as text; a CAST to TIMESTAMP there would mean NUMERIC
	if sqldb.DialectOf(tx) == sqldb.Postgres {
		ts = "CAST(? AS TIMESTAMP)"
	}
	chunk := 300
	if sqldb.DialectOf(tx) == sqldb.SQLite {
		chunk = 64 // the SQLite driver binds parameters in quadratic time
	}
	for start := 0; start < len(upd); start += chunk {
		part := upd[start:min(start+chunk, len(upd))]
		var b strings.Builder
		b.WriteString("WITH v(sandbox_id, charged, cum_ms, samples, max_seq, shortfall, exhausted, released, updated_at) AS (VALUES ")
		args := make([]any, 0, len(part)*9)
		for i, h := range part {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("(CAST(? AS TEXT), CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BOOLEAN), CAST(? AS BOOLEAN), " + ts + ")")
			args = append(args, h.SandboxID, h.Charged, h.CumMs, h.Samples, h.MaxSeq, h.Shortfall, h.Exhausted, h.Released, h.UpdatedAt)
		}
		b.WriteString(") UPDATE billing_holds SET charged = v.charged, cum_ms = v.cum_ms, samples = v.samples, max_seq = v.max_seq, " +
			"shortfall = v.shortfall, exhausted = v.exhausted, released = v.released, updated_at = v.updated_at FROM v WHERE billing_holds.sandbox_id = v.sandbox_id")
		res := tx.Exec(b.String(), args...)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected != int64(len(part)) {
			return fmt.Errorf("update holds: %d of %d rows", res.RowsAffected, len(part))
		}
	}
	return nil
}
