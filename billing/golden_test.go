package billing

import (
	"bytes"
	"encoding/json"
	"regexp"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/webtest"

	"github.com/tamarack-ai/tamarack/platform/dbtest"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
)

var randomIDs = regexp.MustCompile(`(grt|pur|ub|aud)_[0-9a-f]{20}`)

// golden compares got (random IDs masked) with testdata/name.golden.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	got = randomIDs.ReplaceAll(got, []byte("${1}_X"))
	if json.Valid(got) {
		var buf bytes.Buffer
		must(t, json.Indent(&buf, got, "", "  "))
		got = append(buf.Bytes(), '\n')
	}
	webtest.Golden(t, name, got)
}

// TestGoldenShapes pins the wallet JSON and the statement CSV.
func TestGoldenShapes(t *testing.T) {
	f := newFx(t, dbtest.Open(t, sqldb.SQLite, sets...), nil)
	a := newAPI(t, f)
	f.org("sme", "sme", true)
	a.expect(staff, "POST", "/api/v1/billing/grants", map[string]any{"organization_id": "sme", "amount_micro": 5_000_000,
		"expires_at": t0.Add(30 * 24 * time.Hour), "cofund_percent": 50, "cap_micro": 1_000_000, "note": "pilot"}, 201, "")
	a.expect(staff, "POST", "/api/v1/billing/offline-payments", map[string]any{"organization_id": "sme", "credits": 3, "reference": "PO-1"}, 201, "")
	golden(t, "wallet", a.expect(smeAdmin, "GET", "/api/v1/billing/wallet", nil, 200, ""))
	_, csv := a.do(smeAdmin, "GET", "/api/v1/billing/statements/2026-03", nil, "Accept", "text/csv")
	golden(t, "statement.csv", csv)
}
