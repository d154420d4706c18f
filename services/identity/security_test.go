package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tamarack-ai/tamarack/platform/jwtauth"
)

func claimsFor(e *tenv, sub string, exp time.Duration) jwtauth.Claims {
	now := e.clk.Now()
	return jwtauth.Claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: jwtauth.Issuer, Subject: sub,
		Audience: jwt.ClaimStrings{jwtauth.Audience}, IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(exp)), ID: "j"},
		Staff: true, Role: "owner"}
}

// TestForgedTokensRefused: tampered, expired, alg none, HS256 keyed with the public key, unknown kid, and a
// real kid with a foreign key are all refused with the same invalid_token.
func TestForgedTokensRefused(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *tenv) {
		a := e.signup("s@example.com", "Org", "sme")
		want(t, e.do("GET", api+"/me", a.access, nil), 200, "")
		k, err := e.svc.keys.current(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		parts := strings.Split(a.access, ".")

		// Tampered: the payload claims staff, the signature is the original's.
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		forged := strings.Replace(string(payload), `"role":"owner"`, `"role":"owner","staff":true`, 1)
		tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(forged)) + "." + parts[2]
		// A flipped signature byte.
		sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
		sig[0] ^= 1
		badSig := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)

		// alg none.
		none := jwt.NewWithClaims(jwt.SigningMethodNone, claimsFor(e, a.userID, time.Hour))
		none.Header["kid"] = k.kid
		noneTok, err := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
		if err != nil {
			t.Fatal(err)
		}

		// HS256 with the public key as the HMAC secret (key confusion).
		hs := jwt.NewWithClaims(jwt.SigningMethodHS256, claimsFor(e, a.userID, time.Hour))
		hs.Header["kid"] = k.kid
		hsTok, err := hs.SignedString([]byte(k.key.Public().(ed25519.PublicKey)))
		if err != nil {
			t.Fatal(err)
		}

		// A key of our own, under an unknown kid and under the real kid.
		_, other, _ := ed25519.GenerateKey(rand.Reader)
		unknownKid, _ := jwtauth.Sign(claimsFor(e, a.userID, time.Hour), "no-such-kid", other)
		realKidWrongKey, _ := jwtauth.Sign(claimsFor(e, a.userID, time.Hour), k.kid, other)
		noKid := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claimsFor(e, a.userID, time.Hour))
		noKidTok, _ := noKid.SignedString(k.key)

		// Wrong audience and issuer, signed with the real key.
		aud := claimsFor(e, a.userID, time.Hour)
		aud.Audience = jwt.ClaimStrings{"someone-else"}
		wrongAud, _ := jwtauth.Sign(aud, k.kid, k.key)
		iss := claimsFor(e, a.userID, time.Hour)
		iss.Issuer = "evil"
		wrongIss, _ := jwtauth.Sign(iss, k.kid, k.key)

		for name, tok := range map[string]string{
			"tampered": tampered, "bad signature": badSig, "alg none": noneTok, "HS256 with public key": hsTok,
			"unknown kid": unknownKid, "real kid, foreign key": realKidWrongKey, "no kid": noKidTok,
			"wrong audience": wrongAud, "wrong issuer": wrongIss, "garbage": "not.a.jwt",
		} {
			r := e.do("GET", api+"/me", tok, nil)
			if r.status != 401 || r.code() != "invalid_token" {
				t.Errorf("%s: got %d %s", name, r.status, r.code())
			}
		}

		// Expired: the clock moves past the lifetime.
		e.clk.Advance(16 * time.Minute)
		want(t, e.do("GET", api+"/me", a.access, nil), 401, "invalid_token")
	})
}

func TestAPITokenLookalikesRefused(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *tenv) {
		for _, tok := range []string{"tmk_", "tmk_nope", "tmk_" + strings.Repeat("a", 43), "tmk_" + strings.Repeat("a", 500)} {
			want(t, e.do("GET", api+"/me", tok, nil), 401, "invalid_token")
		}
	})
}
