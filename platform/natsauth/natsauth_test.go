package natsauth_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/tamarack-ai/tamarack/platform/natsauth"
)

func TestKeysSurviveSaveAndLoad(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "nats-auth")
	k, created, err := natsauth.LoadOrGenerate(dir)
	if err != nil || !created {
		t.Fatalf("LoadOrGenerate: created=%v err=%v", created, err)
	}
	for name, mode := range map[string]os.FileMode{"operator.nk": 0o600, "system.nk": 0o600, "account.nk": 0o600, "account.jwt": 0o644} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v (want %v), err %v", name, fi.Mode().Perm(), mode, err)
		}
	}
	again, created, err := natsauth.LoadOrGenerate(dir)
	if err != nil || created {
		t.Fatalf("second LoadOrGenerate: created=%v err=%v", created, err)
	}
	if again.Operator() != k.Operator() || again.Account() != k.Account() || again.SystemAccount() != k.SystemAccount() {
		t.Fatal("loaded keys differ from the saved ones")
	}
	ac, err := jwt.DecodeAccountClaims(again.AccountJWT())
	if err != nil || ac.Name != natsauth.AccountName || !ac.Limits.IsJSEnabled() || ac.Issuer != k.Operator() {
		t.Fatalf("account claims %+v: %v", ac, err)
	}

	// A revocation is written to the directory and read back.
	agent, err := k.AgentCreds(natsauth.Scope{PoolID: "p1", AgentID: "a1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := again.Revoke(agent.User); err != nil {
		t.Fatal(err)
	}
	reloaded, err := natsauth.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	ac, _ = jwt.DecodeAccountClaims(reloaded.AccountJWT())
	uc, _ := jwt.DecodeUserClaims(agent.JWT)
	if !ac.IsClaimRevoked(uc) {
		t.Fatal("the revocation was not kept in the directory")
	}
	// k is stale (it loaded before the revocation): revoking another user through it keeps the first one.
	other, _ := k.AgentCreds(natsauth.Scope{PoolID: "p1", AgentID: "a2"})
	if _, err := k.Revoke(other.User); err != nil {
		t.Fatal(err)
	}
	reloaded, _ = natsauth.Load(dir)
	ac, _ = jwt.DecodeAccountClaims(reloaded.AccountJWT())
	if ouc, _ := jwt.DecodeUserClaims(other.JWT); !ac.IsClaimRevoked(uc) || !ac.IsClaimRevoked(ouc) {
		t.Fatal("a revocation through stale keys lost an earlier one")
	}
}

func TestLoadRefusesMismatchedKeys(t *testing.T) {
	t.Parallel()
	a, b := t.TempDir(), t.TempDir()
	for _, d := range []string{a, b} {
		if _, _, err := natsauth.LoadOrGenerate(d); err != nil {
			t.Fatal(err)
		}
	}
	// b's account claims beside a's seeds: signed by another operator.
	data, _ := os.ReadFile(filepath.Join(b, "account.jwt"))
	if err := os.WriteFile(filepath.Join(a, "account.jwt"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := natsauth.Load(a); err == nil || !strings.Contains(err.Error(), "account.jwt") {
		t.Fatalf("Load of mismatched keys: %v", err)
	}
	if _, err := natsauth.Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), "nats-auth init") {
		t.Fatalf("Load of an empty directory: %v", err)
	}
}

func TestScopeValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		s    natsauth.Scope
		ok   bool
	}{
		{"plain", natsauth.Scope{PoolID: "0190c6a2-pool", AgentID: "0190c6a2-agent"}, true},
		{"prefixed", natsauth.Scope{Prefix: "t1.run", PoolID: "p", AgentID: "a"}, true},
		{"no pool", natsauth.Scope{AgentID: "a"}, false},
		{"no agent", natsauth.Scope{PoolID: "p"}, false},
		{"dot widens", natsauth.Scope{PoolID: "p1.a1", AgentID: "a"}, false},
		{"wildcard", natsauth.Scope{PoolID: "*", AgentID: "a"}, false},
		{"full wildcard", natsauth.Scope{PoolID: "p", AgentID: ">"}, false},
		{"space", natsauth.Scope{PoolID: "p 1", AgentID: "a"}, false},
		{"bad prefix", natsauth.Scope{Prefix: "t1.", PoolID: "p", AgentID: "a"}, false},
		{"negative ttl", natsauth.Scope{PoolID: "p", AgentID: "a", TTL: -time.Second}, false},
	} {
		if err := tc.s.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

// TestAgentPermissionsAreExactlyThePoolsSubjects pins the permission list the package documentation states.
func TestAgentPermissionsAreExactlyThePoolsSubjects(t *testing.T) {
	t.Parallel()
	k, err := natsauth.Generate()
	if err != nil {
		t.Fatal(err)
	}
	c, err := k.AgentCreds(natsauth.Scope{Prefix: "t1", PoolID: "p1", AgentID: "a1", TTL: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	uc, err := jwt.DecodeUserClaims(c.JWT)
	if err != nil {
		t.Fatal(err)
	}
	if uc.Subject != c.User || uc.Issuer != k.Account() || uc.Name != "agent-a1" || uc.BearerToken {
		t.Fatalf("user claims %+v", uc)
	}
	eq := func(what string, got jwt.StringList, want ...string) {
		t.Helper()
		g := slices.Clone([]string(got))
		slices.Sort(g)
		slices.Sort(want)
		if !slices.Equal(g, want) {
			t.Errorf("%s = %q, want %q", what, g, want)
		}
	}
	eq("pub allow", uc.Pub.Allow, "t1.tamarack.agent.p1.a1.>")
	eq("pub deny", uc.Pub.Deny)
	eq("sub allow", uc.Sub.Allow, "t1.tamarack.agent.p1.a1.>", "_INBOX_AGENT.p1.a1.>")
	eq("sub deny", uc.Sub.Deny)
	if uc.Resp == nil || uc.Resp.MaxMsgs != 1 || uc.Resp.Expires != natsauth.ResponseTTL {
		t.Errorf("responses %+v", uc.Resp)
	}
	if uc.Expires == 0 || !uc.Tags.Contains("pool:p1") || !uc.Tags.Contains("agent:a1") {
		t.Errorf("expiry %d, tags %v", uc.Expires, uc.Tags)
	}
	if !strings.HasPrefix(natsauth.Scope{PoolID: "p1", AgentID: "a1"}.InboxPrefix(), "_INBOX_AGENT.p1.a1") {
		t.Error("inbox prefix")
	}

	// The .creds file reads back to the same credentials.
	file, err := c.File()
	if err != nil {
		t.Fatal(err)
	}
	back, err := natsauth.ParseCreds(file)
	if err != nil || back != c {
		t.Fatalf("ParseCreds: %+v, %v", back, err)
	}
	if _, err := k.AgentCreds(natsauth.Scope{PoolID: "p1.>", AgentID: "a1"}); err == nil {
		t.Fatal("AgentCreds accepted a pool ID with a wildcard")
	}
}

func TestServerConfigIsReadByNATSServer(t *testing.T) {
	t.Parallel()
	k, err := natsauth.Generate()
	if err != nil {
		t.Fatal(err)
	}
	for _, jwtDir := range []string{"", filepath.Join(t.TempDir(), "jwt")} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "server.conf"), []byte(k.ServerConfig(jwtDir)), 0o644); err != nil {
			t.Fatal(err)
		}
		conf := filepath.Join(dir, "nats.conf")
		if err := os.WriteFile(conf, []byte("include \"server.conf\"\nport: -1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		o, err := server.ProcessConfigFile(conf)
		if err != nil {
			t.Fatalf("jwtDir %q: %v", jwtDir, err)
		}
		if len(o.TrustedOperators) != 1 || o.TrustedOperators[0].Subject != k.Operator() || o.SystemAccount != k.SystemAccount() {
			t.Fatalf("jwtDir %q: operators %v, system account %q", jwtDir, o.TrustedOperators, o.SystemAccount)
		}
		want := "*server.MemAccResolver"
		if jwtDir != "" {
			want = "*server.DirAccResolver"
		}
		if got := typeName(o.AccountResolver); got != want {
			t.Fatalf("jwtDir %q: resolver %s, want %s", jwtDir, got, want)
		}
		if o.AccountResolver != nil {
			o.AccountResolver.Close()
		}
	}
}
