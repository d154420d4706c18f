package billing

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/tamarack-ai/tamarack/platform/money"
	"github.com/tamarack-ai/tamarack/platform/openapi"
	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/web"
)

func encodeCursor(v any) string          { return web.EncodeCursor(v) }
func decodeCursor(s string, v any) error { return web.DecodeCursor(s, v) }

type handler struct{ s *Service }

// MaxBody caps billing's request bodies: Stripe's events are under 256 KiB; billing's own JSON is far smaller.
const MaxBody = 256 << 10

func (s *Service) routes(r fiber.Router) {
	h := handler{s}
	write := web.RequireScope("write")
	r.Use(web.LimitBody(MaxBody))
	r.Get("/wallet", web.RequireAuth, h.wallet)
	r.Put("/budget", web.RequireOrgAdmin, write, h.setBudget)
	r.Post("/checkout", web.RequireOrgAdmin, write, web.RequireVerifiedEmail, h.checkout)
	r.Post("/stripe/webhook", h.webhook)
	r.Post("/grants", web.RequireStaff, write, h.createGrant)
	r.Get("/grants", web.RequireStaff, h.listGrants)
	r.Post("/offline-payments", web.RequireStaff, write, h.offlinePayment)
	r.Get("/transactions", web.RequireAuth, h.transactions)
	r.Get("/settings", h.settings)
	r.Get("/orgs/:org/transactions", web.RequireAuth, h.activity)
	r.Get("/orgs/:org/transactions/:line/entries", web.RequireAuth, h.activityEntries)
	r.Get("/usage", web.RequireAuth, h.usage)
	r.Get("/statements/:month", web.RequireOrgAdmin, h.statement)
	r.Get("/payouts", web.RequireAuth, h.payouts)
	r.Post("/payouts", web.RequireStaff, write, h.payVendor)
	r.Put("/vendors/:id/connect-account", web.RequireStaff, write, h.setConnect)
	r.Get("/prices", h.prices)
	r.Get("/programme/spend", web.RequireStaff, h.programmeSpend)
	r.Get("/audit", web.RequireStaff, h.audit)
	s.documentRoutes(r)
}

// orgOf is the organisation a request reads: the caller's, or for staff any given ?organization_id=.
func orgOf(c *fiber.Ctx) string {
	p := web.PrincipalOf(c)
	if q := c.Query("organization_id"); q != "" && p.Staff {
		return q
	}
	return p.OrgID
}

func (h handler) wallet(c *fiber.Ctx) error {
	w, err := h.s.WalletOf(c.UserContext(), orgOf(c))
	if err != nil {
		return err
	}
	return c.JSON(w)
}

type budgetRequest struct {
	MonthlyBudgetMicro int64 `json:"monthly_budget_micro" openapi:"required"`
}

func (r budgetRequest) Validate() error {
	var f problem.Fields
	if r.MonthlyBudgetMicro < 0 {
		f.Add("monthly_budget_micro", "out_of_range", "must not be negative (0 removes the budget)")
	}
	return f.Err()
}

func (h handler) setBudget(c *fiber.Ctx) error {
	var req budgetRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	p := web.PrincipalOf(c)
	if err := h.s.SetBudget(c.UserContext(), p.OrgID, p.UserID, req.MonthlyBudgetMicro); err != nil {
		return err
	}
	return h.wallet(c)
}

type checkoutRequest struct {
	Credits int64 `json:"credits" openapi:"required"`
}

func (r checkoutRequest) Validate() error {
	var f problem.Fields
	if r.Credits < 1 || r.Credits > 1_000_000 {
		f.Add("credits", "out_of_range", "must be 1 to 1,000,000 credits")
	}
	return f.Err()
}

func (h handler) checkout(c *fiber.Ctx) error {
	if !h.s.PaymentsEnabled() {
		return ErrPaymentsDisabled
	}
	var req checkoutRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	p := web.PrincipalOf(c)
	out, err := h.s.StartCheckout(c.UserContext(), p.OrgID, p.UserID, req.Credits)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(out)
}

func (h handler) webhook(c *fiber.Ctx) error {
	res, err := h.s.HandleWebhook(c.UserContext(), c.Body(), c.Get("Stripe-Signature"))
	if err != nil {
		return err
	}
	return c.JSON(res)
}

