package testbed

import (
	"io"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/web"
	"github.com/tamarack-ai/tamarack/platform/webtest"
)

var idPattern = regexp.MustCompile(`\b(sb|pool|node|dev|res|aud)-[0-9a-f]{20}\b`)

// golden compares a response body, with random IDs replaced by stable placeholders, to testdata/name.golden.
func golden(t *testing.T, name string, body []byte) {
	t.Helper()
	seen := map[string]string{}
	count := map[string]int{}
	norm := idPattern.ReplaceAllStringFunc(string(body), func(id string) string {
		if v, ok := seen[id]; ok {
			return v
		}
		kind := id[:strings.IndexByte(id, '-')]
		count[kind]++
		v := kind + "-" + strings.Repeat("0", 19) + string(rune('0'+count[kind]%10))
		seen[id] = v
		return v
	})
	webtest.Golden(t, name, webtest.IndentJSON(t, []byte(norm)))
}

// TestResponseShapes pins the JSON of the main testbed responses (the web UI and the CLI read them).
func TestResponseShapes(t *testing.T) {
	db := dbtestOpenSQLite(t)
	f := newFixture(t, db, 1, 2, Options{})
	app, sign := newApp(t, f.svc)
	get := func(path string, c *web.Principal) []byte {
		t.Helper()
		req := httptest.NewRequest("GET", "/api/v1/testbed"+path, nil)
		if c != nil {
			req.Header.Set("Authorization", "Bearer "+sign.token(t, *c))
		}
		res, err := app.Test(req, 10_000)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", path, res.StatusCode, b)
		}
		return b
	}
	sb := f.launch(t, sme(), 1, 60)
	f.clk.Advance(90 * time.Second)
	me := sme()
	golden(t, "sandbox_running", get("/sandboxes/"+sb.ID, &me))
	golden(t, "listings", get("/listings", &me))
	golden(t, "gpu_samples_declared", get("/sandboxes/"+sb.ID+"/gpu-samples", &me))
	golden(t, "pool_detail", get("/pools/"+f.pool.ID, nil))
	golden(t, "pools", get("/pools", nil))
	golden(t, "templates", get("/templates", nil))
	golden(t, "availability", get("/availability?from=2026-11-22T09:00:00Z&to=2026-11-22T11:00:00Z&step=1h", nil))
}
