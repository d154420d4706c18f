package identity

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/web"
)

// verifiedLogin marks the user's e-mail verified and signs in again, so the token says so.
func (e *tenv) verifiedLogin(a account) account {
	e.t.Helper()
	if err := e.db.Model(&User{}).Where("email = ?", a.email).Update("email_verified_at", e.clk.Now()).Error; err != nil {
		e.t.Fatal(err)
	}
	b := e.login(a.email)
	b.userID, b.orgID = a.userID, a.orgID
	return b
}

type deviceStart struct {
	device, user, uri, complete string
	expiresIn, interval         float64
}

// deviceCode asks for a device code as a client would.
func (e *tenv) deviceCode(name string) deviceStart {
	e.t.Helper()
	var body any
	if name != "" {
		body = map[string]any{"client_name": name}
	}
	r := e.doWith("POST", api+"/device/code", "", body, map[string]string{"User-Agent": "tamarack-cli/1.0 (linux)"})
	want(e.t, r, 200, "")
	ei, _ := r.body["expires_in"].(float64)
	iv, _ := r.body["interval"].(float64)
	return deviceStart{device: r.str("device_code"), user: r.str("user_code"), uri: r.str("verification_uri"),
		complete: r.str("verification_uri_complete"), expiresIn: ei, interval: iv}
}

func (e *tenv) poll(d deviceStart) resp {
	e.t.Helper()
	return e.doWith("POST", api+"/device/token", "", map[string]any{"device_code": d.device}, map[string]string{"User-Agent": "tamarack-cli/1.0 (linux)"})
}

var userCodeShape = regexp.MustCompile(`^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$`)

// The whole grant: code, pending, slow_down, approval by a verified user, tokens once, the session in the
// user's list, revocable; nothing stored in the clear.
func TestDeviceLoginApprove(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *tenv) {
		a := e.signup("device@example.com", "Device Org", "sme")
		d := e.deviceCode("tamarack CLI on build-01")
		if !userCodeShape.MatchString(d.user) || d.uri != "http://tamarack.test/device" ||
			d.complete != "http://tamarack.test/device?code="+d.user || d.expiresIn != 600 || d.interval != 5 || len(d.device) < 40 {
			t.Fatalf("authorization: %+v", d)
		}
		var row DeviceCode
		if err := e.db.Take(&row).Error; err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{row.DeviceHash, row.UserHash, row.ID, row.ClientName} {
			if strings.Contains(v, d.device) || strings.Contains(v, strings.ReplaceAll(d.user, "-", "")) {
				t.Fatalf("a code is stored in the clear: %+v", row)
			}
		}

		want(t, e.poll(d), 400, "authorization_pending")
		slow := e.poll(d) // at once: faster than the interval
		want(t, slow, 400, "slow_down")
		if slow.body["interval"] != float64(10) || slow.str("detail") == "" {
			t.Fatalf("slow_down: %s", slow.raw)
		}
		e.clk.Advance(10 * time.Second)
		want(t, e.poll(d), 400, "authorization_pending")

		// An unverified e-mail may look but not approve.
		lower := strings.ToLower(strings.ReplaceAll(d.user, "-", ""))
		want(t, e.do("GET", api+"/device/"+lower, a.access, nil), 200, "")
		want(t, e.do("POST", api+"/device/"+d.user+"/approve", a.access, nil), 403, "email_unverified")
		want(t, e.do("GET", api+"/device/"+d.user, "", nil), 401, "unauthorized")

		v := e.verifiedLogin(a)
		got := e.do("GET", api+"/device/"+lower, v.access, nil)
		want(t, got, 200, "")
		if got.str("user_code") != d.user || got.str("client_name") != "tamarack CLI on build-01" || got.str("status") != "pending" ||
			got.str("device") != "Tamarack CLI on Linux" || got.str("ip") == "" || got.str("expires_at") == "" {
			t.Fatalf("request: %s", got.raw)
		}
		ok := e.do("POST", api+"/device/"+d.user+"/approve", v.access, nil)
		want(t, ok, 200, "")
		if ok.str("status") != "approved" {
			t.Fatalf("approve: %s", ok.raw)
		}
		want(t, e.do("POST", api+"/device/"+d.user+"/approve", v.access, nil), 409, "device_code_decided")

		e.clk.Advance(10 * time.Second)
		tok := e.poll(d)
		want(t, tok, 200, "")
		if tok.str("token_type") != "Bearer" || tok.str("refresh_token") == "" || tok.body["expires_in"] != float64(900) {
			t.Fatalf("tokens: %s", tok.raw)
		}
		e.clk.Advance(10 * time.Second)
		want(t, e.poll(d), 400, "invalid_grant") // once

		access := tok.str("access_token")
		me := e.do("GET", api+"/me", access, nil)
		want(t, me, 200, "")
		if me.body["user"].(map[string]any)["email"] != a.email || me.body["active_organization_id"] != a.orgID {
			t.Fatalf("me: %s", me.raw)
		}
		if amr := amrOf(t, access); !slices.Equal(amr, []string{"pwd"}) {
			t.Fatalf("amr %v: the approving session had no second factor", amr)
		}
		if c := claimsOf(t, access); !c.EmailVerified || c.Org != a.orgID {
			t.Fatalf("claims: %+v", c)
		}
		sid := sidOf(t, access)
		list := e.do("GET", api+"/sessions", v.access, nil)
		want(t, list, 200, "")
		if !strings.Contains(string(list.raw), `"device":"tamarack CLI on build-01"`) || !strings.Contains(string(list.raw), sid) {
			t.Fatalf("the device session is not listed by its name: %s", list.raw)
		}
		actions := auditActions(t, e, a.userID)
		if !slices.Contains(actions, AuditDeviceApproved) || actions[len(actions)-1] != AuditLoginOK {
			t.Fatalf("audit: %v", actions)
		}

		// The session ends like any other: its refresh token stops working.
		want(t, e.do("DELETE", api+"/sessions/"+sid, v.access, nil), 204, "")
		want(t, e.do("POST", api+"/refresh", "", map[string]any{"refresh_token": tok.str("refresh_token")}), 401, "invalid_refresh_token")
	})
}

