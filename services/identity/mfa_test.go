package identity

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/pquerna/otp/totp"

	"github.com/tamarack-ai/tamarack/platform/jwtauth"
)

// codeAt is the TOTP code of secret at t, computed by the library.
func codeAt(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totpOpts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// enrolMFA enrols and confirms an authenticator for the session of access; it returns the secret and the
// recovery codes. The confirming code is the current step's.
func (e *tenv) enrolMFA(access string) (string, []string) {
	e.t.Helper()
	en := e.do("POST", api+"/mfa/totp", access, map[string]any{"password": testPassword})
	want(e.t, en, 201, "")
	secret := en.str("secret")
	if secret == "" || !strings.HasPrefix(en.str("otpauth_uri"), "otpauth://totp/") || !strings.Contains(en.str("otpauth_uri"), "secret="+secret) {
		e.t.Fatalf("enrolment: %s", en.raw)
	}
	conf := e.do("POST", api+"/mfa/totp/confirm", access, map[string]any{"code": codeAt(e.t, secret, e.clk.Now())})
	want(e.t, conf, 200, "")
	var codes []string
	for _, c := range conf.body["recovery_codes"].([]any) {
		codes = append(codes, c.(string))
	}
	if len(codes) != 10 {
		e.t.Fatalf("recovery codes: %s", conf.raw)
	}
	return secret, codes
}

// mfaToken signs in with the password and returns the challenge token.
func (e *tenv) mfaToken(email string) string {
	e.t.Helper()
	r := e.do("POST", api+"/login", "", map[string]any{"email": email, "password": testPassword})
	want(e.t, r, 200, "")
	if r.body["mfa_required"] != true || r.str("mfa_token") == "" || r.str("access_token") != "" {
		e.t.Fatalf("login with MFA on: %s", r.raw)
	}
	return r.str("mfa_token")
}

// loginMFA signs in two-step with the code of the next time step (within the accepted skew, and never used
// before by enrolMFA), then moves the clock a step on so the next sign-in gets a fresh code.
func (e *tenv) loginMFA(email, secret string) account {
	e.t.Helper()
	tok := e.mfaToken(email)
	r := e.do("POST", api+"/login/mfa", "", map[string]any{"mfa_token": tok, "code": codeAt(e.t, secret, e.clk.Now().Add(totpPeriod*time.Second))})
	want(e.t, r, 200, "")
	e.clk.Advance(2 * totpPeriod * time.Second)
	return account{email: email, access: r.str("access_token"), refresh: r.str("refresh_token")}
}

func amrOf(t *testing.T, access string) []string {
	t.Helper()
	var c jwtauth.Claims
	if _, _, err := jwt.NewParser().ParseUnverified(access, &c); err != nil {
		t.Fatal(err)
	}
	return c.AMR
}

func auditActions(t *testing.T, e *tenv, userID string) []string {
	t.Helper()
	var rows []AuditEntry
	if err := e.db.Where("actor_user_id = ?", userID).Order("id").Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rows {
		out = append(out, r.Action)
	}
	return out
}

func TestMFAEnrolConfirmAndTwoStepLogin(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *tenv) {
		a := e.signup("ada@example.com", "Ada Labs", "sme")
		st := e.do("GET", api+"/mfa", a.access, nil)
		want(t, st, 200, "")
		if st.body["enabled"] != false || st.body["required"] != false {
			t.Fatalf("status before: %s", st.raw)
		}
		// Enrolment alone changes nothing at sign-in; a wrong first code does not turn it on.
		want(t, e.do("POST", api+"/mfa/totp", a.access, map[string]any{"password": "not the password"}), 401, "invalid_credentials")
		en := e.do("POST", api+"/mfa/totp", a.access, map[string]any{"password": testPassword})
		want(t, en, 201, "")
		if got := e.login("ada@example.com"); got.access == "" {
			t.Fatal("pending enrolment blocked sign-in")
		}
		want(t, e.do("POST", api+"/mfa/totp/confirm", a.access, map[string]any{"code": "12345"}), 422, "validation_failed")
		wrong := codeAt(t, en.str("secret"), e.clk.Now().Add(-10*time.Minute))
		want(t, e.do("POST", api+"/mfa/totp/confirm", a.access, map[string]any{"code": wrong}), 401, "invalid_mfa_code")
		// A second enrolment replaces the pending secret; confirming turns it on.
		secret, codes := e.enrolMFA(a.access)
		want(t, e.do("POST", api+"/mfa/totp", a.access, map[string]any{"password": testPassword}), 409, "mfa_already_enabled")
		st = e.do("GET", api+"/mfa", a.access, nil)
		if st.body["enabled"] != true || st.body["recovery_codes_left"] != float64(10) {
			t.Fatalf("status after: %s", st.raw)
		}
		if !strings.Contains(strings.Join(codes, ","), "-") {
			t.Fatalf("codes: %v", codes)
		}

		// Password → challenge → code → tokens carrying amr mfa.
		s := e.loginMFA("ada@example.com", secret)
		if amr := amrOf(t, s.access); !slices.Contains(amr, "mfa") || !slices.Contains(amr, "otp") {
			t.Fatalf("amr: %v", amr)
		}
		if amr := amrOf(t, a.access); slices.Contains(amr, "mfa") {
			t.Fatalf("password session has amr %v", amr)
		}
		// A refresh keeps it.
		ref := e.do("POST", api+"/refresh", "", map[string]any{"refresh_token": s.refresh})
		want(t, ref, 200, "")
		if amr := amrOf(t, ref.str("access_token")); !slices.Contains(amr, "mfa") {
			t.Fatalf("refreshed amr: %v", amr)
		}

		// A code is accepted once: replaying it, even on a fresh challenge in its window, is refused.
		tok := e.mfaToken("ada@example.com")
		code := codeAt(t, secret, e.clk.Now())
		want(t, e.do("POST", api+"/login/mfa", "", map[string]any{"mfa_token": tok, "code": code}), 200, "")
		want(t, e.do("POST", api+"/login/mfa", "", map[string]any{"mfa_token": tok, "code": code}), 401, "mfa_token_invalid")
		want(t, e.do("POST", api+"/login/mfa", "", map[string]any{"mfa_token": e.mfaToken("ada@example.com"), "code": code}), 401, "invalid_mfa_code")
		// An expired challenge is refused.
		old := e.mfaToken("ada@example.com")
		e.clk.Advance(mfaChallengeTTL + time.Second)
		want(t, e.do("POST", api+"/login/mfa", "", map[string]any{"mfa_token": old, "code": codeAt(t, secret, e.clk.Now())}), 401, "mfa_token_invalid")
		// Validation: one factor, well-formed.
		want(t, e.do("POST", api+"/login/mfa", "", map[string]any{"mfa_token": "x"}), 422, "validation_failed")
		want(t, e.do("POST", api+"/login/mfa", "", map[string]any{"mfa_token": "x", "code": "123456", "recovery_code": codes[0]}), 422, "validation_failed")

		acts := strings.Join(auditActions(t, e, a.userID), ",")
		for _, w := range []string{AuditMFAEnabled, AuditMFALoginFailed, AuditLoginOK} {
			if !strings.Contains(acts, w) {
				t.Errorf("audit lacks %s: %s", w, acts)
			}
		}
	})
}