type grantRequest struct {
	OrganizationID string    `json:"organization_id" validate:"required"`
	AmountMicro    int64     `json:"amount_micro"`
	ExpiresAt      time.Time `json:"expires_at"`
	CofundPercent  int       `json:"cofund_percent"`
	CapMicro       int64     `json:"cap_micro"`
	Note           string    `json:"note" validate:"max=500" text:"multiline"`
}

func (r grantRequest) Validate() error { return r.input("").Validate() }

func (r grantRequest) input(actor string) GrantInput {
	return GrantInput{OrganizationID: r.OrganizationID, AmountMicro: r.AmountMicro, ExpiresAt: r.ExpiresAt, CofundPercent: r.CofundPercent,
		CapMicro: r.CapMicro, Note: r.Note, ActorUserID: actor}
}

type grantJSON struct {
	ID             string    `json:"id"`
	OrganizationID string    `json:"organization_id"`
	AmountMicro    int64     `json:"amount_micro"`
	ExpiresAt      time.Time `json:"expires_at"`
	CofundPercent  int       `json:"cofund_percent"`
	CapMicro       int64     `json:"cap_micro"`
	CofundedMicro  int64     `json:"cofunded_micro"`
	Note           string    `json:"note"`
	Expired        bool      `json:"expired"`
	CreatedBy      string    `json:"created_by"`
	CreatedAt      time.Time `json:"created_at"`
}

func toGrantJSON(g Grant) grantJSON {
	return grantJSON{ID: g.ID, OrganizationID: g.OrgID, AmountMicro: g.Amount, ExpiresAt: g.ExpiresAt.UTC(),
		CofundPercent: g.CofundPercent, CapMicro: g.Cap, CofundedMicro: g.Cofunded, Note: g.Note, Expired: g.Expired, CreatedBy: g.CreatedBy, CreatedAt: g.CreatedAt.UTC()}
}

func (h handler) createGrant(c *fiber.Ctx) error {
	var req grantRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	g, err := h.s.CreateGrant(c.UserContext(), req.input(web.PrincipalOf(c).UserID))
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(toGrantJSON(g))
}

// pageJSON answers one page of a list computed whole (aggregates and projections are small and ordered).
func pageJSON[T any](c *fiber.Ctx, items []T) error {
	l, err := web.PageSlice(c, items)
	if err != nil {
		return err
	}
	return c.JSON(l)
}

func (h handler) listGrants(c *fiber.Ctx) error {
	gs, err := h.s.Grants(c.UserContext(), c.Query("organization_id"))
	if err != nil {
		return err
	}
	items := make([]grantJSON, 0, len(gs))
	for _, g := range gs {
		items = append(items, toGrantJSON(g))
	}
	return pageJSON(c, items)
}

type offlineRequest struct {
	OrganizationID string `json:"organization_id" validate:"required"`
	Credits        int64  `json:"credits"`
	Reference      string `json:"reference" validate:"required,max=200"`
}

func (r offlineRequest) Validate() error {
	return OfflinePaymentInput{OrganizationID: r.OrganizationID, Credits: r.Credits, Reference: r.Reference}.Validate()
}

type purchaseJSON struct {
	ID             string    `json:"id"`
	OrganizationID string    `json:"organization_id"`
	Credits        int64     `json:"credits"`
	AmountMicro    int64     `json:"amount_micro"`
	CADCents       int64     `json:"cad_cents"`
	Method         string    `json:"method"`
	Status         string    `json:"status"`
	Reference      string    `json:"reference"`
	CreatedAt      time.Time `json:"created_at"`
}

func (h handler) offlinePayment(c *fiber.Ctx) error {
	var req offlineRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	p, err := h.s.RecordOfflinePayment(c.UserContext(), OfflinePaymentInput{OrganizationID: req.OrganizationID, Credits: req.Credits,
		Reference: req.Reference, ActorUserID: web.PrincipalOf(c).UserID})
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(purchaseJSON{ID: p.ID, OrganizationID: p.OrgID, Credits: p.Credits, AmountMicro: p.Amount,
		CADCents: p.CADCents, Method: p.Method, Status: p.Status, Reference: p.Reference, CreatedAt: p.CreatedAt.UTC()})
}

func (h handler) transactions(c *fiber.Ctx) error {
	pg, err := web.PageOf(c)
	if err != nil {
		return err
	}
	lines, next, err := h.s.Transactions(c.UserContext(), orgOf(c), pg.Limit, pg.Cursor, time.Time{}, time.Time{})
	if err != nil {
		return err
	}
	return c.JSON(web.List[Line]{Items: lines, NextCursor: next})
}

