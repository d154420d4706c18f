package billing

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/billing/charge"
	"github.com/tamarack-ai/tamarack/billing/ledger"
	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/inbox"
	"github.com/tamarack-ai/tamarack/platform/mail"
	"github.com/tamarack-ai/tamarack/platform/money"
	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/services/events"
)

func newID(prefix string) string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	return prefix + "_" + hex.EncodeToString(b)
}

func (s *Service) now() time.Time { return s.clock.Now().UTC() }

func (s *Service) revenueFor(key string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return revenueAcct(int(h.Sum32() % uint32(s.cfg.RevenueShards)))
}

func (s *Service) ensurePlatformAccounts(tx *gorm.DB) error {
	accts := []ledger.Account{
		{ID: AcctFund, Kind: KindFund}, {ID: AcctStripeClearing, Kind: KindClearing},
		{ID: AcctOffline, Kind: KindClearing}, {ID: AcctPayouts, Kind: KindClearing},
		{ID: AcctUsageClearing, Kind: KindClearing}, {ID: AcctOrderClearing, Kind: KindClearing},
	}
	for i := range s.cfg.RevenueShards {
		accts = append(accts, ledger.Account{ID: revenueAcct(i), Kind: KindRevenue})
	}
	return ledger.EnsureAccounts(tx, s.now(), accts...)
}

// ensureOrg creates the organisation's projection row and wallet when missing (events may arrive in any order).
func (s *Service) ensureOrg(tx *gorm.DB, orgID string) error {
	now := s.now()
	if err := insertOrgIfMissing(tx, orgID, now); err != nil {
		return err
	}
	return ledger.EnsureAccounts(tx, now, ledger.Account{ID: walletAcct(orgID), Kind: KindWallet, OrgID: orgID, NoOverdraft: true})
}

func (s *Service) ensureVendor(tx *gorm.DB, orgID string) error {
	return ledger.EnsureAccounts(tx, s.now(), ledger.Account{ID: vendorAcct(orgID), Kind: KindVendor, OrgID: orgID, NoOverdraft: true})
}

func uniqSorted(ids []string) []string {
	sort.Strings(ids)
	out := ids[:0]
	for i, id := range ids {
		if i == 0 || id != ids[i-1] {
			out = append(out, id)
		}
	}
	return out
}

// funding is an organisation's spendable accounts in spend order: grants nearest expiry first (unexpired, and
// only while the organisation is verified), then the purchased wallet.
type funding struct {
	grants []Grant
	order  []string // account IDs in spend order
	accts  map[string]ledger.Account
}

func (f *funding) total() int64 {
	var t int64
	for _, id := range f.order {
		t += f.accts[id].Available()
	}
	return t
}

// loadFunding locks and reads an organisation's funding accounts. Grants are usable by verified organisations
// only: when the organisation is not (or no longer) verified they are left out (suspended, not forfeited; they
// count again once it is re-verified, until they expire).
func (s *Service) loadFunding(tx *gorm.DB, orgID string, verified bool, now time.Time) (*funding, error) {
	var grants []Grant
	if verified {
		var err error
		if grants, err = lockUsableGrants(tx, orgID, now); err != nil {
			return nil, err
		}
	}
	f := &funding{grants: grants}
	for _, g := range grants {
		f.order = append(f.order, grantAcct(g.ID))
	}
	f.order = append(f.order, walletAcct(orgID))
	accts, err := ledger.Lock(tx, f.order...)
	if err != nil {
		return nil, err
	}
	f.accts = accts
	return f, nil
}

