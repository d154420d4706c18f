package identity

import (
	"encoding/json"
	"sort"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/webtest"
)

// shapeOf replaces every value by its JSON type, keeping keys and nesting: the shapes the web UI codes
// against, without the values that change on each run.
func shapeOf(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, val := range x {
			out[k] = shapeOf(val)
		}
		return out
	case []any:
		if len(x) == 0 {
			return []any{}
		}
		return []any{shapeOf(x[0])}
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "boolean"
	case nil:
		return "null"
	}
	return "?"
}

func TestResponseShapes(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *tenv) {
		st := e.staff()
		su := e.do("POST", api+"/signup", "", map[string]any{"email": "shape@example.com", "password": testPassword, "name": "Shape",
			"organization": map[string]any{"name": "Shape Co", "kind": "vendor"}})
		a := account{access: su.str("access_token"), orgID: su.body["organization"].(map[string]any)["id"].(string)}
		tok := e.do("POST", api+"/tokens", a.access, map[string]any{"name": "ci", "scopes": []string{"read"},
			"expires_at": e.clk.Now().Add(time.Hour).Format(time.RFC3339)})
		e.do("GET", api+"/me", tok.str("token"), nil) // sets last_used_at
		inv := e.do("POST", api+"/organizations/"+a.orgID+"/members", a.access, map[string]any{"email": "m@example.com", "role": "member"})
		acc := e.do("POST", api+"/invitations/"+e.inviteToken()+"/accept", "", map[string]any{"name": "M", "password": testPassword})
		shapes := map[string]resp{
			"signup":              su,
			"login":               e.do("POST", api+"/login", "", map[string]any{"email": "shape@example.com", "password": testPassword}),
			"me":                  e.do("GET", api+"/me", a.access, nil),
			"jwks":                e.do("GET", api+"/.well-known/jwks.json", "", nil),
			"members":             e.do("GET", api+"/organizations/"+a.orgID+"/members", a.access, nil),
			"invitation":          inv,
			"accept_new_account":  acc,
			"token_created":       tok,
			"tokens":              e.do("GET", api+"/tokens", a.access, nil),
			"organizations":       e.do("GET", api+"/organizations?limit=1", st.access, nil),
			"verify":              e.do("POST", api+"/organizations/"+a.orgID+"/verify", st.access, map[string]any{"verified": true, "note": "ok"}),
			"audit":               e.do("GET", api+"/audit?limit=1", st.access, nil),
			"problem_validation":  e.do("POST", api+"/signup", "", `{}`),
			"problem_credentials": e.do("POST", api+"/login", "", map[string]any{"email": "shape@example.com", "password": "not the password"}),
		}
		names := make([]string, 0, len(shapes))
		for n := range shapes {
			names = append(names, n)
		}
		sort.Strings(names)
		out := map[string]any{}
		for _, n := range names {
			out[n] = shapeOf(shapes[n].body)
		}
		got, err := json.MarshalIndent(out, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		webtest.Golden(t, "shapes", got)
	})
}
