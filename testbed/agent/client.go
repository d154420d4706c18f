package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/services/events"
	"github.com/tamarack-ai/tamarack/testbed/backend"
)

// Client drives one agent of one pool over NATS: it is the testbed's backend.Backend for the nodes that agent
// runs. Every method is one request to the agent (streams open a pipe first), so the agent's backend, not
// the client, holds the truth; an agent that does not answer makes the call fail with ErrUnreachable
// (which wraps backend.ErrUnavailable).
type Client struct {
	bus           *eventbus.Bus
	pool, agent   string
	kind          string
	callTimeout   time.Duration
	streamTimeout time.Duration
}

// ErrUnreachable: the agent did not answer (not connected, or too slow). The sandbox it runs may be fine.
var ErrUnreachable = fmt.Errorf("%w: the agent did not answer", backend.ErrUnavailable)

// NewClient returns the client of agent agentID of pool poolID, whose backend is of kind (local, slurm,
// kubernetes).
func NewClient(bus *eventbus.Bus, poolID, agentID, kind string) *Client {
	return &Client{bus: bus, pool: poolID, agent: agentID, kind: kind, callTimeout: 10 * time.Second, streamTimeout: 30 * time.Second}
}

// Kind is the kind of the agent's backend.
func (c *Client) Kind() string { return c.kind }

// call sends one command and waits for its answer until ctx's deadline, or the client's call timeout when ctx
// has none.
func call[Req eventbus.Payload, Resp any](ctx context.Context, c *Client, op string, req Req) (Resp, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.callTimeout)
		defer cancel()
	}
	resp, err := eventbus.Call(ctx, c.bus, events.AgentCommand[Req, Resp](c.pool, c.agent, op), req)
	if errors.Is(err, eventbus.ErrNoResponder) {
		if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return resp, ctx.Err()
		}
		return resp, fmt.Errorf("agent %s of pool %s: %w", c.agent, c.pool, ErrUnreachable)
	}
	if err != nil {
		return resp, fromProblem(err)
	}
	return resp, nil
}

func (c *Client) Check(ctx context.Context) error {
	_, err := call[events.AgentEmptyV1, events.AgentEmptyV1](ctx, c, events.AgentOpCheck, events.AgentEmptyV1{})
	return err
}

// Start starts spec, with no image to prepare (the agent's backend default root filesystem).
func (c *Client) Start(ctx context.Context, spec backend.Spec) (backend.Status, error) {
	st, _, err := c.StartImage(ctx, spec, "", nil)
	return st, err
}

// StartImage starts spec from img, which the agent first pulls and unpacks on its own host under the pool's
// image settings; it reports progress on its progress subject meanwhile. It returns what the backend
// observed and the digest of the image it started. ctx must allow for the pull: minutes on a first use.
func (c *Client) StartImage(ctx context.Context, spec backend.Spec, img string, imgSettings map[string]string) (backend.Status, string, error) {
	return c.StartMounted(ctx, spec, img, imgSettings, nil)
}

// StartMounted is StartImage with listings' artifacts, which the agent fetches onto its host (cached by digest)
// and binds read-only into the sandbox. An agent without an artifacts cache answers not_supported.
func (c *Client) StartMounted(ctx context.Context, spec backend.Spec, img string, imgSettings map[string]string,
	mounts []events.AgentMountV1) (backend.Status, string, error) {
	checked := spec
	if checked.Image == "" {
		checked.Image = img // an image brings its own command: the agent or the backend's nodes supply it
	}
	if err := checked.Validate(); err != nil {
		return backend.Status{}, "", err
	}
	req := ToStartV1(spec, img, imgSettings)
	req.Mounts = mounts
	r, err := call[events.AgentStartV1, events.AgentStartedV1](ctx, c, events.AgentOpStart, req)
	if err != nil {
		return backend.Status{}, "", err
	}
	return FromStatusV1(r.Status), r.ImageDigest, nil
}

func (c *Client) Stop(ctx context.Context, id string, grace time.Duration) (backend.Status, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, grace+c.callTimeout)
		defer cancel()
	}
	r, err := call[events.AgentStopV1, events.AgentStatusV1](ctx, c, events.AgentOpStop,
		events.AgentStopV1{SandboxID: id, GraceMS: grace.Milliseconds()})
	return FromStatusV1(r), err
}

func (c *Client) Remove(ctx context.Context, id string) error {
	_, err := call[events.AgentSandboxRefV1, events.AgentEmptyV1](ctx, c, events.AgentOpRemove, events.AgentSandboxRefV1{SandboxID: id})
	return err
}

func (c *Client) Inspect(ctx context.Context, id string) (backend.Status, error) {
	r, err := call[events.AgentSandboxRefV1, events.AgentStatusV1](ctx, c, events.AgentOpInspect, events.AgentSandboxRefV1{SandboxID: id})
	return FromStatusV1(r), err
}

func (c *Client) List(ctx context.Context) ([]backend.Status, error) {
	r, err := call[events.AgentEmptyV1, events.AgentListV1](ctx, c, events.AgentOpList, events.AgentEmptyV1{})
	if err != nil {
		return nil, err
	}
	out := make([]backend.Status, len(r.Sandboxes))
	for i, s := range r.Sandboxes {
		out[i] = FromStatusV1(s)
	}
	return out, nil
}

var _ backend.Backend = (*Client)(nil)
