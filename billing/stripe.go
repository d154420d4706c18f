package billing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"
	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/billing/ledger"
	"github.com/tamarack-ai/tamarack/platform/money"
	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
)

// checkoutCurrency is the currency of every Checkout Session; a session paid in another is not credited.
const checkoutCurrency = "cad"

// Checkout is a created Stripe Checkout Session.
type Checkout struct {
	PurchaseID  string `json:"purchase_id"`
	SessionID   string `json:"session_id"`
	CheckoutURL string `json:"checkout_url"`
	Credits     int64  `json:"credits"`
	CADCents    int64  `json:"cad_cents"` // what Checkout charges, tax included
	TaxCents    int64  `json:"tax_cents"` // the tax included in cad_cents (0 without tax)
}

// PaymentsEnabled reports whether a Stripe key is configured.
func (s *Service) PaymentsEnabled() bool { return s.stripe != nil }

// StartCheckout records a pending purchase and creates a Stripe Checkout Session (mode payment, CAD) whose
// client_reference_id is the purchase: the webhook credits exactly that purchase, once. The CAD amount is
// credits × CADCentsPerCredit cents, in integers, tax included (see Tax).
func (s *Service) StartCheckout(ctx context.Context, orgID, userID string, credits int64) (Checkout, error) {
	if s.stripe == nil {
		return Checkout{}, ErrPaymentsDisabled
	}
	p := s.withTax(Purchase{ID: newID("pur"), OrgID: orgID, Credits: credits, Amount: int64(money.Credits(credits)),
		CADCents: credits * s.cfg.CADCentsPerCredit, Method: "stripe", Status: "pending", CreatedBy: userID, CreatedAt: s.now(), UpdatedAt: s.now()})
	if err := sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error {
		if err := s.ensureOrg(tx, orgID); err != nil {
			return err
		}
		return insertPurchase(tx, &p)
	}); err != nil {
		return Checkout{}, err
	}
	params := &stripe.CheckoutSessionParams{
		Mode:              stripe.String(string(stripe.CheckoutSessionModePayment)),
		ClientReferenceID: stripe.String(p.ID),
		SuccessURL:        stripe.String(s.cfg.PublicURL + "/billing?purchase=" + p.ID + "&status=success"),
		CancelURL:         stripe.String(s.cfg.PublicURL + "/billing?purchase=" + p.ID + "&status=cancelled"),
		LineItems: []*stripe.CheckoutSessionLineItemParams{{
			Quantity: stripe.Int64(credits),
			PriceData: &stripe.CheckoutSessionLineItemPriceDataParams{
				Currency:   stripe.String(checkoutCurrency),
				UnitAmount: stripe.Int64(s.cfg.CADCentsPerCredit),
				ProductData: &stripe.CheckoutSessionLineItemPriceDataProductDataParams{
					Name:        stripe.String("Tamarack compute credits"),
					Description: taxDescription(p),
				},
			},
		}},
	}
	params.AddMetadata("purchase_id", p.ID)
	params.AddMetadata("organization_id", orgID)
	params.Context = ctx
	sess, err := s.stripe.CheckoutSessions.New(params)
	if err != nil {
		_ = setPurchaseStatus(s.db.WithContext(ctx), p.ID, "failed")
		return Checkout{}, ErrStripeFailed.WithDetailMsg("problem.stripe_error.checkout", problem.Args{"Cause": stripeMessage(err)})
	}
	if err := setPurchaseSession(s.db.WithContext(ctx), p.ID, sess.ID); err != nil {
		return Checkout{}, err
	}
	return Checkout{PurchaseID: p.ID, SessionID: sess.ID, CheckoutURL: sess.URL, Credits: credits, CADCents: p.CADCents, TaxCents: p.TaxCents}, nil
}

// taxDescription tells the buyer on Stripe's page that the price includes the tax (nil without tax).
func taxDescription(p Purchase) *string {
	if p.TaxRateBP == 0 {
		return nil
	}
	return stripe.String(fmt.Sprintf("Price includes %s %s", p.TaxName, formatRate(p.TaxRateBP, "en")))
}

