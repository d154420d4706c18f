package billing

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/dbtest"
	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/money"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/platform/web"
	"github.com/tamarack-ai/tamarack/services/events"
)

// activityFx is an SME that bought 100 credits, holds a 10-credit grant co-funded at 50% up to 2 credits, and
// ran two sandboxes of the vendor "ven": sb-a (2 GPUs at 3 credits/GPU-hour) across midnight UTC, sb-b (1 GPU)
// once. The last usage interval is charged at a clock one day later.
func activityFx(t *testing.T, db *gorm.DB) (*fx, *api) {
	f := newFx(t, db, nil)
	a := newAPI(t, f)
	ctx := context.Background()
	f.org("sme", "sme", true)
	f.org("ven", "vendor", true)
	f.buy("sme", 100)
	a.expect(staff, "POST", "/api/v1/billing/grants", map[string]any{"organization_id": "sme", "amount_micro": 10_000_000,
		"expires_at": t0.Add(60 * 24 * time.Hour), "cofund_percent": 50, "cap_micro": 2_000_000, "note": "pilot"}, 201, "")
	for _, sb := range []struct {
		id   string
		gpus int
	}{{"sb-a", 2}, {"sb-b", 1}} {
		_, err := f.hold(sb.id, "sme", "ven", 3_000_000, sb.gpus, 4*3600)
		must(t, err)
	}
	// sb-a: 20-minute intervals from 23:00 on March 10 to 00:40 on March 11 (UTC): 3 end on the 10th, 2 on the 11th.
	start := time.Date(2026, 3, 10, 23, 0, 0, 0, time.UTC)
	var evs []eventbus.Event[events.SandboxUsageV1]
	for i := range 5 {
		evs = append(evs, usageEv("sb-a", "sme", "ven", uint64(i+1), start.Add(time.Duration(i)*20*time.Minute), 20*60_000, 2))
	}
	evs = append(evs, usageEv("sb-b", "sme", "ven", 1, t0, 7*60_000+1, 1))
	must(t, f.s.ChargeUsage(ctx, evs[:4]))
	f.clk.Advance(24 * time.Hour)
	must(t, f.s.ChargeUsage(ctx, evs[4:]))
	return f, a
}

func activityOf(t *testing.T, a *api, w who, query string) []ActivityLine {
	t.Helper()
	var l web.List[ActivityLine]
	must(t, json.Unmarshal(a.expect(w, "GET", "/api/v1/billing/orgs/"+w.org+"/transactions"+query, nil, 200, ""), &l))
	return l.Items
}

func TestActivityAddsUpToTheLedger(t *testing.T) {
	eachDB(t, func(t *testing.T, db *gorm.DB) {
		f, a := activityFx(t, db)
		lines := activityOf(t, a, smeAdmin, "?limit=200")
		var sum, usageNet, gross, cofunded int64
		days := map[string]int{}
		kinds := map[string]int{}
		for _, l := range lines {
			sum += l.AmountMicro
			kinds[l.Kind]++
			if l.Kind == ActivityUsage {
				usageNet += l.NetMicro
				gross += l.GrossMicro
				cofunded += l.CofundedMicro
				days[l.SandboxID+"/"+l.Date]++
				if l.AmountMicro != -l.NetMicro || l.NetMicro != l.GrossMicro-l.CofundedMicro-l.ShortfallMicro {
					t.Errorf("line %s: amount %d, net %d, gross %d, cofunded %d", l.ID, l.AmountMicro, l.NetMicro, l.GrossMicro, l.CofundedMicro)
				}
			}
		}
		var wallet int64
		var grants []Grant
		must(t, db.Where("org_id = ?", "sme").Find(&grants).Error)
		for _, g := range grants {
			wallet += f.balance(grantAcct(g.ID))
		}
		wallet += f.balance(walletAcct("sme"))
		if sum != wallet {
			t.Errorf("lines add up to %d µcr, the ledger says %d", sum, wallet)
		}
		// One line per sandbox per UTC day: sb-a on the 10th and the 11th, sb-b on the 10th.
		want := map[string]int{"sb-a/2026-03-10": 1, "sb-a/2026-03-11": 1, "sb-b/2026-03-10": 1}
		if fmt.Sprint(days) != fmt.Sprint(want) {
			t.Errorf("usage lines %v, want %v", days, want)
		}
		if kinds[ActivityPurchase] != 1 || kinds[ActivityGrant] != 1 {
			t.Errorf("kinds %v: want one purchase and one grant line", kinds)
		}
		// sb-a: 100 minutes × 2 GPUs × 3 cr/h = 10 credits; sb-b: floor(3 cr × 420,001 ms / 1 h).
		wantGross := int64(10_000_000) + int64(3_000_000)*420_001/3_600_000
		if gross != wantGross || cofunded != 2_000_000 {
			t.Errorf("gross %d (want %d), cofunded %d (want the 2-credit cap)", gross, wantGross, cofunded)
		}

		// The vendor's lines add up to its payable account too.
		vendor := activityOf(t, a, vendorAd, "")
		var vsum int64
		for _, l := range vendor {
			vsum += l.AmountMicro
			if l.Kind != ActivityEarning {
				t.Errorf("vendor line %+v: want earnings only", l)
			}
		}
		if vsum == 0 || vsum != f.balance(vendorAcct("ven")) {
			t.Errorf("vendor lines add up to %d, payable %d", vsum, f.balance(vendorAcct("ven")))
		}
		f.verify()
	})
}

