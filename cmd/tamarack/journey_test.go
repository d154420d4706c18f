package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/webtest"

	"github.com/tamarack-ai/tamarack/platform/dbtest"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
)

// journey drives the platform through its public HTTP API only, as the web UI and integrations do.
type journey struct {
	t *testing.T
	s *server
}

type reply struct {
	status int
	raw    []byte
	body   map[string]any
}

func (r reply) str(path ...string) string {
	var v any = r.body
	for _, p := range path {
		switch x := v.(type) {
		case map[string]any:
			v = x[p]
		case []any:
			var i int
			fmt.Sscan(p, &i)
			if i >= len(x) {
				return ""
			}
			v = x[i]
		default:
			return ""
		}
	}
	if v == nil {
		return ""
	}
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}

func (j journey) call(method, path, token string, body any, headers ...string) reply {
	j.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		buf, _ := json.Marshal(b)
		rd = bytes.NewReader(buf)
	}
	req := httptest.NewRequest(method, path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := j.s.e.app.Test(req, -1)
	if err != nil {
		j.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, raw: raw}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // money is integer micro-credits: never through float64
	_ = dec.Decode(&r.body)
	return r
}

// must calls and fails the test unless the status is want.
func (j journey) must(want int, method, path, token string, body any, headers ...string) reply {
	j.t.Helper()
	r := j.call(method, path, token, body, headers...)
	if r.status != want {
		j.t.Fatalf("%s %s: %d, want %d: %s", method, path, r.status, want, r.raw)
	}
	return r
}

// eventually retries until the status is want: events between services arrive asynchronously.
func (j journey) eventually(want int, method, path, token string, body any) reply {
	j.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := j.call(method, path, token, body)
		if r.status == want {
			return r
		}
		if time.Now().After(deadline) {
			j.t.Fatalf("%s %s: still %d after 30s, want %d: %s", method, path, r.status, want, r.raw)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (j journey) until(what string, cond func() bool) {
	j.t.Helper()
	webtest.EventuallyWithin(j.t, 30*time.Second, what, cond)
}

func (j journey) signup(email, org, kind string) (token, orgID string) {
	j.t.Helper()
	r := j.must(201, "POST", "/api/v1/identity/signup", "", map[string]any{
		"email": email, "password": "correct-horse-battery-staple", "name": email,
		"organization": map[string]any{"name": org, "kind": kind}})
	j.verifyEmail(email)
	return j.login(email), r.str("organization", "id")
}

// verifyEmail opens the verification link that sign-up wrote to the file outbox (<data>/outbox-mail), as the
// new user would: unverified accounts may not spend or launch.
func (j journey) verifyEmail(email string) {
	j.t.Helper()
	files, err := filepath.Glob(filepath.Join(j.s.e.cfg.Data, "outbox-mail", "*.eml"))
	if err != nil {
		j.t.Fatal(err)
	}
	const mark = "/verify-email?token="
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			j.t.Fatal(err)
		}
		msg := string(b)
		i := strings.Index(msg, mark)
		if !strings.Contains(msg, "\r\nTo: "+email+"\r\n") || i < 0 {
			continue
		}
		tok := msg[i+len(mark):]
		tok = tok[:strings.IndexAny(tok, "\r\n ")]
		j.must(200, "POST", "/api/v1/identity/email/verify", "", map[string]any{"token": tok})
		return
	}
	j.t.Fatalf("no verification mail to %s among %d", email, len(files))
}

func (j journey) login(email string) string {
	j.t.Helper()
	return j.must(200, "POST", "/api/v1/identity/login", "", map[string]any{
		"email": email, "password": "correct-horse-battery-staple"}).str("access_token")
}

// The whole platform in one process, through its HTTP API: identity, marketplace review and catalogue,
// artifact download by entitlement, testbed sandbox on a GPU pool, metering over JetStream into the billing
// ledger with co-funding, and the ledger invariant at the end. Runs on SQLite and, when configured, Postgres.
func TestPlatformJourney(t *testing.T) { eachJourney(t, runJourney) }

// eachJourney runs fn against a whole server with its loops running, on SQLite and (when configured) Postgres.
func eachJourney(t *testing.T, fn func(t *testing.T, j journey)) {
	for _, d := range dbtest.Dialects() {
		t.Run(string(d), func(t *testing.T) {
			args := []string{"--nats-listen", "127.0.0.1:0", "--usage-interval", "1s"}
			if d == sqldb.Postgres {
				args = append(args, "--db", dbtest.DSN(t, d))
			}
			s := newTestServer(t, args...)
			defer s.startLoops()()
			fn(t, journey{t: t, s: s})
		})
	}
}

