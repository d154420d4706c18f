package billing

import (
	"bytes"
	_ "embed"
	"fmt"
	"strconv"

	"github.com/go-pdf/fpdf"
)

// The PDFs embed DejaVu Sans (fonts/, licence in fonts/LICENSE: Bitstream Vera / public domain, free to embed
// and redistribute): the PDF core fonts are Latin-1 only and fpdf would need a code-page translation for every
// string; a Unicode TrueType font writes French (é, è, ', no-break spaces) as it is.

//go:embed fonts/DejaVuSans.ttf
var fontRegular []byte

//go:embed fonts/DejaVuSans-Bold.ttf
var fontBold []byte

const (
	pageW   = 210.0 // A4, mm
	margin  = 18.0
	bodyW   = pageW - 2*margin
	lineH   = 6.0
	fontFam = "dejavu"
)

// doc wraps an fpdf document with the house layout: a header with the programme's legal name, a title, and
// label/value rows.
type doc struct {
	f    *fpdf.Fpdf
	lang string
}

func newDoc(title, author, lang string) *doc {
	f := fpdf.New("P", "mm", "A4", "")
	f.SetMargins(margin, margin, margin)
	f.SetAutoPageBreak(true, margin)
	f.AddUTF8FontFromBytes(fontFam, "", fontRegular)
	f.AddUTF8FontFromBytes(fontFam, "B", fontBold)
	f.SetTitle(title, true)
	f.SetAuthor(author, true)
	f.SetCreator("Tamarack", true)
	f.SetLang(lang)
	f.AddPage()
	d := &doc{f: f, lang: lang}
	f.SetFont(fontFam, "B", 10)
	f.SetTextColor(60, 60, 60)
	f.CellFormat(bodyW, lineH, author, "", 1, "L", false, 0, "")
	f.SetTextColor(0, 0, 0)
	f.Ln(2)
	f.SetFont(fontFam, "B", 18)
	f.CellFormat(bodyW, 10, title, "", 1, "L", false, 0, "")
	f.Ln(3)
	return d
}

func (d *doc) heading(s string) {
	d.f.Ln(4)
	d.f.SetFont(fontFam, "B", 12)
	d.f.CellFormat(bodyW, 8, s, "B", 1, "L", false, 0, "")
	d.f.Ln(1)
}

// row writes a label and a right-aligned value; bold for totals.
func (d *doc) row(label, value string, bold bool) {
	style := ""
	if bold {
		style = "B"
	}
	d.f.SetFont(fontFam, style, 10)
	d.f.CellFormat(bodyW*0.65, lineH, label, "", 0, "L", false, 0, "")
	d.f.CellFormat(bodyW*0.35, lineH, value, "", 1, "R", false, 0, "")
}

// field writes "label: value" on one line, the value wrapped if long.
func (d *doc) field(label, value string) {
	d.f.SetFont(fontFam, "B", 10)
	d.f.CellFormat(bodyW*0.35, lineH, label, "", 0, "L", false, 0, "")
	d.f.SetFont(fontFam, "", 10)
	d.f.MultiCell(bodyW*0.65, lineH, value, "", "L", false)
}

func (d *doc) note(s string) {
	d.f.SetFont(fontFam, "", 9)
	d.f.MultiCell(bodyW, 5, s, "", "L", false)
}

// table writes a header and rows; widths are fractions of the body width; columns after the first two are
// right-aligned (numbers).
func (d *doc) table(widths []float64, head []string, rows [][]string) {
	align := func(i int) string {
		if i >= 2 {
			return "R"
		}
		return "L"
	}
	d.f.SetFont(fontFam, "B", 9)
	d.f.SetFillColor(235, 238, 235)
	for i, h := range head {
		d.f.CellFormat(bodyW*widths[i], lineH, h, "B", 0, align(i), true, 0, "")
	}
	d.f.Ln(-1)
	d.f.SetFont(fontFam, "", 9)
	for _, r := range rows {
		for i, c := range r {
			// Long identifiers are cut to the column; the full ones are on the CSV statement.
			w := bodyW * widths[i]
			for len(c) > 3 && d.f.GetStringWidth(c) > w-1 {
				c = string([]rune(c)[:len([]rune(c))-2]) + "…"
				if d.f.GetStringWidth(c) <= w-1 {
					break
				}
				c = string([]rune(c)[:len([]rune(c))-1])
			}
			d.f.CellFormat(w, lineH, c, "", 0, align(i), false, 0, "")
		}
		d.f.Ln(-1)
	}
}

