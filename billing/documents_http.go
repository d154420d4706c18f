package billing

import (
	"context"
	"fmt"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/tamarack-ai/tamarack/platform/dayrange"
	"github.com/tamarack-ai/tamarack/platform/openapi"
	"github.com/tamarack-ai/tamarack/platform/web"
)

// Routes of receipts, statements and chart aggregates, under /orgs/:org: the organisation is named in the path
// (links in the UI and in e-mails stay valid whoever follows them) and checked against the caller.

func (s *Service) documentRoutes(r fiber.Router) {
	h := handler{s}
	r.Get("/orgs/:org/purchases", web.RequireAuth, h.purchases)
	r.Get("/orgs/:org/purchases/:id/receipt.pdf", web.RequireAuth, h.receiptPDF)
	r.Get("/orgs/:org/statements", web.RequireAuth, h.statementMonths)
	r.Get("/orgs/:org/statements/:month.pdf", web.RequireAuth, h.statementPDF)
	r.Get("/orgs/:org/charts/spend", web.RequireAuth, h.spendChart)
	r.Get("/orgs/:org/charts/earnings", web.RequireAuth, h.earningsChart)
	r.Get("/programme/charts", web.RequireStaff, h.programmeChart)
}

// pathOrg is the organisation of an /orgs/:org route when the caller may read it: its members, and staff for
// an organisation billing knows. Anyone else gets the answer of a missing organisation (tenancy: 404, not 403).
func (h handler) pathOrg(c *fiber.Ctx) (string, error) {
	org := c.Params("org")
	p := web.PrincipalOf(c)
	if org != "" && org == p.OrgID {
		return org, nil
	}
	if p.Staff && org != "" {
		ok, err := h.s.KnownOrg(c.UserContext(), org)
		if err != nil {
			return "", err
		}
		if ok {
			return org, nil
		}
	}
	return "", fmt.Errorf("organisation %q: %w", org, ErrOrgNotFound)
}

func docLang(c *fiber.Ctx) string { return DocLanguage(c.AcceptsLanguages("en", "fr")) }

// sendPDF draws a document in the caller's language (Accept-Language) and answers it as name.
func sendPDF(c *fiber.Ctx, name string, draw func(lang string) ([]byte, error)) error {
	lang := docLang(c)
	b, err := draw(lang)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentLanguage, lang)
	c.Set(fiber.HeaderContentType, "application/pdf")
	c.Set(fiber.HeaderContentDisposition, `inline; filename="`+name+`"`)
	c.Set(fiber.HeaderCacheControl, "private, no-store")
	c.Vary(fiber.HeaderAcceptLanguage)
	return c.Send(b)
}

func (h handler) purchases(c *fiber.Ctx) error {
	org, err := h.pathOrg(c)
	if err != nil {
		return err
	}
	rows, err := h.s.PurchasesOf(c.UserContext(), org)
	if err != nil {
		return err
	}
	return pageJSON(c, rows)
}

func (h handler) receiptPDF(c *fiber.Ctx) error {
	org, err := h.pathOrg(c)
	if err != nil {
		return err
	}
	r, err := h.s.ReceiptOf(c.UserContext(), org, c.Params("id"))
	if err != nil {
		return err
	}
	return sendPDF(c, "receipt-"+r.Purchase.ID+".pdf", func(lang string) ([]byte, error) { return ReceiptPDF(r, lang) })
}

// StatementMonth is a month with a statement.
type StatementMonth struct {
	Month string `json:"month"`
	Path  string `json:"pdf_path"`
}

func (h handler) statementMonths(c *fiber.Ctx) error {
	org, err := h.pathOrg(c)
	if err != nil {
		return err
	}
	months, err := h.s.StatementMonths(c.UserContext(), org)
	if err != nil {
		return err
	}
	out := make([]StatementMonth, 0, len(months))
	for _, m := range months {
		out = append(out, StatementMonth{Month: m, Path: "/api/v1/billing/orgs/" + org + "/statements/" + m + ".pdf"})
	}
	return pageJSON(c, out)
}