// loadFundings is loadFunding for several organisations at once (ids sorted, their rows locked by the caller):
// one statement for the grants of the verified ones, one for all the accounts, each locked in id order.
func (s *Service) loadFundings(tx *gorm.DB, ids []string, orgs map[string]*Org, now time.Time) (map[string]*funding, error) {
	var verified []string
	for _, o := range ids {
		if orgs[o] != nil && orgs[o].Verified {
			verified = append(verified, o)
		}
	}
	var grants []Grant
	if len(verified) > 0 {
		var err error
		if grants, err = lockUsableGrantsOf(tx, verified, now); err != nil {
			return nil, err
		}
	}
	byOrg := map[string][]Grant{}
	for _, g := range grants {
		byOrg[g.OrgID] = append(byOrg[g.OrgID], g)
	}
	out := make(map[string]*funding, len(ids))
	var all []string
	for _, o := range ids {
		f := &funding{grants: byOrg[o]}
		for _, g := range f.grants {
			f.order = append(f.order, grantAcct(g.ID))
		}
		f.order = append(f.order, walletAcct(o))
		all = append(all, f.order...)
		out[o] = f
	}
	accts, err := ledger.Lock(tx, all...)
	if err != nil {
		return nil, err
	}
	for _, f := range out {
		f.accts = accts // account IDs are the organisation's own: sharing one map is safe
	}
	return out, nil
}

// take takes amount from the funding accounts in spend order (charge.Allocate), updating the in-memory
// balances; it returns the amount per account, aligned with f.order, and what could not be covered.
func (f *funding) take(amount int64) ([]int64, int64) {
	avail := make([]money.Micro, len(f.order))
	for i, id := range f.order {
		avail[i] = money.Micro(f.accts[id].Available())
	}
	takes, short := charge.Allocate(money.Micro(amount), avail)
	out := make([]int64, len(takes))
	for i, v := range takes {
		if v > 0 {
			a := f.accts[f.order[i]]
			a.Balance -= int64(v)
			f.accts[f.order[i]] = a
			out[i] = int64(v)
		}
	}
	return out, int64(short)
}

// Held/available of an organisation.
func (s *Service) available(tx *gorm.DB, orgID string, now time.Time) (int64, *funding, *Org, error) {
	orgs, err := lockOrgs(tx, orgID)
	if err != nil {
		return 0, nil, nil, err
	}
	org := orgs[orgID]
	if org == nil {
		return 0, nil, nil, fmt.Errorf("org %s not projected", orgID)
	}
	f, err := s.loadFunding(tx, orgID, org.Verified, now)
	if err != nil {
		return 0, nil, nil, err
	}
	return f.total() - org.Held, f, org, nil
}

func insufficient(shortfall int64) error {
	return ErrInsufficientCredits.WithDetailMsg("problem.insufficient_credits.shortfall", problem.Args{"Shortfall": money.Micro(shortfall).String()}).
		WithExtra("shortfall_micro", shortfall)
}

