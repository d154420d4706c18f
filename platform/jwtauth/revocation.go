package jwtauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tamarack-ai/tamarack/platform/eventbus"
)

// Ended sessions. An access token names its session (the sid claim: identity's refresh-token family). When a
// session ends (sign-out, the user ends it, a password change, a replayed refresh token) identity puts the
// session's ID into a JetStream key-value bucket whose entries live as long as an access token can (TTL =
// access lifetime + leeway). Every verifying process watches the bucket: the watch first replays every live
// entry, so a verifier that starts later still learns earlier revocations, then delivers new ones as they are
// written, so every replica refuses the session's tokens within moments. A revocation is never undone.

// RevocationBucket is the key-value bucket of ended sessions (with the bus prefix: Bus.StreamName).
const RevocationBucket = "REVOKED_SESSIONS"

// ErrRevoked is returned by Verify for a token of an ended session.
var ErrRevoked = errors.New("session revoked")

// Revocation is the value of a bucket entry.
type Revocation struct {
	SessionID string    `json:"session_id"`
	RevokedAt time.Time `json:"revoked_at"`
	// Until is when the session's last access token expires: the entry is useless afterwards.
	Until time.Time `json:"until"`
}

// Revocations is the in-memory set of ended sessions a verifier refuses. The zero value is empty and ready.
type Revocations struct {
	mu    sync.RWMutex
	until map[string]time.Time
	// Now is the clock that prunes entries past Until (time.Now when nil).
	Now func() time.Time
}

// Add records that sid has ended; the entry is kept until until.
func (r *Revocations) Add(sid string, until time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.until == nil {
		r.until = map[string]time.Time{}
	}
	if until.After(r.until[sid]) {
		r.until[sid] = until
	}
	now := r.now()
	for k, u := range r.until { // prune on write: the set stays as small as the live revocations
		if now.After(u) {
			delete(r.until, k)
		}
	}
}

// Revoked reports whether sid has ended.
func (r *Revocations) Revoked(sid string) bool {
	if r == nil || sid == "" {
		return false
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.until[sid]
	return ok
}

// Len is the number of sessions held (metrics, tests).
func (r *Revocations) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.until)
}

func (r *Revocations) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// RevocationStore opens (creating it when missing) the bucket whose entries live ttl: identity's side.
func RevocationStore(ctx context.Context, b *eventbus.Bus, ttl time.Duration) (jetstream.KeyValue, error) {
	kv, err := b.JetStream().CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      b.StreamName(RevocationBucket),
		Description: "Ended sessions whose access tokens every verifier refuses (platform/jwtauth)",
		TTL:         ttl,
		Storage:     jetstream.FileStorage,
		History:     1,
	})
	if err != nil {
		return nil, fmt.Errorf("revocation bucket: %w", err)
	}
	return kv, nil
}

// PublishRevocation writes rev into kv. Writing it again is harmless.
func PublishRevocation(ctx context.Context, kv jetstream.KeyValue, rev Revocation) error {
	b, err := json.Marshal(rev)
	if err != nil {
		return err
	}
	if _, err := kv.Put(ctx, rev.SessionID, b); err != nil {
		return fmt.Errorf("publish revocation of session %s: %w", rev.SessionID, err)
	}
	return nil
}

// FollowRevocations feeds set from the bus's revocation bucket until ctx ends: it waits for the bucket to
// exist (identity creates it), replays its live entries, then follows new ones, reconnecting after failures.
// ready, when not nil, is closed once the replay is complete.
func FollowRevocations(ctx context.Context, b *eventbus.Bus, set *Revocations, log *slog.Logger, ready chan<- struct{}) error {
	name := b.StreamName(RevocationBucket)
	signalled := false
	for {
		err := follow(ctx, b, name, set, func() {
			if ready != nil && !signalled {
				signalled = true
				close(ready)
			}
		})
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, jetstream.ErrBucketNotFound) && ready != nil && !signalled {
			signalled = true // no bucket yet: no session has ever been revoked
			close(ready)
		} else if err != nil {
			log.Warn("following session revocations failed; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func follow(ctx context.Context, b *eventbus.Bus, name string, set *Revocations, replayed func()) error {
	kv, err := b.JetStream().KeyValue(ctx, name)
	if err != nil {
		return err
	}
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return err
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("revocation watch closed")
			}
			if e == nil { // the end of the replay of existing entries
				replayed()
				continue
			}
			var rev Revocation
			if err := json.Unmarshal(e.Value(), &rev); err != nil || rev.Until.IsZero() {
				continue // not ours to understand; refusing it would not help
			}
			set.Add(e.Key(), rev.Until)
		}
	}
}
