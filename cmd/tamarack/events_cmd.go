package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tamarack-ai/tamarack/platform/eventbus"
)

// eventsCmd prints the events of a stream as JSON lines: `tamarack events --subject tamarack.testbed.sandbox.usage.v1`.
// It reads the running server's JetStream (through <data>/nats.url and the credentials beside it, or --nats
// with --nats-creds or --nats-auth-dir) and never consumes durably, so it disturbs no service.
func eventsCmd(ctx context.Context, c *config, stream, subject string, last int, follow bool, stdout io.Writer) error {
	if c.NATS == "" {
		b, err := os.ReadFile(filepath.Join(c.Data, "nats.url"))
		if err != nil {
			return fmt.Errorf("no --nats and no running server's %s: start `tamarack serve` first", filepath.Join(c.Data, "nats.url"))
		}
		c.NATS, c.NATSCreds = strings.TrimSpace(string(b)), runningCreds(c)
	}
	keys, err := natsKeys(c, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	opt, err := busOptions(c, keys)
	if err != nil {
		return err
	}
	opt.Name = "tamarack-events"
	bus, err := eventbus.Connect(ctx, opt)
	if err != nil {
		return err
	}
	defer bus.Close()
	if stream == "" {
		stream = streamOf(subject)
	}
	cfg := jetstream.OrderedConsumerConfig{}
	if subject != "" {
		cfg.FilterSubjects = []string{subject}
	}
	if last > 0 {
		s, err := bus.JetStream().Stream(ctx, stream)
		if err != nil {
			return fmt.Errorf("stream %s: %w", stream, err)
		}
		start, err := startOfLast(ctx, s, subject, uint64(last))
		if err != nil {
			return err
		}
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = start
	}
	cons, err := bus.JetStream().OrderedConsumer(ctx, stream, cfg)
	if err != nil {
		return fmt.Errorf("stream %s: %w", stream, err)
	}
	enc := json.NewEncoder(stdout)
	for {
		wait := 2 * time.Second
		if !follow {
			wait = 500 * time.Millisecond
		}
		m, err := cons.Next(jetstream.FetchMaxWait(wait))
		if err != nil {
			if errors.Is(err, jetstream.ErrNoHeartbeat) || errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "timeout") {
				if !follow || ctx.Err() != nil {
					return nil
				}
				continue
			}
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		md, _ := m.Metadata()
		var data any
		_ = json.Unmarshal(m.Data(), &data)
		line := map[string]any{"subject": m.Subject(), "id": m.Headers().Get("ce-id"), "time": m.Headers().Get("ce-time"), "data": data}
		if md != nil {
			line["seq"] = md.Sequence.Stream
		}
		if err := enc.Encode(line); err != nil {
			return err
		}
	}
}

// startOfLast returns the stream sequence from which exactly the last n messages of subject (of the whole
// stream when subject is empty) follow. Other subjects interleave, so for a subject it searches the sequence
// space, asking JetStream how many matching messages are pending from a candidate start: about log2(stream
// length) look-ups, never a read of the messages themselves.
func startOfLast(ctx context.Context, s jetstream.Stream, subject string, n uint64) (uint64, error) {
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	first, lastSeq := max(info.State.FirstSeq, 1), info.State.LastSeq
	if subject == "" {
		if lastSeq >= first+n {
			return lastSeq - n + 1, nil
		}
		return first, nil
	}
	pending := func(from uint64) (uint64, error) {
		c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject},
			DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: from})
		if err != nil {
			return 0, err
		}
		ci, err := c.Info(ctx)
		if err != nil {
			return 0, err
		}
		return ci.NumPending, nil
	}
	// The largest start in [first, lastSeq] from which at least n messages are pending; first when fewer exist.
	lo, hi := first, lastSeq+1
	for lo+1 < hi {
		mid := lo + (hi-lo)/2
		p, err := pending(mid)
		if err != nil {
			return 0, fmt.Errorf("count events of %s: %w", subject, err)
		}
		if p >= n {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo, nil
}

// streamOf guesses the stream from a subject: tamarack.<service>.… is captured by <SERVICE>.
func streamOf(subject string) string {
	parts := strings.Split(subject, ".")
	if len(parts) > 1 && parts[0] == "tamarack" {
		return strings.ToUpper(parts[1])
	}
	return "TESTBED"
}
