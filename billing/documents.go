package billing

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tamarack-ai/tamarack/platform/money"
)

// Receipts and monthly statements: the data behind the PDFs (pdf.go draws them). Every amount is integer
// micro-credits or CAD cents; formatting for a language happens only when text is written.

// DefaultProgrammeLegalName is printed on receipts and statements when --programme-legal-name is not set.
const DefaultProgrammeLegalName = "Tamarack AI Compute Programme"

// MaxStatementMonths bounds the list of statement months (ten years).
const MaxStatementMonths = 120

// credited says whether a purchase's credits reached the wallet (a receipt exists for it).
func credited(p Purchase) bool { return p.Status == "paid" || p.Status == "refunded" }

// PurchaseRow is a purchase as the organisation's members see it.
type PurchaseRow struct {
	ID             string    `json:"id"`
	Credits        int64     `json:"credits"`
	AmountMicro    int64     `json:"amount_micro"`
	CADCents       int64     `json:"cad_cents"` // the amount before tax
	Method         string    `json:"method"`
	Status         string    `json:"status"`
	Reference      string    `json:"reference"`
	RefundedMicro  int64     `json:"refunded_micro"`
	CreatedAt      time.Time `json:"created_at"`
	ReceiptPath    string    `json:"receipt_path,omitempty"` // set when the purchase was credited
	TaxCents       int64     `json:"tax_cents"`              // the tax included in the price (0: no tax applies)
	TaxName        string    `json:"tax_name"`               // e.g. GST/HST; empty when no tax applies
	TaxRateBP      int64     `json:"tax_rate_bp"`            // basis points: 1300 = 13 %
	TotalCADCents  int64     `json:"total_cad_cents"`        // cad_cents + tax_cents: what was paid
	OrganizationID string    `json:"organization_id"`
}

func receiptPath(orgID, id string) string {
	return "/api/v1/billing/orgs/" + orgID + "/purchases/" + id + "/receipt.pdf"
}

func toPurchaseRow(p Purchase) PurchaseRow {
	r := PurchaseRow{ID: p.ID, OrganizationID: p.OrgID, Credits: p.Credits, AmountMicro: p.Amount, CADCents: p.CADCents - p.TaxCents, Method: p.Method,
		Status: p.Status, Reference: p.Reference, RefundedMicro: p.Refunded, CreatedAt: p.CreatedAt.UTC(), TaxCents: p.TaxCents, TaxName: p.TaxName,
		TaxRateBP: p.TaxRateBP, TotalCADCents: p.CADCents}
	if credited(p) {
		r.ReceiptPath = receiptPath(p.OrgID, p.ID)
	}
	return r
}

// PurchasesOf lists an organisation's purchases, newest first (at most 500: an organisation buys a few a month).
func (s *Service) PurchasesOf(ctx context.Context, orgID string) ([]PurchaseRow, error) {
	ps, err := purchasesOf(s.db.WithContext(ctx), orgID)
	if err != nil {
		return nil, err
	}
	out := make([]PurchaseRow, 0, len(ps))
	for _, p := range ps {
		out = append(out, toPurchaseRow(p))
	}
	return out, nil
}

// Receipt is what a purchase receipt shows.
type Receipt struct {
	ProgrammeName string
	OrgName       string
	Purchase      Purchase
	PaidAt        time.Time // when the ledger credited it
	CentsPerCred  int64
	// TaxRegistration is the programme's tax registration number (printed when the purchase carries a tax).
	TaxRegistration string
}