func runJourney(t *testing.T, j journey) {
	const I, M, T, B = "/api/v1/identity", "/api/v1/marketplace", "/api/v1/testbed", "/api/v1/billing"
	vendor, vendorOrg := j.signup("vendor@aurora.example", "Aurora GPU", "vendor")
	sme, smeOrg := j.signup("sme@maple.example", "Maple Robotics", "sme")
	other, _ := j.signup("other@borealis.example", "Borealis", "sme")
	staff := j.newStaff("staff@programme.example")
	if j.must(200, "GET", I+"/me", staff, nil).str("user", "is_staff") != "true" {
		t.Fatal("promoted user is not staff")
	}

	// Staff verify the vendor and the SME; a vendor cannot verify itself.
	j.must(403, "POST", I+"/organizations/"+vendorOrg+"/verify", vendor, map[string]any{"verified": true})
	j.must(200, "POST", I+"/organizations/"+vendorOrg+"/verify", staff, map[string]any{"verified": true})
	j.must(200, "POST", I+"/organizations/"+smeOrg+"/verify", staff, map[string]any{"verified": true})

	// Staff declare a pool for the vendor on the platform host (simulator backend: no GPU here) with two
	// devices; a vendor may not declare host capacity itself.
	j.must(403, "POST", T+"/pools", vendor, map[string]any{"name": "Aurora Montréal", "region": "ca-montreal", "backend": "simulator"})
	pool := j.must(201, "POST", T+"/pools", staff, map[string]any{"name": "Aurora Montréal", "region": "ca-montreal",
		"backend": "simulator", "vendor_org_id": vendorOrg})
	poolID := pool.str("id")
	j.must(201, "POST", T+"/pools/"+poolID+"/nodes", staff, map[string]any{"name": "node-1", "cpu_millis": 64000,
		"memory_bytes": 256 << 30, "devices": []map[string]any{{"index": 0, "gpu_model": "h100-80gb"}, {"index": 1, "gpu_model": "h100-80gb"}}})

	// A dataset listing with an artifact, sent back once by staff, then approved.
	ds := j.must(201, "POST", M+"/listings", vendor, map[string]any{"kind": "dataset", "slug": "prairie-crops", "title": "Prairie crop yields",
		"summary": "Yields by township", "card_markdown": "# Prairie crops\nTownship yields 2010-2025.",
		"license": map[string]any{"spdx": "CC-BY-4.0"}, "residency": "CA",
		"dataset": map[string]any{"format": "csv", "size_bytes": 2048, "rows": 100},
		"plans":   []map[string]any{{"name": "Open", "kind": "free", "price_micro": 0}}})
	dsID, dsVersion := ds.str("id"), ds.str("pending_version", "id")
	file := bytes.Repeat([]byte("township,yield\n"), 200)
	sum := sha256.Sum256(file)
	j.must(201, "PUT", M+"/listings/"+dsID+"/versions/1/artifacts/yields.csv", vendor, file,
		"Content-Type", "text/csv", "X-Checksum-Sha256", hex.EncodeToString(sum[:]))
	j.eventually(200, "POST", M+"/listings/"+dsID+"/submit", vendor, nil) // once the verification event has arrived
	j.must(422, "POST", M+"/reviews/"+dsVersion+"/decision", staff, map[string]any{"decision": "reject"})
	j.must(200, "POST", M+"/reviews/"+dsVersion+"/decision", staff, map[string]any{"decision": "request_changes", "comment": "Add the schema."})
	j.must(200, "PATCH", M+"/listings/"+dsID, vendor, map[string]any{"summary": "Yields by township, with schema"})
	j.must(200, "POST", M+"/listings/"+dsID+"/submit", vendor, nil)
	j.must(200, "POST", M+"/reviews/"+dsVersion+"/decision", staff, map[string]any{"decision": "approve"})

	// A compute listing selling the pool's time at 3.60 credits per GPU-hour (1 micro-credit per GPU-millisecond).
	cl := j.eventually(201, "POST", M+"/listings", vendor, map[string]any{"kind": "compute", "slug": "aurora-h100", "title": "H100 time in Montréal",
		"summary": "Sandboxes on H100s", "card_markdown": "Per-second billing.", "license": map[string]any{"spdx": "custom", "url": "https://aurora.example/terms"},
		"residency": "CA", "compute": map[string]any{"pool_id": poolID, "gpu_model": "h100-80gb", "vram_gb": 80, "devices_per_node": 2,
			"region": "ca-montreal", "min_duration_minutes": 1, "max_duration_minutes": 120},
		"plans": []map[string]any{{"name": "Per GPU-hour", "kind": "per_gpu_hour", "price_micro": 3_600_000}}})
	clID, clVersion := cl.str("id"), cl.str("pending_version", "id")
	j.must(200, "POST", M+"/listings/"+clID+"/submit", vendor, nil)
	j.must(200, "POST", M+"/reviews/"+clVersion+"/decision", staff, map[string]any{"decision": "approve"})

	// The SME finds the dataset, orders the free plan and downloads the file; another organisation cannot.
	found := j.must(200, "GET", M+"/listings?q=prairie&kind=dataset", "", nil)
	if found.str("items", "0", "id") != dsID {
		t.Fatalf("search did not find the dataset: %s", found.raw)
	}
	pub := j.must(200, "GET", M+"/listings/"+dsID, "", nil)
	planID, artifactID := pub.str("published_version", "plans", "0", "id"), pub.str("published_version", "artifacts", "0", "id")
	j.must(404, "GET", M+"/artifacts/"+artifactID+"/download", sme, nil)
	order := j.must(201, "POST", M+"/orders", sme, map[string]any{"listing_id": dsID, "plan_id": planID, "quantity": 1})
	if order.str("state") != "fulfilled" {
		t.Fatalf("free order: %s", order.raw)
	}
	got := j.followDownload(M+"/artifacts/"+artifactID+"/download", sme)
	if g := sha256.Sum256(got); g != sum {
		t.Fatalf("downloaded file differs: %d bytes", len(got))
	}
	j.must(404, "GET", M+"/artifacts/"+artifactID+"/download", other, nil)

	// Staff grant the SME 100 credits, half of its accelerator spend co-funded up to 10 credits.
	// Retried until billing has heard of the verification: services learn of each other by events.
	j.eventually(201, "POST", B+"/grants", staff, map[string]any{"organization_id": smeOrg, "amount_micro": 100_000_000,
		"expires_at": time.Now().Add(30 * 24 * time.Hour).UTC().Format(time.RFC3339), "cofund_percent": 50,
		"cap_micro": 10_000_000, "note": "Pilot"})

	// The SME launches a sandbox once the testbed has the published listing; another org cannot see it.
	launch := j.eventually(202, "POST", T+"/sandboxes", sme, map[string]any{"listing_id": clID, "gpu_model": "h100-80gb",
		"gpu_count": 2, "template": "shell", "duration_minutes": 10})
	sbID := launch.str("id")
	j.until("sandbox running", func() bool { return j.must(200, "GET", T+"/sandboxes/"+sbID, sme, nil).str("state") == "running" })
	j.must(404, "GET", T+"/sandboxes/"+sbID, other, nil)
	j.must(409, "POST", T+"/sandboxes", other, map[string]any{"listing_id": clID, "gpu_model": "h100-80gb",
		"gpu_count": 1, "template": "shell", "duration_minutes": 10}) // both devices are taken
	held := j.must(200, "GET", B+"/wallet", sme, nil).str("held_micro")
	if held == "0" || held == "" {
		t.Fatalf("no hold while running: %s", held)
	}
	j.until("a usage sample", func() bool { return j.must(200, "GET", T+"/sandboxes/"+sbID, sme, nil).str("usage_millis") != "0" })
	j.must(202, "POST", T+"/sandboxes/"+sbID+"/stop", sme, nil)
	var final reply
	j.until("sandbox stopped", func() bool {
		final = j.must(200, "GET", T+"/sandboxes/"+sbID, sme, nil)
		return final.str("state") == "stopped"
	})
	var usageMillis int64
	fmt.Sscan(final.str("usage_millis"), &usageMillis)
	// 3.60 credits per GPU-hour on 2 GPUs: 2 micro-credits per millisecond of running time.
	want := 2 * usageMillis
	var wallet reply
	j.until("the charge in the ledger and the hold released", func() bool {
		wallet = j.must(200, "GET", B+"/wallet", sme, nil)
		var granted int64
		fmt.Sscan(wallet.str("granted_micro"), &granted)
		return wallet.str("held_micro") == "0" && granted < 100_000_000
	})
	var granted int64
	fmt.Sscan(wallet.str("granted_micro"), &granted)
	spentByOrg := 100_000_000 - granted
	cofunded := want / 2 // under the cap: the programme pays half
	if spentByOrg != want-cofunded {
		t.Fatalf("the SME paid %d micro-credits for %d ms on 2 GPUs; want %d (total %d, co-funded %d)\n%s",
			spentByOrg, usageMillis, want-cofunded, want, cofunded, wallet.raw)
	}
	if !strings.Contains(string(j.must(200, "GET", B+"/transactions", sme, nil).raw), "usage") {
		t.Fatal("no usage line in the SME's transactions")
	}

	// Every balance equals the sum of its transfers.
	var out bytes.Buffer
	if err := billingVerify(t.Context(), j.s.e.cfg, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
}

// followDownload fetches an artifact the way a browser does: the download answers a redirect to a signed URL.
func (j journey) followDownload(path, token string) []byte {
	j.t.Helper()
	r := j.call("GET", path, token, nil)
	for hops := 0; r.status == http.StatusFound && hops < 3; hops++ {
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := j.s.e.app.Test(req, -1)
		if err != nil {
			j.t.Fatal(err)
		}
		loc := resp.Header.Get("Location")
		resp.Body.Close()
		if loc == "" {
			j.t.Fatal("redirect without a location")
		}
		path, token = loc, ""
		r = j.call("GET", path, "", nil)
	}
	if r.status != http.StatusOK {
		j.t.Fatalf("download: %d %s", r.status, r.raw)
	}
	return r.raw
}