// ServeHold answers hold requests: "place" reserves price × gpu_count × seconds / 3600 at the request's price,
// locked for the sandbox's life; "extend" adds more time. A refusal is insufficient_credits with the shortfall.
func (s *Service) ServeHold(ctx context.Context, req events.HoldRequestV1) (events.HoldReplyV1, error) {
	add, err := charge.Hold(money.Micro(req.PricePerGPUHour), int64(req.GPUCount), req.Seconds)
	if err != nil {
		return events.HoldReplyV1{}, fmt.Errorf("hold %s: %w", req.SandboxID, err)
	}
	var reply events.HoldReplyV1
	err = sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error {
		now := s.now()
		if err := s.ensureOrg(tx, req.OrganizationID); err != nil {
			return err
		}
		avail, _, org, err := s.available(tx, req.OrganizationID, now)
		if err != nil {
			return err
		}
		h, exists, err := lockHoldOf(tx, req.OrganizationID, req.SandboxID)
		if err != nil {
			return err
		}
		if req.RequestID != "" && exists {
			fresh, err := inboxTable.Mark(tx, "", "hold:"+req.RequestID, now)
			if err != nil {
				return err
			}
			if !fresh { // a retry of a request already applied
				reply = events.HoldReplyV1{HoldID: h.SandboxID, AmountMicro: h.Amount}
				return nil
			}
		}
		switch req.Action {
		case "place":
			if exists && (h.Amount > 0 || h.Released) { // a replay, or the sandbox already ended
				reply = events.HoldReplyV1{HoldID: h.SandboxID, AmountMicro: h.Amount} // replay of the same place
				return nil
			}
		case "extend":
			if !exists || h.Released {
				return ErrHoldNotFound.WithDetailMsg("problem.hold_not_found.sandbox", problem.Args{"Sandbox": req.SandboxID})
			}
		}
		if avail < int64(add) {
			return insufficient(int64(add) - avail)
		}
		if !exists {
			h = Hold{SandboxID: req.SandboxID, OrgID: req.OrganizationID, ListingID: req.ListingID, VendorOrgID: req.VendorOrgID,
				PoolID: req.PoolID, GPUModel: req.GPUModel, GPUCount: req.GPUCount, Price: req.PricePerGPUHour, CreatedAt: now}
		}
		before := h.Remaining()
		h.Amount += int64(add)
		h.Exhausted = false
		h.UpdatedAt = now
		if err := saveHold(tx, &h); err != nil {
			return err
		}
		if err := addHeld(tx, org.ID, h.Remaining()-before); err != nil {
			return err
		}
		reply = events.HoldReplyV1{HoldID: h.SandboxID, AmountMicro: h.Amount}
		return nil
	})
	return reply, err
}

// SandboxEnded records a stopped/failed sandbox and releases its hold once every usage sample up to LastSeq
// has been charged (the usage consumer releases it otherwise, whichever comes last).
func (s *Service) SandboxEnded(ctx context.Context, eventID string, ev events.SandboxChangedV1) error {
	return sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error {
		now := s.now()
		if fresh, err := inboxTable.Mark(tx, "", eventID, now); err != nil || !fresh {
			return err
		}
		if err := s.ensureOrg(tx, ev.OrganizationID); err != nil {
			return err
		}
		if _, err := lockOrgs(tx, ev.OrganizationID); err != nil {
			return err
		}
		h, exists, err := lockHold(tx, ev.SandboxID)
		if err != nil {
			return err
		}
		if !exists {
			if ev.LastSeq == 0 {
				// Ended without running or a hold yet: remember it released, so that a hold request still in
				// flight (the testbed gave up waiting for its reply) reserves nothing that no event would release.
				return insertHold(tx, &Hold{SandboxID: ev.SandboxID, OrgID: ev.OrganizationID, ListingID: ev.ListingID, VendorOrgID: ev.VendorOrgID,
					PoolID: ev.PoolID, GPUModel: ev.GPUModel, GPUCount: max(ev.GPUCount, 1), Stopped: true, Released: true,
					CreatedAt: now, UpdatedAt: now})
			}
			// Usage will follow without a hold: remember the end and price it from the listing projection.
			h, err = s.implicitHold(tx, ev.SandboxID, ev.OrganizationID, ev.ListingID, ev.VendorOrgID, ev.PoolID, ev.GPUModel, ev.GPUCount, now)
			if err != nil {
				return err
			}
			h.Stopped, h.LastSeq = true, int64(ev.LastSeq)
			return insertHold(tx, &h)
		}
		if h.Released {
			return nil
		}
		h.Stopped, h.LastSeq, h.UpdatedAt = true, int64(ev.LastSeq), now
		if h.Samples >= h.LastSeq {
			if err := releaseHold(tx, &h); err != nil {
				return err
			}
		}
		return saveHold(tx, &h)
	})
}

func releaseHold(tx *gorm.DB, h *Hold) error {
	rem := h.Remaining()
	h.Released = true
	if rem == 0 {
		return nil
	}
	return addHeld(tx, h.OrgID, -rem)
}