func TestDeviceLoginDenyExpireUnknown(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *tenv) {
		a := e.signup("deny@example.com", "Deny Org", "sme")
		d := e.deviceCode("")
		// Denying needs no verified e-mail.
		no := e.do("POST", api+"/device/"+d.user+"/deny", a.access, nil)
		want(t, no, 200, "")
		if no.str("status") != "denied" {
			t.Fatalf("deny: %s", no.raw)
		}
		want(t, e.poll(d), 403, "access_denied")
		v := e.verifiedLogin(a)
		want(t, e.do("POST", api+"/device/"+d.user+"/approve", v.access, nil), 409, "device_code_decided")
		if acts := auditActions(t, e, a.userID); !slices.Contains(acts, AuditDeviceDenied) {
			t.Fatalf("audit: %v", acts)
		}

		old := e.deviceCode("old")
		e.clk.Advance(DeviceCodeTTL)
		want(t, e.poll(old), 400, "expired_token")
		want(t, e.do("GET", api+"/device/"+old.user, v.access, nil), 410, "device_code_expired")
		want(t, e.do("POST", api+"/device/"+old.user+"/approve", v.access, nil), 410, "device_code_expired")

		want(t, e.do("GET", api+"/device/BBBB-BBBB", v.access, nil), 404, "device_code_not_found")
		want(t, e.do("GET", api+"/device/not-a-code", v.access, nil), 404, "device_code_not_found")
		want(t, e.do("POST", api+"/device/token", "", map[string]any{"device_code": "nope"}), 400, "invalid_grant")
		want(t, e.do("POST", api+"/device/token", "", map[string]any{}), 422, "validation_failed")
		want(t, e.do("POST", api+"/device/token", "", map[string]any{"device_code": d.device, "grant_type": "password"}), 422, "validation_failed")
		want(t, e.do("POST", api+"/device/code", "", map[string]any{"client_name": strings.Repeat("x", 101)}), 422, "validation_failed")
		want(t, e.do("POST", api+"/device/code", "", `{"client_name":"a\u0000b"}`), 422, "validation_failed")
		want(t, e.do("POST", api+"/device/code", "", `{"scope":"all"}`), 422, "validation_failed")

		// Rows go an hour after they expire (pruned when the next code is asked for).
		var n int64
		e.clk.Advance(2 * time.Hour)
		e.deviceCode("new")
		if err := e.db.Model(&DeviceCode{}).Count(&n).Error; err != nil || n != 1 {
			t.Fatalf("after pruning %d rows (%v), want 1", n, err)
		}
		want(t, e.poll(old), 400, "invalid_grant")
	})
}

// The approving session vouches: MFA carries over from it (without otp), and refreshes keep it.
func TestDeviceLoginCarriesApproverMFA(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *tenv) {
		a := e.signup("mfa-device@example.com", "MFA Device Org", "vendor")
		v := e.verifiedLogin(a)
		secret, _ := e.enrolMFA(v.access)
		m := e.loginMFA(a.email, secret)
		d := e.deviceCode("ci")
		want(t, e.do("POST", api+"/device/"+d.user+"/approve", m.access, nil), 200, "")
		tok := e.poll(d)
		want(t, tok, 200, "")
		if amr := amrOf(t, tok.str("access_token")); !slices.Equal(amr, []string{"pwd", "mfa"}) {
			t.Fatalf("amr %v", amr)
		}
		next := e.do("POST", api+"/refresh", "", map[string]any{"refresh_token": tok.str("refresh_token")})
		want(t, next, 200, "")
		if amr := amrOf(t, next.str("access_token")); !slices.Contains(amr, "mfa") {
			t.Fatalf("refreshed amr %v", amr)
		}

		// An API token cannot approve.
		ct := e.do("POST", api+"/tokens", m.access, map[string]any{"name": "ci", "scopes": []string{"read", "write"}, "expires_in_days": 30})
		want(t, ct, 201, "")
		d2 := e.deviceCode("ci")
		want(t, e.do("POST", api+"/device/"+d2.user+"/approve", ct.str("token"), nil), 403, "session_required")
	})
}