func (d *doc) bytes() ([]byte, error) {
	var buf bytes.Buffer
	if err := d.f.Output(&buf); err != nil {
		return nil, fmt.Errorf("pdf: %w", err)
	}
	return buf.Bytes(), nil
}

func methodText(m, lang string) string {
	switch m {
	case "stripe":
		return tr(lang, "method_stripe")
	case "offline":
		return tr(lang, "method_offline")
	}
	return m
}

// taxLabel is the tax row's label: "GST/HST (13%)".
func taxLabel(p Purchase, lang string) string {
	return p.TaxName + " (" + formatRate(p.TaxRateBP, lang) + ")"
}

// ReceiptPDF draws a purchase receipt. The price paid includes the tax recorded on the purchase (Tax): the
// receipt shows the amount before tax, the tax with its name and rate, and the total; a purchase without tax
// says that no tax applies.
func ReceiptPDF(r Receipt, lang string) ([]byte, error) {
	p := r.Purchase
	d := newDoc(tr(lang, "receipt"), r.ProgrammeName, lang)
	d.f.SetCreationDate(r.PaidAt)
	d.field(tr(lang, "receipt_no"), p.ID)
	d.field(tr(lang, "date"), formatDay(r.PaidAt, lang))
	d.field(tr(lang, "buyer"), r.OrgName)
	d.field(tr(lang, "method"), methodText(p.Method, lang))
	if p.Reference != "" {
		d.field(tr(lang, "reference"), p.Reference)
	}
	taxed := p.TaxRateBP > 0
	if taxed && r.TaxRegistration != "" {
		d.field(fmt.Sprintf(tr(lang, "tax_reg"), p.TaxName), r.TaxRegistration)
	}
	d.heading(tr(lang, "summary"))
	d.row(tr(lang, "credits"), formatMicroLang(p.Amount, lang)+" "+tr(lang, "credit_unit"), false)
	if p.Credits > 0 {
		d.row(tr(lang, "unit"), formatCents(p.CADCents/p.Credits, lang), false)
	}
	d.row(tr(lang, "before_tax"), formatCents(p.CADCents-p.TaxCents, lang), false)
	if taxed {
		d.row(taxLabel(p, lang), formatCents(p.TaxCents, lang), false)
	} else {
		d.row(tr(lang, "tax"), formatCents(0, lang), false)
	}
	d.row(tr(lang, "after_tax"), formatCents(p.CADCents, lang), true)
	if p.Refunded > 0 {
		d.row(tr(lang, "refunded"), formatMicroLang(-p.Refunded, lang)+" "+tr(lang, "credit_unit"), false)
	}
	d.f.Ln(3)
	if taxed {
		d.note(fmt.Sprintf(tr(lang, "tax_included"), taxLabel(p, lang)))
	} else {
		d.note(tr(lang, "no_tax"))
	}
	d.note(fmt.Sprintf(tr(lang, "footer"), r.ProgrammeName))
	return d.bytes()
}