// implicitHold is the hold of a sandbox whose usage or end arrives without one: priced from the listing
// projection. A listing billing has no price for is charged at 0 (logged); any other database error is returned.
func (s *Service) implicitHold(tx *gorm.DB, sandbox, org, listing, vendor, pool, model string, count int, now time.Time) (Hold, error) {
	h := Hold{SandboxID: sandbox, OrgID: org, ListingID: listing, VendorOrgID: vendor, PoolID: pool, GPUModel: model,
		GPUCount: max(count, 1), CreatedAt: now, UpdatedAt: now}
	p, found, err := priceOf(tx, listing)
	switch {
	case err != nil:
		return Hold{}, fmt.Errorf("price of listing %s for sandbox %s: %w", listing, sandbox, err)
	case found:
		h.Price = p.PricePerGPUHour
		if h.VendorOrgID == "" {
			h.VendorOrgID = p.VendorOrgID
		}
	default:
		s.log.Warn("usage without a hold or a known listing price: charged at 0", "sandbox", sandbox, "listing", listing)
	}
	return h, nil
}

// inboxTable records the IDs of events, webhooks and requests already applied, in the applying transaction.
var inboxTable = inbox.Table{Name: "billing_events", ID: "id", At: "created_at"}

// SettleOrder charges an order's buyer and credits the vendor and the platform in one linked set of transfers,
// then announces order.settled or order.failed.
func (s *Service) SettleOrder(ctx context.Context, eventID string, o events.OrderPlacedV1) error {
	err := sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error {
		now := s.now()
		if fresh, err := inboxTable.Mark(tx, "", eventID, now); err != nil || !fresh {
			return err
		}
		if err := s.ensureOrg(tx, o.BuyerOrgID); err != nil {
			return err
		}
		if err := s.ensureVendor(tx, o.VendorOrgID); err != nil {
			return err
		}
		avail, f, _, err := s.available(tx, o.BuyerOrgID, now)
		if err != nil {
			return err
		}
		if avail < o.AmountMicro {
			return eventbus.Write(tx, s.outbox, events.OrderFailed, "order-failed-"+o.OrderID, events.OrderFailedV1{
				OrderID: o.OrderID, Reason: "insufficient_credits", ShortfallMicro: o.AmountMicro - avail, At: now})
		}
		vendor, fee, err := charge.Split(money.Micro(o.AmountMicro), s.cfg.VendorShareBPS)
		if err != nil {
			return fmt.Errorf("order %s: %w", o.OrderID, err)
		}
		takes, _ := f.take(o.AmountMicro)
		parts := map[string]int64{}
		for i, v := range takes {
			if v > 0 {
				parts[f.order[i]] = v
			}
		}
		base := "order:" + o.OrderID
		var ts []ledger.Transfer
		for _, id := range sortedKeys(parts) {
			ts = append(ts, ledger.Transfer{ID: fmt.Sprintf("%s:from:%s", base, id), DebitAccount: id, CreditAccount: AcctOrderClearing,
				Amount: parts[id], Kind: "order", Ref: o.OrderID})
		}
		ts = append(ts,
			ledger.Transfer{ID: base + ":vendor", DebitAccount: AcctOrderClearing, CreditAccount: vendorAcct(o.VendorOrgID), Amount: int64(vendor), Kind: "order", Ref: o.OrderID},
			ledger.Transfer{ID: base + ":fee", DebitAccount: AcctOrderClearing, CreditAccount: s.revenueFor(o.OrderID), Amount: int64(fee), Kind: "order", Ref: o.OrderID})
		if err := ledger.Apply(tx, now, ts...); err != nil {
			var ie *ledger.InsufficientError
			if errors.As(err, &ie) {
				return eventbus.Write(tx, s.outbox, events.OrderFailed, "order-failed-"+o.OrderID, events.OrderFailedV1{
					OrderID: o.OrderID, Reason: "insufficient_credits", ShortfallMicro: ie.Shortfall, At: now})
			}
			if errors.Is(err, ledger.ErrDuplicate) {
				return nil
			}
			return err
		}
		return eventbus.Write(tx, s.outbox, events.OrderSettled, "order-settled-"+o.OrderID, events.OrderSettledV1{
			OrderID: o.OrderID, TransferID: base + ":vendor", At: now})
	})
	if err == nil {
		s.outbox.Kick()
	}
	return err
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// CreateGrant gives a verified organisation programme credits (from the programme fund) with an expiry and an
// optional co-funding rule. Staff only; audited.
func (s *Service) CreateGrant(ctx context.Context, in GrantInput) (Grant, error) {
	var g Grant
	err := sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error {
		now := s.now()
		org, err := knownOrg(tx, in.OrganizationID)
		if err != nil {
			return fmt.Errorf("grant to %s: %w", in.OrganizationID, err)
		}
		if !org.Verified {
			return fmt.Errorf("grant to %s: %w", in.OrganizationID, ErrOrgNotVerified)
		}
		if !in.ExpiresAt.After(now) {
			var f problem.Fields
			f.Add("expires_at", "in_past", "must be in the future")
			return f.Err()
		}
		g = Grant{ID: newID("grt"), OrgID: org.ID, Amount: in.AmountMicro, ExpiresAt: in.ExpiresAt.UTC(), CofundPercent: in.CofundPercent,
			Cap: in.CapMicro, Note: in.Note, CreatedBy: in.ActorUserID, CreatedAt: now}
		if err := insertGrant(tx, &g); err != nil {
			return err
		}
		if err := s.ensureOrg(tx, org.ID); err != nil {
			return err
		}
		if err := ledger.EnsureAccounts(tx, now, ledger.Account{ID: grantAcct(g.ID), Kind: KindGrant, OrgID: org.ID, NoOverdraft: true}); err != nil {
			return err
		}
		if err := ledger.Apply(tx, now, ledger.Transfer{ID: "grant:" + g.ID, DebitAccount: AcctFund, CreditAccount: grantAcct(g.ID),
			Amount: g.Amount, Kind: "grant", Ref: g.ID}); err != nil {
			return err
		}
		return writeAudit(tx, in.ActorUserID, "grant.create", g.ID, fmt.Sprintf("org=%s amount=%d cofund=%d%% cap=%d expires=%s note=%q",
			org.ID, g.Amount, g.CofundPercent, g.Cap, g.ExpiresAt.Format(time.RFC3339), g.Note), now)
	})
	return g, err
}

