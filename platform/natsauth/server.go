package natsauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// ServerConfig is the nats-server configuration that trusts these keys, for an operator to include in their
// own nats.conf (`include "server.conf"`). With jwtDir, the resolver is the nats-based `full` one storing
// account claims in jwtDir: pushed updates (revocations) are kept across server restarts and spread to the
// other members of a cluster. With jwtDir empty it is `MEMORY`: the server accepts pushed updates but forgets
// them when it restarts, back to the preloaded claims, until the platform pushes again.
func (k *Keys) ServerConfig(jwtDir string) string {
	acc := k.AccountJWT()
	var b strings.Builder
	b.WriteString("# Tamarack: NATS operator mode (written by `tamarack nats-auth init`). Every client needs\n")
	b.WriteString("# credentials issued with these keys; the platform's are platform.creds.\n")
	fmt.Fprintf(&b, "operator: %q\n", k.operatorJWT)
	fmt.Fprintf(&b, "system_account: %q\n", k.SystemAccount())
	if jwtDir == "" {
		b.WriteString("resolver: MEMORY\n")
	} else {
		fmt.Fprintf(&b, "resolver: {\n  type: full\n  dir: %q\n  allow_delete: false\n  interval: \"2m\"\n}\n", jwtDir)
	}
	b.WriteString("resolver_preload: {\n")
	fmt.Fprintf(&b, "  %s: %q\n", k.SystemAccount(), k.systemJWT)
	fmt.Fprintf(&b, "  %s: %q\n", k.Account(), acc)
	b.WriteString("}\n")
	return b.String()
}

// Apply configures an embedded server as ServerConfig does an external one, with a memory resolver preloaded
// with the current account claims (revocations included, so a restart keeps them).
//
// An embedded server without authentication keeps its JetStream store under the global account ($G); with
// operator mode the store of the TAMARACK account is named by its public key. When o.StoreDir holds the former
// and not the latter, Apply renames it, so a data directory keeps its streams (and their unconsumed events)
// when it switches to operator mode.
func (k *Keys) Apply(o *server.Options) error {
	oc, err := jwt.DecodeOperatorClaims(k.operatorJWT)
	if err != nil {
		return fmt.Errorf("operator claims: %w", err)
	}
	res := &server.MemAccResolver{}
	if err := res.Store(k.SystemAccount(), k.systemJWT); err != nil {
		return err
	}
	if err := res.Store(k.Account(), k.AccountJWT()); err != nil {
		return err
	}
	o.TrustedOperators = []*jwt.OperatorClaims{oc}
	o.SystemAccount = k.SystemAccount()
	o.AccountResolver = res
	if o.StoreDir != "" {
		global := filepath.Join(o.StoreDir, server.JetStreamStoreDir, server.DEFAULT_GLOBAL_ACCOUNT)
		mine := filepath.Join(o.StoreDir, server.JetStreamStoreDir, k.Account())
		if _, err := os.Stat(global); err == nil {
			if _, err := os.Stat(mine); errors.Is(err, os.ErrNotExist) {
				if err := os.Rename(global, mine); err != nil {
					return fmt.Errorf("move the JetStream store to the %s account: %w", AccountName, err)
				}
			}
		}
	}
	return nil
}

// PushAccount sends account claims to the server(s) nc is connected to ($SYS.REQ.ACCOUNT.<id>.CLAIMS.UPDATE),
// which apply them at once: a revoked user's connections are closed. nc must be a system-account user
// (SystemCreds). In a cluster the first answer is returned; the servers spread the update among themselves.
func PushAccount(ctx context.Context, nc *nats.Conn, accountJWT string) error {
	ac, err := jwt.DecodeAccountClaims(accountJWT)
	if err != nil {
		return fmt.Errorf("push account: %w", err)
	}
	msg, err := nc.RequestWithContext(ctx, fmt.Sprintf("$SYS.REQ.ACCOUNT.%s.CLAIMS.UPDATE", ac.Subject), []byte(accountJWT))
	if err != nil {
		return fmt.Errorf("push account %s: %w", ac.Subject, err)
	}
	var resp struct {
		Data *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"data"`
		Error *struct {
			Code        int    `json:"code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return fmt.Errorf("push account %s: answer %q: %w", ac.Subject, msg.Data, err)
	}
	if resp.Error != nil {
		return fmt.Errorf("push account %s: %s (%d)", ac.Subject, resp.Error.Description, resp.Error.Code)
	}
	if resp.Data == nil {
		return fmt.Errorf("push account %s: unexpected answer %q", ac.Subject, msg.Data)
	}
	return nil
}