func TestMFARecoveryCodesAndDisable(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *tenv) {
		a := e.signup("bo@example.com", "Bo Labs", "sme")
		secret, codes := e.enrolMFA(a.access)
		// A recovery code signs in once, in any case and spacing.
		r := e.do("POST", api+"/login/mfa", "", map[string]any{"mfa_token": e.mfaToken("bo@example.com"), "recovery_code": strings.ToLower(codes[0])})
		want(t, r, 200, "")
		if amr := amrOf(t, r.str("access_token")); !slices.Contains(amr, "mfa") || slices.Contains(amr, "otp") {
			t.Fatalf("recovery amr: %v", amr)
		}
		want(t, e.do("POST", api+"/login/mfa", "", map[string]any{"mfa_token": e.mfaToken("bo@example.com"), "recovery_code": codes[0]}), 401, "invalid_mfa_code")
		if st := e.do("GET", api+"/mfa", a.access, nil); st.body["recovery_codes_left"] != float64(9) {
			t.Fatalf("left: %s", st.raw)
		}
		// Regenerating needs a current code and voids the old codes.
		e.clk.Advance(totpPeriod * time.Second)
		want(t, e.do("POST", api+"/mfa/recovery-codes", a.access, map[string]any{"code": "000000"}), 401, "invalid_mfa_code")
		re := e.do("POST", api+"/mfa/recovery-codes", a.access, map[string]any{"code": codeAt(t, secret, e.clk.Now())})
		want(t, re, 200, "")
		fresh := re.body["recovery_codes"].([]any)
		want(t, e.do("POST", api+"/login/mfa", "", map[string]any{"mfa_token": e.mfaToken("bo@example.com"), "recovery_code": codes[1]}), 401, "invalid_mfa_code")

		// Disabling needs the password and a factor.
		want(t, e.do("POST", api+"/mfa/disable", a.access, map[string]any{"password": testPassword}), 422, "validation_failed")
		want(t, e.do("POST", api+"/mfa/disable", a.access, map[string]any{"password": "not the password", "recovery_code": fresh[0]}), 401, "invalid_credentials")
		want(t, e.do("POST", api+"/mfa/disable", a.access, map[string]any{"password": testPassword, "recovery_code": fresh[0]}), 204, "")
		want(t, e.do("POST", api+"/mfa/disable", a.access, map[string]any{"password": testPassword, "recovery_code": fresh[1]}), 409, "mfa_not_enabled")
		if got := e.login("bo@example.com"); got.access == "" {
			t.Fatal("sign-in after disabling still asks for a code")
		}
		acts := strings.Join(auditActions(t, e, a.userID), ",")
		for _, w := range []string{AuditRecoveryCodeUsed, AuditRecoveryCodesNew, AuditMFADisabled} {
			if !strings.Contains(acts, w) {
				t.Errorf("audit lacks %s: %s", w, acts)
			}
		}
		// API tokens cannot manage MFA.
		tk := e.do("POST", api+"/tokens", a.access, map[string]any{"name": "ci", "scopes": []string{"read", "write"}, "expires_in_days": 30})
		want(t, tk, 201, "")
		want(t, e.do("POST", api+"/mfa/totp", tk.str("token"), map[string]any{"password": testPassword}), 403, "session_required")
	})
}