// AuditActions are the actions billing writes to billing_audit; each has a name for people in both
// catalogues (audit.billing.<action>), for the views that show them.
var AuditActions = []string{"grant.create", "payment.offline", "budget.set", "payout.manual", "payout.stripe_connect",
	"vendor.connect_account", "stripe.payment_intent_conflict", "stripe.amount_mismatch", "stripe.refund_not_credited"}

// ExpireGrants returns the unspent remainder of every grant past its expiry to the programme fund. The
// transfer ID is derived from the grant, so a sweep that runs twice moves nothing twice.
func (s *Service) ExpireGrants(ctx context.Context) (int, error) {
	now := s.now()
	due, err := dueGrantsAllOrgs(s.db.WithContext(ctx), now)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, g := range due {
		err := sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error {
			cur, err := lockGrant(tx, g.ID)
			if err != nil {
				return err
			}
			if cur.Expired {
				return nil
			}
			accts, err := ledger.Lock(tx, grantAcct(g.ID))
			if err != nil {
				return err
			}
			rem := accts[grantAcct(g.ID)].Balance
			if err := ledger.Apply(tx, now, ledger.Transfer{ID: "grant-expiry:" + g.ID, DebitAccount: grantAcct(g.ID), CreditAccount: AcctFund,
				Amount: rem, Kind: "grant_expiry", Ref: g.ID}); err != nil && !errors.Is(err, ledger.ErrDuplicate) {
				return err
			}
			n++
			return markGrantExpired(tx, g.ID)
		})
		if err != nil {
			return n, fmt.Errorf("expire grant %s: %w", g.ID, err)
		}
	}
	return n, nil
}

