package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/nats-io/nats.go"

	"github.com/tamarack-ai/tamarack/platform/dbtest"
	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/natsauth"
	"github.com/tamarack-ai/tamarack/platform/natsauth/natsauthtest"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/services/events"
	"github.com/tamarack-ai/tamarack/testbed/image/imagetest"
)

// agentProc is a `tamarack agent run` child process with its own data directory.
type agentProc struct {
	t    testing.TB
	data string
	args []string
	cmd  *exec.Cmd
	log  *bytes.Buffer
	// exe, cred and env run it as another user (the Slurm agent): a copy of the test binary that user can
	// run, the user, and variables added to the environment.
	exe  string
	cred *syscall.Credential
	env  []string
}

func tamarackCmd(args ...string) *exec.Cmd {
	exe, _ := os.Executable()
	c := exec.Command(exe, args...)
	c.Env = append(os.Environ(), "TAMARACK_TEST_MAIN=1")
	return c
}

func (a *agentProc) start() {
	a.t.Helper()
	a.log = &bytes.Buffer{}
	a.cmd = tamarackCmd(append([]string{"agent", "run", "--data", a.data}, a.args...)...)
	if a.exe != "" {
		a.cmd.Path = a.exe
	}
	a.cmd.Env = append(a.cmd.Env, a.env...)
	if a.cred != nil {
		a.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: a.cred}
	}
	a.cmd.Stdout, a.cmd.Stderr = a.log, a.log
	if err := a.cmd.Start(); err != nil {
		a.t.Fatal(err)
	}
}

func (a *agentProc) kill() {
	if a.cmd.ProcessState != nil {
		return
	}
	_ = a.cmd.Process.Signal(syscall.SIGKILL)
	_ = a.cmd.Wait()
}

// TestSiteAgents runs `tamarack serve` (testbed only) and two agents as separate processes, each enrolled for
// its own vendor's pool with a one-time token and running sandboxes with the local runtime: sandboxes land on
// their pool's agent; an agent's credentials cannot reach the other pool's subjects (refused by NATS); an
// agent killed with SIGKILL leaves its sandbox running and marked unreachable, unmetered, and once restarted
// reconciles: usage contiguous, nothing lost or doubled; the platform stopped for 30 s while a sandbox ends
// receives the agent's buffered end once, at the runtime's true end. Twice: on SQLite with serve's embedded
// NATS (the agent's outbox holds the end while NATS is away), and, with TAMARACK_TEST_POSTGRES, on Postgres
// with a real nats-server in operator mode (the end waits in JetStream).
func TestSiteAgents(t *testing.T) {
	t.Run("sqlite-embedded-nats", func(t *testing.T) { siteAgents(t, false) })
	if os.Getenv(dbtest.EnvPostgres) != "" {
		t.Run("postgres-nats-server", func(t *testing.T) { siteAgents(t, true) })
	}
}

