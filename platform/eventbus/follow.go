package eventbus

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Follow hands h every event of s published after it starts, in stream order, until ctx ends. Unlike Consume,
// whose durable consumer shares the events among a service's processes, every process that follows sees every
// event: it is how replicas keep in-memory state (an index, a cache) current with each other's writes. Nothing
// is acknowledged or retried; the ordered consumer resumes after a reconnect where it left off. ready, when not
// nil, is closed once the consumer exists (events published after that are seen). Undecodable events are logged
// and skipped. (One subject per consumer: servers before 2.10 take no list of filters.)
func Follow[T Payload](ctx context.Context, b *Bus, s Subject[T], ready chan<- struct{}, h func(context.Context, Event[T])) error {
	cons, err := b.js.OrderedConsumer(ctx, b.StreamName(s.Stream), jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{b.Subject(s.Name)}, DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		return fmt.Errorf("follow %s: %w", s.Name, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("follow %s: %w", s.Name, err)
	}
	if ready != nil {
		close(ready)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	prefixLen := len(b.Subject(s.Name)) - len(s.Name)
	for {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("follow %s: %w", s.Name, err)
		}
		ev, err := decode[T](m, prefixLen)
		if err != nil {
			b.log.Error("followed event skipped", "subject", m.Subject(), "err", err)
			continue
		}
		h(ctx, ev)
	}
}