// RecordOfflinePayment credits an organisation's wallet for a purchase paid outside Stripe. Staff; audited.
func (s *Service) RecordOfflinePayment(ctx context.Context, in OfflinePaymentInput) (Purchase, error) {
	var p Purchase
	err := sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error {
		now := s.now()
		if _, err := knownOrg(tx, in.OrganizationID); err != nil {
			return fmt.Errorf("offline payment to %s: %w", in.OrganizationID, err)
		}
		if err := s.ensureOrg(tx, in.OrganizationID); err != nil {
			return err
		}
		p = s.withTax(Purchase{ID: newID("pur"), OrgID: in.OrganizationID, Credits: in.Credits, Amount: int64(money.Credits(in.Credits)),
			CADCents: in.Credits * s.cfg.CADCentsPerCredit, Method: "offline", Status: "paid", Reference: in.Reference,
			CreatedBy: in.ActorUserID, CreatedAt: now, UpdatedAt: now})
		if err := insertPurchase(tx, &p); err != nil {
			return err
		}
		if err := ledger.Apply(tx, now, ledger.Transfer{ID: purchaseTransfer(p.ID), DebitAccount: AcctOffline,
			CreditAccount: walletAcct(p.OrgID), Amount: p.Amount, Kind: "purchase", Ref: p.ID}); err != nil {
			return err
		}
		return writeAudit(tx, in.ActorUserID, "payment.offline", p.ID, fmt.Sprintf("org=%s credits=%d reference=%q", p.OrgID, p.Credits, p.Reference), now)
	})
	return p, err
}

// paidSession is what a paid Checkout Session event says of its purchase.
type paidSession struct {
	EventID, PurchaseID, SessionID, PaymentIntent string
	AmountTotal                                   int64 // cents actually paid
	Currency                                      string
}

