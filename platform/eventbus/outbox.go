package eventbus

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// OutboxDDL is the table every service creates in its first migration, named <service>_outbox. It is plain
// portable SQL: the same text runs on SQLite and Postgres.
//
//	CREATE TABLE <service>_outbox (
//	    id TEXT PRIMARY KEY,          -- event ID: CloudEvents id and Nats-Msg-Id
//	    subject TEXT NOT NULL,        -- declared subject name, without bus prefix
//	    payload TEXT NOT NULL,        -- JSON body
//	    created_at BIGINT NOT NULL,   -- unix nanoseconds: the relay publishes in this order
//	    attempts INTEGER NOT NULL DEFAULT 0,
//	    last_error TEXT NOT NULL DEFAULT ''
//	);
//	CREATE INDEX <service>_outbox_created ON <service>_outbox (created_at);
const OutboxDDL = "see doc comment"

type outboxRow struct {
	ID        string `gorm:"primaryKey"`
	Subject   string
	Payload   string
	CreatedAt int64 `gorm:"autoCreateTime:false"`
	Attempts  int
	LastError string
}

// Outbox relays one service's committed events to JetStream. Services write events in the same transaction as
// the state change they announce (Write); the relay publishes them with the event ID as Nats-Msg-Id and deletes
// them once JetStream has acknowledged them, so a crash at any point publishes each event at least once, and
// JetStream's duplicate window plus idempotent consumers make that exactly once in effect.
type Outbox struct {
	db     *gorm.DB
	bus    *Bus
	table  string
	source string
	log    *slog.Logger
	kick   chan struct{}
	now    func() time.Time
}

// NewOutbox returns the relay of service's outbox table.
func NewOutbox(db *gorm.DB, bus *Bus, service string, log *slog.Logger) *Outbox {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Outbox{db: db, bus: bus, table: service + "_outbox", source: "tamarack/" + service, log: log,
		kick: make(chan struct{}, 1), now: func() time.Time { return time.Now().UTC() }}
}

// Write adds an event to the outbox inside tx. The caller commits tx and then calls Kick.
func Write[T Payload](tx *gorm.DB, o *Outbox, s Subject[T], id string, data T) error {
	if err := data.Validate(); err != nil {
		return fmt.Errorf("outbox %s: invalid payload: %w", s.Name, err)
	}
	body, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("outbox %s: %w", s.Name, err)
	}
	row := outboxRow{ID: id, Subject: s.Name, Payload: string(body), CreatedAt: o.now().UnixNano()}
	// An event ID already queued is the same event: writing it again is a no-op, not an error.
	return tx.Table(o.table).Clauses(clause.OnConflict{DoNothing: true}).Create(&row).Error
}

// Kick wakes the relay after a commit so events go out at once instead of at the next poll.
func (o *Outbox) Kick() {
	select {
	case o.kick <- struct{}{}:
	default:
	}
}

// Run relays until ctx ends, then returns nil. It polls every second as a safety net for missed kicks and
// for events written by other processes.
func (o *Outbox) Run(ctx context.Context) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	// While NATS is away (an agent whose platform is down for hours) the relay keeps trying every second, but
	// says so once a minute, not every second.
	var failing time.Time
	var lastWarn time.Time
	for {
		for {
			n, err := o.relayOnce(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				now := time.Now()
				if failing.IsZero() {
					failing = now
				}
				if now.Sub(lastWarn) >= time.Minute {
					lastWarn = now
					o.log.Warn("outbox relay failed; events wait in the outbox and are retried every second", "table", o.table,
						"failing_for", now.Sub(failing).Round(time.Second).String(), "err", err)
				}
				break
			}
			if !failing.IsZero() {
				o.log.Info("outbox relay works again", "table", o.table, "failed_for", time.Since(failing).Round(time.Second).String())
				failing, lastWarn = time.Time{}, time.Time{}
			}
			if n == 0 {
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-o.kick:
		case <-tick.C:
		}
	}
}

// Flush publishes everything pending now (graceful shutdown).
func (o *Outbox) Flush(ctx context.Context) error {
	for {
		n, err := o.relayOnce(ctx)
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
	}
}

// Pending counts unpublished events (status pages and tests).
func (o *Outbox) Pending(ctx context.Context) (int64, error) {
	var n int64
	err := o.db.WithContext(ctx).Table(o.table).Count(&n).Error
	return n, err
}

const relayBatch = 500

func (o *Outbox) relayOnce(ctx context.Context) (int, error) {
	var sent int
	err := o.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var rows []outboxRow
		q := tx.Table(o.table).Order("created_at, id").Limit(relayBatch)
		if tx.Dialector.Name() == "postgres" {
			// Several relays (one per process) share the table; each takes rows no other holds.
			q = q.Clauses(clause.Locking{Strength: "UPDATE", Options: "SKIP LOCKED"})
		}
		if err := q.Find(&rows).Error; err != nil {
			return err
		}
		if len(rows) == 0 {
			return nil
		}
		futures := make([]jetstream.PubAckFuture, len(rows))
		for i, r := range rows {
			at := time.Unix(0, r.CreatedAt)
			f, err := o.bus.js.PublishMsgAsync(newMsg(o.bus.Subject(r.Subject), r.ID, r.Subject, o.source, at, []byte(r.Payload)))
			if err != nil {
				return fmt.Errorf("publish %s: %w", r.ID, err)
			}
			futures[i] = f
		}
		done := make([]string, 0, len(rows))
		var firstErr error
		for i, f := range futures {
			select {
			case <-f.Ok():
				done = append(done, rows[i].ID)
				o.bus.metrics.published.WithLabelValues(rows[i].Subject, "ok").Inc()
			case err := <-f.Err():
				o.bus.metrics.published.WithLabelValues(rows[i].Subject, "error").Inc()
				if firstErr == nil {
					firstErr = fmt.Errorf("publish %s: %w", rows[i].ID, err)
				}
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if len(done) > 0 {
			if err := tx.Table(o.table).Where("id IN ?", done).Delete(&outboxRow{}).Error; err != nil {
				return err
			}
		}
		sent = len(done)
		if firstErr != nil && sent == 0 {
			return firstErr
		}
		return nil
	})
	return sent, err
}
