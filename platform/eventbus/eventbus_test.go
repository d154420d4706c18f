package eventbus_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/nats-io/nats.go"
	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/dbtest"
	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/natstest"
	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
)

type pingV1 struct {
	N    int    `json:"n"`
	Note string `json:"note"`
}

func (p pingV1) Validate() error {
	if p.N <= 0 {
		return errors.New("n must be positive")
	}
	return nil
}

var (
	pinged     = eventbus.Subject[pingV1]{Stream: "BUSTEST", Name: "tamarack.bustest.ping.created.v1"}
	testStream = eventbus.Stream{Name: "BUSTEST", Subjects: []string{pinged.Name}}
	outboxMig  = sqldb.Migrations{Service: "bustest", FS: fstest.MapFS{"00001_outbox.sql": {Data: []byte(`-- +goose Up
CREATE TABLE bustest_outbox (
    id TEXT PRIMARY KEY, subject TEXT NOT NULL, payload TEXT NOT NULL, created_at BIGINT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX bustest_outbox_created ON bustest_outbox (created_at);
CREATE TABLE bustest_thing (id TEXT PRIMARY KEY);
`)}}}
)

func ensure(t *testing.T, b *eventbus.Bus) {
	t.Helper()
	if err := b.EnsureStreams(context.Background(), testStream); err != nil {
		t.Fatal(err)
	}
}

// collector gathers handled events by ID and counts how often each was seen.
type collector struct {
	mu   sync.Mutex
	seen map[string]int
	data map[string]pingV1
}

func newCollector() *collector { return &collector{seen: map[string]int{}, data: map[string]pingV1{}} }

func (c *collector) add(ev eventbus.Event[pingV1]) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen[ev.ID]++
	c.data[ev.ID] = ev.Data
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The outbox publishes exactly the committed events, with their IDs, and nothing of a rolled-back transaction.
func TestOutboxPublishesCommittedEventsOnly(t *testing.T) {
	t.Parallel()
	natstest.Each(t, func(t *testing.T, b *eventbus.Bus) {
		ensure(t, b)
		dbtest.Each(t, []sqldb.Migrations{outboxMig}, func(t *testing.T, db *gorm.DB) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			o := eventbus.NewOutbox(db, b, "bustest", nil)
			got := newCollector()
			durable := fmt.Sprintf("c-%s", sqldb.DialectOf(db))
			go func() {
				_ = eventbus.Consume(ctx, b, pinged, eventbus.ConsumeOptions{Durable: durable, IdleWait: 200 * time.Millisecond},
					func(_ context.Context, ev eventbus.Event[pingV1]) error {
						// Both engines' subtests share the stream; each counts its own events.
						if strings.HasPrefix(ev.ID, string(sqldb.DialectOf(db))+"-") || ev.ID == "never" {
							got.add(ev)
						}
						return nil
					})
			}()
			relayDone := make(chan struct{})
			go func() { _ = o.Run(ctx); close(relayDone) }()

			for i := 1; i <= 20; i++ {
				err := sqldb.Tx(ctx, db, func(tx *gorm.DB) error {
					if err := tx.Exec(`INSERT INTO bustest_thing (id) VALUES (?)`, fmt.Sprint(i)).Error; err != nil {
						return err
					}
					return eventbus.Write(tx, o, pinged, fmt.Sprintf("%s-ev-%d", sqldb.DialectOf(db), i), pingV1{N: i})
				})
				if err != nil {
					t.Fatal(err)
				}
				o.Kick()
			}
			rolledBack := errors.New("rolled back")
			err := sqldb.Tx(ctx, db, func(tx *gorm.DB) error {
				if err := eventbus.Write(tx, o, pinged, "never", pingV1{N: 99}); err != nil {
					return err
				}
				return rolledBack
			})
			if !errors.Is(err, rolledBack) {
				t.Fatal(err)
			}
			if err := sqldb.Tx(ctx, db, func(tx *gorm.DB) error { return eventbus.Write(tx, o, pinged, "bad", pingV1{N: 0}) }); err == nil {
				t.Fatal("an invalid payload was written to the outbox")
			}
			waitFor(t, "20 events", func() bool { return got.count() == 20 })
			waitFor(t, "empty outbox", func() bool { n, _ := o.Pending(ctx); return n == 0 })
			got.mu.Lock()
			defer got.mu.Unlock()
			if _, ok := got.seen["never"]; ok {
				t.Fatal("an event of a rolled-back transaction was published")
			}
			for id, d := range got.data {
				want := fmt.Sprintf("%s-ev-%d", sqldb.DialectOf(db), d.N)
				if id != want {
					t.Fatalf("event %s carries n=%d", id, d.N)
				}
			}
			cancel()
			<-relayDone
		})
	})
}

// A duplicate publish with the same event ID inside the window is stored once.
func TestPublishDeduplicatesByEventID(t *testing.T) {
	t.Parallel()
	natstest.Each(t, func(t *testing.T, b *eventbus.Bus) {
		ensure(t, b)
		ctx := context.Background()
		for i := 0; i < 3; i++ {
			if err := eventbus.Publish(ctx, b, pinged, "test", "same-id", time.Now(), pingV1{N: 1}); err != nil {
				t.Fatal(err)
			}
		}
		if err := eventbus.Publish(ctx, b, pinged, "test", "other", time.Now(), pingV1{N: 0}); err == nil {
			t.Fatal("an invalid payload was published")
		}
		s, err := b.JetStream().Stream(ctx, b.StreamName("BUSTEST"))
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs != 1 {
			t.Fatalf("stream holds %d messages, want 1", info.State.Msgs)
		}
	})
}

