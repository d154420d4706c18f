// Package natsauth runs NATS in operator mode (decentralised JWT authentication) for Tamarack: it owns the
// operator, system-account and TAMARACK-account keys, the server configuration that trusts them, and the user
// credentials issued with them: the platform's own (every permission in the TAMARACK account), the system
// account's (to push account updates), and each site agent's, which reach only its own pool's subjects. Users
// are JWTs signed by the account key, so issuing one needs no change to the server; revoking one is an account
// update pushed to the server. It signs nothing by hand (github.com/nats-io/jwt/v2 and nkeys do) and knows no
// service: only the subject root of agents, AgentRoot.
//
// An agent's user (AgentCreds, Scope{Prefix, PoolID, AgentID}) is allowed exactly this, and nothing else:
//
//	publish    <prefix.>tamarack.agent.<pool>.<agent>.>      its events and terminal/log streams; a JetStream
//	                                                          publish is a plain publish with a reply inbox
//	subscribe  <prefix.>tamarack.agent.<pool>.<agent>.>      the platform's commands to it
//	subscribe  _INBOX_AGENT.<pool>.<agent>.>                  its reply inboxes (Scope.InboxPrefix; the agent
//	                                                          must connect with nats.CustomInboxPrefix): PubAcks
//	                                                          of its JetStream publishes, answers to its requests
//	responses  allow_responses: one reply to each request it receives, within ResponseTTL
//
// So no $JS.API (no stream or consumer management, no stream reads, no account info), no _INBOX.> of others,
// no other pool's or agent's subjects, no platform events. <prefix.> is the bus prefix tests use
// (eventbus.Options.Prefix), empty in production.
//
// Keys live in one directory (Save, Load): *.nk seeds (0600) and *.jwt claims of the operator, the system
// account and the TAMARACK account; Revoke rewrites account.jwt there. Whoever can read the directory can mint
// any TAMARACK user: keep it with the platform, never with an agent.
package natsauth

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// AccountName is the name of the platform's account, in which every Tamarack stream and every agent lives.
const AccountName = "TAMARACK"

// Keys are the operator, the system account and the TAMARACK account, with their signed claims.
type Keys struct {
	mu       sync.Mutex
	dir      string // where Save wrote or Load read; Revoke persists there
	operator nkeys.KeyPair
	system   nkeys.KeyPair
	account  nkeys.KeyPair
	// The signed claims; the account's changes with each revocation.
	operatorJWT, systemJWT, accountJWT string
}

// The files of a keys directory.
const (
	operatorSeedFile = "operator.nk"
	operatorJWTFile  = "operator.jwt"
	systemSeedFile   = "system.nk"
	systemJWTFile    = "system.jwt"
	accountSeedFile  = "account.nk"
	accountJWTFile   = "account.jwt"
)

// Generate makes a new operator, system account and TAMARACK account with JetStream enabled and unlimited.
func Generate() (*Keys, error) {
	op, err := nkeys.CreateOperator()
	if err != nil {
		return nil, err
	}
	sys, err := nkeys.CreateAccount()
	if err != nil {
		return nil, err
	}
	acc, err := nkeys.CreateAccount()
	if err != nil {
		return nil, err
	}
	opPub, _ := op.PublicKey()
	sysPub, _ := sys.PublicKey()
	accPub, _ := acc.PublicKey()

	oc := jwt.NewOperatorClaims(opPub)
	oc.Name = "tamarack"
	oc.SystemAccount = sysPub
	opJWT, err := oc.Encode(op)
	if err != nil {
		return nil, fmt.Errorf("sign operator: %w", err)
	}
	sc := jwt.NewAccountClaims(sysPub)
	sc.Name = "SYS"
	sysJWT, err := sc.Encode(op)
	if err != nil {
		return nil, fmt.Errorf("sign system account: %w", err)
	}
	ac := jwt.NewAccountClaims(accPub)
	ac.Name = AccountName
	// Zero disables JetStream; NoLimit (-1) enables it without limits (retention is set per stream).
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: jwt.NoLimit, DiskStorage: jwt.NoLimit,
		Streams: jwt.NoLimit, Consumer: jwt.NoLimit, MaxAckPending: jwt.NoLimit}
	accJWT, err := ac.Encode(op)
	if err != nil {
		return nil, fmt.Errorf("sign account: %w", err)
	}
	return &Keys{operator: op, system: sys, account: acc, operatorJWT: opJWT, systemJWT: sysJWT, accountJWT: accJWT}, nil
}

// Exists reports whether dir holds keys (its operator seed), so that callers generate only where none are.
func Exists(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, operatorSeedFile))
	return err == nil
}

// LoadOrGenerate loads the keys in dir, or generates and saves them there when dir holds none.
func LoadOrGenerate(dir string) (k *Keys, created bool, err error) {
	if Exists(dir) {
		k, err = Load(dir)
		return k, false, err
	}
	if k, err = Generate(); err != nil {
		return nil, false, err
	}
	if err := k.Save(dir); err != nil {
		return nil, false, err
	}
	return k, true, nil
}

