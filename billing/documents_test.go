package billing

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/ledongthuc/pdf"
	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/services/events"
)

// pdfText extracts the text of a PDF with a PDF reader independent of the writer: what a person or a
// screen reader would get out of the document.
func pdfText(t *testing.T, b []byte) string {
	t.Helper()
	if !bytes.HasPrefix(b, []byte("%PDF-")) {
		t.Fatalf("not a PDF: %.80q", b)
	}
	r, err := pdf.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("read PDF: %v", err)
	}
	var sb strings.Builder
	for i := 1; i <= r.NumPage(); i++ {
		p := r.Page(i)
		if p.V.IsNull() {
			continue
		}
		rows, err := p.GetTextByRow()
		if err != nil {
			t.Fatalf("page %d: %v", i, err)
		}
		for _, row := range rows {
			for _, w := range row.Content {
				sb.WriteString(w.S)
			}
			sb.WriteString("\n")
		}
	}
	return sb.String()
}

func wantText(t *testing.T, text string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("the PDF lacks %q; its text:\n%s", w, text)
		}
	}
}

// docFx: the SME (verified, 50% co-funding grant) bought 1,234.5 credits offline and ran a sandbox on the
// vendor's listing for an hour, all in March 2026.
func docFx(t *testing.T, db *gorm.DB) (*fx, *api, string) {
	f := newFx(t, db, nil, func(d *Deps) { d.ProgrammeLegalName = "Programme canadien de calcul IA" })
	ctx := context.Background()
	f.org("sme", "sme", true)
	must(t, f.s.ProjectOrg(ctx, "sme", "Société Générale d'Éléphants", "sme"))
	f.org("ven", "vendor", false)
	f.org("partner", "partner", false)
	must(t, f.s.ProjectListing(ctx, events.ListingChangedV1{ListingID: "lst-1", VendorOrgID: "ven", Kind: "compute", Title: "Grappe H100 à Montréal",
		Compute: &events.ComputeV1{PoolID: "pool-1", GPUModel: "H100", PricePerGPUHour: 10_000_000}}, true))
	p, err := f.s.RecordOfflinePayment(ctx, OfflinePaymentInput{OrganizationID: "sme", Credits: 1234, Reference: "PO-ÉTÉ-7", ActorUserID: "staff"})
	must(t, err)
	_, err = f.s.CreateGrant(ctx, GrantInput{OrganizationID: "sme", AmountMicro: 5_000_000, ExpiresAt: t0.AddDate(0, 6, 0), CofundPercent: 50,
		CapMicro: 100_000_000, Note: "trial", ActorUserID: "staff"})
	must(t, err)
	_, err = f.hold("sb-1", "sme", "ven", 10_000_000, 1, 3600)
	must(t, err)
	must(t, f.s.ChargeUsage(ctx, []eventbus.Event[events.SandboxUsageV1]{usageEv("sb-1", "sme", "ven", 1, t0, 3_600_000, 1)}))
	return f, newAPI(t, f), p.ID
}

