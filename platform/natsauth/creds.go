package natsauth

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// AgentRoot is the root of every agent's subjects: tamarack.agent.<pool>.<agent>.…
const AgentRoot = "tamarack.agent"

// agentInboxRoot is the root of agents' reply inboxes, apart from the _INBOX.> of trusted users.
const agentInboxRoot = "_INBOX_AGENT"

// ResponseTTL is how long an agent may take to answer a request it received (allow_responses): the
// platform's longest wait for an agent's answer must stay below it.
const ResponseTTL = 10 * time.Minute

// Creds are one NATS user's credentials: its JWT and its nkey seed.
type Creds struct {
	JWT  string
	Seed string
	// User is the user's public key: what Revoke takes.
	User string
}

// File is the standard .creds text (nats.UserCredentials and the nats CLI read it).
func (c Creds) File() ([]byte, error) { return jwt.FormatUserConfig(c.JWT, []byte(c.Seed)) }

// WriteFile writes the .creds text to path with mode 0600, atomically.
func (c Creds) WriteFile(path string) error {
	b, err := c.File()
	if err != nil {
		return err
	}
	return writeFile(path, b, 0o600)
}

// ParseCreds reads .creds text back (jwt.ParseDecoratedJWT and ParseDecoratedNKey).
func ParseCreds(file []byte) (Creds, error) {
	j, err := jwt.ParseDecoratedJWT(file)
	if err != nil {
		return Creds{}, fmt.Errorf("creds: %w", err)
	}
	kp, err := jwt.ParseDecoratedNKey(file)
	if err != nil {
		return Creds{}, fmt.Errorf("creds: %w", err)
	}
	seed, _ := kp.Seed()
	pub, _ := kp.PublicKey()
	return Creds{JWT: j, Seed: string(seed), User: pub}, nil
}

// Scope is what one agent may reach.
type Scope struct {
	// Prefix is the bus prefix (eventbus.Options.Prefix) its subjects carry; empty in production.
	Prefix  string
	PoolID  string
	AgentID string
	// TTL limits the credentials' life; zero never expires them (revocation ends them).
	TTL time.Duration
}

// Validate checks that the IDs can be subject tokens: an ID holding '.', '*', '>' or a space would widen the
// permissions to other pools' subjects.
func (s Scope) Validate() error {
	var errs []error
	for _, f := range []struct{ name, v string }{{"pool", s.PoolID}, {"agent", s.AgentID}} {
		if !validToken(f.v) {
			errs = append(errs, fmt.Errorf("%s ID %q: must be non-empty, without '.', '*', '>' or spaces", f.name, f.v))
		}
	}
	if s.Prefix != "" {
		for _, t := range strings.Split(s.Prefix, ".") {
			if !validToken(t) {
				errs = append(errs, fmt.Errorf("prefix %q: not a subject prefix", s.Prefix))
				break
			}
		}
	}
	if s.TTL < 0 {
		errs = append(errs, errors.New("negative TTL"))
	}
	return errors.Join(errs...)
}

// Root is the subject under which everything of the agent lives: <prefix.>tamarack.agent.<pool>.<agent>.
func (s Scope) Root() string {
	r := AgentRoot + "." + s.PoolID + "." + s.AgentID
	if s.Prefix != "" {
		r = s.Prefix + "." + r
	}
	return r
}

// InboxPrefix is the reply-inbox prefix the agent must connect with (nats.CustomInboxPrefix): the only inboxes
// it may subscribe to.
func (s Scope) InboxPrefix() string { return agentInboxRoot + "." + s.PoolID + "." + s.AgentID }

func validToken(t string) bool {
	return t != "" && !strings.ContainsAny(t, ".*> \t\r\n")
}

// PlatformCreds issues a new user of the TAMARACK account with every permission, for the platform's services.
func (k *Keys) PlatformCreds() (Creds, error) {
	return issue(k.account, "tamarack-platform", func(*jwt.UserClaims) {})
}

// SystemCreds issues a new user of the system account: PushAccount needs one.
func (k *Keys) SystemCreds() (Creds, error) {
	return issue(k.system, "tamarack-system", func(*jwt.UserClaims) {})
}

// AgentCreds issues a new user (with its own fresh nkey) that may reach only s's subjects: see the package
// documentation for the exact permissions.
func (k *Keys) AgentCreds(s Scope) (Creds, error) {
	if err := s.Validate(); err != nil {
		return Creds{}, fmt.Errorf("agent creds: %w", err)
	}
	return issue(k.account, "agent-"+s.AgentID, func(uc *jwt.UserClaims) {
		uc.Pub.Allow.Add(s.Root() + ".>")
		uc.Sub.Allow.Add(s.Root()+".>", s.InboxPrefix()+".>")
		uc.Resp = &jwt.ResponsePermission{MaxMsgs: 1, Expires: ResponseTTL}
		uc.Tags.Add("pool:"+s.PoolID, "agent:"+s.AgentID)
		if s.TTL > 0 {
			uc.Expires = time.Now().Add(s.TTL).Unix()
		}
	})
}

// issue signs a new user's claims with the account key signer.
func issue(signer nkeys.KeyPair, name string, limit func(*jwt.UserClaims)) (Creds, error) {
	u, err := nkeys.CreateUser()
	if err != nil {
		return Creds{}, err
	}
	pub, _ := u.PublicKey()
	seed, _ := u.Seed()
	uc := jwt.NewUserClaims(pub)
	uc.Name = name
	limit(uc)
	vr := jwt.CreateValidationResults()
	uc.Validate(vr)
	if vr.IsBlocking(true) {
		return Creds{}, fmt.Errorf("user claims of %s: %v", name, vr.Errors())
	}
	signed, err := uc.Encode(signer)
	if err != nil {
		return Creds{}, fmt.Errorf("sign user %s: %w", name, err)
	}
	return Creds{JWT: signed, Seed: string(seed), User: pub}, nil
}
