package eventbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tamarack-ai/tamarack/platform/problem"
)

// Endpoint declares a request/reply subject (core NATS, not captured by any stream), e.g.
// var Hold = eventbus.Endpoint[HoldRequestV1, HoldReplyV1]{Name: "tamarack.billing.hold.v1"}.
type Endpoint[Req Payload, Resp any] struct {
	Name string
}

// ErrNoResponder means nobody serves the endpoint or it did not answer in time: callers treat it as "no".
var ErrNoResponder = errors.New("no responder")

type reply[Resp any] struct {
	Data  *Resp         `json:"data,omitempty"`
	Error *replyProblem `json:"error,omitempty"`
}

type replyProblem struct {
	Status int            `json:"status"`
	Code   string         `json:"code"`
	Title  string         `json:"title"`
	Detail string         `json:"detail,omitempty"`
	Extra  map[string]any `json:"extra,omitempty"`
}

// DefaultCallTimeout is how long CallWithin waits when its caller sets no timeout.
const DefaultCallTimeout = 5 * time.Second

// CallWithin is Call that waits at most d (DefaultCallTimeout when d <= 0): a service's request to another
// service is answered in seconds or treated as unanswered.
func CallWithin[Req Payload, Resp any](ctx context.Context, b *Bus, d time.Duration, e Endpoint[Req, Resp], req Req) (Resp, error) {
	if d <= 0 {
		d = DefaultCallTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return Call(ctx, b, e, req)
}

// Call sends req and waits for the reply until ctx's deadline. A problem returned by the server comes back
// as a *problem.Problem with the same code.
func Call[Req Payload, Resp any](ctx context.Context, b *Bus, e Endpoint[Req, Resp], req Req) (Resp, error) {
	var zero Resp
	if err := req.Validate(); err != nil {
		return zero, fmt.Errorf("call %s: invalid request: %w", e.Name, err)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return zero, err
	}
	m, err := b.nc.RequestWithContext(ctx, b.Subject(e.Name), body)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
			return zero, fmt.Errorf("call %s: %w", e.Name, ErrNoResponder)
		}
		return zero, fmt.Errorf("call %s: %w", e.Name, err)
	}
	var r reply[Resp]
	if err := json.Unmarshal(m.Data, &r); err != nil {
		return zero, fmt.Errorf("call %s: bad reply: %w", e.Name, err)
	}
	if r.Error != nil {
		p := problem.New(r.Error.Status, r.Error.Code, r.Error.Title)
		p.Detail = r.Error.Detail
		p.Extra = r.Error.Extra
		return zero, p
	}
	if r.Data == nil {
		return zero, fmt.Errorf("call %s: empty reply", e.Name)
	}
	return *r.Data, nil
}

// Serve answers requests on e in queue group queue (one reply per request across all processes of a service)
// until the returned subscription is drained or ctx ends.
func Serve[Req Payload, Resp any](ctx context.Context, b *Bus, e Endpoint[Req, Resp], queue string,
	h func(context.Context, Req) (Resp, error)) (*nats.Subscription, error) {
	sub, err := b.nc.QueueSubscribe(b.Subject(e.Name), queue, func(m *nats.Msg) {
		var out reply[Resp]
		var req Req
		err := json.Unmarshal(m.Data, &req)
		if err == nil {
			err = req.Validate()
			if err != nil {
				err = problem.New(http.StatusBadRequest, "invalid_request", "Invalid request.").WithDetail("%v", err)
			}
		} else {
			err = problem.New(http.StatusBadRequest, "invalid_request", "Invalid request.").WithDetail("%v", err)
		}
		if err == nil {
			var resp Resp
			resp, err = h(ctx, req)
			if err == nil {
				out.Data = &resp
			}
		}
		if err != nil {
			if p, ok := problem.From(err); ok {
				out.Error = &replyProblem{Status: p.Status, Code: p.Code, Title: p.Title, Detail: p.Detail, Extra: p.Extra}
			} else {
				b.log.Error("request handler failed", "subject", e.Name, "err", err)
				out.Error = &replyProblem{Status: 500, Code: "internal", Title: "Internal error."}
			}
		}
		body, _ := json.Marshal(out)
		_ = m.Respond(body)
	})
	if err != nil {
		return nil, fmt.Errorf("serve %s: %w", e.Name, err)
	}
	go func() {
		<-ctx.Done()
		_ = sub.Drain()
	}()
	return sub, nil
}