func stripeMessage(err error) string {
	var se *stripe.Error
	if errors.As(err, &se) {
		return se.Msg
	}
	return err.Error()
}

// WebhookResult says what a webhook did (for logs and tests).
type WebhookResult struct {
	Received bool `json:"received"`
	// Outcome is credited, refunded, duplicate, ignored, unknown_purchase, pending_payment,
	// payment_intent_conflict, amount_mismatch or not_credited (a refund of a purchase never credited).
	Outcome string `json:"outcome"`
}

// HandleWebhook verifies a Stripe webhook (signature, 5-minute timestamp tolerance both ways, API version
// pinned to the SDK's) and applies it once: the event ID is recorded in the same transaction as its effect, and
// the purchase transfer ID is the purchase's, so replays and completed/async_payment_succeeded both arriving
// are harmless. A malformed amount answers 400 invalid_amount, unrecorded; a session that paid another amount
// or currency than its purchase answers 200 amount_mismatch with nothing credited (see creditPurchase).
func (s *Service) HandleWebhook(ctx context.Context, payload []byte, sig string) (WebhookResult, error) {
	if s.cfg.Stripe.WebhookSecret == "" {
		return WebhookResult{}, ErrPaymentsDisabled
	}
	ev, err := webhook.ConstructEvent(payload, sig, s.cfg.Stripe.WebhookSecret)
	if err != nil {
		return WebhookResult{}, ErrInvalidSignature.WithDetail("%v", err)
	}
	if err := notFromFuture(sig, time.Now()); err != nil {
		return WebhookResult{}, err
	}
	res := WebhookResult{Received: true}
	err = sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error {
		now := s.now()
		fresh, err := inboxTable.Mark(tx, "", "stripe:"+ev.ID, now)
		if err != nil {
			return err
		}
		if !fresh {
			res.Outcome = "duplicate"
			return nil
		}
		switch ev.Type {
		case "checkout.session.completed", "checkout.session.async_payment_succeeded":
			var cs stripe.CheckoutSession
			if err := json.Unmarshal(ev.Data.Raw, &cs); err != nil {
				return ErrInvalidSignature.WithDetailMsg("problem.invalid_signature.bad_session", problem.Args{"Cause": err.Error()})
			}
			if cs.AmountTotal < 0 {
				return ErrInvalidAmount.WithDetailMsg("problem.invalid_amount.session_total", problem.Args{"Session": cs.ID, "Amount": cs.AmountTotal})
			}
			if ev.Type == "checkout.session.completed" && cs.PaymentStatus == stripe.CheckoutSessionPaymentStatusUnpaid {
				res.Outcome = "pending_payment" // delayed methods: async_payment_succeeded credits it
				return nil
			}
			pi := ""
			if cs.PaymentIntent != nil {
				pi = cs.PaymentIntent.ID
			}
			res.Outcome, err = s.creditPurchase(tx, paidSession{EventID: ev.ID, PurchaseID: cs.ClientReferenceID, SessionID: cs.ID,
				PaymentIntent: pi, AmountTotal: cs.AmountTotal, Currency: string(cs.Currency)}, now)
			if err != nil {
				return err
			}
			if res.Outcome == "unknown_purchase" {
				s.log.Warn("stripe checkout for an unknown purchase ignored", "event", ev.ID, "client_reference_id", cs.ClientReferenceID)
			}
		case "charge.refunded":
			var ch stripe.Charge
			if err := json.Unmarshal(ev.Data.Raw, &ch); err != nil {
				return ErrInvalidSignature.WithDetailMsg("problem.invalid_signature.bad_charge", problem.Args{"Cause": err.Error()})
			}
			if ch.Amount < 0 || ch.AmountRefunded < 0 || ch.AmountRefunded > ch.Amount {
				return ErrInvalidAmount.WithDetailMsg("problem.invalid_amount.charge_refund", problem.Args{"Charge": ch.ID, "Refunded": ch.AmountRefunded, "Amount": ch.Amount})
			}
			pi := ""
			if ch.PaymentIntent != nil {
				pi = ch.PaymentIntent.ID
			}
			res.Outcome, err = s.refundPurchase(tx, pi, ch.AmountRefunded, ev.ID, now)
			if err != nil {
				return err
			}
			if res.Outcome == "unknown_purchase" && pi != "" {
				// Most likely the refund of a purchase whose completion has not arrived yet (Stripe neither
				// orders events nor stops retrying a failed one for days): refuse it, unrecorded, so that
				// Stripe retries it after the purchase is credited, instead of dropping it for good.
				s.log.Warn("stripe refund for a payment not credited yet: refused for a retry", "event", ev.ID, "payment_intent", pi)
				return ErrRefundNotCredited.WithDetailMsg("problem.refund_before_payment.intent", problem.Args{"Intent": pi})
			}
		default:
			res.Outcome = "ignored"
		}
		return nil
	})
	return res, err
}

