package testbed

import (
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/tamarack-ai/tamarack/platform/web"
)

// Site agents' HTTP API: enrolment tokens and agents under their pool, and the enrolment itself.

type agentTokenRequest struct {
	Note string `json:"note" doc:"what the token is for, shown in the list (at most 200 characters)"`
}

type agentTokenJSON struct {
	ID        string     `json:"id"`
	PoolID    string     `json:"pool_id"`
	Note      string     `json:"note"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	UsedAt    *time.Time `json:"used_at"`
	AgentID   string     `json:"agent_id,omitempty"`
	RevokedAt *time.Time `json:"revoked_at"`
	// State is usable, used, revoked or expired.
	State string `json:"state"`
}

// newAgentTokenJSON is a token just created: the only time the token itself is shown.
type newAgentTokenJSON struct {
	agentTokenJSON
	Token string `json:"token" doc:"shown once; the agent trades it for its identity with tamarack agent enroll"`
	// Command is what to run on the agent's host.
	Command string `json:"command"`
}

func toAgentTokenJSON(t AgentToken, now time.Time) agentTokenJSON {
	state := "usable"
	switch {
	case t.RevokedAt != nil:
		state = "revoked"
	case t.UsedAt != nil:
		state = "used"
	case !stamp(now).Before(t.ExpiresAt):
		state = "expired"
	}
	return agentTokenJSON{ID: t.ID, PoolID: t.PoolID, Note: t.Note, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt,
		UsedAt: t.UsedAt, AgentID: t.AgentID, RevokedAt: t.RevokedAt, State: state}
}

type agentJSON struct {
	ID            string     `json:"id"`
	PoolID        string     `json:"pool_id"`
	Name          string     `json:"name"`
	Version       string     `json:"version"`
	Backend       string     `json:"backend"`
	Problem       string     `json:"problem,omitempty" doc:"why its backend cannot start sandboxes now, as it reported"`
	CreatedAt     time.Time  `json:"created_at"`
	LastHeartbeat *time.Time `json:"last_heartbeat_at"`
	RevokedAt     *time.Time `json:"revoked_at"`
	// State is connected (a heartbeat within the node timeout), unreachable, never_connected or revoked.
	State   string     `json:"state"`
	Nodes   []nodeJSON `json:"nodes"`
	Devices int        `json:"devices"`
}

func (h handler) toAgentJSON(v AgentView, now time.Time) agentJSON {
	state := "connected"
	switch {
	case v.RevokedAt != nil:
		state = "revoked"
	case v.HeartbeatAt == nil:
		state = "never_connected"
	case now.Sub(*v.HeartbeatAt) > h.svc.opts.NodeTimeout:
		state = "unreachable"
	}
	out := agentJSON{ID: v.ID, PoolID: v.PoolID, Name: v.Name, Version: v.Version, Backend: v.Backend, Problem: v.Problem,
		CreatedAt: v.CreatedAt, LastHeartbeat: v.HeartbeatAt, RevokedAt: v.RevokedAt,
		State: state, Nodes: []nodeJSON{}, Devices: v.Devices}
	for _, n := range v.Nodes {
		out.Nodes = append(out.Nodes, toNodeJSON(n, nil))
	}
	return out
}

type enrolRequest struct {
	Token   string `json:"token" openapi:"required" text:"secret"`
	Name    string `json:"name" openapi:"required" doc:"the agent's name for people, e.g. its host name"`
	Version string `json:"version"`
}

type enrolJSON struct {
	AgentID string `json:"agent_id"`
	PoolID  string `json:"pool_id"`
	// NATSURL is where the agent connects (out); NATSPrefix prefixes every subject (empty in production).
	NATSURL    string `json:"nats_url"`
	NATSPrefix string `json:"nats_prefix"`
	// Creds is the NATS credentials file, confined to the agent's own subjects; empty when the platform's
	// NATS has no accounts (then agents are not isolated from each other: see docs/deployment.md).
	Creds string `json:"creds"`
	// RegistryURL is the platform's image registry (built-in images), where the agent can reach it.
	RegistryURL string `json:"registry_url,omitempty"`
}

func (h handler) createAgentToken(c *fiber.Ctx) error {
	var req agentTokenRequest
	if len(c.Body()) > 0 { // the note is optional, and so is the body
		if err := web.Bind(c, &req); err != nil {
			return err
		}
	}
	t, tok, err := h.svc.CreateAgentToken(c.UserContext(), callerOf(c), c.Params("id"), AgentTokenInput{Note: req.Note})
	if err != nil {
		return err
	}
	url := h.svc.opts.PublicURL
	if url == "" {
		url = c.BaseURL()
	}
	return c.Status(201).JSON(newAgentTokenJSON{agentTokenJSON: toAgentTokenJSON(t, h.svc.clock.Now()), Token: tok,
		Command: "tamarack agent enroll --url " + url + " --token " + tok})
}

func (h handler) agentTokens(c *fiber.Ctx) error {
	list, err := h.svc.AgentTokens(c.UserContext(), callerOf(c), c.Params("id"))
	if err != nil {
		return err
	}
	now := h.svc.clock.Now()
	out := make([]agentTokenJSON, len(list))
	for i, t := range list {
		out[i] = toAgentTokenJSON(t, now)
	}
	return c.JSON(web.List[agentTokenJSON]{Items: out})
}

func (h handler) revokeAgentToken(c *fiber.Ctx) error {
	t, err := h.svc.RevokeAgentToken(c.UserContext(), callerOf(c), c.Params("id"), c.Params("token_id"))
	if err != nil {
		return err
	}
	return c.JSON(toAgentTokenJSON(t, h.svc.clock.Now()))
}

func (h handler) agents(c *fiber.Ctx) error {
	list, err := h.svc.Agents(c.UserContext(), callerOf(c), c.Params("id"))
	if err != nil {
		return err
	}
	now := h.svc.clock.Now()
	out := make([]agentJSON, len(list))
	for i, a := range list {
		out[i] = h.toAgentJSON(a, now)
	}
	return c.JSON(web.List[agentJSON]{Items: out})
}

func (h handler) revokeAgent(c *fiber.Ctx) error {
	a, err := h.svc.RevokeAgent(c.UserContext(), callerOf(c), c.Params("id"), c.Params("agent_id"))
	if err != nil {
		return err
	}
	return c.JSON(h.toAgentJSON(AgentView{Agent: a}, h.svc.clock.Now()))
}

func (h handler) enrol(c *fiber.Ctx) error {
	var req enrolRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	e, err := h.svc.Enrol(c.UserContext(), EnrolInput{Token: req.Token, Name: req.Name, Version: req.Version})
	if err != nil {
		return err
	}
	prefix := ""
	if h.svc.bus != nil {
		prefix = h.svc.bus.Prefix()
	}
	return c.Status(201).JSON(enrolJSON{AgentID: e.Agent.ID, PoolID: e.Agent.PoolID, NATSURL: h.svc.opts.AgentNATSURL,
		NATSPrefix: prefix, Creds: string(e.Creds), RegistryURL: h.svc.opts.AgentRegistryURL})
}