// ReceiptOf reads a credited purchase of orgID; a missing, foreign or uncredited purchase is ErrPurchaseNotFound.
func (s *Service) ReceiptOf(ctx context.Context, orgID, purchaseID string) (Receipt, error) {
	db := s.db.WithContext(ctx)
	p, err := purchaseOf(db, orgID, purchaseID)
	if errors.Is(err, ErrPurchaseNotFound) {
		return Receipt{}, fmt.Errorf("receipt %s: %w", purchaseID, ErrPurchaseNotFound)
	} else if err != nil {
		return Receipt{}, err
	}
	if !credited(p) {
		return Receipt{}, fmt.Errorf("receipt %s (%s): %w", purchaseID, p.Status, ErrPurchaseNotFound)
	}
	r := Receipt{ProgrammeName: s.cfg.ProgrammeLegalName, OrgName: s.orgName(ctx, orgID), Purchase: p, PaidAt: p.UpdatedAt.UTC(), CentsPerCred: s.cfg.CADCentsPerCredit,
		TaxRegistration: s.cfg.Tax.Registration}
	if at, ok, err := purchaseCreditedAt(db, p); err != nil {
		return Receipt{}, err
	} else if ok {
		r.PaidAt = at.UTC()
	}
	return r, nil
}

func (s *Service) orgName(ctx context.Context, orgID string) string {
	org, err := getOrg(s.db.WithContext(ctx), orgID)
	if err != nil || org.Name == "" {
		return orgID
	}
	return org.Name
}

// KnownOrg reports whether billing has a row for the organisation (staff reading another organisation).
func (s *Service) KnownOrg(ctx context.Context, orgID string) (bool, error) {
	return orgExists(s.db.WithContext(ctx), orgID)
}

// parseMonth checks a yyyy-mm month that has started (the current month is a statement to date).
func (s *Service) parseMonth(month string) (time.Time, error) {
	start, err := time.Parse("2006-01", month)
	if err != nil || len(month) != 7 {
		return time.Time{}, ErrBadMonth
	}
	now := s.now().UTC()
	if start.After(time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)) {
		return time.Time{}, fmt.Errorf("statement %s: %w", month, ErrFutureMonth)
	}
	return start, nil
}

// StatementMonths lists the months an organisation has a statement for, newest first: from the month of its
// first ledger line (or, with none, the current month) to the current month.
func (s *Service) StatementMonths(ctx context.Context, orgID string) ([]string, error) {
	now := s.now().UTC()
	cur := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	first := cur
	db := s.db.WithContext(ctx)
	own, err := orgLedgerOf(db, orgID)
	if err != nil {
		return nil, err
	}
	if !own.empty() {
		t, ok, err := firstTransfer(db, own)
		if err != nil {
			return nil, err
		}
		if ok {
			c := t.CreatedAt.UTC()
			first = time.Date(c.Year(), c.Month(), 1, 0, 0, 0, 0, time.UTC)
		}
	}
	out := []string{}
	for m := cur; !m.Before(first) && len(out) < MaxStatementMonths; m = m.AddDate(0, -1, 0) {
		out = append(out, m.Format("2006-01"))
	}
	return out, nil
}

// SandboxUsage is one sandbox's metered usage in a period.
type SandboxUsage struct {
	SandboxID      string `json:"sandbox_id"`
	ListingID      string `json:"listing_id"`
	ListingTitle   string `json:"listing_title"`
	GPUModel       string `json:"gpu_model"`
	Millis         int64  `json:"millis"`
	ChargeMicro    int64  `json:"charge_micro"`
	CofundedMicro  int64  `json:"cofunded_micro"`
	ShortfallMicro int64  `json:"shortfall_micro"`
	PaidMicro      int64  `json:"paid_micro"` // charge − co-funded − shortfall: what the organisation paid
}

// StatementDoc is what a monthly statement PDF shows.
type StatementDoc struct {
	ProgrammeName string
	OrgName       string
	Statement     Statement
	Start, End    time.Time // [Start, End)
	ToDate        bool      // the current month: a statement to date
	Generated     time.Time
	// Sums of the month's ledger lines by what they were (signed from the organisation's side).
	Purchases, Grants, Spend, Refunds, Earnings, Expired, Payouts, Other int64
	Cofunded                                                             int64
	Usage                                                                []SandboxUsage
	Bought                                                               []Purchase // purchases credited in the month
	TaxRegistration                                                      string     // the programme's, when set
}