// notFromFuture refuses a signature timestamped more than webhook.DefaultTolerance ahead of now:
// ConstructEvent checks only the past, so a payload signed ahead of time would stay valid until then. It runs
// after ConstructEvent has verified the header, and measures against the wall clock as ConstructEvent does
// (the timestamp is Stripe's clock, not the platform's business time).
func notFromFuture(sig string, now time.Time) error {
	for _, part := range strings.Split(sig, ",") {
		v, ok := strings.CutPrefix(part, "t=")
		if !ok {
			continue
		}
		ts, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return ErrInvalidSignature.WithDetailMsg("problem.invalid_signature.bad_timestamp", nil)
		}
		if time.Unix(ts, 0).Sub(now) > webhook.DefaultTolerance {
			return ErrInvalidSignature.WithDetailMsg("problem.invalid_signature.future", problem.Args{"Seconds": int(webhook.DefaultTolerance.Seconds())})
		}
		return nil
	}
	return ErrInvalidSignature.WithDetailMsg("problem.invalid_signature.no_timestamp", nil)
}

// PayoutInput pays a vendor's payable balance (staff).
type PayoutInput struct {
	VendorOrgID string `json:"vendor_org_id" validate:"required"`
	AmountMicro int64  `json:"amount_micro"` // 0 pays the whole payable balance
	Reference   string `json:"reference" validate:"max=200"`
	ActorUserID string `json:"-"`
}

// Validate lists bad fields.
func (in PayoutInput) Validate() error {
	var f problem.Fields
	if in.AmountMicro < 0 {
		f.Add("amount_micro", "out_of_range", "must not be negative (0 pays the whole payable balance)")
	}
	return f.Err()
}

// Payout is a recorded vendor payout.
type Payout struct {
	TransferID       string `json:"transfer_id"`
	VendorOrgID      string `json:"vendor_org_id"`
	AmountMicro      int64  `json:"amount_micro"`
	CADCents         int64  `json:"cad_cents"`
	Method           string `json:"method"` // stripe_connect or manual
	StripeTransferID string `json:"stripe_transfer_id,omitempty"`
}