func (h handler) statementPDF(c *fiber.Ctx) error {
	org, err := h.pathOrg(c)
	if err != nil {
		return err
	}
	month := strings.TrimSuffix(c.Params("month"), ".pdf")
	d, err := h.s.StatementDocOf(c.UserContext(), org, month)
	if err != nil {
		return err
	}
	return sendPDF(c, "statement-"+month+".pdf", func(lang string) ([]byte, error) { return StatementPDF(d, lang) })
}

func (h handler) spendChart(c *fiber.Ctx) error { return orgChart(h, c, h.s.SpendChartOf) }

func (h handler) earningsChart(c *fiber.Ctx) error { return orgChart(h, c, h.s.EarningsChartOf) }

// orgChart answers a chart of the path's organisation over the query's day range.
func orgChart[T any](h handler, c *fiber.Ctx, chart func(ctx context.Context, org string, r dayrange.Range) (T, error)) error {
	org, err := h.pathOrg(c)
	if err != nil {
		return err
	}
	r, err := dayrange.Parse(c.Query("from"), c.Query("to"), c.Query("tz"), h.s.now())
	if err != nil {
		return err
	}
	out, err := chart(c.UserContext(), org, r)
	if err != nil {
		return err
	}
	return c.JSON(out)
}

func (h handler) programmeChart(c *fiber.Ctx) error {
	r, err := dayrange.Parse(c.Query("from"), c.Query("to"), c.Query("tz"), h.s.now())
	if err != nil {
		return err
	}
	out, err := h.s.ProgrammeChartOf(c.UserContext(), r)
	if err != nil {
		return err
	}
	return c.JSON(out)
}

func (s *Service) documentOps(d *openapi.Doc) {
	const p = "/api/v1/billing"
	rng := []openapi.Param{{Name: "from", Type: "string", Description: "yyyy-mm-dd, inclusive (default: 29 days before to)"},
		{Name: "to", Type: "string", Description: "yyyy-mm-dd, inclusive (default: today in tz); at most 366 days"},
		{Name: "tz", Type: "string", Description: "IANA time zone whose calendar days the chart counts, e.g. America/Toronto (default: UTC)"}}
	lang := "; the language follows Accept-Language (en or fr)"
	d.Add(
		openapi.Op{Method: "GET", Path: p + "/orgs/:org/purchases", Summary: "The organisation's credit purchases, newest first, with receipt links", Tag: "billing",
			Auth: "org member or staff", Response: web.List[PurchaseRow]{}, Problems: []string{"organization_not_found"}},
		openapi.Op{Method: "GET", Path: p + "/orgs/:org/purchases/:id/receipt.pdf", Summary: "PDF receipt of a credited purchase (application/pdf)" + lang, Tag: "billing",
			Auth: "org member or staff", Problems: []string{"organization_not_found", "purchase_not_found"}},
		openapi.Op{Method: "GET", Path: p + "/orgs/:org/statements", Summary: "Months with a statement, newest first", Tag: "billing",
			Auth: "org member or staff", Response: web.List[StatementMonth]{}, Problems: []string{"organization_not_found"}},
		openapi.Op{Method: "GET", Path: p + "/orgs/:org/statements/:month.pdf", Summary: "Monthly statement PDF (yyyy-mm; application/pdf)" + lang, Tag: "billing",
			Auth: "org member or staff", Problems: []string{"organization_not_found", "invalid_month", "future_month"}},
		openapi.Op{Method: "GET", Path: p + "/orgs/:org/charts/spend", Summary: "Spend per day with month-to-date and budget, by sandbox and by listing", Tag: "billing",
			Auth: "org member or staff", Response: SpendChart{}, Query: rng, Problems: []string{"organization_not_found"}},
		openapi.Op{Method: "GET", Path: p + "/orgs/:org/charts/earnings", Summary: "A vendor's earnings per day (usage sold, orders)", Tag: "billing",
			Auth: "org member or staff", Response: EarningsChart{}, Query: rng, Problems: []string{"organization_not_found"}},
		openapi.Op{Method: "GET", Path: p + "/programme/charts", Summary: "Programme grants, grant spend and co-funding per day", Tag: "billing",
			Auth: "staff", Response: ProgrammeChart{}, Query: rng},
	)
}