// StatementDocOf assembles the statement of month (yyyy-mm) for orgID.
func (s *Service) StatementDocOf(ctx context.Context, orgID, month string) (StatementDoc, error) {
	start, err := s.parseMonth(month)
	if err != nil {
		return StatementDoc{}, err
	}
	st, err := s.StatementOf(ctx, orgID, month)
	if err != nil {
		return StatementDoc{}, err
	}
	now := s.now().UTC()
	end := start.AddDate(0, 1, 0)
	d := StatementDoc{ProgrammeName: s.cfg.ProgrammeLegalName, OrgName: s.orgName(ctx, orgID), Statement: st, Start: start, End: end,
		ToDate: now.Before(end), Generated: now, TaxRegistration: s.cfg.Tax.Registration}
	purchaseIDs := []string{}
	for _, l := range st.Lines {
		switch {
		case l.Kind == "purchase":
			d.Purchases += l.AmountMicro
			purchaseIDs = append(purchaseIDs, l.Ref)
		case l.Kind == "grant":
			d.Grants += l.AmountMicro
		case l.Kind == "refund":
			d.Refunds += l.AmountMicro
		case l.Kind == "grant_expiry":
			d.Expired += l.AmountMicro
		case l.Kind == "payout":
			d.Payouts += l.AmountMicro
		case (l.Kind == "usage" || l.Kind == "order") && l.AmountMicro < 0:
			d.Spend += l.AmountMicro
		case l.Kind == "usage" || l.Kind == "order":
			d.Earnings += l.AmountMicro
		default:
			d.Other += l.AmountMicro
		}
	}
	from, to := start.Format("2006-01-02"), end.Format("2006-01-02")
	if d.Usage, err = sandboxUsageOnDays(s.db.WithContext(ctx), orgID, from, to); err != nil {
		return StatementDoc{}, err
	}
	for _, u := range d.Usage {
		d.Cofunded += u.CofundedMicro
	}
	if len(purchaseIDs) > 0 {
		if d.Bought, err = purchasesByID(s.db.WithContext(ctx), orgID, purchaseIDs); err != nil {
			return StatementDoc{}, err
		}
	}
	return d, nil
}

// Language-dependent text of the documents, each key once with its English and French (the UI's languages,
// the only ones offered).
var docText = map[string]struct{ en, fr string }{
	"receipt":           {"Receipt", "Reçu"},
	"statement":         {"Monthly statement", "Relevé mensuel"},
	"statement_to_date": {"Monthly statement (to date)", "Relevé mensuel (à ce jour)"},
	"receipt_no":        {"Receipt number", "Numéro de reçu"},
	"date":              {"Date paid", "Date du paiement"},
	"buyer":             {"Organisation", "Organisation"},
	"method":            {"Payment method", "Mode de paiement"},
	"method_stripe":     {"Card (Stripe)", "Carte (Stripe)"},
	"method_offline":    {"Purchase order", "Bon de commande"},
	"reference":         {"Reference", "Référence"},
	"credits":           {"Credits purchased", "Crédits achetés"},
	"unit":              {"Price per credit", "Prix par crédit"},
	"before_tax":        {"Amount before tax", "Montant avant taxes"},
	"tax":               {"Tax", "Taxes"},
	"after_tax":         {"Total paid (after tax)", "Total payé (taxes comprises)"},
	"no_tax":            {"No tax applies to this purchase.", "Aucune taxe ne s'applique à cet achat."},
	"no_tax_month":      {"No tax applies to the purchases of this month.", "Aucune taxe ne s'applique aux achats de ce mois."},
	"tax_reg":           {"Tax registration number (%s)", "Numéro d'inscription aux taxes (%s)"},
	"tax_month":         {"Tax included: %s", "Taxes comprises\u00a0: %s"},
	"tax_included":      {"Prices include %s. The tax in a price is rounded to the nearest cent, half a cent up.", "Prix taxes comprises\u00a0: %s. La taxe comprise dans un prix est arrondie au cent le plus proche, le demi-cent vers le haut."},
	"cofunded_short":    {"Co-funded", "Cofinancé"},
	"refunded":          {"Refunded", "Remboursé"},
	"period":            {"Period", "Période"},
	"generated":         {"Generated", "Généré le"},
	"opening":           {"Opening balance", "Solde d'ouverture"},
	"closing":           {"Closing balance", "Solde de clôture"},
	"purchases":         {"Purchases", "Achats"},
	"grants":            {"Programme grants", "Subventions du programme"},
	"spend":             {"Usage and orders", "Utilisation et commandes"},
	"refunds":           {"Refunds", "Remboursements"},
	"earnings":          {"Earnings from sales", "Revenus des ventes"},
	"expired":           {"Expired grant credits", "Crédits de subvention expirés"},
	"payouts":           {"Payouts", "Versements"},
	"other":             {"Other", "Autres"},
	"cofunded":          {"Co-funded by the programme (not taken from your balance)", "Cofinancé par le programme (non prélevé sur votre solde)"},
	"usage_title":       {"Usage by sandbox", "Utilisation par environnement"},
	"sandbox":           {"Sandbox", "Environnement"},
	"listing":           {"Listing", "Offre"},
	"gpu_hours":         {"GPU-hours", "Heures-GPU"},
	"charged":           {"Charged", "Facturé"},
	"paid":              {"Paid by you", "Payé par vous"},
	"no_usage":          {"No metered usage this month.", "Aucune utilisation mesurée ce mois-ci."},
	"purchases_title":   {"Purchases credited this month", "Achats crédités ce mois-ci"},
	"no_purchases":      {"No purchases this month.", "Aucun achat ce mois-ci."},
	"summary":           {"Summary", "Récapitulatif"},
	"range":             {"%s to %s", "du %s au %s"},
	"credit_unit":       {"credits", "crédits"},
	"amount":            {"Amount", "Montant"},
	"footer":            {"Amounts are in credits unless marked CAD. Issued by %s.", "Montants en crédits sauf mention CAD. Émis par %s."},
}