func TestMFABadCodesThrottled(t *testing.T) {
	t.Parallel()
	dbtestEach(t, func(t *testing.T, e *tenv) {
		a := e.signup("cy@example.com", "Cy Labs", "sme")
		secret, _ := e.enrolMFA(a.access)
		e.clk.Advance(totpPeriod * time.Second)
		tok := e.mfaToken("cy@example.com")
		bad := map[string]any{"mfa_token": tok, "code": "000000"}
		if codeAt(t, secret, e.clk.Now()) == "000000" {
			bad["code"] = "000001"
		}
		want(t, e.do("POST", api+"/login/mfa", "", bad), 401, "invalid_mfa_code")
		want(t, e.do("POST", api+"/login/mfa", "", bad), 401, "invalid_mfa_code")
		// The third failure of this (account, IP) waits, even with the right code.
		r := e.do("POST", api+"/login/mfa", "", map[string]any{"mfa_token": tok, "code": codeAt(t, secret, e.clk.Now())})
		want(t, r, 429, "too_many_attempts")
		if r.header.Get("Retry-After") == "" {
			t.Errorf("no Retry-After: %v", r.header)
		}
		e.clk.Advance(time.Minute)
		want(t, e.do("POST", api+"/login/mfa", "", map[string]any{"mfa_token": e.mfaToken("cy@example.com"), "code": codeAt(t, secret, e.clk.Now())}), 200, "")
	}, opts{throttle: LoginThrottle{PairFree: 2, Base: 10 * time.Second, Max: 20 * time.Second}})
}

func TestMFAChallengeSpentAfterFiveWrongCodes(t *testing.T) {
	t.Parallel()
	dbtestEach(t, func(t *testing.T, e *tenv) {
		a := e.signup("di@example.com", "Di Labs", "sme")
		secret, _ := e.enrolMFA(a.access)
		e.clk.Advance(totpPeriod * time.Second)
		tok := e.mfaToken("di@example.com")
		for i := 0; i < mfaChallengeAttempts; i++ {
			want(t, e.do("POST", api+"/login/mfa", "", map[string]any{"mfa_token": tok, "recovery_code": "AAAA-AAAA-AAAA-AAAA"}), 401, "invalid_mfa_code")
		}
		want(t, e.do("POST", api+"/login/mfa", "", map[string]any{"mfa_token": tok, "code": codeAt(t, secret, e.clk.Now())}), 401, "mfa_token_invalid")
	}, opts{throttle: LoginThrottle{PairFree: 100, IPFree: 100}})
}

