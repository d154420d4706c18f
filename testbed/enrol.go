package testbed

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/platform/web"
)

// Enrolment of site agents: a pool's managers (its vendor's admins, or staff) create one-time tokens; an
// agent trades one for its identity and NATS credentials confined to its own subjects (Credentials). Tokens
// and agents can be revoked; a revoked agent's messages are refused and its credentials revoked on NATS.

// agentTokenTTL is how long an enrolment token stays usable.
const agentTokenTTL = 24 * time.Hour

// Credentials issues and revokes the NATS credentials of agents (natsauth over the platform's account).
// Nil in deployments whose NATS has no accounts: agents then connect without credentials and are not
// isolated from each other, which the enrolment answer says.
type Credentials interface {
	// AgentCreds returns a .creds file allowing only the agent's own subjects, and the user's public key.
	AgentCreds(poolID, agentID string) (creds []byte, user string, err error)
	// Revoke makes the server refuse that user from now on.
	Revoke(ctx context.Context, user string) error
}

// AgentTokenInput creates an enrolment token.
type AgentTokenInput struct {
	Note string // what it is for ("gpu-rack-2"), shown in the list
}

func (in AgentTokenInput) Validate() error {
	var f problem.Fields
	f.Check(len(in.Note) <= 200, "note", "too_long", "at most 200 characters")
	return f.Err()
}

// managedPool returns the pool if c may manage it (lock: for update), as canManagePool says: 404 to
// strangers (the pool is read within the caller's organisation), 403 to its vendor's non-admins.
func managedPool(db *gorm.DB, c web.Principal, poolID string, lock bool) (Pool, error) {
	if c.Staff {
		return poolByID(db, poolID, lock) // staff manage every organisation's pools
	}
	p, err := poolOfVendor(db, c.OrgID, poolID, lock)
	if err != nil {
		return Pool{}, err
	}
	if !c.IsOrgAdmin() {
		return Pool{}, ErrNotPoolOwner
	}
	return p, nil
}

func secret(prefix string) string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// CreateAgentToken returns a new one-time enrolment token for a pool; the token itself is shown only now.
func (s *Service) CreateAgentToken(ctx context.Context, c web.Principal, poolID string, in AgentTokenInput) (AgentToken, string, error) {
	if err := in.Validate(); err != nil {
		return AgentToken{}, "", err
	}
	p, err := managedPool(s.db.WithContext(ctx), c, poolID, false)
	if err != nil {
		return AgentToken{}, "", err
	}
	if !agentRun(p.Backend) {
		return AgentToken{}, "", ErrAgentBackend.WithDetailMsg("problem.pool_not_agent_run.backend", problem.Args{"Pool": p.Name, "Backend": p.Backend})
	}
	tok := secret("tmk_enrol_")
	now := s.clock.Now()
	t := AgentToken{ID: newID("atok"), PoolID: p.ID, TokenHash: hashToken(tok), Note: strings.TrimSpace(in.Note), CreatedBy: c.UserID,
		CreatedAt: stamp(now), ExpiresAt: stamp(now.Add(agentTokenTTL))}
	err = sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error {
		if err := createAgentToken(tx, &t); err != nil {
			return err
		}
		return s.audit(tx, c, p.VendorOrgID, "agent_token.create", t.ID, p.ID)
	})
	return t, tok, err
}

// AgentTokens lists a pool's enrolment tokens, newest first.
func (s *Service) AgentTokens(ctx context.Context, c web.Principal, poolID string) ([]AgentToken, error) {
	if _, err := managedPool(s.db.WithContext(ctx), c, poolID, false); err != nil {
		return nil, err
	}
	return poolAgentTokens(s.db.WithContext(ctx), poolID)
}

// RevokeAgentToken makes an unused token unusable.
func (s *Service) RevokeAgentToken(ctx context.Context, c web.Principal, poolID, id string) (AgentToken, error) {
	p, err := managedPool(s.db.WithContext(ctx), c, poolID, false)
	if err != nil {
		return AgentToken{}, err
	}
	var t AgentToken
	err = sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error {
		var err error
		if t, err = agentTokenOfPool(tx, poolID, id); err != nil {
			return err
		}
		if t.RevokedAt != nil {
			return nil
		}
		t.RevokedAt = stampPtr(s.clock.Now())
		if err := saveAgentToken(tx, &t); err != nil {
			return err
		}
		return s.audit(tx, c, p.VendorOrgID, "agent_token.revoke", t.ID, p.ID)
	})
	return t, err
}

// EnrolInput is what an agent sends with its token.
type EnrolInput struct {
	Token   string
	Name    string // the agent's name for people (its host name by default)
	Version string
}