func TestDocumentsReceiptAndStatementPDF(t *testing.T) {
	eachDB(t, func(t *testing.T, db *gorm.DB) {
		f, a, pid := docFx(t, db)
		ctx := context.Background()

		// The receipt, in English and in French.
		st, b := a.do(smeDev, "GET", "/api/v1/billing/orgs/sme/purchases/"+pid+"/receipt.pdf", nil, "Accept-Language", "en-CA,en;q=0.9")
		if st != 200 {
			t.Fatalf("receipt: %d %s", st, b)
		}
		wantText(t, pdfText(t, b), "Receipt", "Programme canadien de calcul IA", "Société Générale d'Éléphants", pid, "1,234.00 credits",
			"CA$1,234.00", "10 March 2026", "No tax applies to this purchase.", "PO-ÉTÉ-7", "Purchase order")
		_, b = a.do(smeDev, "GET", "/api/v1/billing/orgs/sme/purchases/"+pid+"/receipt.pdf", nil, "Accept-Language", "fr-CA,fr;q=0.9,en;q=0.5")
		wantText(t, pdfText(t, b), "Reçu", "Société Générale d'Éléphants", "1\u00a0234,00 crédits", "1\u00a0234,00\u00a0$\u00a0CA", "10 mars 2026",
			"Aucune taxe ne s'applique à cet achat.", "Bon de commande")

		// The statement of March 2026: 1,234 bought, 5 granted, one GPU-hour at 10 credits: 5 co-funded, 5 paid
		// from the grant.
		st, b = a.do(smeAdmin, "GET", "/api/v1/billing/orgs/sme/statements/2026-03.pdf", nil, "Accept-Language", "en")
		if st != 200 {
			t.Fatalf("statement: %d %s", st, b)
		}
		text := pdfText(t, b)
		wantText(t, text, "Monthly statement (to date) · March 2026", "Programme canadien de calcul IA", "Société Générale d'Éléphants",
			"1 March 2026 to 10 March 2026", "Opening balance", "0.00", "Purchases", "1,234.00", "Programme grants", "5.00",
			"Usage and orders", "-5.00", "Closing balance", "1,234.00", "Co-funded by the programme", "sb-1", "Grappe H100 à Montréal",
			"1.00", "10.00", "No tax applies to the purchases of this month.")
		_, b = a.do(smeAdmin, "GET", "/api/v1/billing/orgs/sme/statements/2026-03.pdf", nil, "Accept-Language", "fr")
		wantText(t, pdfText(t, b), "Relevé mensuel (à ce jour) · mars 2026", "du 1er mars 2026 au 10 mars 2026", "Solde d'ouverture",
			"Solde de clôture", "1\u00a0234,00", "Cofinancé par le programme", "Grappe H100 à Montréal", "Aucune taxe ne s'applique")

		// A past month with nothing in it still has a statement; the opening balance carries over.
		f.clk.Set(t0.AddDate(0, 1, 0))
		_, b = a.do(smeAdmin, "GET", "/api/v1/billing/orgs/sme/statements/2026-03.pdf", nil)
		wantText(t, pdfText(t, b), "Monthly statement · March 2026", "1 March 2026 to 31 March 2026")
		_, b = a.do(smeAdmin, "GET", "/api/v1/billing/orgs/sme/statements/2026-04.pdf", nil)
		wantText(t, pdfText(t, b), "Opening balance", "1,234.00", "No metered usage this month.", "No purchases this month.")

		// Months and purchases for the wallet's links.
		var months struct{ Items []StatementMonth }
		must(t, json.Unmarshal(a.expect(smeDev, "GET", "/api/v1/billing/orgs/sme/statements", nil, 200, ""), &months))
		if len(months.Items) != 2 || months.Items[0].Month != "2026-04" || months.Items[1].Path != "/api/v1/billing/orgs/sme/statements/2026-03.pdf" {
			t.Errorf("months: %+v", months.Items)
		}
		var ps struct{ Items []PurchaseRow }
		must(t, json.Unmarshal(a.expect(smeDev, "GET", "/api/v1/billing/orgs/sme/purchases", nil, 200, ""), &ps))
		if len(ps.Items) != 1 || ps.Items[0].ReceiptPath != receiptPath("sme", pid) || ps.Items[0].AmountMicro != 1_234_000_000 {
			t.Errorf("purchases: %+v", ps.Items)
		}

		// Staff read any known organisation.
		a.expect(staff, "GET", "/api/v1/billing/orgs/sme/purchases/"+pid+"/receipt.pdf", nil, 200, "")
		a.expect(staff, "GET", "/api/v1/billing/orgs/nowhere/statements", nil, 404, "organization_not_found")

		// Refusals: problem JSON with a stable code, never a PDF.
		for _, c := range []struct {
			w          who
			path       string
			status     int
			code       string
			whatItMean string
		}{
			{partner, "/orgs/sme/purchases/" + pid + "/receipt.pdf", 404, "organization_not_found", "another organisation's receipt"},
			{partner, "/orgs/partner/purchases/" + pid + "/receipt.pdf", 404, "purchase_not_found", "a foreign purchase under one's own organisation"},
			{smeDev, "/orgs/sme/purchases/nope/receipt.pdf", 404, "purchase_not_found", "an unknown purchase"},
			{smeDev, "/orgs/sme/statements/2026-13.pdf", 400, "invalid_month", "a bad month"},
			{smeDev, "/orgs/sme/statements/26-03.pdf", 400, "invalid_month", "a short year"},
			{smeDev, "/orgs/sme/statements/2026-05.pdf", 422, "future_month", "a month not started"},
			{partner, "/orgs/sme/statements/2026-03.pdf", 404, "organization_not_found", "another organisation's statement"},
			{nobody, "/orgs/sme/statements/2026-03.pdf", 401, "", "no token"},
		} {
			st, b := a.do(c.w, "GET", "/api/v1/billing"+c.path, nil)
			var p struct{ Code string }
			_ = json.Unmarshal(b, &p)
			if st != c.status || (c.code != "" && p.Code != c.code) || bytes.HasPrefix(b, []byte("%PDF")) {
				t.Errorf("%s: %d %s, want %d %s", c.whatItMean, st, b, c.status, c.code)
			}
		}

		// A pending (uncredited) purchase has no receipt.
		must(t, db.WithContext(ctx).Create(&Purchase{ID: "pending-1", OrgID: "sme", Credits: 5, Amount: 5_000_000, CADCents: 500, Method: "stripe",
			Status: "pending", CreatedAt: t0, UpdatedAt: t0}).Error)
		a.expect(smeDev, "GET", "/api/v1/billing/orgs/sme/purchases/pending-1/receipt.pdf", nil, 404, "purchase_not_found")
	})
}

