package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tamarack-ai/tamarack/cmd/tamarack/internal/cli"
	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/services/events"
)

// sshClient runs the real OpenSSH tools (ssh, scp, rsync) with one key, a temporary HOME and known_hosts,
// against the gateway at addr.
type sshClient struct {
	t          *testing.T
	home, key  string
	host, port string
}

func newSSHClient(t *testing.T, addr string) (*sshClient, ssh.PublicKey) {
	t.Helper()
	for _, tool := range []string{"ssh", "scp", "rsync"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("TAMARACK_TEST_SANDBOX") == "required" {
				t.Fatalf("%s not found (apt-get install openssh-client rsync), and TAMARACK_TEST_SANDBOX=required", tool)
			}
			fmt.Fprintf(os.Stderr, "!!! %s: SKIPPED, %s not found (apt-get install openssh-client rsync)\n", t.Name(), tool)
			t.Skipf("%s not found", tool)
		}
	}
	home := t.TempDir()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	blk, err := ssh.MarshalPrivateKey(priv, "test")
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(home, "id_ed25519")
	if err := os.WriteFile(key, pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	spk, _ := ssh.NewPublicKey(pub)
	host, port, _ := strings.Cut(addr, ":")
	return &sshClient{t: t, home: home, key: key, host: host, port: port}, spk
}

func (c *sshClient) opts() []string {
	return []string{"-F", "/dev/null", "-o", "StrictHostKeyChecking=accept-new", "-o", "UserKnownHostsFile=" + filepath.Join(c.home, "known_hosts"),
		"-i", c.key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=30"}
}

// run runs a tool with stdin and returns stdout, stderr and the exit code.
func (c *sshClient) run(stdin []byte, name string, args ...string) (string, string, int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = []string{"HOME=" + c.home, "PATH=" + os.Getenv("PATH")}
	cmd.Dir = c.home
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatalf("%s: %v", name, err)
	}
	return out.String(), errb.String(), code
}

func (c *sshClient) ssh(stdin []byte, user string, args ...string) (string, string, int) {
	c.t.Helper()
	a := append(c.opts(), "-p", c.port, "-l", user, c.host)
	return c.run(stdin, "ssh", append(a, args...)...)
}

// keyOwners stands in for identity's SSH key lookup: fingerprint → owner, changed by the test.
type keyOwners struct {
	mu     sync.Mutex
	owners map[string]events.SSHKeyOwnerV1
	used   map[string]int
}

func (k *keyOwners) set(pk ssh.PublicKey, o *events.SSHKeyOwnerV1) {
	k.mu.Lock()
	defer k.mu.Unlock()
	fp := ssh.FingerprintSHA256(pk)
	if o == nil {
		delete(k.owners, fp)
		return
	}
	o.Fingerprint, o.KeyID = fp, "key-"+o.UserID
	k.owners[fp] = *o
}

func (k *keyOwners) lookup(_ context.Context, r events.SSHKeyLookupV1) (events.SSHKeyOwnerV1, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	o, ok := k.owners[r.Fingerprint]
	if !ok {
		return events.SSHKeyOwnerV1{}, problem.New(404, "ssh_key_not_found", "No such SSH key.")
	}
	if !r.Probe {
		k.used[r.Fingerprint]++
	}
	return o, nil
}

