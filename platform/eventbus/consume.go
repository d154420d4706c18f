package eventbus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ConsumeOptions configure a durable pull consumer.
type ConsumeOptions struct {
	// Durable names the consumer; every process of a service uses the same name so that they share the work.
	Durable string
	// Batch is the most messages handled at once (ConsumeBatch) or fetched at once (Consume). Default 256.
	Batch int
	// AckWait is how long JetStream waits before redelivering an unacknowledged message. Default 30s.
	AckWait time.Duration
	// IdleWait is how long one fetch waits for the first message. Default 2s.
	IdleWait time.Duration
}

func (o ConsumeOptions) withDefaults() ConsumeOptions {
	if o.Batch <= 0 {
		o.Batch = 256
	}
	if o.AckWait <= 0 {
		o.AckWait = 30 * time.Second
	}
	if o.IdleWait <= 0 {
		o.IdleWait = 2 * time.Second
	}
	return o
}

// Consume handles events of s one at a time until ctx ends. A message that does not decode or validate is
// terminated (logged and counted as poison), never retried; a handler error is retried later with backoff, so
// handlers must be idempotent by event ID.
func Consume[T Payload](ctx context.Context, b *Bus, s Subject[T], opt ConsumeOptions, h func(context.Context, Event[T]) error) error {
	return consume(ctx, b, s, opt, func(ctx context.Context, evs []Event[T], msgs []jetstream.Msg) {
		for i, ev := range evs {
			err := h(ctx, ev)
			settle(b, s.Name, msgs[i], ev.Delivered, err)
		}
	})
}

// ConsumeBatch handles up to opt.Batch events of s at once until ctx ends, acknowledging all of them when h
// succeeds and retrying all when it fails: h must apply a batch atomically and idempotently.
func ConsumeBatch[T Payload](ctx context.Context, b *Bus, s Subject[T], opt ConsumeOptions, h func(context.Context, []Event[T]) error) error {
	return consume(ctx, b, s, opt, func(ctx context.Context, evs []Event[T], msgs []jetstream.Msg) {
		if len(evs) == 0 {
			return
		}
		err := h(ctx, evs)
		if err == nil {
			// The common case costs one counter update a batch, not one a message.
			for _, m := range msgs {
				_ = m.Ack()
			}
			b.metrics.consumed.WithLabelValues(s.Name, "ok").Add(float64(len(msgs)))
			return
		}
		for i, m := range msgs {
			settle(b, s.Name, m, evs[i].Delivered, err)
		}
	})
}

func settle(b *Bus, subject string, m jetstream.Msg, delivered uint64, err error) {
	if err == nil {
		_ = m.Ack()
		b.metrics.consumed.WithLabelValues(subject, "ok").Inc()
		return
	}
	if errors.Is(err, context.Canceled) {
		// Shutting down: let JetStream redeliver after AckWait; nothing was committed.
		return
	}
	b.metrics.consumed.WithLabelValues(subject, "retry").Inc()
	b.log.Warn("event handler failed; will retry", "subject", subject, "delivered", delivered, "err", err)
	_ = m.NakWithDelay(backoff(delivered))
}

func backoff(delivered uint64) time.Duration {
	d := 100 * time.Millisecond << min(delivered, 8)
	return min(d, 30*time.Second)
}

func consume[T Payload](ctx context.Context, b *Bus, s Subject[T], opt ConsumeOptions,
	handle func(context.Context, []Event[T], []jetstream.Msg)) error {
	opt = opt.withDefaults()
	if opt.Durable == "" {
		return fmt.Errorf("consume %s: no durable name", s.Name)
	}
	cons, err := b.js.CreateOrUpdateConsumer(ctx, b.StreamName(s.Stream), jetstream.ConsumerConfig{
		Durable:       durableName(b, opt.Durable),
		FilterSubject: b.Subject(s.Name),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       opt.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: max(opt.Batch*4, 1024),
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("consumer %s on %s: %w", opt.Durable, s.Name, err)
	}
	prefixLen := len(b.Subject(s.Name)) - len(s.Name)
	for ctx.Err() == nil {
		// Take what is there at once; when nothing is, wait for the first message to keep latency low.
		batch, err := cons.FetchNoWait(opt.Batch)
		if err != nil {
			if WaitOrDone(ctx, 250*time.Millisecond) {
				return nil
			}
			continue
		}
		msgs := collect(batch)
		if len(msgs) == 0 {
			batch, err = cons.Fetch(opt.Batch, jetstream.FetchMaxWait(opt.IdleWait))
			if err != nil {
				if WaitOrDone(ctx, 250*time.Millisecond) {
					return nil
				}
				continue
			}
			msgs = collect(batch)
		}
		if len(msgs) == 0 {
			continue
		}
		evs := make([]Event[T], 0, len(msgs))
		good := make([]jetstream.Msg, 0, len(msgs))
		for _, m := range msgs {
			ev, err := decode[T](m, prefixLen)
			if err != nil {
				b.metrics.consumed.WithLabelValues(s.Name, "poison").Inc()
				b.log.Error("poison event terminated", "subject", s.Name, "err", err)
				_ = m.Term()
				continue
			}
			evs = append(evs, ev)
			good = append(good, m)
		}
		handle(ctx, evs, good)
	}
	return nil
}

func collect(batch jetstream.MessageBatch) []jetstream.Msg {
	var msgs []jetstream.Msg
	for m := range batch.Messages() {
		msgs = append(msgs, m)
	}
	return msgs
}

func durableName(b *Bus, name string) string {
	if b.prefix == "" {
		return name
	}
	return b.StreamName(name)
}

// WaitOrDone waits d and reports whether ctx ended meanwhile (a consumer's pause between retries).
func WaitOrDone(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return true
	case <-t.C:
		return false
	}
}