func (h handler) usage(c *fiber.Ctx) error {
	var f problem.Fields
	for _, k := range []string{"from", "to"} {
		if v := c.Query(k); v != "" {
			if _, err := time.Parse("2006-01-02", v); err != nil {
				f.Add(k, "invalid", "use yyyy-mm-dd")
			}
		}
	}
	if err := f.Err(); err != nil {
		return err
	}
	p := web.PrincipalOf(c)
	rows, err := h.s.UsageOf(c.UserContext(), orgOf(c), c.Query("from"), c.Query("to"), p.OrgKind == web.OrgVendor && c.Query("as") == "vendor")
	if err != nil {
		return err
	}
	return pageJSON(c, rows)
}

func (h handler) statement(c *fiber.Ctx) error {
	st, err := h.s.StatementOf(c.UserContext(), orgOf(c), c.Params("month"))
	if err != nil {
		return err
	}
	if c.Accepts(fiber.MIMEApplicationJSON, "text/csv") == "text/csv" {
		var buf bytes.Buffer
		w := csv.NewWriter(&buf)
		_ = w.Write([]string{"date", "transfer_id", "kind", "account", "counterparty", "amount_credits", "amount_micro", "ref"})
		_ = w.Write([]string{st.Month + "-01", "", "opening_balance", "", "", money.Micro(st.OpeningMicro).String(), strconv.FormatInt(st.OpeningMicro, 10), ""})
		for _, l := range st.Lines {
			_ = w.Write([]string{l.At.Format(time.RFC3339), l.TransferID, l.Kind, l.Account, l.Counterparty, money.Micro(l.AmountMicro).String(),
				strconv.FormatInt(l.AmountMicro, 10), l.Ref})
		}
		_ = w.Write([]string{"", "", "closing_balance", "", "", money.Micro(st.ClosingMicro).String(), strconv.FormatInt(st.ClosingMicro, 10), ""})
		w.Flush()
		c.Set(fiber.HeaderContentType, "text/csv; charset=utf-8")
		c.Set(fiber.HeaderContentDisposition, fmt.Sprintf("attachment; filename=statement-%s.csv", st.Month))
		return c.Send(buf.Bytes())
	}
	return c.JSON(st)
}

func (h handler) payouts(c *fiber.Ctx) error {
	p := web.PrincipalOf(c)
	vendor := ""
	switch {
	case p.Staff:
		vendor = c.Query("vendor_org_id")
	case p.OrgKind == web.OrgVendor && p.IsOrgAdmin():
		vendor = p.OrgID
	default:
		return problem.ErrForbidden.WithDetailMsg("problem.forbidden.vendor_admins_staff", nil)
	}
	rows, err := h.s.Payables(c.UserContext(), vendor)
	if err != nil {
		return err
	}
	return pageJSON(c, rows)
}

func (h handler) payVendor(c *fiber.Ctx) error {
	var req PayoutInput
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	req.ActorUserID = web.PrincipalOf(c).UserID
	out, err := h.s.PayVendor(c.UserContext(), req)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(out)
}

type connectRequest struct {
	StripeAccountID string `json:"stripe_account_id" validate:"required,max=100"`
}

