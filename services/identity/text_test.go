package identity

import (
	"fmt"
	"testing"
)

// Names with control characters ("a\u0000b") are field errors and nothing is stored; a password is a secret,
// never judged as text, and a verification note may span lines.
func TestControlCharactersInNamesAreRefused(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *tenv) {
		count := func(table string) (n int64) {
			if err := e.db.Table(table).Count(&n).Error; err != nil {
				t.Fatal(err)
			}
			return n
		}
		users, orgs := count("identity_users"), count("identity_organizations")
		r := e.do("POST", api+"/signup", "", `{"email":"nul@example.com","password":"`+testPassword+`","name":"a\u0000b",
			"organization":{"name":"a\u0000b","kind":"vendor"}}`)
		want(t, r, 422, "validation_failed")
		if got := fieldCodes(r); got != "[name:control_characters organization.name:control_characters]" {
			t.Fatalf("fields %s: %s", got, r.raw)
		}
		if count("identity_users") != users || count("identity_organizations") != orgs {
			t.Fatal("a refused signup stored something")
		}

		a := e.signup("clean@example.com", "Clean Co", "vendor")
		r = e.do("POST", api+"/tokens", a.access, `{"name":"ci\u001b[2J","scopes":["read"],"expires_in_days":30}`)
		want(t, r, 422, "validation_failed")
		if got := fieldCodes(r); got != "[name:control_characters]" {
			t.Fatalf("token name: fields %s", got)
		}
		r = e.do("POST", api+"/organizations/"+a.orgID+"/verify", e.staff().access, `{"verified":true,"note":"Checked:\n\tregistry entry"}`)
		want(t, r, 200, "")
	})
}

// fieldCodes lists a validation problem's fields as field:code, in order.
func fieldCodes(r resp) string {
	var out []string
	fs, _ := r.body["fields"].([]any)
	for _, f := range fs {
		m := f.(map[string]any)
		out = append(out, fmt.Sprint(m["field"], ":", m["code"]))
	}
	return fmt.Sprint(out)
}