func TestDocumentsMoneyFormatting(t *testing.T) {
	for _, c := range []struct {
		micro    int64
		lang     string
		want     string
		cents    int64
		wantCAD  string
		millis   int64
		wantHour string
	}{
		{1_234_500_000, "en", "1,234.50", 123_456, "CA$1,234.56", 5_400_000, "1.50"},
		{1_234_500_000, "fr", "1\u00a0234,50", 123_456, "1\u00a0234,56\u00a0$\u00a0CA", 5_400_000, "1,50"},
		{-1, "en", "-0.000001", -5, "-CA$0.05", 17_999, "0.00"},
		{0, "fr", "0,00", 0, "0,00\u00a0$\u00a0CA", 18_000, "0,01"},
	} {
		if got := formatMicroLang(c.micro, c.lang); got != c.want {
			t.Errorf("formatMicroLang(%d, %s) = %q, want %q", c.micro, c.lang, got, c.want)
		}
		if got := formatCents(c.cents, c.lang); got != c.wantCAD {
			t.Errorf("formatCents(%d, %s) = %q, want %q", c.cents, c.lang, got, c.wantCAD)
		}
		if got := formatHours(c.millis, c.lang); got != c.wantHour {
			t.Errorf("formatHours(%d, %s) = %q, want %q", c.millis, c.lang, got, c.wantHour)
		}
	}
	if DocLanguage("fr-CA") != "fr" || DocLanguage("de") != "en" || DocLanguage("") != "en" {
		t.Error("DocLanguage")
	}
}

// TestDocumentsTax: with a programme tax (13 % GST/HST, registration number), a purchase records the tax
// included in its price when it is made; its receipt and the month's statement show the amount before tax,
// the tax by name and rate, and the total paid, in English and French; the purchases list and the settings say
// the same. A purchase made before the tax was set keeps saying that no tax applies to it.
func TestDocumentsTax(t *testing.T) {
	eachDB(t, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		tax := Tax{RateBP: 1300, Name: "GST/HST", Registration: "123456789RT0001"}
		f := newFx(t, db, nil, func(d *Deps) { d.Tax = tax })
		a := newAPI(t, f)
		f.org("sme", "sme", true)
		must(t, f.s.ProjectOrg(ctx, "sme", "Société Générale d'Éléphants", "sme"))
		// One made before the tax: recorded without it.
		must(t, db.Create(&Purchase{ID: "pur-before", OrgID: "sme", Credits: 10, Amount: 10_000_000, CADCents: 1000, Method: "offline",
			Status: "paid", CreatedAt: t0.AddDate(0, 0, -1), UpdatedAt: t0.AddDate(0, 0, -1)}).Error)
		p, err := f.s.RecordOfflinePayment(ctx, OfflinePaymentInput{OrganizationID: "sme", Credits: 1234, Reference: "PO-9", ActorUserID: "staff"})
		must(t, err)
		// 123,400 cents paid, tax included: 123,400 × 1,300 / 11,300 = 14,196.46… → 14,196; before tax 109,204.
		if p.CADCents != 123_400 || p.TaxCents != 14_196 || p.TaxRateBP != 1300 || p.TaxName != "GST/HST" {
			t.Fatalf("purchase: %+v", p)
		}

		_, b := a.do(smeDev, "GET", "/api/v1/billing/orgs/sme/purchases/"+p.ID+"/receipt.pdf", nil, "Accept-Language", "en")
		text := pdfText(t, b)
		wantText(t, text, "Amount before tax", "CA$1,092.04", "GST/HST (13%)", "CA$141.96", "Total paid (after tax)", "CA$1,234.00",
			"Tax registration number (GST/HST)", "123456789RT0001", "Prices include GST/HST (13%).", "half a cent up")
		if strings.Contains(text, "No tax applies") {
			t.Errorf("a taxed receipt says no tax applies:\n%s", text)
		}
		_, b = a.do(smeDev, "GET", "/api/v1/billing/orgs/sme/purchases/"+p.ID+"/receipt.pdf", nil, "Accept-Language", "fr")
		wantText(t, pdfText(t, b), "Montant avant taxes", "1\u00a0092,04\u00a0$\u00a0CA", "GST/HST (13\u00a0%)", "141,96\u00a0$\u00a0CA",
			"1\u00a0234,00\u00a0$\u00a0CA", "Numéro d'inscription aux taxes (GST/HST)", "Prix taxes comprises")

		// The purchase made before the tax says none applies, in both languages.
		_, b = a.do(smeDev, "GET", "/api/v1/billing/orgs/sme/purchases/pur-before/receipt.pdf", nil, "Accept-Language", "en")
		text = pdfText(t, b)
		wantText(t, text, "No tax applies to this purchase.", "CA$10.00")
		if strings.Contains(text, "GST/HST") || strings.Contains(text, "123456789RT0001") {
			t.Errorf("an untaxed receipt names the tax:\n%s", text)
		}
		_, b = a.do(smeDev, "GET", "/api/v1/billing/orgs/sme/purchases/pur-before/receipt.pdf", nil, "Accept-Language", "fr")
		wantText(t, pdfText(t, b), "Aucune taxe ne s'applique à cet achat.")

		// The statement of March 2026 sums the month's purchases before tax, their tax and the total.
		_, b = a.do(smeAdmin, "GET", "/api/v1/billing/orgs/sme/statements/2026-03.pdf", nil, "Accept-Language", "en")
		text = pdfText(t, b)
		wantText(t, text, "Purchases credited this month", p.ID[:12], "CA$1,092.04", "CA$141.96", "Tax included: GST/HST (13%)",
			"CA$1,234.00", "Prices include GST/HST (13%).", "Tax registration number (GST/HST): 123456789RT0001")
		if strings.Contains(text, "No tax applies") {
			t.Errorf("a statement with taxed purchases says no tax applies:\n%s", text)
		}
		_, b = a.do(smeAdmin, "GET", "/api/v1/billing/orgs/sme/statements/2026-03.pdf", nil, "Accept-Language", "fr")
		wantText(t, pdfText(t, b), "Taxes comprises\u00a0: GST/HST (13\u00a0%)", "141,96\u00a0$\u00a0CA", "Prix taxes comprises")

		// The list carries the same integers; the settings say what applies.
		var ps struct{ Items []PurchaseRow }
		must(t, json.Unmarshal(a.expect(smeDev, "GET", "/api/v1/billing/orgs/sme/purchases", nil, 200, ""), &ps))
		if len(ps.Items) != 2 || ps.Items[0].ID != p.ID || ps.Items[0].CADCents != 109_204 || ps.Items[0].TaxCents != 14_196 ||
			ps.Items[0].TotalCADCents != 123_400 || ps.Items[0].TaxName != "GST/HST" || ps.Items[0].TaxRateBP != 1300 ||
			ps.Items[1].TaxCents != 0 || ps.Items[1].TotalCADCents != 1000 || ps.Items[1].CADCents != 1000 {
			t.Errorf("purchases: %+v", ps.Items)
		}
		var st MoneySettings
		must(t, json.Unmarshal(a.expect(nobody, "GET", "/api/v1/billing/settings", nil, 200, ""), &st))
		if st.Tax != (TaxSettings{Applies: true, RateBP: 1300, Name: "GST/HST", Registration: "123456789RT0001", IncludedInPrice: true}) {
			t.Errorf("settings: %+v", st.Tax)
		}
	})
}