func TestMFAStaffNeedsIt(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *tenv) {
		if _, _, err := e.svc.EnsureDemo(t.Context(), DemoAccount{Email: "st@test.example", Name: "Staff", Password: testPassword,
			OrgName: "Programme", OrgKind: KindProgramme, Verified: true, Staff: true}); err != nil {
			t.Fatal(err)
		}
		pwd := e.login("st@test.example")
		r := e.do("GET", api+"/organizations", pwd.access, nil)
		want(t, r, 403, "mfa_required")
		if !strings.Contains(r.str("detail"), "/mfa/totp") {
			t.Fatalf("detail does not say how to enrol: %s", r.raw)
		}
		want(t, e.do("POST", api+"/organizations/x/verify", pwd.access, nil), 403, "mfa_required")
		if st := e.do("GET", api+"/mfa", pwd.access, nil); st.body["required"] != true {
			t.Fatalf("status: %s", st.raw)
		}
		// Nor does an API token lend a staff member without MFA staff power.
		tk := e.do("POST", api+"/tokens", pwd.access, map[string]any{"name": "ops", "scopes": []string{"read"}, "expires_in_days": 30})
		want(t, tk, 201, "")
		want(t, e.do("GET", api+"/organizations", tk.str("token"), nil), 403, "mfa_required")

		secret, _ := e.enrolMFA(pwd.access)
		want(t, e.do("GET", api+"/organizations", pwd.access, nil), 403, "mfa_required") // the old session stays without
		s := e.loginMFA("st@test.example", secret)
		want(t, e.do("GET", api+"/organizations", s.access, nil), 200, "")
		want(t, e.do("GET", api+"/organizations", tk.str("token"), nil), 200, "")
		// Disabling MFA takes staff power away again, from refreshed sessions too.
		want(t, e.do("POST", api+"/mfa/disable", s.access, map[string]any{"password": testPassword, "code": codeAt(t, secret, e.clk.Now())}), 204, "")
		ref := e.do("POST", api+"/refresh", "", map[string]any{"refresh_token": s.refresh})
		want(t, ref, 200, "")
		want(t, e.do("GET", api+"/organizations", ref.str("access_token"), nil), 403, "mfa_required")
	})
}

func TestMFAOrganizationRequirement(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *tenv) {
		owner := e.signup("own@example.com", "Strict Ltd", "sme")
		path := api + "/organizations/" + owner.orgID + "/mfa"
		want(t, e.do("PUT", path, owner.access, map[string]any{}), 422, "validation_failed")
		// The owner must have MFA before requiring it.
		want(t, e.do("PUT", path, owner.access, map[string]any{"require_mfa": true}), 403, "mfa_required")
		secret, _ := e.enrolMFA(owner.access)
		os := e.loginMFA("own@example.com", secret)

		// A member (admin) may not change the policy.
		want(t, e.do("POST", api+"/organizations/"+owner.orgID+"/members", os.access, map[string]any{"email": "mem@example.com", "role": "admin"}), 201, "")
		acc := e.do("POST", api+"/invitations/"+e.inviteToken()+"/accept", "", map[string]any{"name": "Mem", "password": testPassword})
		want(t, acc, 200, "")
		mem := e.login("mem@example.com")
		want(t, e.do("PUT", path, mem.access, map[string]any{"require_mfa": true}), 403, "owners_only")

		on := e.do("PUT", path, os.access, map[string]any{"require_mfa": true})
		want(t, on, 200, "")
		if on.body["require_mfa"] != true {
			t.Fatalf("policy: %s", on.raw)
		}
		// The member's next session: reads work, writes answer mfa_required, enrolling works.
		mem = e.login("mem@example.com")
		want(t, e.do("GET", api+"/organizations/"+owner.orgID+"/members", mem.access, nil), 200, "")
		w := e.do("POST", api+"/organizations/"+owner.orgID+"/members", mem.access, map[string]any{"email": "x@example.com", "role": "member"})
		want(t, w, 403, "mfa_required")
		if st := e.do("GET", api+"/mfa", mem.access, nil); st.body["required"] != true {
			t.Fatalf("status: %s", st.raw)
		}
		msecret, _ := e.enrolMFA(mem.access)
		ms := e.loginMFA("mem@example.com", msecret)
		want(t, e.do("POST", api+"/organizations/"+owner.orgID+"/members", ms.access, map[string]any{"email": "x@example.com", "role": "member"}), 201, "")
		off := e.do("PUT", path, os.access, map[string]any{"require_mfa": false})
		want(t, off, 200, "")
		if !strings.Contains(strings.Join(auditActions(t, e, owner.userID), ","), AuditOrgMFAPolicyChanged) {
			t.Error("policy change not audited")
		}
	})
}
