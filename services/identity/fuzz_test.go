package identity

import (
	"testing"

	"github.com/tamarack-ai/tamarack/platform/web"
)

// FuzzRequestDecoders feeds arbitrary bodies to every identity request type: decoding and validation must
// answer a value or a problem, never panic.
func FuzzRequestDecoders(f *testing.F) {
	for _, s := range []string{`{}`, `{"email":"a@b.co","password":"123456789012","name":"n","organization":{"name":"o","kind":"sme"}}`,
		`{"refresh_token":"x","organization_id":"y"}`, `{"verified":true,"note":"n"}`, `{"name":"ci","scopes":["read"],"expires_at":"2027-01-01T00:00:00Z"}`,
		`{"email":"\u0000@x","role":"owner"}`, `[`, `{"organization":null}`, `{"scopes":[1]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, dst := range []any{&signupRequest{}, &loginRequest{}, &refreshRequest{}, &logoutRequest{}, &verifyRequest{},
			&inviteRequest{}, &roleRequest{}, &acceptRequest{}, &createTokenRequest{}} {
			if err := web.Decode(body, dst); err == nil {
				_ = web.Check(dst)
			}
		}
	})
}
