package testbed

import (
	"encoding/json"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/tamarack-ai/tamarack/platform/openapi"
)

// TestRequiredFieldsAreRequired: for every POST and PUT operation with a JSON body, an empty object answers 422
// with code "required" for exactly the fields the schema marks required, so the document and the validation
// say the same thing; and the testbed's schemas lint clean (client-ready names, required fields marked).
func TestRequiredFieldsAreRequired(t *testing.T) {
	const base = "/api/v1/testbed"
	db := dbtestOpenSQLite(t)
	f := newFixture(t, db, 1, 1, Options{})
	app, sign := newApp(t, f.svc)
	doc := openapi.New("t", "v")
	f.svc.OpenAPI(doc)
	if l := openapi.Lint(doc); len(l) > 0 {
		t.Errorf("lint:\n%s", strings.Join(l, "\n"))
	}
	var nodes []Node
	if err := db.Find(&nodes).Error; err != nil || len(nodes) == 0 {
		t.Fatal(nodes, err)
	}
	ids := map[string]string{"node_id": nodes[0].ID}
	checked := 0
	for _, op := range doc.Ops() {
		if op.Request == nil || op.OptionalBody || (op.Method != "POST" && op.Method != "PUT") {
			continue
		}
		path := regexp.MustCompile(`:([a-z_]+)`).ReplaceAllStringFunc(op.Path, func(p string) string {
			if strings.HasPrefix(op.Path, base+"/pools") && p == ":id" {
				return f.pool.ID
			}
			if id, ok := ids[p[1:]]; ok {
				return id
			}
			return "sb-none"
		})
		who := sme()
		switch {
		case op.Path == base+"/pools":
			who = vendor() // staff would also have to name the vendor organisation
		case strings.HasPrefix(op.Path, base+"/pools"):
			who = hostStaff()
		}
		req := httptest.NewRequest(op.Method, path, strings.NewReader(`{}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+sign.token(t, who))
		res, err := app.Test(req, 10_000)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Fields []struct{ Field, Code string }
		}
		_ = json.NewDecoder(res.Body).Decode(&body)
		res.Body.Close()
		var got []string
		for _, fe := range body.Fields {
			if fe.Code == "required" {
				got = append(got, fe.Field)
			}
		}
		if res.StatusCode != 422 {
			t.Errorf("%s %s with {}: %d, want 422", op.Method, op.Path, res.StatusCode)
		} else if m := openapi.RequiredMismatch(op.Request, got); m != "" {
			t.Errorf("%s %s: %s", op.Method, op.Path, m)
		}
		checked++
	}
	if checked < 5 {
		t.Fatalf("only %d operations checked", checked)
	}
}
