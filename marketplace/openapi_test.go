package marketplace

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/tamarack-ai/tamarack/platform/openapi"
)

// TestRequiredFieldsAreRequired: for every POST and PUT operation with a JSON body, an empty object answers 422
// with code "required" for the fields the schema marks required (and only for those, or for fields documented
// as required in some cases), so the document and the validation agree; the marketplace's schemas lint clean.
func TestRequiredFieldsAreRequired(t *testing.T) {
	t.Parallel()
	e := newSQLiteEnv(t, Config{})
	doc := openapi.New("t", "v")
	e.svc.OpenAPI(doc)
	if l := openapi.Lint(doc); len(l) > 0 {
		t.Errorf("lint:\n%s", strings.Join(l, "\n"))
	}
	checked := 0
	for _, op := range doc.Ops() {
		if op.Request == nil || op.OptionalBody || (op.Method != "POST" && op.Method != "PUT") {
			continue
		}
		path := regexp.MustCompile(`:[a-z_]+`).ReplaceAllString(op.Path, "none")
		who := smeMember
		switch {
		case strings.Contains(op.Auth, "staff"):
			who = staff
		case strings.Contains(op.Auth, "vendor"):
			who = vendorAdmin
		}
		r := e.do(who, op.Method, path, map[string]any{})
		var body struct {
			Fields []struct{ Field, Code string }
		}
		_ = json.Unmarshal(r.Body, &body)
		var got []string
		for _, fe := range body.Fields {
			if fe.Code == "required" {
				got = append(got, fe.Field)
			}
		}
		if r.Status != 422 {
			t.Errorf("%s %s with {}: %d %s, want 422", op.Method, op.Path, r.Status, r.Body)
		} else if m := openapi.RequiredMismatch(op.Request, got); m != "" {
			t.Errorf("%s %s: %s", op.Method, op.Path, m)
		}
		checked++
	}
	if checked < 5 {
		t.Fatalf("only %d operations checked", checked)
	}
}