func siteAgents(t *testing.T, external bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	requireLocalHost(ctx, t)
	jwks, token := testIdentity(t)
	staff := token("u-staff", "org-programme", "partner", true)
	sme := token("u-sme", "org-sme", "sme", false)
	vendors := map[string]string{"a": token("u-va", "org-vendor-a", "vendor", false), "b": token("u-vb", "org-vendor-b", "vendor", false)}

	data := seededDataDir(ctx, t)
	agentDirs := map[string]string{"a": imagetest.ReachableDir(t), "b": imagetest.ReachableDir(t)}
	for _, dir := range agentDirs {
		cleanupSandboxes(t, dir) // sandboxes outlive agents by design: none may outlive the test
	}
	s := &serverProc{t: t, data: data, addr: freePort(t)}
	s.args = []string{"--data=" + data, "--addr=" + s.addr, "--only=testbed,billing", "--identity-url=" + jwks.URL,
		"--usage-interval=1s", "--sandbox-backend=local", "--log-level=warn",
		// Fixed ports: agents keep the addresses they were told at enrolment across the platform's restart.
		"--nats-listen=" + freePort(t), "--registry-listen=" + freePort(t)}
	natsURL := func() string { return strings.TrimSpace(readFile(t, filepath.Join(data, "nats.url"))) }
	platformCreds := filepath.Join(data, "nats-auth", "platform.creds")
	dsn := "" // SQLite in the data directory
	if external {
		keys, err := natsauth.Generate()
		if err != nil {
			t.Fatal(err)
		}
		authDir := filepath.Join(t.TempDir(), "nats-auth")
		if err := keys.Save(authDir); err != nil {
			t.Fatal(err)
		}
		url, _ := natsauthtest.Start(t, keys, t.TempDir(), true)
		natsURL = func() string { return url }
		pc, err := keys.PlatformCreds()
		if err != nil {
			t.Fatal(err)
		}
		platformCreds = filepath.Join(t.TempDir(), "platform.creds")
		if err := pc.WriteFile(platformCreds); err != nil {
			t.Fatal(err)
		}
		dsn = dbtest.DSN(t, sqldb.Postgres)
		s.args = append(s.args, "--db="+dsn, "--nats="+url, "--nats-auth-dir="+authDir)
	}
	connect := func() *eventbus.Bus {
		bus, err := eventbus.Connect(ctx, eventbus.Options{URL: natsURL(), Name: "test", Creds: platformCreds})
		if err != nil {
			t.Fatal(err)
		}
		return bus
	}
	s.start()
	defer func() {
		if s.cmd.ProcessState == nil {
			s.stop()
		}
	}()
	bus := connect()
	defer func() { bus.Close() }()
	// Billing holds and charges for real: the organisations identity would announce (it does not run here),
	// and credits the programme grants the SME's.
	for org, kind := range map[string]string{"org-sme": "sme", "org-vendor-a": "vendor", "org-vendor-b": "vendor"} {
		if err := eventbus.Publish(ctx, bus, events.OrganizationCreated, "tamarack/identity", org+"-created", time.Now(),
			events.OrganizationCreatedV1{OrganizationID: org, Name: org, Kind: kind, OwnerUserID: "u-" + org, At: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	if err := eventbus.Publish(ctx, bus, events.OrganizationVerified, "tamarack/identity", "org-sme-verified", time.Now(),
		events.OrganizationVerifiedV1{OrganizationID: "org-sme", Verified: true, ByUserID: "u-staff", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	grant := fmt.Sprintf(`{"organization_id":"org-sme","amount_micro":100000000,"note":"agents test","expires_at":%q}`,
		time.Now().Add(30*24*time.Hour).UTC().Format(time.RFC3339))
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		code := s.call("POST", "/api/v1/billing/grants", staff, grant, nil)
		if code == 201 {
			break
		}
		if (code != 404 && code != 422) || time.Now().After(deadline) { // until billing has the organisation, verified
			t.Fatalf("grant credits: %d", code)
		}
	}

	pools, agents := map[string]string{}, map[string]*agentProc{}
	for _, v := range []string{"a", "b"} {
		var pool struct{ ID string }
		if code := s.do("POST", "/pools", staff, `{"name":"Vendor `+v+` rack","region":"here","backend":"local","vendor_org_id":"org-vendor-`+v+`"}`, &pool); code != 201 {
			t.Fatalf("create pool %s: %d", v, code)
		}
		pools[v] = pool.ID
		var tok struct{ Token, Command string }
		if code := s.do("POST", "/pools/"+pool.ID+"/agent-tokens", vendors[v], `{"note":"rack `+v+`"}`, &tok); code != 201 || tok.Token == "" {
			t.Fatalf("enrolment token %s: %d", v, code)
		}
		out, err := tamarackCmd("agent", "enroll", "--url", "http://"+s.addr, "--token", tok.Token, "--data", agentDirs[v], "--name", "rack-"+v).CombinedOutput()
		if err != nil {
			t.Fatalf("enroll %s: %v\n%s", v, err, out)
		}
		if again, err := tamarackCmd("agent", "enroll", "--url", "http://"+s.addr, "--token", tok.Token, "--data", t.TempDir(), "--name", "x").CombinedOutput(); err == nil {
			t.Fatalf("a token enrolled twice: %s", again)
		}
		agents[v] = &agentProc{t: t, data: agentDirs[v], args: []string{"--node", "node-" + v, "--gpus", "h100-80gb:2"}}
		agents[v].start()
		defer agents[v].kill()
	}
	agentOf := func(v string) (id, state string) {
		var list struct {
			Items []struct {
				ID, State string
				Nodes     []struct{ Name string }
			}
		}
		s.do("GET", "/pools/"+pools[v]+"/agents", vendors[v], "", &list)
		if len(list.Items) != 1 || len(list.Items[0].Nodes) != 1 {
			return "", ""
		}
		return list.Items[0].ID, list.Items[0].State
	}
	for _, v := range []string{"a", "b"} {
		deadline := time.Now().Add(60 * time.Second)
		for _, st := agentOf(v); st != "connected"; _, st = agentOf(v) {
			if time.Now().After(deadline) {
				t.Fatalf("agent %s never connected with its node:\n%s", v, agents[v].log.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// Agent a's credentials reach its own subjects only: the server refuses the other pool's.
	idA, _ := agentOf("a")
	perm := make(chan error, 4)
	nc, err := nats.Connect(natsURL(),
		nats.UserCredentials(filepath.Join(agentDirs["a"], "agent.creds")),
		nats.CustomInboxPrefix(natsauth.Scope{PoolID: pools["a"], AgentID: idA}.InboxPrefix()),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { perm <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.Publish(events.AgentBase(pools["b"], "agent-forged")+".heartbeat.v1", []byte("{}"))
	_ = nc.Flush()
	if err := <-perm; !errors.Is(err, nats.ErrPermissionViolation) && !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
		t.Fatalf("publishing on pool b's subject: %v, want a permissions violation", err)
	}

	// A sandbox on each pool lands on that pool's agent.
	sandboxes := map[string]string{}
	for _, v := range []string{"a", "b"} {
		lst := "lst-" + v
		publishCompute(ctx, t, bus, lst, "org-vendor-"+v, pools[v], "h100-80gb")
		sb := s.launchListed(sme, lst, "shell")
		s.waitState(sme, sb.ID, "running")
		sandboxes[v] = sb.ID
		id, _ := agentOf(v)
		var got struct {
			AgentID string `json:"agent_id"`
		}
		s.do("GET", "/sandboxes/"+sb.ID, sme, "", &got)
		if got.AgentID != id {
			t.Fatalf("sandbox on pool %s runs on agent %q, want %q", v, got.AgentID, id)
		}
		if _, err := os.Stat(filepath.Join(agentDirs[v], "sandboxes", sb.ID)); err != nil {
			t.Fatalf("sandbox on pool %s is not in agent %s's directory: %v", v, v, err)
		}
	}

	// Logs and a terminal flow through each agent (NATS pipes bridged to SSE and the WebSocket).
	for _, v := range []string{"a", "b"} {
		id := sandboxes[v]
		deadline := time.Now().Add(30 * time.Second)
		for {
			body := s.get("/sandboxes/"+id+"/logs?follow=false", sme)
			if strings.Contains(body, "data: sandbox "+id+" ready") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("logs of %s through agent %s: %q", id, v, body)
			}
			time.Sleep(50 * time.Millisecond)
		}
		var tj struct{ Token string }
		if code := s.do("POST", "/sandboxes/"+id+"/token", sme, "", &tj); code != 201 {
			t.Fatalf("token: %d", code)
		}
		conn, _, err := websocket.DefaultDialer.Dial("ws://"+s.addr+"/api/v1/testbed/sandboxes/"+id+"/terminal?token="+tj.Token, nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"resize","cols":120,"rows":40}`))
		_ = conn.WriteMessage(websocket.BinaryMessage, []byte("echo agent-$((40+2))-$(id -u)-end; exit\n"))
		var out bytes.Buffer
		_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		for !strings.Contains(out.String(), "agent-42-0-end") {
			_, msg, err := conn.ReadMessage()
			if err != nil {
				t.Fatalf("terminal through agent %s: %v (got %q)", v, err, out.String())
			}
			out.Write(msg)
		}
		_ = conn.Close()
	}

	// SIGKILL agent a: its sandbox keeps running, shown unreachable and not metered; restarted, the agent
	// reconciles and metering resumes where it stopped.
	usageA := collectUsage(ctx, t, bus, sandboxes["a"])
	usageA.waitSeq(t, 2)
	agents["a"].kill()
	unreachable := func() bool {
		var v struct {
			UnreachableSince *time.Time `json:"unreachable_since"`
		}
		s.do("GET", "/sandboxes/"+sandboxes["a"], sme, "", &v)
		return v.UnreachableSince != nil
	}
	deadline := time.Now().Add(60 * time.Second)
	for !unreachable() {
		if time.Now().After(deadline) {
			t.Fatal("sandbox of a killed agent never shown unreachable")
		}
		time.Sleep(100 * time.Millisecond)
	}
	agents["a"].start()
	deadline = time.Now().Add(60 * time.Second)
	for unreachable() {
		if time.Now().After(deadline) {
			t.Fatalf("sandbox still unreachable after its agent came back:\n%s", agents["a"].log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.waitState(sme, sandboxes["a"], "running") // it survived its agent

	// The platform stops for 30 s; meanwhile sandbox b's main process dies. Its agent records the end and
	// delivers it when the platform is back: once, at the runtime's true end.
	usageB := collectUsage(ctx, t, bus, sandboxes["b"])
	usageB.waitSeq(t, 1)
	s.stop()
	bus.Close()
	stateFile := filepath.Join(agentDirs["b"], "sandboxes", sandboxes["b"], "state.json")
	var st struct {
		State   string            `json:"state"`
		Init    struct{ PID int } `json:"init"`
		EndedAt time.Time         `json:"ended_at"`
	}
	readState := func() {
		if err := json.Unmarshal([]byte(readFile(t, stateFile)), &st); err != nil {
			t.Fatal(err)
		}
	}
	readState()
	if err := syscall.Kill(st.Init.PID, syscall.SIGKILL); err != nil {
		t.Fatalf("kill sandbox init %d: %v", st.Init.PID, err)
	}
	for readState(); st.State != "exited"; readState() {
		time.Sleep(20 * time.Millisecond)
	}
	trueEnd := st.EndedAt.Truncate(time.Millisecond)
	time.Sleep(30 * time.Second) // the outage the issue asks for
	s.start()
	bus = connect()
	ended := s.waitState(sme, sandboxes["b"], "stopped")
	if !ended.EndedAt.Equal(trueEnd) {
		t.Fatalf("sandbox b ended at %v, its runtime's true end %v", ended.EndedAt, trueEnd)
	}
	usageB = collectUsage(ctx, t, bus, sandboxes["b"])
	checkUsage(t, usageB.waitFinal(t), *ended.StartedAt, trueEnd)
	if n := countAgentEvents(ctx, t, bus, sandboxes["b"], "exited"); n != 1 {
		t.Fatalf("sandbox b's end reached the platform %d times, want once", n)
	}

	if code := s.do("POST", "/sandboxes/"+sandboxes["a"]+"/stop", sme, "", nil); code != 202 {
		t.Fatalf("stop a: %d", code)
	}
	final := s.waitState(sme, sandboxes["a"], "stopped")
	usageA = collectUsage(ctx, t, bus, sandboxes["a"])
	checkUsage(t, usageA.waitFinal(t), *final.StartedAt, *final.EndedAt)

	// Billing charged what the agents reported, once: the SME's wallet went down by the metered time, and the
	// ledger recomputed from its transfers agrees with every balance.
	deadline = time.Now().Add(60 * time.Second)
	for {
		var w struct {
			HeldMicro    int64 `json:"held_micro"`
			GrantedMicro int64 `json:"granted_micro"`
		}
		s.call("GET", "/api/v1/billing/wallet", sme, "", &w)
		if w.HeldMicro == 0 && w.GrantedMicro < 100_000_000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("holds never released, or nothing charged: %+v", w)
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.stop()
	args := []string{"billing", "verify", "--data=" + data}
	if dsn != "" {
		args = append(args, "--db="+dsn)
	}
	if out, err := tamarackCmd(args...).CombinedOutput(); err != nil {
		t.Fatalf("billing verify: %v\n%s", err, out)
	}
}

// call is a request to any service of the server, by its path under the host.
func (s *serverProc) call(method, path, tok, body string, out any) int {
	s.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, "http://"+s.addr+path, r)
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		_ = json.Unmarshal(b, out)
	}
	if resp.StatusCode >= 400 {
		s.t.Logf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode
}

// checkUsage checks samples are numbered from 1, contiguous from start, and sum to end-start exactly.
func checkUsage(t *testing.T, samples []events.SandboxUsageV1, start, end time.Time) {
	t.Helper()
	var sum int64
	prev := start
	for i, u := range samples {
		if u.Seq != uint64(i+1) || !u.Start.Equal(prev) {
			t.Fatalf("sample %d: seq %d start %v, want start %v", i, u.Seq, u.Start, prev)
		}
		prev = u.End
		sum += u.Millis
	}
	if want := end.Sub(start).Milliseconds(); sum != want {
		t.Fatalf("usage %d ms in %d samples, running time %d ms", sum, len(samples), want)
	}
}

// countAgentEvents counts the agents' sandbox events in JetStream for one sandbox and state.
func countAgentEvents(ctx context.Context, t *testing.T, bus *eventbus.Bus, id, state string) int {
	t.Helper()
	js := bus.JetStream()
	stream, err := js.Stream(ctx, bus.StreamName(events.StreamAgent))
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && seq > 0; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		var ev events.AgentSandboxV1
		if json.Unmarshal(m.Data, &ev) == nil && ev.Status.SandboxID == id && ev.Status.State == state {
			n++
		}
	}
	return n
}

// get returns the body of a testbed GET.
func (s *serverProc) get(path, tok string) string {
	s.t.Helper()
	req, _ := http.NewRequest("GET", "http://"+s.addr+"/api/v1/testbed"+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