func (in EnrolInput) Validate() error {
	var f problem.Fields
	f.Check(in.Token != "", "token", "required", "the enrolment token a pool's manager created")
	f.Check(strings.TrimSpace(in.Name) != "" && len(in.Name) <= 100, "name", "required", "1-100 characters")
	f.Check(len(in.Version) <= 100, "version", "too_long", "at most 100 characters")
	return f.Err()
}

// Enrolment is what an enrolled agent needs to connect: its identity, and its NATS credentials (empty when
// the deployment's NATS has no accounts).
type Enrolment struct {
	Agent Agent
	Creds []byte
}

// Enrol trades a one-time token for an agent identity of the token's pool and its NATS credentials. The
// token is spent in the same transaction that records the agent, so two agents racing with one token get
// one identity between them.
func (s *Service) Enrol(ctx context.Context, in EnrolInput) (Enrolment, error) {
	if err := in.Validate(); err != nil {
		return Enrolment{}, err
	}
	now := s.clock.Now()
	var out Enrolment
	err := sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error {
		t, err := agentTokenByHash(tx, hashToken(in.Token))
		if err != nil {
			return err
		}
		if t.UsedAt != nil || t.RevokedAt != nil || !stamp(now).Before(t.ExpiresAt) {
			return ErrBadEnrolToken
		}
		a := Agent{ID: newID("agent"), PoolID: t.PoolID, Name: strings.TrimSpace(in.Name), Version: in.Version, CreatedBy: t.CreatedBy,
			CreatedAt: stamp(now)}
		if s.creds != nil {
			creds, user, err := s.creds.AgentCreds(a.PoolID, a.ID)
			if err != nil {
				return fmt.Errorf("issue agent credentials: %w", err)
			}
			out.Creds, a.NATSUser = creds, user
		}
		if err := createAgent(tx, &a); err != nil {
			return err
		}
		if err := spendAgentToken(tx, t.ID, a.ID, now); err != nil {
			return err
		}
		out.Agent = a
		return nil
	})
	if err != nil {
		return Enrolment{}, err
	}
	s.log.Info("agent enrolled", "pool", out.Agent.PoolID, "agent", out.Agent.ID, "name", out.Agent.Name)
	return out, nil
}

// AgentView is an agent with its nodes.
type AgentView struct {
	Agent
	Nodes []Node
	// Devices counts the devices of its nodes.
	Devices int
}

// Agents lists a pool's agents with their nodes, newest first.
func (s *Service) Agents(ctx context.Context, c web.Principal, poolID string) ([]AgentView, error) {
	if _, err := managedPool(s.db.WithContext(ctx), c, poolID, false); err != nil {
		return nil, err
	}
	db := s.db.WithContext(ctx)
	agents, err := poolAgents(db, poolID)
	if err != nil {
		return nil, err
	}
	out := make([]AgentView, 0, len(agents))
	for _, a := range agents {
		v := AgentView{Agent: a}
		if v.Nodes, err = agentNodes(db, a.ID, poolID); err != nil {
			return nil, err
		}
		n, err := agentDeviceCount(db, a.ID)
		if err != nil {
			return nil, err
		}
		v.Devices = int(n)
		out = append(out, v)
	}
	return out, nil
}

// RevokeAgent ends an agent's enrolment: its credentials are revoked on NATS, its messages refused from now
// on, and its nodes marked down (their sandboxes become unreachable, and end at their last metered instant
// once their booking is over).
func (s *Service) RevokeAgent(ctx context.Context, c web.Principal, poolID, id string) (Agent, error) {
	p, err := managedPool(s.db.WithContext(ctx), c, poolID, false)
	if err != nil {
		return Agent{}, err
	}
	var a Agent
	err = sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error {
		var err error
		if a, err = agentOfPool(tx, poolID, id); err != nil {
			return err
		}
		if a.RevokedAt != nil {
			return nil
		}
		a.RevokedAt = stampPtr(s.clock.Now())
		if err := saveAgent(tx, &a); err != nil {
			return err
		}
		if err := setAgentNodesDown(tx, a.ID); err != nil {
			return err
		}
		return s.audit(tx, c, p.VendorOrgID, "agent.revoke", a.ID, p.ID)
	})
	if err != nil {
		return Agent{}, err
	}
	if s.creds != nil && a.NATSUser != "" {
		if err := s.creds.Revoke(ctx, a.NATSUser); err != nil {
			return a, fmt.Errorf("agent %s revoked here, but not on NATS: %w", a.ID, err)
		}
	}
	if _, err := s.reloadIndex(ctx, 0); err != nil {
		s.log.Warn("reload index after revoking an agent", "err", err)
	}
	return a, nil
}
