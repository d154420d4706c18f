package billing

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/dbtest"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

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
	path := filepath.Join("testdata", name+".golden")
	if *update {
		must(t, os.WriteFile(path, got, 0o644))
		return
	}
	want, err := os.ReadFile(path)
	must(t, err)
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from %s (run with -update to accept):\n%s", name, path, got)
	}
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
