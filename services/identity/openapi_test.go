package identity

import (
	"regexp"
	"strings"
	"testing"

	"github.com/tamarack-ai/tamarack/platform/openapi"
)

// TestRequiredFieldsAreRequired: for every POST and PUT operation with a JSON body, an empty object answers 422
// with code "required" for the fields the schema marks required (and only for those, or for fields documented
// as required in some cases), so the document and the validation agree; identity's schemas lint clean.
func TestRequiredFieldsAreRequired(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *tenv) {
		d := openapi.New("test", "dev")
		e.svc.OpenAPI(d)
		if l := openapi.Lint(d); len(l) > 0 {
			t.Errorf("lint:\n%s", strings.Join(l, "\n"))
		}
		a := e.signup("required@example.com", "Required Org", "vendor")
		checked := 0
		for _, op := range d.Ops() {
			if op.Request == nil || op.OptionalBody || (op.Method != "POST" && op.Method != "PUT") {
				continue
			}
			path := regexp.MustCompile(`:[a-z_]+`).ReplaceAllStringFunc(op.Path, func(p string) string {
				if p == ":org_id" {
					return a.orgID
				}
				return "none"
			})
			r := e.do(op.Method, path, a.access, `{}`)
			var got []string
			fields, _ := r.body["fields"].([]any)
			for _, x := range fields {
				if fe := x.(map[string]any); fe["code"] == "required" {
					got = append(got, fe["field"].(string))
				}
			}
			if r.status != 422 {
				t.Errorf("%s %s with {}: %d %s, want 422", op.Method, op.Path, r.status, r.raw)
			} else if m := openapi.RequiredMismatch(op.Request, got); m != "" {
				t.Errorf("%s %s: %s", op.Method, op.Path, m)
			}
			checked++
		}
		if checked < 5 {
			t.Fatalf("only %d operations checked", checked)
		}
	})
}