func (h handler) setConnect(c *fiber.Ctx) error {
	var req connectRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	if err := h.s.SetConnectAccount(c.UserContext(), web.PrincipalOf(c).UserID, c.Params("id"), req.StripeAccountID); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (h handler) prices(c *fiber.Ctx) error {
	rows, err := h.s.Prices(c.UserContext())
	if err != nil {
		return err
	}
	return pageJSON(c, rows)
}

func (h handler) programmeSpend(c *fiber.Ctx) error {
	rows, err := h.s.ProgrammeSpendByOrg(c.UserContext())
	if err != nil {
		return err
	}
	return pageJSON(c, rows)
}

// OpenAPI declares billing's routes.
func (s *Service) OpenAPI(d *openapi.Doc) {
	const p = "/api/v1/billing"
	d.Add(
		openapi.Op{Method: "GET", Path: p + "/wallet", Summary: "Balances: purchased, granted (by grant, with expiry), held, available", Tag: "billing", Auth: "user", Response: Wallet{}},
		openapi.Op{Method: "PUT", Path: p + "/budget", Summary: "Set the organisation's monthly budget (80% and 100% alerts)", Tag: "billing",
			Auth: "org_admin", Request: budgetRequest{}, Response: Wallet{}},
		openapi.Op{Method: "POST", Path: p + "/checkout", Summary: "Buy credits through Stripe Checkout (CAD)", Tag: "billing", Auth: "org_admin",
			Request: checkoutRequest{}, Response: Checkout{}, Status: 201, Problems: []string{"payments_disabled", "stripe_error"}},
		openapi.Op{Method: "POST", Path: p + "/stripe/webhook", Summary: "Stripe webhook (signed, at most 256 KiB); credits purchases exactly once", Tag: "billing",
			Auth: "Stripe signature", Response: WebhookResult{}, Problems: []string{"invalid_signature", "payments_disabled", "refund_before_payment", openapi.TooLarge}},
		openapi.Op{Method: "POST", Path: p + "/grants", Summary: "Grant programme credits with expiry and co-funding (verified organisations)", Tag: "billing",
			Auth: "staff", Request: grantRequest{}, Response: grantJSON{}, Status: 201, Problems: []string{"organization_not_found", "organization_not_verified"}},
		openapi.Op{Method: "GET", Path: p + "/grants", Summary: "List grants", Tag: "billing", Auth: "staff", Response: web.List[grantJSON]{},
			Query: []openapi.Param{{Name: "organization_id", Type: "string"}}},
		openapi.Op{Method: "POST", Path: p + "/offline-payments", Summary: "Record a purchase paid outside Stripe (purchase order)", Tag: "billing",
			Auth: "staff", Request: offlineRequest{}, Response: purchaseJSON{}, Status: 201, Problems: []string{"organization_not_found"}},
		openapi.Op{Method: "GET", Path: p + "/transactions", Summary: "Ledger lines of the organisation's accounts, newest first", Tag: "billing",
			Auth: "user", Response: web.List[Line]{}, Query: []openapi.Param{{Name: "limit", Type: "integer"}, {Name: "cursor", Type: "string"}}},
		openapi.Op{Method: "GET", Path: p + "/usage", Summary: "Metered usage by day, GPU model and sandbox", Tag: "billing", Auth: "user",
			Response: web.List[UsageRow]{}, Query: []openapi.Param{{Name: "from", Type: "string"}, {Name: "to", Type: "string"}, {Name: "as", Type: "string", Description: "vendor: usage sold"}}},
		openapi.Op{Method: "GET", Path: p + "/statements/:month", Summary: "Monthly statement (yyyy-mm); Accept: text/csv for CSV", Tag: "billing",
			Auth: "org_admin", Response: Statement{}, Problems: []string{"invalid_month"}},
		openapi.Op{Method: "GET", Path: p + "/payouts", Summary: "Vendor earnings and payable balances", Tag: "billing", Auth: "vendor admin or staff",
			Response: web.List[VendorPayable]{}},
		openapi.Op{Method: "POST", Path: p + "/payouts", Summary: "Pay a vendor (Stripe Connect when configured, else recorded manually)", Tag: "billing",
			Auth: "staff", Request: PayoutInput{}, Response: Payout{}, Status: 201, Problems: []string{"nothing_to_pay", "vendor_not_found", "stripe_error"}},
		openapi.Op{Method: "PUT", Path: p + "/vendors/:id/connect-account", Summary: "Set a vendor's Stripe Connect account", Tag: "billing",
			Auth: "staff", Request: connectRequest{}, Status: 204, Problems: []string{"organization_not_found", "vendor_not_found"}},
		openapi.Op{Method: "GET", Path: p + "/prices", Summary: "Credit price per GPU-hour by GPU model and pool", Tag: "billing", Response: web.List[PriceRow]{}},
		openapi.Op{Method: "GET", Path: p + "/programme/spend", Summary: "Programme spend (grants and co-funding) by organisation", Tag: "billing",
			Auth: "staff", Response: web.List[ProgrammeSpend]{}},
		openapi.Op{Method: "GET", Path: p + "/audit", Summary: "Billing's audit log: grants, offline payments, budgets, payouts, Connect accounts and Stripe mismatches, newest first",
			Tag: "billing", Auth: "staff", Response: web.List[AuditEntry]{}, Problems: []string{"validation_failed", "invalid_cursor"},
			Query: []openapi.Param{{Name: "limit", Type: "integer", Description: "1-200, default 50"}, {Name: "cursor", Type: "string"},
				{Name: "action", Type: "string", Description: "only this action: " + strings.Join(AuditActions, ", ")}}},
	)
	s.documentOps(d)
	s.activityOpenAPI(d)
}