// creditPurchase posts a paid Stripe purchase exactly once (the transfer ID is the purchase's) and returns the
// webhook's outcome: credited (also for a repeat), unknown_purchase, payment_intent_conflict or amount_mismatch.
//
// A purchase's payment intent is set once: its refunds are found by it, so a later session event naming
// another one is refused (logged and audited for staff, nothing changed); the same one again is a no-op.
//
// The session must have paid exactly the purchase's CAD cents in CAD (a discount, an adjusted quantity or a
// dashboard change would otherwise credit the full purchase). On a mismatch nothing is credited: a pending
// purchase becomes amount_mismatch (with its payment intent, so that its refund is recognised), and the
// mismatch is logged and written to billing_audit for staff, who refund it in Stripe or record what was paid
// as an offline payment. The answer is 200, not 4xx: a session never changes, so Stripe's retries (for days)
// could only repeat the refusal. A flagged purchase is never credited by a later event.
func (s *Service) creditPurchase(tx *gorm.DB, ps paidSession, now time.Time) (string, error) {
	p, err := lockPurchase(tx, ps.PurchaseID)
	if errors.Is(err, ErrPurchaseNotFound) {
		return "unknown_purchase", nil
	} else if err != nil {
		return "", err
	}
	if ps.PaymentIntent != "" && p.PaymentIntent != "" && ps.PaymentIntent != p.PaymentIntent {
		s.log.Warn("stripe session with another payment intent for a purchase: ignored", "event", ps.EventID, "purchase", p.ID,
			"payment_intent", p.PaymentIntent, "other_payment_intent", ps.PaymentIntent)
		return "payment_intent_conflict", writeAudit(tx, "stripe", "stripe.payment_intent_conflict", p.ID,
			fmt.Sprintf("event=%s session=%s payment_intent=%s kept=%s", ps.EventID, ps.SessionID, ps.PaymentIntent, p.PaymentIntent), now)
	}
	if p.Status == "amount_mismatch" {
		s.log.Warn("stripe session for a purchase flagged amount_mismatch: not credited", "event", ps.EventID, "purchase", p.ID)
		return "amount_mismatch", nil
	}
	mismatch := ps.AmountTotal != p.CADCents || !strings.EqualFold(ps.Currency, checkoutCurrency)
	updates := map[string]any{"updated_at": now}
	if ps.PaymentIntent != "" && p.PaymentIntent == "" {
		updates["payment_intent"] = ps.PaymentIntent
	}
	if ps.SessionID != "" && p.SessionID == "" {
		updates["session_id"] = ps.SessionID
	}
	if p.Status == "pending" {
		updates["status"] = "paid"
		if mismatch {
			updates["status"] = "amount_mismatch"
		}
	}
	if err := updatePurchase(tx, p.ID, updates); err != nil {
		return "", err
	}
	if mismatch {
		s.log.Error("stripe session paid another amount than its purchase: not credited, flagged for staff", "event", ps.EventID,
			"purchase", p.ID, "session", ps.SessionID, "paid_cents", ps.AmountTotal, "paid_currency", ps.Currency, "expected_cents", p.CADCents)
		return "amount_mismatch", writeAudit(tx, "stripe", "stripe.amount_mismatch", p.ID, fmt.Sprintf("event=%s session=%s paid=%d %s expected=%d %s",
			ps.EventID, ps.SessionID, ps.AmountTotal, ps.Currency, p.CADCents, checkoutCurrency), now)
	}
	err = ledger.Apply(tx, now, ledger.Transfer{ID: purchaseTransfer(p.ID), DebitAccount: AcctStripeClearing, CreditAccount: walletAcct(p.OrgID),
		Amount: p.Amount, Kind: "purchase", Ref: p.ID})
	if err != nil && !errors.Is(err, ledger.ErrDuplicate) {
		return "", err
	}
	return "credited", nil
}

// refundPurchase reverses the newly refunded part of a purchase from the wallet, as far as it is unspent and
// not held; the rest is flagged on the purchase (refund_unrecovered) for staff. It returns the webhook's
// outcome: refunded, unknown_purchase, or not_credited for a purchase flagged amount_mismatch (never credited,
// so nothing to reverse: the wallet holds other purchases' credits). More cents refunded than the purchase
// cost are invalid_amount: nothing is moved.
func (s *Service) refundPurchase(tx *gorm.DB, paymentIntent string, refundedCents int64, eventID string, now time.Time) (string, error) {
	p, err := lockPurchaseByPaymentIntent(tx, paymentIntent)
	if errors.Is(err, ErrPurchaseNotFound) {
		return "unknown_purchase", nil
	} else if err != nil {
		return "", err
	}
	if p.Status == "amount_mismatch" {
		s.log.Warn("stripe refund of a purchase never credited (amount_mismatch): nothing reversed", "event", eventID, "purchase", p.ID)
		return "not_credited", writeAudit(tx, "stripe", "stripe.refund_not_credited", p.ID,
			fmt.Sprintf("event=%s payment_intent=%s refunded_cents=%d", eventID, paymentIntent, refundedCents), now)
	}
	// At the purchase's own price (credits per cent may have changed since).
	num, den := int64(money.PerCredit), s.cfg.CADCentsPerCredit
	if p.CADCents > 0 {
		num, den = p.Amount, p.CADCents
	}
	if p.CADCents > 0 && refundedCents > p.CADCents {
		return "", ErrInvalidAmount.WithDetailMsg("problem.invalid_amount.refund_over", problem.Args{"Refunded": refundedCents, "Purchase": p.ID, "Cost": p.CADCents})
	}
	total, err := money.MulDiv(money.Micro(refundedCents), num, den)
	if err != nil {
		return "", ErrInvalidAmount.WithDetailMsg("problem.invalid_amount.refund_failed", problem.Args{"Refunded": refundedCents, "Purchase": p.ID, "Cause": err.Error()})
	}
	target := min(int64(total), p.Amount)
	due := target - p.Refunded - p.RefundUnrecovered
	if due <= 0 {
		return "refunded", nil
	}
	orgs, err := lockOrgs(tx, p.OrgID)
	if err != nil {
		return "", err
	}
	accts, err := ledger.Lock(tx, walletAcct(p.OrgID))
	if err != nil {
		return "", err
	}
	var grantFunds int64 // held credits are covered by grants first; only the wallet's excess is recoverable
	f, err := s.loadFunding(tx, p.OrgID, orgs[p.OrgID] != nil && orgs[p.OrgID].Verified, now)
	if err != nil {
		return "", err
	}
	for _, g := range f.grants {
		grantFunds += f.accts[grantAcct(g.ID)].Available()
	}
	heldOnWallet := max(orgs[p.OrgID].Held-grantFunds, 0)
	back := min(due, max(accts[walletAcct(p.OrgID)].Available()-heldOnWallet, 0))
	if err := ledger.Apply(tx, now, ledger.Transfer{ID: "refund:" + p.ID + ":" + eventID, DebitAccount: walletAcct(p.OrgID),
		CreditAccount: AcctStripeClearing, Amount: back, Kind: "refund", Ref: p.ID}); err != nil && !errors.Is(err, ledger.ErrDuplicate) {
		return "", err
	}
	status := "refunded"
	if due-back > 0 {
		s.log.Warn("refund exceeds unspent credits: flagged", "purchase", p.ID, "unrecovered_micro", due-back)
	}
	return "refunded", updatePurchase(tx, p.ID, map[string]any{"refunded": p.Refunded + back,
		"refund_unrecovered": p.RefundUnrecovered + due - back, "status": status, "updated_at": now})
}

