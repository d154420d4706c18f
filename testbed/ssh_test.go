package testbed

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/services/events"
)

// fakeKeys stands in for identity's key lookup.
type fakeKeys struct {
	mu     sync.Mutex
	owners map[string]events.SSHKeyOwnerV1
}

func (k *fakeKeys) LookupSSHKey(_ context.Context, fp string, _ bool) (events.SSHKeyOwnerV1, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	o, ok := k.owners[fp]
	if !ok {
		return o, problem.New(404, "ssh_key_not_found", "No such SSH key.")
	}
	return o, nil
}

func newSigner(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSSHGatewayRules drives the gateway with Go's SSH client on the simulator (which has no Exec): members of
// the sandbox's organisation get in, others (staff included) and unknown keys do not; a command without a pty
// on a backend that cannot is refused with a message; a port the template does not declare is refused. The real
// OpenSSH client against real sandboxes is cmd/tamarack's TestSSHGateway.
func TestSSHGatewayRules(t *testing.T) {
	eachFixture(t, 1, 8, Options{}, func(t *testing.T, f *fixture) {
		sb := f.launch(t, sme(), 1, 30)
		if got := f.get(t, sb.ID); got.State != StateRunning {
			t.Fatalf("sandbox %s", got.State)
		}
		keyPath := filepath.Join(t.TempDir(), "host_key")
		hostKey, err := HostKey(keyPath)
		if err != nil {
			t.Fatal(err)
		}
		// Made once, kept: the same key after a restart.
		if again, err := HostKey(keyPath); err != nil || !bytes.Equal(again.PublicKey().Marshal(), hostKey.PublicKey().Marshal()) {
			t.Fatalf("host key not kept: %v", err)
		}
		member, outsider, staff, unknown := newSigner(t), newSigner(t), newSigner(t), newSigner(t)
		keys := &fakeKeys{owners: map[string]events.SSHKeyOwnerV1{
			ssh.FingerprintSHA256(member.PublicKey()):   {UserID: "u-sme", Memberships: []events.SSHKeyMembershipV1{{OrgID: smeOrg, Role: "member"}}},
			ssh.FingerprintSHA256(outsider.PublicKey()): {UserID: "u-other", Memberships: []events.SSHKeyMembershipV1{{OrgID: otherOrg, Role: "owner"}}},
			ssh.FingerprintSHA256(staff.PublicKey()):    {UserID: "u-staff", Staff: true},
		}}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- f.svc.ServeSSH(ctx, ln, SSHConfig{HostKey: hostKey, Keys: keys}) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("ServeSSH: %v", err)
			}
		}()
		dial := func(user string, s ssh.Signer) (*ssh.Client, error) {
			return ssh.Dial("tcp", ln.Addr().String(), &ssh.ClientConfig{User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(s)},
				HostKeyCallback: ssh.FixedHostKey(hostKey.PublicKey()), Timeout: 30 * time.Second})
		}
		for name, s := range map[string]ssh.Signer{"another organisation": outsider, "staff": staff, "unknown key": unknown} {
			if c, err := dial(sb.ID, s); err == nil {
				c.Close()
				t.Fatalf("%s got in", name)
			}
		}
		if c, err := dial("sbx-missing", member); err == nil {
			c.Close()
			t.Fatal("an unknown sandbox let the member in")
		}
		c, err := dial(sb.ID, member)
		if err != nil {
			t.Fatalf("member: %v", err)
		}
		defer c.Close()
		sess, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		sess.Stderr = &stderr
		err = sess.Run("true")
		var exit *ssh.ExitError
		if !errors.As(err, &exit) || exit.ExitStatus() != 1 || !strings.Contains(stderr.String(), "not supported on this pool") {
			t.Fatalf("exec on the simulator: %v, %q", err, stderr.String())
		}
		if _, err := c.Dial("tcp", "localhost:22"); err == nil || !strings.Contains(err.Error(), "prohibited") {
			t.Fatalf("forward to an undeclared port: %v", err)
		}
	})
}
