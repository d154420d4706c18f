package billing

import (
	"bytes"
	"encoding/csv"
	"errors"
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

// CreditValueJSON is what one credit is worth: Amount is an exact decimal string of Currency units, Micro the
// same in millionths of the unit (an integer, for arithmetic without floats).
type CreditValueJSON struct {
	Currency string `json:"currency"`
	Amount   string `json:"amount"`
	Micro    int64  `json:"micro"`
}

// MoneySettings is what the UI needs to show and buy credits: the credit's value and whether cards are on.
type MoneySettings struct {
	CreditValue  CreditValueJSON `json:"credit_value"`
	CardPayments bool            `json:"card_payments"`
	// CardCurrency is the currency card purchases are charged in (CAD), when they are on.
	CardCurrency string `json:"card_currency,omitempty"`
	// HowToGetCredits says how an organisation gets credits when cards are off.
	HowToGetCredits string `json:"how_to_get_credits"`
	// Tax is the sales tax included in credit prices (read-only: set by the operator's --tax-* flags).
	Tax TaxSettings `json:"tax"`
}

// TaxSettings is the programme's tax on credit purchases. Prices include it: a purchase costs the same with or
// without tax, and its receipt shows the tax contained in the price (rounded half up to the cent).
type TaxSettings struct {
	Applies bool `json:"applies"`
	// RateBP is the rate in basis points (1300 = 13 %); 0 when no tax applies.
	RateBP int64 `json:"rate_bp"`
	// Name is what receipts call it, e.g. GST/HST; empty when no tax applies.
	Name string `json:"name"`
	// Registration is the programme's tax registration number, empty when not set.
	Registration string `json:"registration"`
	// IncludedInPrice is always true: card and offline prices are tax-inclusive.
	IncludedInPrice bool `json:"included_in_price"`
}

// Settings reports the money settings of this platform.
func (s *Service) Settings() MoneySettings {
	v := s.cfg.CreditValue
	out := MoneySettings{CreditValue: CreditValueJSON{Currency: v.Currency, Amount: v.Amount(), Micro: v.Micro}, CardPayments: s.PaymentsEnabled(),
		HowToGetCredits: "Programme staff grant credits to verified organisations and record purchase orders paid offline; contact them.",
		Tax: TaxSettings{Applies: s.cfg.Tax.Applies(), RateBP: s.cfg.Tax.RateBP, Name: s.cfg.Tax.Name, Registration: s.cfg.Tax.Registration,
			IncludedInPrice: true}}
	if out.CardPayments {
		out.CardCurrency = strings.ToUpper(checkoutCurrency)
	}
	return out
}

func (h handler) settings(c *fiber.Ctx) error { return c.JSON(h.s.Settings()) }

// activityOrg is the organisation in the path: the caller's own, or any for staff.
func activityOrg(c *fiber.Ctx) (string, error) {
	p := web.PrincipalOf(c)
	org := c.Params("org")
	if org != p.OrgID && !p.Staff {
		return "", problem.ErrForbidden.WithDetailMsg("problem.forbidden.own_transactions", nil)
	}
	return org, nil
}

func activityFilterOf(c *fiber.Ctx) (ActivityFilter, error) {
	f := ActivityFilter{From: c.Query("from"), To: c.Query("to"), SandboxID: c.Query("sandbox_id"), ListingID: c.Query("listing_id")}
	for _, k := range strings.Split(c.Query("kind"), ",") {
		if k = strings.TrimSpace(k); k != "" {
			f.Kinds = append(f.Kinds, k)
		}
	}
	var fs problem.Fields
	switch c.Query("sort", "-date") {
	case "date":
		f.Ascending = true
	case "-date":
	default:
		fs.Add("sort", "invalid", "use date (oldest first) or -date (newest first)")
	}
	switch c.Query("format") {
	case "", "json", "csv":
	default:
		fs.Add("format", "invalid", "use json or csv")
	}
	if err := f.Validate(); err != nil {
		var p *problem.Problem
		if !errors.As(err, &p) {
			return f, err
		}
		fs = append(fs, p.Fields...)
	}
	return f, fs.Err()
}

func wantsCSV(c *fiber.Ctx) bool {
	return c.Query("format") == "csv" || (c.Query("format") == "" && c.Accepts(fiber.MIMEApplicationJSON, "text/csv") == "text/csv")
}

func (h handler) activity(c *fiber.Ctx) error {
	org, err := activityOrg(c)
	if err != nil {
		return err
	}
	f, err := activityFilterOf(c)
	if err != nil {
		return err
	}
	csvOut := wantsCSV(c)
	var pg web.Page
	if !csvOut {
		if pg, err = web.PageOf(c); err != nil {
			return err
		}
	}
	lines, err := h.s.Activity(c.UserContext(), org, f)
	if err != nil {
		return err
	}
	if csvOut {
		c.Set(fiber.HeaderContentType, "text/csv; charset=utf-8")
		c.Set(fiber.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="%s"`, activityFilename(org, f, time.Now().UTC())))
		return c.Send(activityCSV(lines))
	}
	page, next, err := pageActivity(lines, pg.Limit, pg.Cursor, f.Ascending)
	if err != nil {
		return err
	}
	return c.JSON(web.List[ActivityLine]{Items: page, NextCursor: next})
}

// activityFilename is transactions-<org>[-<from>][-<to>].csv, or -<today> without a range.
func activityFilename(org string, f ActivityFilter, now time.Time) string {
	safe := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, org)
	name := "transactions-" + safe
	switch {
	case f.From != "" || f.To != "":
		name += "-" + firstNonEmpty(f.From, "start") + "-to-" + firstNonEmpty(f.To, now.Format(time.DateOnly))
	default:
		name += "-" + now.Format(time.DateOnly)
	}
	return name + ".csv"
}

// decimal writes micro-credits as an exact decimal string of credits without grouping, with the decimals it
// needs and at least two ("-2.50", "0.000125").
func decimal(m int64) string {
	return strings.ReplaceAll(money.Micro(m).String(), ",", "")
}

// activityCSV renders lines with a header row; amounts are exact decimal credits and integer micro-credits.
func activityCSV(lines []ActivityLine) []byte {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write([]string{"date", "kind", "line_id", "sandbox_id", "listing_id", "listing_title", "gpu_model", "gpu_count", "duration_seconds",
		"rate_credits_per_gpu_hour", "gross_credits", "cofunded_credits", "shortfall_credits", "net_credits", "amount_credits", "amount_micro", "ref"})
	opt := func(v int64) string {
		if v == 0 {
			return ""
		}
		return decimal(v)
	}
	for _, l := range lines {
		gpus, secs := "", ""
		if l.Kind == ActivityUsage {
			gpus = strconv.Itoa(l.GPUCount)
			secs = fmt.Sprintf("%d.%03d", l.DurationMs/1000, l.DurationMs%1000)
		}
		_ = w.Write([]string{l.Date, l.Kind, l.ID, l.SandboxID, l.ListingID, l.ListingTitle, l.GPUModel, gpus, secs, opt(l.RateMicro),
			opt(l.GrossMicro), opt(l.CofundedMicro), opt(l.ShortfallMicro), opt(l.NetMicro), decimal(l.AmountMicro), strconv.FormatInt(l.AmountMicro, 10), l.Ref})
	}
	w.Flush()
	return buf.Bytes()
}

func (h handler) activityEntries(c *fiber.Ctx) error {
	org, err := activityOrg(c)
	if err != nil {
		return err
	}
	es, err := h.s.ActivityEntries(c.UserContext(), org, c.Params("line"))
	if err != nil {
		return err
	}
	return pageJSON(c, es)
}

func (s *Service) activityOpenAPI(d *openapi.Doc) {
	const p = "/api/v1/billing"
	filters := []openapi.Param{
		{Name: "kind", Type: "string", Description: "comma-separated: " + strings.Join(ActivityKinds, ", ")},
		{Name: "from", Type: "string", Description: "first UTC day, yyyy-mm-dd"},
		{Name: "to", Type: "string", Description: "last UTC day, yyyy-mm-dd (inclusive)"},
		{Name: "sandbox_id", Type: "string"}, {Name: "listing_id", Type: "string"},
		{Name: "sort", Type: "string", Description: "-date (newest first, default) or date"},
		{Name: "format", Type: "string", Description: "csv for text/csv (every matching line, no paging); Accept: text/csv works too"},
		{Name: "limit", Type: "integer"}, {Name: "cursor", Type: "string"},
	}
	d.Add(
		openapi.Op{Method: "GET", Path: p + "/settings", Summary: "What a credit is worth, whether card payments are on, and the tax included in prices", Tag: "billing", Response: MoneySettings{}},
		openapi.Op{Method: "GET", Path: p + "/orgs/:org/transactions", Summary: "Readable transactions: usage per sandbox per UTC day, purchases, grants, refunds, orders, payouts; CSV with format=csv",
			Tag: "billing", Auth: "org member (staff: any)", Response: web.List[ActivityLine]{}, Query: filters, Problems: []string{"validation_failed", "invalid_cursor"}},
		openapi.Op{Method: "GET", Path: p + "/orgs/:org/transactions/:line/entries", Summary: "The metered samples or ledger entries behind one transaction line",
			Tag: "billing", Auth: "org member (staff: any)", Response: web.List[ActivityEntry]{}, Problems: []string{"transaction_not_found"},
			Query: []openapi.Param{{Name: "limit", Type: "integer"}, {Name: "cursor", Type: "string"}}},
	)
}