// Poison messages are terminated without reaching the handler; failed handlers are retried until they succeed.
func TestConsumeTerminatesPoisonAndRetriesFailures(t *testing.T) {
	t.Parallel()
	natstest.Each(t, func(t *testing.T, b *eventbus.Bus) {
		ensure(t, b)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		// Raw, invalid messages as a buggy producer would send them.
		for i, body := range []string{`{not json`, `{"n": 0}`} {
			m := nats.NewMsg(b.Subject(pinged.Name))
			m.Header.Set("ce-id", fmt.Sprintf("poison-%d", i))
			m.Data = []byte(body)
			if _, err := b.JetStream().PublishMsg(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
		if err := eventbus.Publish(ctx, b, pinged, "test", "good", time.Now(), pingV1{N: 7}); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		attempts := map[string]int{}
		var handled []int
		go func() {
			_ = eventbus.Consume(ctx, b, pinged, eventbus.ConsumeOptions{Durable: "retry", IdleWait: 200 * time.Millisecond},
				func(_ context.Context, ev eventbus.Event[pingV1]) error {
					mu.Lock()
					defer mu.Unlock()
					attempts[ev.ID]++
					if attempts[ev.ID] < 3 {
						return errors.New("transient")
					}
					handled = append(handled, ev.Data.N)
					return nil
				})
		}()
		waitFor(t, "the good event handled", func() bool { mu.Lock(); defer mu.Unlock(); return len(handled) == 1 })
		mu.Lock()
		defer mu.Unlock()
		if len(attempts) != 1 || attempts["good"] != 3 || handled[0] != 7 {
			t.Fatalf("attempts = %v handled = %v", attempts, handled)
		}
	})
}

func TestConsumeBatchDeliversInBatches(t *testing.T) {
	t.Parallel()
	natstest.Each(t, func(t *testing.T, b *eventbus.Bus) {
		ensure(t, b)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var futures int
		for i := 1; i <= 500; i++ {
			if _, err := eventbus.PublishAsync(b, pinged, "test", fmt.Sprint("b-", i), time.Now(), pingV1{N: i}); err != nil {
				t.Fatal(err)
			}
			futures++
		}
		select {
		case <-b.JetStream().PublishAsyncComplete():
		case <-time.After(20 * time.Second):
			t.Fatal("async publishes not acknowledged")
		}
		var mu sync.Mutex
		sum, batches, biggest := 0, 0, 0
		go func() {
			_ = eventbus.ConsumeBatch(ctx, b, pinged, eventbus.ConsumeOptions{Durable: "batch", Batch: 100, IdleWait: 200 * time.Millisecond},
				func(_ context.Context, evs []eventbus.Event[pingV1]) error {
					mu.Lock()
					defer mu.Unlock()
					batches++
					biggest = max(biggest, len(evs))
					for _, ev := range evs {
						sum += ev.Data.N
					}
					return nil
				})
		}()
		waitFor(t, "all events", func() bool { mu.Lock(); defer mu.Unlock(); return sum == 500*501/2 })
		mu.Lock()
		defer mu.Unlock()
		if biggest > 100 || batches < 5 {
			t.Fatalf("batches = %d, biggest = %d", batches, biggest)
		}
	})
}

type echoReq struct {
	Text string `json:"text"`
}

func (r echoReq) Validate() error {
	if r.Text == "" {
		return errors.New("text required")
	}
	return nil
}

type echoResp struct {
	Text string `json:"text"`
}

func TestRequestReplyCarriesProblems(t *testing.T) {
	t.Parallel()
	natstest.Each(t, func(t *testing.T, b *eventbus.Bus) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ep := eventbus.Endpoint[echoReq, echoResp]{Name: "tamarack.bustest.echo.v1"}
		if _, err := eventbus.Call(ctx, b, ep, echoReq{Text: "x"}); !errors.Is(err, eventbus.ErrNoResponder) {
			t.Fatalf("no server: err = %v", err)
		}
		refused := problem.New(402, "insufficient_credits", "Not enough credits.")
		if _, err := eventbus.Serve(ctx, b, ep, "q", func(_ context.Context, r echoReq) (echoResp, error) {
			if r.Text == "poor" {
				return echoResp{}, refused.WithExtra("shortfall_micro", 42)
			}
			return echoResp{Text: r.Text + "!"}, nil
		}); err != nil {
			t.Fatal(err)
		}
		got, err := eventbus.Call(ctx, b, ep, echoReq{Text: "hi"})
		if err != nil || got.Text != "hi!" {
			t.Fatalf("got %+v, %v", got, err)
		}
		_, err = eventbus.Call(ctx, b, ep, echoReq{Text: "poor"})
		p, ok := problem.From(err)
		if !ok || p.Code != "insufficient_credits" || p.Status != 402 {
			t.Fatalf("err = %v", err)
		}
		if v, _ := json.Marshal(p.Extra["shortfall_micro"]); string(v) != "42" {
			t.Fatalf("extra = %v", p.Extra)
		}
		if _, err := eventbus.Call(ctx, b, ep, echoReq{}); err == nil {
			t.Fatal("an invalid request was sent")
		}
	})
}
