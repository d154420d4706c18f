package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/services/events"
)

func authorizedKey(t *testing.T, pub any, comment string) string {
	t.Helper()
	pk, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pk))) + " " + comment
}

func TestSSHKeys(t *testing.T) {
	t.Parallel()
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	weakRSA, _ := rsa.GenerateKey(rand.Reader, 1024)
	ed := authorizedKey(t, edPub, "me@laptop")
	each(t, func(t *testing.T, e *tenv) {
		a := e.signup("keys@example.com", "Org", "sme")
		b := e.signup("other@example.com", "Other", "sme")

		// Validation: all field errors at once, stable codes.
		for _, body := range []map[string]any{
			{"public_key": ""},
			{"public_key": "ssh-ed25519 not-base64"},
			{"public_key": authorizedKey(t, &weakRSA.PublicKey, "weak")},
			{"public_key": ed, "name": strings.Repeat("n", 101)},
		} {
			want(t, e.do("POST", api+"/ssh-keys", a.access, body), 422, "validation_failed")
		}
		r := e.do("POST", api+"/ssh-keys", a.access, map[string]any{"public_key": ed})
		want(t, r, 201, "")
		pk, _, _, _, _ := ssh.ParseAuthorizedKey([]byte(ed))
		if r.str("fingerprint") != ssh.FingerprintSHA256(pk) || r.str("name") != "me@laptop" || r.str("key_type") != "ssh-ed25519" {
			t.Fatalf("added: %s", r.raw)
		}
		// The same key again, by anyone, is refused.
		want(t, e.do("POST", api+"/ssh-keys", a.access, map[string]any{"public_key": ed, "name": "again"}), 409, "ssh_key_exists")
		want(t, e.do("POST", api+"/ssh-keys", b.access, map[string]any{"public_key": ed}), 409, "ssh_key_exists")
		ec := e.do("POST", api+"/ssh-keys", a.access, map[string]any{"public_key": authorizedKey(t, &ecKey.PublicKey, ""), "name": "ci"})
		want(t, ec, 201, "")

		l := e.do("GET", api+"/ssh-keys", a.access, nil)
		want(t, l, 200, "")
		if items := l.body["items"].([]any); len(items) != 2 {
			t.Fatalf("list: %s", l.raw)
		}
		if items := e.do("GET", api+"/ssh-keys", b.access, nil).body["items"].([]any); len(items) != 0 {
			t.Fatal("another user sees the keys")
		}
		// Another user cannot delete it.
		want(t, e.do("DELETE", api+"/ssh-keys/"+r.str("id"), b.access, nil), 404, "ssh_key_not_found")

		// Over NATS, for the SSH gateway.
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		runCtx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.svc.Run(runCtx) }()
		defer func() { stop(); <-done }()
		var o events.SSHKeyOwnerV1
		var err error
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
			if o, err = eventbus.Call(ctx, e.bus, events.SSHKeyLookup, events.SSHKeyLookupV1{Fingerprint: r.str("fingerprint")}); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond) // the responder subscribes asynchronously
		}
		if err != nil || o.UserID != a.userID || o.KeyID != r.str("id") || len(o.Memberships) != 1 || o.Memberships[0].OrgID != a.orgID || o.Staff {
			t.Fatalf("lookup: %+v %v", o, err)
		}
		if items := e.do("GET", api+"/ssh-keys", a.access, nil).body["items"].([]any); items[0].(map[string]any)["last_used_at"] == nil &&
			items[1].(map[string]any)["last_used_at"] == nil {
			t.Fatal("last use not recorded")
		}

		// Deleted: the lookup refuses it at once.
		want(t, e.do("DELETE", api+"/ssh-keys/"+r.str("id"), a.access, nil), 204, "")
		want(t, e.do("DELETE", api+"/ssh-keys/"+r.str("id"), a.access, nil), 404, "ssh_key_not_found")
		if _, err := eventbus.Call(ctx, e.bus, events.SSHKeyLookup, events.SSHKeyLookupV1{Fingerprint: r.str("fingerprint")}); problemCode(err) != "ssh_key_not_found" {
			t.Fatalf("deleted key: %v", err)
		}
	})
}