func TestIncludedTax(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ total, bp, want int64 }{
		{11_300, 1300, 1300},    // exactly 13 % on 100.00
		{123_400, 1300, 14_196}, // 14,196.46 → down
		{100, 1300, 12},         // 11.504 → up
		{1, 10_000, 1},          // 0.5 → half up
		{3, 10_000, 2},          // 1.5 → half up
		{2, 10_000, 1},          // exactly 1
		{10_500, 500, 500},      // 5 % GST on 100.00
		{0, 1300, 0},
		{1000, 0, 0},
		{9_000_000_000_000_000, 10_000, 4_500_000_000_000_000}, // no overflow near the int64 limit
	} {
		if got := includedTax(c.total, c.bp); got != c.want {
			t.Errorf("includedTax(%d, %d) = %d, want %d", c.total, c.bp, got, c.want)
		}
	}
	for _, c := range []struct {
		bp     int64
		en, fr string
	}{{1300, "13%", "13\u00a0%"}, {1475, "14.75%", "14,75\u00a0%"}, {1050, "10.5%", "10,5\u00a0%"}, {5, "0.05%", "0,05\u00a0%"}, {10_000, "100%", "100\u00a0%"}} {
		if got := formatRate(c.bp, "en"); got != c.en {
			t.Errorf("formatRate(%d, en) = %q, want %q", c.bp, got, c.en)
		}
		if got := formatRate(c.bp, "fr"); got != c.fr {
			t.Errorf("formatRate(%d, fr) = %q, want %q", c.bp, got, c.fr)
		}
	}
	for _, bad := range []Tax{{RateBP: -1, Name: "x"}, {RateBP: 10_001, Name: "x"}, {RateBP: 1300}, {RateBP: 1300, Name: "   "}} {
		if bad.Validate() == nil {
			t.Errorf("%+v validated", bad)
		}
	}
	if (Tax{}).Validate() != nil || (Tax{RateBP: 500, Name: "GST", Registration: "123456789RT0001"}).Validate() != nil {
		t.Error("a good setting refused")
	}
}