func TestActivityEntriesFiltersAndPages(t *testing.T) {
	eachDB(t, func(t *testing.T, db *gorm.DB) {
		_, a := activityFx(t, db)
		all := activityOf(t, a, smeAdmin, "?sort=date")
		for i := 1; i < len(all); i++ {
			if all[i].At.Before(all[i-1].At) {
				t.Fatalf("sort=date: line %d is older than line %d", i, i-1)
			}
		}
		// Every line's entries add up to it.
		for _, l := range all {
			var es web.List[ActivityEntry]
			must(t, json.Unmarshal(a.expect(smeAdmin, "GET", "/api/v1/billing/orgs/sme/transactions/"+l.ID+"/entries", nil, 200, ""), &es))
			var sum int64
			for _, e := range es.Items {
				sum += e.AmountMicro
			}
			if sum != l.AmountMicro || len(es.Items) != l.Entries {
				t.Errorf("line %s (%s): entries %d add up to %d, line says %d entries, %d", l.ID, l.Kind, len(es.Items), sum, l.Entries, l.AmountMicro)
			}
		}
		// Filters.
		for _, c := range []struct {
			query string
			want  func(ActivityLine) bool
		}{
			{"?kind=usage", func(l ActivityLine) bool { return l.Kind == ActivityUsage }},
			{"?kind=purchase,grant", func(l ActivityLine) bool { return l.Kind == ActivityPurchase || l.Kind == ActivityGrant }},
			{"?sandbox_id=sb-a", func(l ActivityLine) bool { return l.SandboxID == "sb-a" }},
			{"?listing_id=lst-1", func(l ActivityLine) bool { return l.ListingID == "lst-1" }},
			{"?from=2026-03-11&to=2026-03-11", func(l ActivityLine) bool { return l.Date == "2026-03-11" }},
			{"?to=2026-03-10", func(l ActivityLine) bool { return l.Date <= "2026-03-10" }},
		} {
			got := activityOf(t, a, smeAdmin, c.query)
			n := 0
			for _, l := range all {
				if c.want(l) {
					n++
				}
			}
			if len(got) != n || n == 0 {
				t.Errorf("%s: %d lines, want %d (of %d)", c.query, len(got), n, len(all))
			}
			for _, l := range got {
				if !c.want(l) {
					t.Errorf("%s kept %+v", c.query, l)
				}
			}
		}
		// Paging two at a time, newest first, gives every line once.
		var paged []string
		cursor := ""
		for range 10 {
			var l web.List[ActivityLine]
			must(t, json.Unmarshal(a.expect(smeAdmin, "GET", "/api/v1/billing/orgs/sme/transactions?limit=2&cursor="+cursor, nil, 200, ""), &l))
			for _, x := range l.Items {
				paged = append(paged, x.ID)
			}
			if cursor = l.NextCursor; cursor == "" {
				break
			}
		}
		if len(paged) != len(all) || paged[0] != all[len(all)-1].ID {
			t.Errorf("paged %v, want the %d lines newest first", paged, len(all))
		}
		// Bad requests.
		for _, c := range []struct {
			w      who
			path   string
			status int
			code   string
		}{
			{smeAdmin, "?kind=fees", 422, "validation_failed"},
			{smeAdmin, "?from=10-03-2026", 422, "validation_failed"},
			{smeAdmin, "?from=2026-03-11&to=2026-03-10", 422, "validation_failed"},
			{smeAdmin, "?sort=amount", 422, "validation_failed"},
			{smeAdmin, "?format=pdf", 422, "validation_failed"},
			{smeAdmin, "?limit=0", 422, "validation_failed"},
			{smeAdmin, "?cursor=nope!", 400, "invalid_cursor"},
			{partner, "", 403, "forbidden"},
			{nobody, "", 401, "unauthorized"},
		} {
			a.expect(c.w, "GET", "/api/v1/billing/orgs/sme/transactions"+c.path, nil, c.status, c.code)
		}
		a.expect(smeAdmin, "GET", "/api/v1/billing/orgs/sme/transactions/u.2026-03-10.nope/entries", nil, 404, "transaction_not_found")
		a.expect(smeAdmin, "GET", "/api/v1/billing/orgs/sme/transactions/t.!!/entries", nil, 404, "transaction_not_found")
		a.expect(partner, "GET", "/api/v1/billing/orgs/sme/transactions/"+all[0].ID+"/entries", nil, 403, "forbidden")
		// Staff read any organisation.
		if got := activityOf(t, a, who{user: staff.user, org: "sme", kind: "programme", role: "owner", staff: true}, ""); len(got) != len(all) {
			t.Errorf("staff see %d lines, want %d", len(got), len(all))
		}
	})
}