// PayVendor moves a vendor's payable balance out of the ledger: through a Stripe Connect transfer to the
// vendor's connected account when Stripe and the account are configured, else recorded as a manual payout.
// The CAD amount is floor(micro × cents per credit / 1,000,000); the ledger moves exactly the micro amount.
func (s *Service) PayVendor(ctx context.Context, in PayoutInput) (Payout, error) {
	org, err := getOrg(s.db.WithContext(ctx), in.VendorOrgID)
	if errors.Is(err, ErrOrgNotFound) {
		return Payout{}, ErrVendorNotFound
	} else if err != nil {
		return Payout{}, err
	}
	accts, err := ledger.Lock(s.db.WithContext(ctx), vendorAcct(org.ID))
	if err != nil {
		return Payout{}, ErrNothingToPay
	}
	amount := in.AmountMicro
	if amount <= 0 {
		amount = accts[vendorAcct(org.ID)].Available()
	}
	if amount <= 0 || amount > accts[vendorAcct(org.ID)].Available() {
		return Payout{}, ErrNothingToPay.WithExtra("payable_micro", accts[vendorAcct(org.ID)].Available())
	}
	cents, err := money.MulDiv(money.Micro(amount), s.cfg.CADCentsPerCredit, int64(money.PerCredit))
	if err != nil {
		return Payout{}, fmt.Errorf("payout of %d to %s in cents: %w", amount, org.ID, err)
	}
	out := Payout{TransferID: newID("pay"), VendorOrgID: org.ID, AmountMicro: amount, CADCents: int64(cents), Method: "manual"}
	// Reserve first (pending transfer), then call Stripe, then post or void: a crash in between leaves a
	// visible pending transfer, never money paid twice or lost.
	pendingID := out.TransferID + ":pending"
	if err := sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error {
		return ledger.Apply(tx, s.now(), ledger.Transfer{ID: pendingID, Phase: ledger.PhasePending, DebitAccount: vendorAcct(org.ID),
			CreditAccount: AcctPayouts, Amount: amount, Kind: "payout", Ref: out.TransferID})
	}); err != nil {
		var ie *ledger.InsufficientError
		if errors.As(err, &ie) {
			return Payout{}, ErrNothingToPay
		}
		return Payout{}, err
	}
	if s.stripe != nil && org.StripeAccount != "" {
		out.Method = "stripe_connect"
		params := &stripe.TransferParams{Amount: stripe.Int64(out.CADCents), Currency: stripe.String("cad"),
			Destination: stripe.String(org.StripeAccount), TransferGroup: stripe.String(out.TransferID)}
		params.Context = ctx
		params.SetIdempotencyKey(out.TransferID)
		tr, err := s.stripe.Transfers.New(params)
		if err != nil {
			_ = sqldb.Tx(context.WithoutCancel(ctx), s.db, func(tx *gorm.DB) error {
				return ledger.Apply(tx, s.now(), ledger.Transfer{ID: out.TransferID + ":void", Phase: ledger.PhaseVoidPending, PendingID: &pendingID, Kind: "payout", Ref: out.TransferID})
			})
			return Payout{}, ErrStripeFailed.WithDetailMsg("problem.stripe_error.transfer", problem.Args{"Cause": stripeMessage(err)})
		}
		out.StripeTransferID = tr.ID
	}
	err = sqldb.Tx(context.WithoutCancel(ctx), s.db, func(tx *gorm.DB) error {
		now := s.now()
		if err := ledger.Apply(tx, now, ledger.Transfer{ID: out.TransferID, Phase: ledger.PhasePostPending, PendingID: &pendingID, Amount: amount,
			Kind: "payout", Ref: firstNonEmpty(out.StripeTransferID, in.Reference)}); err != nil {
			return err
		}
		return writeAudit(tx, in.ActorUserID, "payout."+out.Method, out.TransferID, fmt.Sprintf("vendor=%s amount=%d cents=%d stripe=%s reference=%q",
			org.ID, amount, out.CADCents, out.StripeTransferID, in.Reference), now)
	})
	return out, err
}

// SetConnectAccount records a vendor's Stripe Connect account (staff; audited). The organisation must be known
// to billing (organization_not_found) and a vendor (vendor_not_found).
func (s *Service) SetConnectAccount(ctx context.Context, actor, vendorOrgID, account string) error {
	return sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error {
		org, err := knownOrg(tx, vendorOrgID)
		if err != nil {
			return fmt.Errorf("connect account of %s: %w", vendorOrgID, err)
		}
		if org.Kind != "vendor" {
			return fmt.Errorf("connect account of %s: %w", vendorOrgID,
				ErrVendorNotFound.WithDetailMsg("problem.vendor_not_found.kind", problem.Args{"Org": vendorOrgID, "Kind": org.Kind}))
		}
		if err := s.ensureOrg(tx, vendorOrgID); err != nil {
			return err
		}
		if err := setStripeAccount(tx, vendorOrgID, account); err != nil {
			return err
		}
		return writeAudit(tx, actor, "vendor.connect_account", vendorOrgID, account, s.now())
	})
}