var monthNames = map[string][12]string{
	"en": {"January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"},
	"fr": {"janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre", "novembre", "décembre"},
}

// DocLanguage picks "fr" or "en" (the default) from a language tag.
func DocLanguage(tag string) string {
	if strings.HasPrefix(strings.ToLower(tag), "fr") {
		return "fr"
	}
	return "en"
}

func tr(lang, key string) string {
	switch lang {
	case "en":
		return docText[key].en
	case "fr":
		return docText[key].fr
	}
	return ""
}

// formatMicroLang writes micro-credits for a language from the integer: "1,234.50" (en), "1 234,50" (fr, with
// no-break spaces).
func formatMicroLang(m int64, lang string) string {
	s := money.Micro(m).String()
	if lang == "fr" {
		s = strings.NewReplacer(",", "\u00a0", ".", ",").Replace(s)
	}
	return s
}

// formatCents writes CAD cents: "CA$1,234.56" (en), "1 234,56 $ CA" (fr).
func formatCents(c int64, lang string) string {
	sign := ""
	if c < 0 {
		sign, c = "-", -c
	}
	whole := money.Micro(c / 100 * 1_000_000).String() // grouped whole dollars, ".00"
	whole = strings.TrimSuffix(whole, ".00")
	cents := fmt.Sprintf("%02d", c%100)
	if lang == "fr" {
		return sign + strings.ReplaceAll(whole, ",", "\u00a0") + "," + cents + "\u00a0$\u00a0CA"
	}
	return sign + "CA$" + whole + "." + cents
}

func formatDay(t time.Time, lang string) string {
	t = t.UTC()
	if lang == "fr" {
		d := strconv.Itoa(t.Day())
		if t.Day() == 1 {
			d = "1er"
		}
		return d + " " + monthNames["fr"][t.Month()-1] + " " + strconv.Itoa(t.Year())
	}
	return strconv.Itoa(t.Day()) + " " + monthNames["en"][t.Month()-1] + " " + strconv.Itoa(t.Year())
}

func formatMonth(t time.Time, lang string) string {
	return monthNames[lang][t.Month()-1] + " " + strconv.Itoa(t.Year())
}

func formatHours(millis int64, lang string) string {
	// Hundredths of an hour, rounded half up, from integers.
	h := (millis*100 + 1_800_000) / 3_600_000
	s := fmt.Sprintf("%d.%02d", h/100, h%100)
	if lang == "fr" {
		s = strings.Replace(s, ".", ",", 1)
	}
	return s
}