// StatementPDF draws a monthly statement.
func StatementPDF(s StatementDoc, lang string) ([]byte, error) {
	title := tr(lang, "statement")
	if s.ToDate {
		title = tr(lang, "statement_to_date")
	}
	d := newDoc(title+" · "+formatMonth(s.Start, lang), s.ProgrammeName, lang)
	d.f.SetCreationDate(s.Generated)
	last := s.End.AddDate(0, 0, -1)
	if s.ToDate {
		last = s.Generated
	}
	d.field(tr(lang, "buyer"), s.OrgName)
	d.field(tr(lang, "period"), fmt.Sprintf(tr(lang, "range"), formatDay(s.Start, lang), formatDay(last, lang)))
	d.field(tr(lang, "generated"), formatDay(s.Generated, lang))

	m := func(v int64) string { return formatMicroLang(v, lang) }
	d.heading(tr(lang, "summary"))
	d.row(tr(lang, "opening"), m(s.Statement.OpeningMicro), true)
	d.row(tr(lang, "purchases"), m(s.Purchases), false)
	d.row(tr(lang, "grants"), m(s.Grants), false)
	d.row(tr(lang, "spend"), m(s.Spend), false)
	d.row(tr(lang, "refunds"), m(s.Refunds), false)
	for _, x := range []struct {
		key string
		v   int64
	}{{"earnings", s.Earnings}, {"expired", s.Expired}, {"payouts", s.Payouts}, {"other", s.Other}} {
		if x.v != 0 {
			d.row(tr(lang, x.key), m(x.v), false)
		}
	}
	d.row(tr(lang, "closing"), m(s.Statement.ClosingMicro), true)
	d.f.Ln(2)
	d.row(tr(lang, "cofunded"), m(s.Cofunded), false)

	d.heading(tr(lang, "usage_title"))
	if len(s.Usage) == 0 {
		d.note(tr(lang, "no_usage"))
	} else {
		rows := make([][]string, 0, len(s.Usage))
		for _, u := range s.Usage {
			listing := u.ListingTitle
			if listing == "" {
				listing = u.ListingID
			}
			rows = append(rows, []string{u.SandboxID, listing, formatHours(u.Millis, lang), m(u.ChargeMicro), m(u.CofundedMicro), m(u.PaidMicro)})
		}
		d.table([]float64{0.22, 0.28, 0.11, 0.13, 0.13, 0.13},
			[]string{tr(lang, "sandbox"), tr(lang, "listing"), tr(lang, "gpu_hours"), tr(lang, "charged"), tr(lang, "cofunded_short"), tr(lang, "paid")}, rows)
	}

	d.heading(tr(lang, "purchases_title"))
	if len(s.Bought) == 0 {
		d.note(tr(lang, "no_purchases"))
	} else {
		var rows [][]string
		var before, total int64
		for _, p := range s.Bought {
			rows = append(rows, []string{p.ID, methodText(p.Method, lang), m(p.Amount), formatCents(p.CADCents-p.TaxCents, lang),
				formatCents(p.TaxCents, lang), formatCents(p.CADCents, lang)})
			before += p.CADCents - p.TaxCents
			total += p.CADCents
		}
		d.table([]float64{0.24, 0.18, 0.14, 0.15, 0.13, 0.16},
			[]string{tr(lang, "receipt_no"), tr(lang, "method"), tr(lang, "amount"), tr(lang, "before_tax"), tr(lang, "tax"), tr(lang, "after_tax")}, rows)
		d.f.Ln(1)
		d.row(tr(lang, "before_tax"), formatCents(before, lang), false)
		// Purchases keep the tax they were sold with: one row per tax name and rate met this month.
		for _, t := range monthTaxes(s.Bought) {
			d.row(fmt.Sprintf(tr(lang, "tax_month"), taxLabel(t, lang)), formatCents(t.TaxCents, lang), false)
		}
		d.row(tr(lang, "after_tax"), formatCents(total, lang), true)
	}
	d.f.Ln(3)
	taxes := monthTaxes(s.Bought)
	if len(taxes) == 0 {
		d.note(tr(lang, "no_tax_month"))
	}
	for _, t := range taxes {
		d.note(fmt.Sprintf(tr(lang, "tax_included"), taxLabel(t, lang)))
	}
	if len(taxes) > 0 && s.TaxRegistration != "" {
		d.note(fmt.Sprintf(tr(lang, "tax_reg"), taxes[0].TaxName) + ": " + s.TaxRegistration)
	}
	d.note(fmt.Sprintf(tr(lang, "footer"), s.ProgrammeName))
	d.note("ID: " + s.Statement.OrganizationID + " · " + strconv.Itoa(len(s.Statement.Lines)) + " lines")
	return d.bytes()
}

// monthTaxes sums the tax of purchases by tax name and rate, in order of first appearance; purchases without
// tax are left out. Each entry is a Purchase carrying only TaxName, TaxRateBP and the summed TaxCents.
func monthTaxes(ps []Purchase) []Purchase {
	var out []Purchase
next:
	for _, p := range ps {
		if p.TaxRateBP == 0 {
			continue
		}
		for i := range out {
			if out[i].TaxName == p.TaxName && out[i].TaxRateBP == p.TaxRateBP {
				out[i].TaxCents += p.TaxCents
				continue next
			}
		}
		out = append(out, Purchase{TaxName: p.TaxName, TaxRateBP: p.TaxRateBP, TaxCents: p.TaxCents})
	}
	return out
}