// Lookups are limited per user, so nobody walks the code space; codes are limited per client IP.
func TestDeviceLoginLimits(t *testing.T) {
	t.Parallel()
	dbtestEach(t, func(t *testing.T, e *tenv) {
		a := e.signup("walker@example.com", "Walker Org", "sme")
		b := e.signup("other@example.com", "Other Org", "sme")
		for i := range deviceLookupsPerMin {
			want(t, e.do("GET", api+fmt.Sprintf("/device/BBBB-BB%c%c", userCodeAlphabet[i], userCodeAlphabet[i+1]), a.access, nil), 404, "device_code_not_found")
		}
		r := e.do("GET", api+"/device/BBBB-BBBB", a.access, nil)
		want(t, r, 429, "rate_limited")
		if r.header.Get("Retry-After") == "" {
			t.Fatalf("no Retry-After: %v", r.header)
		}
		want(t, e.do("POST", api+"/device/BBBB-BBBB/deny", a.access, nil), 429, "rate_limited")
		want(t, e.do("GET", api+"/device/BBBB-BBBB", b.access, nil), 404, "device_code_not_found") // per user
		e.clk.Advance(time.Minute)
		want(t, e.do("GET", api+"/device/BBBB-BBBB", a.access, nil), 404, "device_code_not_found")

		// Codes share the sign-up rate (3 a minute here) on a key of their own per client IP.
		for range 3 {
			want(t, e.do("POST", api+"/device/code", "", nil), 200, "")
		}
		want(t, e.do("POST", api+"/device/code", "", nil), 429, "rate_limited")
	}, opts{signupPerMin: 3})
}

// Two clients racing with one approved code: exactly one gets tokens.
func TestDeviceLoginExchangeOnce(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *tenv) {
		a := e.verifiedLogin(e.signup("race@example.com", "Race Org", "sme"))
		d := e.deviceCode("race")
		want(t, e.do("POST", api+"/device/"+d.user+"/approve", a.access, nil), 200, "")
		const n = 4
		codes := make([]int, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() { defer wg.Done(); codes[i] = e.poll(d).status }()
		}
		wg.Wait()
		ok := 0
		for _, c := range codes {
			if c == 200 {
				ok++
			} else if c != 400 {
				t.Errorf("status %d", c)
			}
		}
		if ok != 1 {
			t.Fatalf("%d exchanges succeeded (%v), want 1", ok, codes)
		}
		var sessions int64
		if err := e.db.Model(&SessionRecord{}).Where("client_name = ?", "race").Count(&sessions).Error; err != nil || sessions != 1 {
			t.Fatalf("%d device sessions (%v), want 1", sessions, err)
		}
	})
}

func TestUserCodes(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 200 {
		c := newUserCode()
		if !userCodeShape.MatchString(formatUserCode(c)) || seen[c] {
			t.Fatalf("code %q (seen: %v)", c, seen[c])
		}
		seen[c] = true
	}
	for in, want := range map[string]string{"bcdf-ghjk": "BCDFGHJK", "BCDFGHJK": "BCDFGHJK", " bcdf ghjk ": "BCDFGHJK",
		"BCDF-GHJ": "", "BCDF-GHJA": "", "BCDF-GHJK-L": "", "": "", "ВCDF-GHJK": ""} {
		got, ok := normalizeUserCode(in)
		if ok != (want != "") || (ok && got != want) {
			t.Errorf("normalize %q = %q %v, want %q", in, got, ok, want)
		}
	}
}

// FuzzDeviceInputs: the device requests' decoding and validation, and user-code normalisation, answer a value
// or a problem for any input, never panic; a normalised code is always 8 letters of the alphabet.
func FuzzDeviceInputs(f *testing.F) {
	for _, s := range []string{`{}`, `{"client_name":"tamarack CLI"}`, `{"device_code":"x","grant_type":"urn:ietf:params:oauth:grant-type:device_code"}`,
		`{"client_name":"\u0000"}`, `[`, "bcdf-ghjk", "ВCDF-GHJK"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, dst := range []any{&deviceCodeRequest{}, &deviceTokenRequest{}} {
			if err := web.Decode(body, dst); err == nil {
				_ = web.Check(dst)
			}
		}
		if c, ok := normalizeUserCode(string(body)); ok && !userCodeShape.MatchString(formatUserCode(c)) {
			t.Fatalf("normalised %q to %q", body, c)
		}
	})
}
