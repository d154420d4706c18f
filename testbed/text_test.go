package testbed

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
)

// A pool's name and region with control characters ("a\u0000b") are field errors, on create and on edit, and
// nothing is stored.
func TestControlCharactersInPoolsAreRefused(t *testing.T) {
	eachFixture(t, 1, 8, Options{}, func(t *testing.T, f *fixture) {
		app, sign := newApp(t, f.svc)
		vend := sign.token(t, vendor())
		do := func(method, path, body string) (int, string) {
			t.Helper()
			req := httptest.NewRequest(method, "/api/v1/testbed"+path, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+vend)
			res, err := app.Test(req, 10_000)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var p struct {
				Code   string
				Fields []struct{ Field, Code string }
			}
			_ = json.NewDecoder(res.Body).Decode(&p)
			f.svc.Wait()
			var fields []string
			for _, x := range p.Fields {
				fields = append(fields, x.Field+":"+x.Code)
			}
			return res.StatusCode, fmt.Sprintf("%s %v", p.Code, fields)
		}
		var before []Pool
		if err := f.db.Order("id").Find(&before).Error; err != nil {
			t.Fatal(err)
		}
		const want = "validation_failed [name:control_characters region:control_characters]"
		if st, got := do("POST", "/pools", `{"name":"a\u0000b","region":"ca\u0000montreal","backend":"slurm"}`); st != 422 || got != want {
			t.Fatalf("create: %d %s", st, got)
		}
		if st, got := do("PATCH", "/pools/"+f.pool.ID, `{"name":"a\u0000b","region":"ca\u0000montreal"}`); st != 422 || got != want {
			t.Fatalf("edit: %d %s", st, got)
		}
		var after []Pool
		if err := f.db.Order("id").Find(&after).Error; err != nil {
			t.Fatal(err)
		}
		if len(after) != len(before) || after[0].Name != before[0].Name || after[0].Region != before[0].Region {
			t.Fatalf("pools changed: %+v, were %+v", after, before)
		}
	})
}