// Save writes the keys into dir (created 0700): seeds 0600, claims 0644. Later revocations are written there.
func (k *Keys) Save(dir string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("nats keys: %w", err)
	}
	for _, f := range []struct {
		name string
		kp   nkeys.KeyPair
		jwt  string
	}{{"operator", k.operator, k.operatorJWT}, {"system", k.system, k.systemJWT}, {"account", k.account, k.accountJWT}} {
		seed, err := f.kp.Seed()
		if err != nil {
			return err
		}
		if err := writeFile(filepath.Join(dir, f.name+".nk"), append(seed, '\n'), 0o600); err != nil {
			return err
		}
		if err := writeFile(filepath.Join(dir, f.name+".jwt"), []byte(f.jwt+"\n"), 0o644); err != nil {
			return err
		}
	}
	k.dir = dir
	return nil
}

// Load reads the keys Save wrote, and checks that the claims belong to the seeds and to one another.
func Load(dir string) (*Keys, error) {
	read := func(name string) (string, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return "", fmt.Errorf("nats keys in %s: %w (make them with `tamarack nats-auth init`)", dir, err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	k := &Keys{dir: dir}
	for _, f := range []struct {
		seed, jwt string
		kp        *nkeys.KeyPair
		claims    *string
	}{{operatorSeedFile, operatorJWTFile, &k.operator, &k.operatorJWT}, {systemSeedFile, systemJWTFile, &k.system, &k.systemJWT},
		{accountSeedFile, accountJWTFile, &k.account, &k.accountJWT}} {
		seed, err := read(f.seed)
		if err != nil {
			return nil, err
		}
		if *f.kp, err = nkeys.FromSeed([]byte(seed)); err != nil {
			return nil, fmt.Errorf("nats keys: %s: %w", filepath.Join(dir, f.seed), err)
		}
		if *f.claims, err = read(f.jwt); err != nil {
			return nil, err
		}
	}
	if err := k.check(); err != nil {
		return nil, fmt.Errorf("nats keys in %s: %w", dir, err)
	}
	return k, nil
}

// check verifies that each JWT is the claims of its seed's public key, signed by the operator.
func (k *Keys) check() error {
	opPub, err := k.operator.PublicKey()
	if err != nil || !nkeys.IsValidPublicOperatorKey(opPub) {
		return errors.New("operator.nk is not an operator seed")
	}
	oc, err := jwt.DecodeOperatorClaims(k.operatorJWT)
	if err != nil || oc.Subject != opPub {
		return fmt.Errorf("operator.jwt is not the operator's claims (%v)", err)
	}
	for _, a := range []struct {
		name string
		kp   nkeys.KeyPair
		jwt  string
	}{{"system", k.system, k.systemJWT}, {"account", k.account, k.accountJWT}} {
		pub, err := a.kp.PublicKey()
		if err != nil || !nkeys.IsValidPublicAccountKey(pub) {
			return fmt.Errorf("%s.nk is not an account seed", a.name)
		}
		ac, err := jwt.DecodeAccountClaims(a.jwt)
		if err != nil || ac.Subject != pub || ac.Issuer != opPub {
			return fmt.Errorf("%s.jwt is not that account's claims signed by this operator (%v)", a.name, err)
		}
	}
	sysPub, _ := k.system.PublicKey()
	if oc.SystemAccount != sysPub {
		return errors.New("the operator names another system account")
	}
	return nil
}

// Operator is the operator's public key (servers trust it).
func (k *Keys) Operator() string { pub, _ := k.operator.PublicKey(); return pub }

// SystemAccount is the system account's public key.
func (k *Keys) SystemAccount() string { pub, _ := k.system.PublicKey(); return pub }

// Account is the TAMARACK account's public key.
func (k *Keys) Account() string { pub, _ := k.account.PublicKey(); return pub }

// AccountJWT is the TAMARACK account's current claims, with every revocation so far.
func (k *Keys) AccountJWT() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.accountJWT
}

// Revoke refuses the user userPub from now on: it adds the user to the account's revocations, writes the new
// account claims into the keys directory (when the keys were saved or loaded), and returns them. The server
// learns of it only when they are pushed (PushAccount, or Apply at the next start of an embedded server).
// When the keys came from a directory, the account is re-read first, so a revocation written by another
// process is kept.
func (k *Keys) Revoke(userPub string) (accountJWT string, err error) {
	if !nkeys.IsValidPublicUserKey(userPub) {
		return "", fmt.Errorf("revoke %q: not a user public key", userPub)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	current := k.accountJWT
	if k.dir != "" {
		b, err := os.ReadFile(filepath.Join(k.dir, accountJWTFile))
		if err != nil {
			return "", fmt.Errorf("revoke: %w", err)
		}
		current = strings.TrimSpace(string(b))
	}
	ac, err := jwt.DecodeAccountClaims(current)
	if err != nil {
		return "", fmt.Errorf("revoke: account claims: %w", err)
	}
	if ac.Subject != k.Account() {
		return "", errors.New("revoke: the stored account claims are another account's")
	}
	ac.RevokeAt(userPub, time.Now())
	signed, err := ac.Encode(k.operator)
	if err != nil {
		return "", fmt.Errorf("revoke: sign account: %w", err)
	}
	if k.dir != "" {
		if err := writeFile(filepath.Join(k.dir, accountJWTFile), []byte(signed+"\n"), 0o644); err != nil {
			return "", fmt.Errorf("revoke: %w", err)
		}
	}
	k.accountJWT = signed
	return signed, nil
}

// writeFile replaces path atomically (a reader never sees half a key) with mode perm.
func writeFile(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
