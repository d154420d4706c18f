package eventbus

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Follow hands h every event of the given subjects (all of one stream) published after it starts, in stream
// order, until ctx ends. Unlike Consume, whose durable consumer shares the events among a service's processes,
// every process that follows sees every event: it is how replicas keep in-memory state (an index, a cache)
// current with each other's writes. Nothing is acknowledged or retried; the ordered consumer resumes after a
// reconnect where it left off. ready, when not nil, is closed once the consumer exists (events published after
// that are seen). Undecodable events are logged and skipped.
func Follow[T Payload](ctx context.Context, b *Bus, subjects []Subject[T], ready chan<- struct{}, h func(context.Context, Event[T])) error {
	if len(subjects) == 0 {
		return fmt.Errorf("follow: no subjects")
	}
	stream := subjects[0].Stream
	filters := make([]string, len(subjects))
	for i, s := range subjects {
		if s.Stream != stream {
			return fmt.Errorf("follow: %s and %s are in different streams", subjects[0].Name, s.Name)
		}
		filters[i] = b.Subject(s.Name)
	}
	cons, err := b.js.OrderedConsumer(ctx, b.StreamName(stream), jetstream.OrderedConsumerConfig{
		FilterSubjects: filters, DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		return fmt.Errorf("follow %s: %w", subjects[0].Name, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("follow %s: %w", subjects[0].Name, err)
	}
	if ready != nil {
		close(ready)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	prefixLen := len(b.Subject(subjects[0].Name)) - len(subjects[0].Name)
	for {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("follow %s: %w", subjects[0].Name, err)
		}
		ev, err := decode[T](m, prefixLen)
		if err != nil {
			b.log.Error("followed event skipped", "subject", m.Subject(), "err", err)
			continue
		}
		h(ctx, ev)
	}
}