func (s *Service) adminEmails(ctx context.Context, orgID string) []string {
	emails, _ := adminEmailsOf(s.db.WithContext(ctx), orgID)
	return emails
}

// notify e-mails organisation admins about threshold events, after the commit that published them.
func (s *Service) notify(ctx context.Context, evs []events.BudgetThresholdV1) {
	for _, ev := range evs {
		to := s.adminEmails(ctx, ev.OrganizationID)
		if len(to) == 0 {
			s.log.Info("budget threshold crossed; no admin e-mail known", "org", ev.OrganizationID, "percent", ev.Percent)
			continue
		}
		what := "Your programme grant " + ev.GrantID
		switch {
		case ev.GrantID == "":
			what = "Your monthly compute budget"
		case strings.HasPrefix(ev.GrantID, "cofund:"):
			what = "The co-funding of grant " + strings.TrimPrefix(ev.GrantID, "cofund:")
		}
		body := fmt.Sprintf("%s has reached %d%% of its limit: %s of %s credits used.\n\nSee your wallet at %s/billing.\n",
			what, ev.Percent, money.Micro(ev.UsedMicro), money.Micro(ev.LimitMicro), s.cfg.PublicURL)
		if err := s.mailer.Send(ctx, mail.Message{To: to, Subject: fmt.Sprintf("Tamarack: %d%% of your credits used", ev.Percent), Body: body}); err != nil {
			s.log.Warn("budget mail failed", "org", ev.OrganizationID, "err", err)
		}
	}
}

// SetBudget sets an organisation's monthly budget (0 removes it); its admins are notified at 80% and 100% of
// what the organisation pays itself in a month.
func (s *Service) SetBudget(ctx context.Context, orgID, actor string, budget int64) error {
	return sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error {
		if err := s.ensureOrg(tx, orgID); err != nil {
			return err
		}
		if err := setBudget(tx, orgID, budget); err != nil {
			return err
		}
		return writeAudit(tx, actor, "budget.set", orgID, fmt.Sprint(budget), s.now())
	})
}