// TestSSHGateway runs `tamarack serve` (testbed only, local backend, SSH gateway on) as a child process,
// launches a real sandbox (runc) from the template with a declared port, and drives the gateway with the real
// OpenSSH client: a shell on a pty, exec with its exit status and binary-clean streams, scp both ways, rsync,
// forwarding to the template's port and not to another, and the refusals (another organisation's member,
// staff, a deleted key, a stopped sandbox). Identity's key lookup is stood in for over NATS.
func TestSSHGateway(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	requireLocalHost(ctx, t)
	jwks, token := testIdentity(t)
	staff := token("u-staff", "org-programme", "partner", true)
	sme := token("u-sme", "org-sme", "sme", false)

	data := seededDataDir(ctx, t)
	cleanupSandboxes(t, data)
	sshAddr := freePort(t)
	s := &serverProc{t: t, data: data, addr: freePort(t)}
	s.args = []string{"--data=" + data, "--addr=" + s.addr, "--only=testbed", "--identity-url=" + jwks.URL,
		"--sandbox-backend=local", "--log-level=warn", "--ssh-addr=" + sshAddr}
	s.start()
	defer s.stop()

	bus := s.bus(ctx)
	defer bus.Close()
	if _, err := eventbus.Serve(ctx, bus, events.Hold, "billing", func(_ context.Context, r events.HoldRequestV1) (events.HoldReplyV1, error) {
		return events.HoldReplyV1{HoldID: "hold-" + r.SandboxID}, nil
	}); err != nil {
		t.Fatal(err)
	}
	keys := &keyOwners{owners: map[string]events.SSHKeyOwnerV1{}, used: map[string]int{}}
	if _, err := eventbus.Serve(ctx, bus, events.SSHKeyLookup, "identity", keys.lookup); err != nil {
		t.Fatal(err)
	}

	var pool struct {
		ID string `json:"id"`
	}
	if code := s.do("POST", "/pools", staff, `{"name":"SSH pool","region":"here","backend":"local","vendor_org_id":"org-vendor"}`, &pool); code != 201 {
		t.Fatalf("create pool: %d", code)
	}
	if code := s.do("POST", "/pools/"+pool.ID+"/nodes", staff, `{"name":"n1","cpu_millis":64000,"memory_bytes":68719476736,"devices":[{"index":0,"gpu_model":"h100-80gb"}]}`, nil); code != 201 {
		t.Fatalf("add node: %d", code)
	}
	publishCompute(ctx, t, bus, "lst-ssh", "org-vendor", pool.ID, "h100-80gb")
	sb := s.launchListed(sme, "lst-ssh", "jupyterlab")
	s.waitState(sme, sb.ID, "running")

	member, memberKey := newSSHClient(t, sshAddr)
	keys.set(memberKey, &events.SSHKeyOwnerV1{UserID: "u-sme", Email: "sme@example.com",
		Memberships: []events.SSHKeyMembershipV1{{OrgID: "org-sme", OrgKind: "sme", Role: "owner"}}})

	// A shell on a pty, as the browser terminal: a command typed, its output read.
	out, errOut, code := member.ssh([]byte("echo ma''rker-$((40+2))\nexit\n"), sb.ID, "-tt")
	if !strings.Contains(out, "marker-42") {
		t.Fatalf("shell: exit %d, stdout %q, stderr %q\n%s", code, out, errOut, s.log.String())
	}
	// exec without a pty: separate streams and the exit status.
	out, errOut, code = member.ssh(nil, sb.ID, "echo out; echo err >&2; exit 7")
	if out != "out\n" || errOut != "err\n" || code != 7 {
		t.Fatalf("exec: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// Binary-clean: every byte value, both ways.
	blob := make([]byte, 256<<10)
	_, _ = rand.Read(blob)
	out, errOut, code = member.ssh(blob, sb.ID, "cat")
	if code != 0 || out != string(blob) {
		t.Fatalf("cat: exit %d, %d bytes back of %d, stderr %q", code, len(out), len(blob), errOut)
	}

	// scp (over SFTP) up and down, into the home and back; the file belongs to the sandbox's user.
	up := filepath.Join(member.home, "up.bin")
	if err := os.WriteFile(up, blob, 0o644); err != nil {
		t.Fatal(err)
	}
	scp := func(args ...string) {
		t.Helper()
		if out, errOut, code := member.run(nil, "scp", append(append(member.opts(), "-P", member.port), args...)...); code != 0 {
			t.Fatalf("scp %v: exit %d: %s %s", args, code, out, errOut)
		}
	}
	scp(up, sb.ID+"@"+member.host+":up.bin")
	scp(sb.ID+"@"+member.host+":/home/sandbox/up.bin", filepath.Join(member.home, "down.bin"))
	if got, _ := os.ReadFile(filepath.Join(member.home, "down.bin")); !bytes.Equal(got, blob) {
		t.Fatalf("scp round trip: %d bytes, want %d", len(got), len(blob))
	}
	if out, _, _ := member.ssh(nil, sb.ID, "stat -c %u:%g /home/sandbox/up.bin; sha256sum < /home/sandbox/up.bin"); !strings.HasPrefix(out, "0:0\n") {
		t.Fatalf("uploaded file as the sandbox sees it: %q", out)
	}
	// Nothing outside the home over SFTP.
	if _, errOut, code := member.run(nil, "scp", append(append(member.opts(), "-P", member.port), sb.ID+"@"+member.host+":/etc/passwd", filepath.Join(member.home, "passwd"))...); code == 0 {
		t.Fatalf("scp of /etc/passwd succeeded: %s", errOut)
	}

	// rsync -e ssh.
	src := filepath.Join(member.home, "tree")
	if err := os.MkdirAll(filepath.Join(src, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(src, "sub", "a.txt"), []byte("rsynced\n"), 0o644)
	rsh := "ssh " + strings.Join(append(member.opts(), "-p", member.port), " ")
	if out, errOut, code := member.run(nil, "rsync", "-a", "-e", rsh, src+"/", sb.ID+"@"+member.host+":tree/"); code != 0 {
		t.Fatalf("rsync: exit %d: %s %s", code, out, errOut)
	}
	if out, _, _ := member.ssh(nil, sb.ID, "cat tree/sub/a.txt"); out != "rsynced\n" {
		t.Fatalf("rsynced file: %q", out)
	}

	// The CLI: `tamarack sandbox ssh` finds the gateway (GET /testbed/ssh) and runs OpenSSH with the same key.
	t.Setenv("TAMARACK_TOKEN", sme)
	cliRun := func(args ...string) (string, string, int) {
		var o, e bytes.Buffer
		code := cli.Main(ctx, append([]string{"sandbox", "ssh", "--url", "http://" + s.addr}, args...),
			cli.Streams{In: strings.NewReader(""), Out: &o, Err: &e, ConfigPath: filepath.Join(member.home, "cli.json")})
		return o.String(), e.String(), code
	}
	cliOpts := []string{sb.ID, "-i", member.key, "--ssh-option", "UserKnownHostsFile=" + filepath.Join(member.home, "known_hosts"),
		"--ssh-option", "StrictHostKeyChecking=accept-new", "--ssh-option", "BatchMode=yes"}
	if out, errOut, code := cliRun(append(cliOpts, "--print")...); code != 0 || !strings.Contains(out, "-p "+member.port+" ") ||
		!strings.Contains(out, sb.ID+"@localhost") {
		t.Fatalf("sandbox ssh --print: exit %d, %q %q", code, out, errOut)
	}
	if out, errOut, code := cliRun(append(cliOpts, "--", "echo via-cli; exit 3")...); out != "via-cli\n" || code != 3 {
		t.Fatalf("sandbox ssh: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if _, errOut, code := cliRun("sbx-nope", "--", "true"); code != cli.ExitNotFound {
		t.Fatalf("sandbox ssh to an unknown sandbox: exit %d, %q", code, errOut)
	}

	// Forwarding: the template's port 8888 (python3 -m http.server) answers; port 22 is refused.
	var fwdOut string
	deadline := time.Now().Add(60 * time.Second)
	for {
		fwdOut, errOut, code = member.ssh([]byte("GET / HTTP/1.0\r\n\r\n"), sb.ID, "-W", "localhost:8888")
		if strings.HasPrefix(fwdOut, "HTTP/1.0 200") || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond) // http.server may still be starting
	}
	if !strings.HasPrefix(fwdOut, "HTTP/1.0 200") {
		t.Fatalf("forward to 8888: exit %d, %q %q", code, fwdOut, errOut)
	}
	if _, errOut, code := member.ssh([]byte("x"), sb.ID, "-W", "localhost:22"); code == 0 || !strings.Contains(errOut, "prohibited") {
		t.Fatalf("forward to 22: exit %d, %q", code, errOut)
	}

	// Refused: a member of another organisation, staff (who are not members), an unknown user name.
	other, otherKey := newSSHClient(t, sshAddr)
	keys.set(otherKey, &events.SSHKeyOwnerV1{UserID: "u-other", Memberships: []events.SSHKeyMembershipV1{{OrgID: "org-other", Role: "owner"}}})
	if _, errOut, code := other.ssh(nil, sb.ID, "true"); code != 255 || !strings.Contains(errOut, "Permission denied") {
		t.Fatalf("another organisation: exit %d, %q", code, errOut)
	}
	staffC, staffKey := newSSHClient(t, sshAddr)
	keys.set(staffKey, &events.SSHKeyOwnerV1{UserID: "u-staff", Staff: true, Memberships: []events.SSHKeyMembershipV1{{OrgID: "org-programme", Role: "owner"}}})
	if _, errOut, code := staffC.ssh(nil, sb.ID, "true"); code != 255 || !strings.Contains(errOut, "Permission denied") {
		t.Fatalf("staff: exit %d, %q", code, errOut)
	}
	if _, _, code := member.ssh(nil, "sbx-nope", "true"); code != 255 {
		t.Fatalf("unknown sandbox: exit %d", code)
	}
	// The key deleted: refused at once.
	keys.set(memberKey, nil)
	if _, errOut, code := member.ssh(nil, sb.ID, "true"); code != 255 || !strings.Contains(errOut, "Permission denied") {
		t.Fatalf("deleted key: exit %d, %q", code, errOut)
	}
	keys.set(memberKey, &events.SSHKeyOwnerV1{UserID: "u-sme", Memberships: []events.SSHKeyMembershipV1{{OrgID: "org-sme", Role: "owner"}}})

	// Audited: who, which key, which sandbox, what kind.
	var audit struct {
		Items []struct {
			Action, Target, Detail string
			ActorUserID            string `json:"actor_user_id"`
		} `json:"items"`
	}
	if code := s.do("GET", "/audit?limit=200", staff, "", &audit); code != 200 {
		t.Fatalf("audit: %d", code)
	}
	kinds := map[string]bool{}
	for _, a := range audit.Items {
		if strings.HasPrefix(a.Action, "ssh_session_") && a.Target == sb.ID && a.ActorUserID == "u-sme" &&
			strings.Contains(a.Detail, ssh.FingerprintSHA256(memberKey)) {
			var d struct{ Kind string }
			_ = json.Unmarshal([]byte(a.Detail), &d)
			kinds[a.Action+" "+d.Kind] = true
		}
	}
	for _, k := range []string{"ssh_session_started shell", "ssh_session_ended shell", "ssh_session_started exec", "ssh_session_ended exec",
		"ssh_session_started sftp", "ssh_session_started port:8888"} {
		if !kinds[k] {
			t.Errorf("audit lacks %q: %v", k, kinds)
		}
	}

	// A stopped sandbox: refused, saying why.
	if code := s.do("POST", "/sandboxes/"+sb.ID+"/stop", sme, "", nil); code != 202 {
		t.Fatalf("stop: %d", code)
	}
	s.waitState(sme, sb.ID, "stopped")
	if _, errOut, code := member.ssh(nil, sb.ID, "true"); code != 255 || !strings.Contains(errOut, "stopped") {
		t.Fatalf("stopped sandbox: exit %d, %q", code, errOut)
	}
}
