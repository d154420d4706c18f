package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/webtest"

	"github.com/pquerna/otp/totp"

	"github.com/tamarack-ai/tamarack/cmd/tamarack/internal/cli"
	"github.com/tamarack-ai/tamarack/testbed/image/imagetest"
)

// cliRun is one run of the client CLI, in this process, against a real server.
type cliRun struct {
	code     int
	out, err string
}

// TestCLIJourney drives a real `tamarack serve` (a child process on a temporary data directory with the demo
// seed) with the client commands only, as a developer's shell or a script would: an SME searches, shows and
// downloads (sha256 checked), launches a real sandbox on the demo's local pool and waits for it, lists it, reads
// its logs, runs a command in it, extends and stops it, and reads the wallet and usage; a vendor creates and
// submits a gated listing, staff find it in the review queue and approve it, and the SME asks for access.
// --output json is parsed, and exit codes are checked on a missing listing, a forbidden call and bad flags.
// The sandbox steps need a host that runs local sandboxes (TAMARACK_TEST_SANDBOX semantics, as the other
// real-sandbox tests).
func TestCLIJourney(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	requireLocalHost(ctx, t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data := imagetest.ReachableDir(t)
	images := imagetest.Build(t)
	cleanupSandboxes(t, data)
	s := &serverProc{t: t, data: data, addr: freePort(t)}
	common := []string{"--data=" + data, "--images=" + images, "--log-level=warn"}
	seedCmd := exec.CommandContext(ctx, exe, append([]string{"seed", "--demo"}, common...)...)
	seedCmd.Env = append(os.Environ(), "TAMARACK_TEST_MAIN=1")
	if out, err := seedCmd.CombinedOutput(); err != nil {
		t.Fatalf("seed: %v\n%s", err, out)
	}
	s.args = append([]string{"--addr=" + s.addr, "--usage-interval=1s", "--sandbox-backend=local"}, common...)
	s.start()
	defer s.stop()
	base := "http://" + s.addr

	// API tokens of the demo's SME, vendor and staff (staff with a second factor, without which they are not staff).
	smeTok := demoToken(t, base, "sme@tamarack.demo", false)
	vendorTok := demoToken(t, base, "vendor@tamarack.demo", false)
	staffTok := demoToken(t, base, "staff@tamarack.demo", true)

	home := t.TempDir()
	run := func(args ...string) cliRun {
		t.Helper()
		var out, errb bytes.Buffer
		code := cli.Main(ctx, args, cli.Streams{In: strings.NewReader(""), Out: &out, Err: &errb,
			ConfigPath: filepath.Join(home, "config.json")})
		return cliRun{code: code, out: out.String(), err: errb.String()}
	}
	must := func(args ...string) cliRun {
		t.Helper()
		r := run(args...)
		if r.code != 0 {
			t.Fatalf("tamarack %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.out, r.err)
		}
		return r
	}
	jsonOf := func(r cliRun, v any) {
		t.Helper()
		if err := json.Unmarshal([]byte(r.out), v); err != nil {
			t.Fatalf("--output json is not JSON: %v\n%s", err, r.out)
		}
	}

	// Bad flags and no sign-in have their own exit codes.
	if r := run("listings", "search", "--bogus"); r.code != cli.ExitUsage {
		t.Errorf("bad flag: exit %d, want %d: %s", r.code, cli.ExitUsage, r.err)
	}
	if r := run("whoami", "--url", base); r.code != cli.ExitAuth {
		t.Errorf("whoami before login: exit %d, want %d: %s", r.code, cli.ExitAuth, r.err)
	}

	// Profiles: one per person, the config file private to its owner.
	must("login", "--url", base, "--token", vendorTok, "--profile", "vendor")
	must("login", "--url", base, "--token", staffTok, "--profile", "staff")
	must("login", "--url", base, "--token", smeTok, "--profile", "sme")
	if fi, err := os.Stat(filepath.Join(home, "config.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config file: %v %v, want mode 0600", err, fi)
	}
	if r := must("whoami"); !strings.Contains(r.out, "sme@tamarack.demo") { // the last login is the current profile
		t.Errorf("whoami: %s", r.out)
	}

	// A device login: the CLI shows a code, the SME approves it signed in to the web UI (here its API), and the
	// CLI saves the session it polled for.
	devErr := &webtest.Buffer{}
	devDone := make(chan int, 1)
	go func() {
		devDone <- cli.Main(ctx, []string{"login", "--url", base, "--profile", "device"}, cli.Streams{In: strings.NewReader(""),
			Out: io.Discard, Err: devErr, ConfigPath: filepath.Join(home, "config.json")})
	}()
	codeRE := regexp.MustCompile(`code ([A-Z]{4}-[A-Z]{4})`)
	var userCode string
	for userCode == "" {
		select {
		case code := <-devDone:
			t.Fatalf("device login ended (exit %d) before showing a code: %s", code, devErr.String())
		case <-ctx.Done():
			t.Fatalf("no device code shown: %s", devErr.String())
		case <-time.After(50 * time.Millisecond):
		}
		if m := codeRE.FindStringSubmatch(devErr.String()); m != nil {
			userCode = m[1]
		}
	}
	smeSession, _ := httpJSON(t, "POST", base+"/api/v1/identity/login", "", map[string]any{"email": "sme@tamarack.demo", "password": "tamarack-demo-2026"}, 200)["access_token"].(string)
	httpJSON(t, "POST", base+"/api/v1/identity/device/"+userCode+"/approve", smeSession, nil, 200)
	select {
	case code := <-devDone:
		if code != 0 {
			t.Fatalf("device login: exit %d: %s", code, devErr.String())
		}
	case <-ctx.Done():
		t.Fatalf("device login never finished: %s", devErr.String())
	}
	if r := must("whoami", "--profile", "device"); !strings.Contains(r.out, "sme@tamarack.demo") {
		t.Errorf("whoami after the device login: %s", r.out)
	}
	must("login", "--url", base, "--token", smeTok, "--profile", "sme") // the SME's token profile is current again

	// Catalogue.
	var found struct {
		Items []struct{ Slug string } `json:"items"`
	}
	jsonOf(must("listings", "search", "maple", "-o", "json"), &found)
	if !slices.ContainsFunc(found.Items, func(it struct{ Slug string }) bool { return it.Slug == "demo-maple-7b" }) {
		t.Fatalf("search maple: %+v", found)
	}
	if r := must("listings", "show", "demo-maple-7b"); !strings.Contains(r.out, "Research") {
		t.Errorf("show: %s", r.out)
	}
	if r := run("listings", "show", "no-such-listing"); r.code != cli.ExitNotFound || !strings.Contains(r.err, "No such listing") || !strings.Contains(r.err, "listing_not_found") {
		t.Errorf("show a missing listing: exit %d, want %d: %s", r.code, cli.ExitNotFound, r.err)
	}
	// Downloads need an entitlement: the SME orders the free plan (no CLI command for orders yet), then gets
	// every file, each checked against the sha256 the listing states.
	var listing struct {
		ID               string `json:"id"`
		PublishedVersion struct {
			Plans []struct {
				ID, Kind string
			} `json:"plans"`
			Artifacts []struct{ Name, Sha256 string } `json:"artifacts"`
		} `json:"published_version"`
	}
	jsonOf(must("listings", "show", "demo-maple-7b", "-o", "json"), &listing)
	if r := run("listings", "download", "demo-maple-7b", "--dir", t.TempDir()); r.code != cli.ExitNotFound { // tenancy: as if missing
		t.Errorf("download without entitlement: exit %d, want %d: %s", r.code, cli.ExitNotFound, r.err)
	}
	for _, p := range listing.PublishedVersion.Plans {
		if p.Kind == "free" {
			httpJSON(t, "POST", base+"/api/v1/marketplace/orders", smeTok, map[string]any{"listing_id": listing.ID, "plan_id": p.ID, "quantity": 1}, 201)
		}
	}
	dl := t.TempDir()
	var got struct {
		Files []struct{ Name, Path, Sha256 string } `json:"files"`
	}
	jsonOf(must("listings", "download", "demo-maple-7b", "--dir", dl, "-o", "json"), &got)
	if len(got.Files) == 0 || len(got.Files) != len(listing.PublishedVersion.Artifacts) {
		t.Fatalf("downloaded %+v of %+v", got.Files, listing.PublishedVersion.Artifacts)
	}
	for _, f := range got.Files {
		b, err := os.ReadFile(f.Path)
		sum := sha256.Sum256(b)
		if err != nil || hex.EncodeToString(sum[:]) != f.Sha256 {
			t.Errorf("%s: %v, sha256 %x, want %s", f.Path, err, sum, f.Sha256)
		}
	}
	one := t.TempDir()
	must("listings", "download", "demo-maple-7b", "--file", got.Files[0].Name, "--dir", one)
	if _, err := os.Stat(filepath.Join(one, got.Files[0].Name)); err != nil {
		t.Errorf("download --file: %v", err)
	}

	// Forbidden: the SME is not staff.
	if r := run("reviews", "list"); r.code != cli.ExitAuth {
		t.Errorf("reviews list as an SME: exit %d, want %d: %s", r.code, cli.ExitAuth, r.err)
	}

	// A real sandbox on the demo's local pool.
	var sb struct {
		ID, State string
	}
	jsonOf(must("sandbox", "launch", "--listing", "demo-h100-80gb-time", "--gpus", "1", "--image", "shell", "--hours", "0.5", "--wait", "-o", "json"), &sb)
	if sb.State != "running" {
		t.Fatalf("launch --wait: %+v", sb)
	}
	if r := must("sandbox", "list"); !strings.Contains(r.out, sb.ID) || !strings.Contains(r.out, "running") {
		t.Errorf("sandbox list: %s", r.out)
	}
	if r := must("sandbox", "exec", sb.ID, "--", "echo", "hello-from-cli"); !strings.Contains(r.out, "hello-from-cli\n") {
		t.Errorf("exec: %q", r.out)
	}
	must("sandbox", "logs", sb.ID)
	var extended struct {
		ExpiresAt time.Time `json:"expires_at"`
	}
	jsonOf(must("sandbox", "extend", sb.ID, "--minutes", "15", "-o", "json"), &extended)
	if extended.ExpiresAt.IsZero() {
		t.Errorf("extend: %+v", extended)
	}
	must("sandbox", "stop", sb.ID)
	deadline := time.Now().Add(time.Minute)
	for {
		var v struct{ State string }
		jsonOf(must("sandbox", "show", sb.ID, "-o", "json"), &v)
		if v.State == "stopped" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sandbox still %s a minute after stop", v.State)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r := run("sandbox", "show", "sbx-missing"); r.code != cli.ExitNotFound {
		t.Errorf("show a missing sandbox: exit %d, want %d", r.code, cli.ExitNotFound)
	}
	var wallet struct {
		AvailableMicro *int64 `json:"available_micro"`
	}
	jsonOf(must("wallet", "-o", "json"), &wallet)
	if wallet.AvailableMicro == nil {
		t.Errorf("wallet: no available_micro")
	}
	if r := must("wallet"); !strings.Contains(r.out, "Available") {
		t.Errorf("wallet: %s", r.out)
	}
	must("usage")

	// A vendor's gated listing, through review, and the SME's access request.
	must("listings", "create", "--profile", "vendor", "--from", writeJSON(t, map[string]any{
		"kind": "dataset", "slug": "cli-gated-data", "title": "CLI gated data", "summary": "Gated rows for the CLI journey",
		"license": map[string]any{"spdx": "CC-BY-4.0"}, "residency": "CA", "gated": true,
		"dataset": map[string]any{"format": "csv", "rows": 10},
		"plans":   []map[string]any{{"name": "Gated", "kind": "free", "price_micro": 0}}}))
	must("listings", "submit", "cli-gated-data", "--profile", "vendor")
	var queue struct {
		Items []struct {
			VersionID string `json:"version_id"`
			Slug      string `json:"slug"`
		} `json:"items"`
	}
	jsonOf(must("reviews", "list", "--profile", "staff", "-o", "json"), &queue)
	var versionID string
	for _, it := range queue.Items {
		if it.Slug == "cli-gated-data" {
			versionID = it.VersionID
		}
	}
	if versionID == "" {
		t.Fatalf("the submitted listing is not in the queue: %+v", queue)
	}
	if r := run("reviews", "decide", versionID, "maybe", "--profile", "staff"); r.code != cli.ExitUsage {
		t.Errorf("decide maybe: exit %d, want %d", r.code, cli.ExitUsage)
	}
	must("reviews", "decide", versionID, "approve", "--profile", "staff")
	var ar struct{ State string }
	jsonOf(must("access", "request", "cli-gated-data", "--purpose", "wildfire research", "-o", "json"), &ar)
	if ar.State != "pending" {
		t.Errorf("access request: %+v", ar)
	}

	must("logout")
	if r := run("wallet"); r.code != cli.ExitAuth {
		t.Errorf("wallet after logout: exit %d, want %d", r.code, cli.ExitAuth)
	}
}

// demoToken signs a demo user in (enrolling a TOTP second factor for staff) and makes an API token.
func demoToken(t *testing.T, base, email string, staff bool) string {
	t.Helper()
	const pwd = "tamarack-demo-2026"
	login := httpJSON(t, "POST", base+"/api/v1/identity/login", "", map[string]any{"email": email, "password": pwd}, 200)
	access, _ := login["access_token"].(string)
	if staff {
		secret, _ := httpJSON(t, "POST", base+"/api/v1/identity/mfa/totp", access, map[string]any{"password": pwd}, 201)["secret"].(string)
		httpJSON(t, "POST", base+"/api/v1/identity/mfa/totp/confirm", access, map[string]any{"code": totpCode(t, secret, time.Now())}, 200)
		challenge, _ := httpJSON(t, "POST", base+"/api/v1/identity/login", "", map[string]any{"email": email, "password": pwd}, 200)["mfa_token"].(string)
		code, err := totp.GenerateCode(secret, time.Now().Add(30*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		access, _ = httpJSON(t, "POST", base+"/api/v1/identity/login/mfa", "", map[string]any{"mfa_token": challenge, "code": code}, 200)["access_token"].(string)
	}
	tok, _ := httpJSON(t, "POST", base+"/api/v1/identity/tokens", access, map[string]any{"name": "cli journey",
		"scopes": []string{"read", "write"}, "expires_in_days": 1}, 201)["token"].(string)
	if !strings.HasPrefix(tok, "tmk_") {
		t.Fatalf("API token of %s: %q", email, tok)
	}
	return tok
}

func httpJSON(t *testing.T, method, url, token string, body any, want int) map[string]any {
	t.Helper()
	b, _ := json.Marshal(body)
	req, err := http.NewRequest(method, url, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d, want %d: %s", method, url, resp.StatusCode, want, raw)
	}
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return out
}

func writeJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "body.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