// lineIDs masks transfer line IDs, which encode random purchase and grant IDs.
var lineIDs = regexp.MustCompile(`\bt\.[A-Za-z0-9_-]+`)

func TestActivityCSVAndGolden(t *testing.T) {
	f, a := activityFx(t, dbtest.Open(t, sqldb.SQLite, sets...))
	golden := func(t *testing.T, name string, got []byte) { golden(t, name, lineIDs.ReplaceAll(got, []byte("t.X"))) }
	golden(t, "transactions", a.expect(smeAdmin, "GET", "/api/v1/billing/orgs/sme/transactions?sort=date", nil, 200, ""))
	usage := activityOf(t, a, smeAdmin, "?kind=usage&sort=date")
	golden(t, "transaction_entries", a.expect(smeAdmin, "GET", "/api/v1/billing/orgs/sme/transactions/"+usage[0].ID+"/entries", nil, 200, ""))
	golden(t, "settings", a.expect(nobody, "GET", "/api/v1/billing/settings", nil, 200, ""))

	req, _ := http.NewRequest("GET", "/api/v1/billing/orgs/sme/transactions?format=csv&sort=date&from=2026-03-01&to=2026-03-31", nil)
	req.Header.Set("Authorization", "Bearer "+a.token(smeAdmin))
	res, err := a.app.Test(req, 30_000)
	must(t, err)
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/csv") ||
		res.Header.Get("Content-Disposition") != `attachment; filename="transactions-sme-2026-03-01-to-2026-03-31.csv"` {
		t.Fatalf("CSV: %d %q %q", res.StatusCode, res.Header.Get("Content-Type"), res.Header.Get("Content-Disposition"))
	}
	golden(t, "transactions.csv", body)
	rows, err := csv.NewReader(strings.NewReader(string(body))).ReadAll()
	must(t, err)
	if len(rows) != 6 || rows[0][0] != "date" { // header, purchase, grant, three usage lines
		t.Fatalf("CSV rows %d: %q", len(rows), rows)
	}
	// The decimal and the integer columns agree exactly.
	var sum money.Micro
	for _, r := range rows[1:] {
		credits, err := money.Parse(r[14])
		must(t, err)
		if fmt.Sprint(int64(credits)) != r[15] {
			t.Errorf("CSV amount %q ≠ %q µcr", r[14], r[15])
		}
		sum += credits
	}
	if sum != money.Micro(f.balance(walletAcct("sme"))+sumGrants(t, f)) {
		t.Errorf("CSV adds up to %s", sum)
	}
	// Accept: text/csv works too.
	if _, out := a.do(smeAdmin, "GET", "/api/v1/billing/orgs/sme/transactions", nil, "Accept", "text/csv"); !strings.HasPrefix(string(out), "date,kind,") {
		t.Errorf("Accept: text/csv answered %q", out)
	}
}

func sumGrants(t *testing.T, f *fx) int64 {
	var grants []Grant
	must(t, f.db.Where("org_id = ?", "sme").Find(&grants).Error)
	var sum int64
	for _, g := range grants {
		sum += f.balance(grantAcct(g.ID))
	}
	return sum
}

func TestSettingsCardPaymentsAndCreditValue(t *testing.T) {
	f := newFx(t, dbtest.Open(t, sqldb.SQLite, sets...), nil, func(d *Deps) { d.CreditValue = money.CreditValue{Currency: "EUR", Micro: 1_250_000} })
	got := f.s.Settings()
	if got.CardPayments || got.CreditValue != (CreditValueJSON{Currency: "EUR", Amount: "1.25", Micro: 1_250_000}) || got.HowToGetCredits == "" {
		t.Errorf("settings %+v", got)
	}
	// Cards charge whole Canadian cents: another currency with a Stripe key is refused at start.
	d := Deps{DB: f.db, Bus: f.bus, Clock: f.clk, Mailer: f.mail, PublicURL: "http://x", Stripe: StripeConfig{Key: "sk_test", WebhookSecret: "whsec"},
		CreditValue: money.CreditValue{Currency: "EUR", Micro: 1_000_000}}
	if _, err := New(d); err == nil || !strings.Contains(err.Error(), "whole Canadian cents") {
		t.Errorf("New with EUR and Stripe: %v", err)
	}
	d.CreditValue = money.CreditValue{Currency: "CAD", Micro: 1_250_000}
	s, err := New(d)
	must(t, err)
	if s.cfg.CADCentsPerCredit != 125 {
		t.Errorf("1.25 CAD a credit: %d cents at checkout", s.cfg.CADCentsPerCredit)
	}
}
