package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/services/events"
	"github.com/tamarack-ai/tamarack/testbed/backend/slurm"
	"github.com/tamarack-ai/tamarack/testbed/backend/slurm/slurmrest"
	"github.com/tamarack-ai/tamarack/testbed/backend/slurm/slurmtest"
	"github.com/tamarack-ai/tamarack/testbed/image/imagetest"
)

// agentSite is the platform (`tamarack serve`, testbed and billing) and one site agent of a cluster pool,
// both as separate processes: an SME's credits granted, the pool created, the agent enrolled for it.
type agentSite struct {
	t        testing.TB
	s        *serverProc
	agent    *agentProc
	data     string
	pool     string
	staff    string
	sme      string
	vendor   string
	listing  string
	bus      *eventbus.Bus
	launched int
}

// newAgentSite starts the platform, creates the pool (pool is its JSON) and enrols an agent for it in a data
// directory of its own, which it returns; the caller starts the agent.
func newAgentSite(ctx context.Context, t testing.TB, pool string) (*agentSite, string) {
	t.Helper()
	jwks, token := testIdentity(t)
	site := &agentSite{t: t, staff: token("u-staff", "org-programme", "partner", true),
		sme: token("u-sme", "org-sme", "sme", false), vendor: token("u-v", "org-vendor", "vendor", false)}
	site.data = seededDataDir(ctx, t)
	s := &serverProc{t: t, data: site.data, addr: freePort(t)}
	s.args = []string{"--data=" + site.data, "--addr=" + s.addr, "--only=testbed,billing", "--identity-url=" + jwks.URL,
		"--usage-interval=1s", "--sandbox-backend=local", "--log-level=warn", "--nats-listen=" + freePort(t), "--registry-listen=" + freePort(t)}
	s.start()
	site.s = s
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			s.stop()
		}
	})
	site.bus = s.bus(ctx)
	t.Cleanup(func() { site.bus.Close() })
	for org, kind := range map[string]string{"org-sme": "sme", "org-vendor": "vendor"} {
		if err := eventbus.Publish(ctx, site.bus, events.OrganizationCreated, "tamarack/identity", org+"-created", time.Now(),
			events.OrganizationCreatedV1{OrganizationID: org, Name: org, Kind: kind, OwnerUserID: "u-" + org, At: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	if err := eventbus.Publish(ctx, site.bus, events.OrganizationVerified, "tamarack/identity", "org-sme-verified", time.Now(),
		events.OrganizationVerifiedV1{OrganizationID: "org-sme", Verified: true, ByUserID: "u-staff", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	grant := fmt.Sprintf(`{"organization_id":"org-sme","amount_micro":100000000,"note":"cluster test","expires_at":%q}`,
		time.Now().Add(30*24*time.Hour).UTC().Format(time.RFC3339))
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		code := s.call("POST", "/api/v1/billing/grants", site.staff, grant, nil)
		if code == 201 {
			break
		}
		if (code != 404 && code != 422) || time.Now().After(deadline) {
			t.Fatalf("grant credits: %d", code)
		}
	}
	var p struct{ ID string }
	if code := s.do("POST", "/pools", site.staff, pool, &p); code != 201 {
		t.Fatalf("create pool %s: %d", pool, code)
	}
	site.pool = p.ID
	var tok struct{ Token string }
	if code := s.do("POST", "/pools/"+p.ID+"/agent-tokens", site.vendor, `{"note":"cluster agent"}`, &tok); code != 201 {
		t.Fatalf("enrolment token: %d", code)
	}
	agentData := imagetest.ReachableDir(t)
	if out, err := tamarackCmd("agent", "enroll", "--url", "http://"+s.addr, "--token", tok.Token, "--data", agentData, "--name", "cluster").CombinedOutput(); err != nil {
		t.Fatalf("enroll: %v\n%s", err, out)
	}
	return site, agentData
}

// publishListing offers the pool's GPUs (model) on a compute listing.
func (site *agentSite) publishListing(ctx context.Context, model string) {
	site.t.Helper()
	site.listing = "lst-cluster"
	publishCompute(ctx, site.t, site.bus, site.listing, "org-vendor", site.pool, model)
}

// slurmSite is an agentSite on the test Slurm; the agent runs as the Slurm user, as docs/sandbox-backends.md
// tells a site to run it.
type slurmSite struct {
	*agentSite
	cluster slurmtest.Cluster
	api     *slurmrest.ClientWithResponses
	jobs    string
}

func newSlurmSite(ctx context.Context, t testing.TB) *slurmSite {
	t.Helper()
	cluster := slurmtest.Connect(t)
	step := cluster.InstallStep(t)
	requireLocalHost(ctx, t) // the compute node's step runs the local runtime, here on this host
	u, err := user.Lookup(cluster.User)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	base, agentData := newAgentSite(ctx, t, `{"name":"HPC partition","region":"here","backend":"slurm","vendor_org_id":"org-vendor","settings":{"slurm.partition":"debug"}}`)
	site := &slurmSite{agentSite: base, cluster: cluster}
	site.api, err = slurmrest.NewClientWithResponses(cluster.URL, slurmrest.WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
		r.Header.Set("X-SLURM-USER-NAME", cluster.User)
		r.Header.Set("X-SLURM-USER-TOKEN", cluster.Token)
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	// The agent's binary where the Slurm user can run it (the test binary's directory is root's alone).
	bin := filepath.Join(imagetest.ReachableDir(t), "tamarack")
	if err := copyFile(os.Args[0], bin, 0o755); err != nil {
		t.Fatal(err)
	}
	site.jobs = filepath.Join(agentData, "jobs")
	tokenFile := filepath.Join(agentData, "slurm.jwt")
	if err := os.WriteFile(tokenFile, []byte("SLURM_JWT="+cluster.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := chownTree(agentData, uid, gid); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(site.cancelJobs)
	site.agent = &agentProc{t: t, data: agentData, exe: bin, cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)},
		env: []string{"SLURM_CONF=" + cluster.Conf, "HOME=" + agentData},
		args: []string{"--backend", "slurm", "--slurm-url", cluster.URL, "--slurm-user", cluster.User, "--slurm-token-file", tokenFile,
			"--slurm-gres", "h100-80gb=h100", "--slurm-dir", site.jobs, "--slurm-step", strings.Join(step, " ")}}
	site.agent.start()
	t.Cleanup(site.agent.kill)
	site.waitAgent("h100-80gb", 4)
	site.publishListing(ctx, "h100-80gb")
	return site
}

// waitAgent waits until the agent is connected and has registered the named nodes (every node it has, at least
// one, when none is named), each ready with gpus devices of model, discovered (not declared).
func (site *agentSite) waitAgent(model string, gpus int, names ...string) {
	site.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var agents struct{ Items []struct{ State string } }
		site.s.do("GET", "/pools/"+site.pool+"/agents", site.vendor, "", &agents)
		var pool struct {
			Nodes []struct {
				Name, Health string
				Devices      []struct {
					GPUModel string `json:"gpu_model"`
					Declared bool
				}
			} `json:"node_list"`
		}
		site.s.do("GET", "/pools/"+site.pool, site.vendor, "", &pool)
		ok := len(agents.Items) == 1 && agents.Items[0].State == "connected" && len(pool.Nodes) > 0
		found := 0
		for _, n := range pool.Nodes {
			if len(names) > 0 && !slices.Contains(names, n.Name) {
				continue
			}
			found++
			ok = ok && n.Health == "ready" && len(n.Devices) == gpus && n.Devices[0].GPUModel == model && !n.Devices[0].Declared
		}
		ok = ok && (len(names) == 0 || found == len(names))
		if ok {
			return
		}
		if time.Now().After(deadline) {
			site.t.Fatalf("the agent never connected with its nodes: %+v %+v\n%s", agents, pool, site.agent.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// launch launches a one-GPU shell sandbox on the pool and returns its ID and the client-observed time from the
// POST to running.
func (site *agentSite) launch() (string, time.Duration) {
	site.t.Helper()
	var sb struct{ ID string }
	t0 := time.Now()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		code := site.s.do("POST", "/sandboxes", site.sme, launchBody(site.listing, "shell"), &sb)
		if code == 202 {
			break
		}
		if code != 404 || time.Now().After(deadline) {
			site.t.Fatalf("launch: %d", code)
		}
		t0 = time.Now()
	}
	var v sandboxView
	if code := site.s.do("GET", "/sandboxes/"+sb.ID+"?wait_until=running&timeout=25", site.sme, "", &v); code != 200 {
		site.t.Fatalf("wait for running: %d", code)
	}
	elapsed := time.Since(t0)
	if v.State != "running" {
		v = site.s.waitState(site.sme, sb.ID, "running")
		elapsed = time.Since(t0)
	}
	site.launched++
	return sb.ID, elapsed
}

// job is the Slurm job of a sandbox, as slurmrestd reports it.
func (site *slurmSite) job(id string) slurmrest.V0038JobResponseProperties {
	site.t.Helper()
	raw, err := os.ReadFile(filepath.Join(site.jobs, id, slurm.FileJob))
	if err != nil {
		site.t.Fatal(err)
	}
	r, err := site.api.SlurmV0038GetJobWithResponse(context.Background(), strings.TrimSpace(string(raw)))
	if err != nil || r.JSON200 == nil || r.JSON200.Jobs == nil || len(*r.JSON200.Jobs) != 1 {
		site.t.Fatalf("job of %s: %v %s", id, err, r.Body)
	}
	return (*r.JSON200.Jobs)[0]
}

// cancelJobs cancels every job the test's agent submitted: sandboxes outlive agents by design, none may
// outlive the test.
func (site *slurmSite) cancelJobs() {
	entries, _ := os.ReadDir(site.jobs)
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join(site.jobs, e.Name(), slurm.FileJob))
		if err != nil || site.api == nil {
			continue
		}
		sig := slurmrest.KILL
		if r, err := site.api.SlurmV0038CancelJob(context.Background(), strings.TrimSpace(string(raw)), &slurmrest.SlurmV0038CancelJobParams{Signal: &sig}); err == nil {
			r.Body.Close()
		}
	}
}

// TestSlurmJourney: an SME launches a sandbox on a Slurm pool; the job runs; the terminal in the browser (the
// WebSocket) reaches a shell inside the sandbox on the compute node; the agent is killed mid-run and
// restarted, and state and metering recover; the stop cancels the job; the usage charged is the job's run
// time to the millisecond as slurmctld recorded it; the ledger verifies.
func TestSlurmJourney(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	site := newSlurmSite(ctx, t)
	s, sme := site.s, site.sme
	id, _ := site.launch()
	j := site.job(id)
	if st := deref(j.JobState); st != "RUNNING" || deref(j.Name) != id || deref(j.UserName) != site.cluster.User {
		t.Fatalf("sandbox %s runs, its job: state %s, name %s, user %s", id, st, deref(j.Name), deref(j.UserName))
	}
	if j.GresDetail == nil || len(*j.GresDetail) != 1 || !strings.HasPrefix((*j.GresDetail)[0], "gpu:h100:1(") {
		t.Errorf("job GPUs %v, want one h100", j.GresDetail)
	}
	// The listing lets the booking grow to 60 minutes: the job's limit covers that and the grace.
	if deref(j.TimeLimit) != 65 {
		t.Errorf("job time_limit %d minutes, want 65", deref(j.TimeLimit))
	}

	deadline := time.Now().Add(60 * time.Second)
	for body := ""; !strings.Contains(body, "data: sandbox "+id+" ready"); body = s.get("/sandboxes/"+id+"/logs?follow=false", sme) {
		if time.Now().After(deadline) {
			t.Fatalf("logs of %s: %q", id, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if out := site.terminal(id, "echo hello-$((6*7)) $(cat /proc/1/cmdline | tr '\\0' ' ')-end; exit\n", "-end"); !strings.Contains(out, "hello-42") || !strings.Contains(out, "sleep infinity") {
		t.Errorf("terminal output %q: want hello-42 from a shell beside the sandbox's command", out)
	}

	// Kill the agent mid-run: the job runs on, the sandbox is shown unreachable and not metered; restarted,
	// the agent reconciles and metering goes on where it stopped.
	usage := collectUsage(ctx, t, site.bus, id)
	usage.waitSeq(t, 2)
	site.agent.kill()
	unreachable := func() bool {
		var v struct {
			UnreachableSince *time.Time `json:"unreachable_since"`
		}
		s.do("GET", "/sandboxes/"+id, sme, "", &v)
		return v.UnreachableSince != nil
	}
	for deadline := time.Now().Add(60 * time.Second); !unreachable(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("sandbox of a killed agent never shown unreachable")
		}
	}
	if st := deref(site.job(id).JobState); st != "RUNNING" {
		t.Fatalf("job %s while its agent was away, want RUNNING", st)
	}
	site.agent.start()
	for deadline := time.Now().Add(60 * time.Second); unreachable(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("sandbox still unreachable after its agent came back:\n%s", site.agent.log.String())
		}
	}
	s.waitState(sme, id, "running")

	if code := s.do("POST", "/sandboxes/"+id+"/stop", sme, "", nil); code != 202 {
		t.Fatalf("stop: %d", code)
	}
	final := s.waitState(sme, id, "stopped")
	j = site.job(id)
	if st := deref(j.JobState); st != "CANCELLED" {
		t.Errorf("job %s after the stop, want CANCELLED", st)
	}
	if !final.StartedAt.Equal(time.Unix(deref(j.StartTime), 0)) || !final.EndedAt.Equal(time.Unix(deref(j.EndTime), 0)) {
		t.Errorf("sandbox ran %v to %v; its job %d to %d", final.StartedAt, final.EndedAt, deref(j.StartTime), deref(j.EndTime))
	}
	usage = collectUsage(ctx, t, site.bus, id)
	checkUsage(t, usage.waitFinal(t), *final.StartedAt, *final.EndedAt)
	site.verifyLedger()
}

// terminal opens the sandbox's terminal as the browser does, sends input and reads until want.
func (site *agentSite) terminal(id, input, want string) string {
	site.t.Helper()
	var tj struct{ Token string }
	if code := site.s.do("POST", "/sandboxes/"+id+"/token", site.sme, "", &tj); code != 201 {
		site.t.Fatalf("terminal token: %d", code)
	}
	conn, _, err := websocket.DefaultDialer.Dial("ws://"+site.s.addr+"/api/v1/testbed/sandboxes/"+id+"/terminal?token="+tj.Token, nil)
	if err != nil {
		site.t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"resize","cols":120,"rows":40}`))
	_ = conn.WriteMessage(websocket.BinaryMessage, []byte(input))
	var out bytes.Buffer
	_ = conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	for !strings.Contains(out.String(), want+"\r\n") {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			site.t.Fatalf("terminal: %v (got %q)", err, out.String())
		}
		out.Write(msg)
	}
	return out.String()
}

// verifyLedger waits for billing to release every hold, stops the platform and runs `tamarack billing verify`.
func (site *agentSite) verifyLedger() {
	site.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var w struct {
			HeldMicro    int64 `json:"held_micro"`
			GrantedMicro int64 `json:"granted_micro"`
		}
		site.s.call("GET", "/api/v1/billing/wallet", site.sme, "", &w)
		if w.HeldMicro == 0 && w.GrantedMicro < 100_000_000 {
			break
		}
		if time.Now().After(deadline) {
			site.t.Fatalf("holds never released, or nothing charged: %+v", w)
		}
		time.Sleep(100 * time.Millisecond)
	}
	site.s.stop()
	if out, err := tamarackCmd("billing", "verify", "--data="+site.data).CombinedOutput(); err != nil {
		site.t.Fatalf("billing verify: %v\n%s", err, out)
	}
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func copyFile(from, to string, mode os.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func chownTree(root string, uid, gid int) error {
	return filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}
