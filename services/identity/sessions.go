package identity

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/nats-io/nats.go/jetstream"
	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/jwtauth"
	"github.com/tamarack-ai/tamarack/platform/web"
)

// Sessions: a session is one sign-in, i.e. one refresh-token family; its ID is the family's and every access
// token of it carries it as the sid claim. Ending a session (the user ends it, signs out, changes password, or
// a refresh token is replayed) revokes the family in the database and announces the session in the JetStream
// revocation bucket (platform/jwtauth/revocation.go) so that every verifying process refuses its access tokens
// at once rather than when they expire. The database is the record: a loop re-announces every revocation
// still within an access token's lifetime, so a failed announcement is healed.

// AuditSessionEnded is the audit action of a session ended from the session list (sign-out and replayed
// refresh tokens keep their own actions).
const AuditSessionEnded = "session_ended"

// SessionRecord is one sign-in as the session list shows it.
type SessionRecord struct {
	ID         string `gorm:"primaryKey"`
	UserID     string
	UserAgent  string
	IP         string
	CreatedAt  time.Time `gorm:"autoCreateTime:false"`
	LastUsedAt time.Time
	LastIP     string
	ExpiresAt  time.Time
	RevokedAt  *time.Time
	// ClientName names a device login's client ("tamarack CLI on build-01", device.go); empty otherwise.
	ClientName string
}

func (SessionRecord) TableName() string { return "identity_sessions" }

// client is where a request comes from; the identity routes put it on the request context (clientMeta) so
// that every sign-in path records it without passing it through each call.
type client struct{ IP, UserAgent string }

type clientKey struct{}

func clientOf(ctx context.Context) client {
	if ctx == nil {
		return client{}
	}
	c, _ := ctx.Value(clientKey{}).(client)
	return c
}

// clientMeta records the caller's address and user agent on the request context.
func clientMeta(c *fiber.Ctx) error {
	ua := c.Get(fiber.HeaderUserAgent)
	if len(ua) > 512 {
		ua = ua[:512]
	}
	c.SetUserContext(context.WithValue(c.UserContext(), clientKey{}, client{IP: web.ClientIP(c), UserAgent: ua}))
	return c.Next()
}

// trackSession records a refresh token of family: a new session when the family is new, else its last use.
func (s *Service) trackSession(tx *gorm.DB, family, userID string, first bool, now, expires time.Time) error {
	cl := clientOf(tx.Statement.Context)
	if first {
		return tx.Create(&SessionRecord{ID: family, UserID: userID, UserAgent: cl.UserAgent, IP: cl.IP,
			CreatedAt: now, LastUsedAt: now, LastIP: cl.IP, ExpiresAt: expires}).Error
	}
	return tx.Model(&SessionRecord{}).Where("id = ?", family).
		Updates(map[string]any{"last_used_at": now, "last_ip": cl.IP, "expires_at": expires}).Error
}

// sessionIDOf is the session of a refresh token just issued ("" when there is none).
func (s *Service) sessionIDOf(ctx context.Context, refresh string) (string, error) {
	if refresh == "" {
		return "", nil
	}
	var rt RefreshToken
	if err := s.db.WithContext(ctx).Select("family_id").Where("token_hash = ?", hashSecret(refresh)).Take(&rt).Error; err != nil {
		return "", fmt.Errorf("session of refresh token: %w", err)
	}
	return rt.FamilyID, nil
}

// Sessions lists the user's live sessions (not ended, not expired), by ID.
func (s *Service) Sessions(ctx context.Context, a Actor, after string, limit int) ([]SessionRecord, error) {
	q := s.db.WithContext(ctx).Where("user_id = ? AND revoked_at IS NULL AND expires_at > ?", a.UserID, s.clock.Now())
	if after != "" {
		q = q.Where("id > ?", after)
	}
	var out []SessionRecord
	return out, q.Order("id").Limit(limit + 1).Find(&out).Error
}

// EndSession ends one of the actor's sessions; another user's, or one already ended, answers 404.
func (s *Service) EndSession(ctx context.Context, a Actor, id string) error {
	now := s.clock.Now()
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var rec SessionRecord
		err := tx.Where("id = ? AND user_id = ? AND revoked_at IS NULL", id, a.UserID).Take(&rec).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return fmt.Errorf("end session %s: %w", id, ErrSessionNotFound)
		}
		if err != nil {
			return err
		}
		if err := s.endSessions(tx, now, id); err != nil {
			return err
		}
		return s.writeAudit(tx, AuditEntry{Action: AuditSessionEnded, ActorUserID: a.UserID, ActorEmail: a.Email,
			OrganizationID: a.OrgID, Target: "session:" + id, IP: a.IP,
			Detail: details("current", fmt.Sprint(id == a.SessionID))})
	})
	if err != nil {
		return err
	}
	s.announce(ctx, now, id)
	return nil
}

// EndUserSessions ends every live session of a user but keep ("" ends all), announcing them: a password change
// or reset calls it (or revokeUserSessions inside its own transaction, then announce after commit).
func (s *Service) EndUserSessions(ctx context.Context, userID, keep string, meta Meta) (int, error) {
	now := s.clock.Now()
	var ids []string
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		if ids, err = s.revokeUserSessions(tx, userID, keep, now); err != nil || len(ids) == 0 {
			return err
		}
		return s.writeAudit(tx, AuditEntry{Action: AuditSessionEnded, ActorUserID: userID, Target: "user:" + userID,
			IP: meta.IP, Detail: details("sessions", fmt.Sprint(len(ids)), "kept", keep)})
	})
	if err != nil {
		return 0, err
	}
	s.announce(ctx, now, ids...)
	return len(ids), nil
}

// revokeUserSessions ends every live session of a user but keep inside the caller's transaction; the caller
// announces the returned IDs after commit.
func (s *Service) revokeUserSessions(tx *gorm.DB, userID, keep string, now time.Time) ([]string, error) {
	var ids []string
	if err := tx.Model(&SessionRecord{}).Where("user_id = ? AND revoked_at IS NULL AND id <> ?", userID, keep).
		Pluck("id", &ids).Error; err != nil {
		return nil, err
	}
	return ids, s.endSessions(tx, now, ids...)
}

// endSessions revokes the sessions and their refresh tokens.
func (s *Service) endSessions(tx *gorm.DB, now time.Time, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	if err := tx.Model(&RefreshToken{}).Where("family_id IN ? AND revoked_at IS NULL", ids).
		Update("revoked_at", now).Error; err != nil {
		return err
	}
	return tx.Model(&SessionRecord{}).Where("id IN ? AND revoked_at IS NULL", ids).Update("revoked_at", now).Error
}

// revocationTTL is how long a revocation matters: an access token's lifetime plus verifiers' leeway.
func (s *Service) revocationTTL() time.Duration { return s.accessTTL + time.Minute }

// announce publishes ended sessions to every verifier. A failure is logged: the reconciling loop publishes
// it again.
func (s *Service) announce(ctx context.Context, at time.Time, ids ...string) {
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	kv, err := s.revocationStore(ctx)
	if err == nil {
		for _, id := range ids {
			if err = jwtauth.PublishRevocation(ctx, kv, jwtauth.Revocation{SessionID: id, RevokedAt: at,
				Until: at.Add(s.revocationTTL())}); err != nil {
				break
			}
		}
	}
	if err != nil {
		s.log.Warn("announcing ended sessions failed; the next reconciliation retries", "sessions", len(ids), "err", err)
	}
}

// revocationKV opens the bucket once per process.
type revocationKV struct {
	mu sync.Mutex
	kv jetstream.KeyValue
}

func (s *Service) revocationStore(ctx context.Context) (jetstream.KeyValue, error) {
	s.revKV.mu.Lock()
	defer s.revKV.mu.Unlock()
	if s.revKV.kv != nil {
		return s.revKV.kv, nil
	}
	kv, err := jwtauth.RevocationStore(ctx, s.bus, s.revocationTTL())
	if err != nil {
		return nil, err
	}
	s.revKV.kv = kv
	return kv, nil
}

// ReconcileRevocations publishes every session ended within the revocation TTL again, returning how many.
func (s *Service) ReconcileRevocations(ctx context.Context) (int, error) {
	now := s.clock.Now()
	var recs []SessionRecord
	if err := s.db.WithContext(ctx).Where("revoked_at IS NOT NULL AND revoked_at > ?", now.Add(-s.revocationTTL())).
		Find(&recs).Error; err != nil {
		return 0, err
	}
	if len(recs) == 0 {
		return 0, nil
	}
	kv, err := s.revocationStore(ctx)
	if err != nil {
		return 0, err
	}
	for _, r := range recs {
		if err := jwtauth.PublishRevocation(ctx, kv, jwtauth.Revocation{SessionID: r.ID, RevokedAt: *r.RevokedAt,
			Until: r.RevokedAt.Add(s.revocationTTL())}); err != nil {
			return 0, err
		}
	}
	return len(recs), nil
}

// runRevocations creates the bucket and reconciles it at start and every reloadEvery until ctx ends.
func (s *Service) runRevocations(ctx context.Context) {
	tick := time.NewTicker(s.reloadEvery)
	defer tick.Stop()
	for {
		if _, err := s.revocationStore(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("revocation bucket unavailable", "err", err)
		} else if _, err := s.ReconcileRevocations(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("reconciling session revocations failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// HTTP.

type sessionJSON struct {
	ID         string    `json:"id"`
	Device     string    `json:"device" doc:"browser and system, from the user agent of the sign-in; for a device login (the CLI), the name the client gave"`
	UserAgent  string    `json:"user_agent"`
	IP         string    `json:"ip" doc:"the address of the latest use"`
	SignInIP   string    `json:"sign_in_ip"`
	CreatedAt  time.Time `json:"created_at"`
	LastUsedAt time.Time `json:"last_used_at" doc:"the latest sign-in or refresh"`
	ExpiresAt  time.Time `json:"expires_at"`
	Current    bool      `json:"current" doc:"the session of the token making this request"`
}

func toSessionJSON(r SessionRecord, current string) sessionJSON {
	device := deviceOf(r.UserAgent)
	if r.ClientName != "" {
		device = r.ClientName
	}
	return sessionJSON{ID: r.ID, Device: device, UserAgent: r.UserAgent, IP: r.LastIP, SignInIP: r.IP,
		CreatedAt: r.CreatedAt.UTC(), LastUsedAt: r.LastUsedAt.UTC(), ExpiresAt: r.ExpiresAt.UTC(), Current: r.ID == current}
}

func (h handler) sessions(c *fiber.Ctx) error {
	a := actorOf(c)
	return keyList(c, func(after string, limit int) ([]SessionRecord, error) {
		return h.svc.Sessions(c.UserContext(), a, after, limit)
	}, func(r SessionRecord) sessionJSON { return toSessionJSON(r, a.SessionID) }, func(s sessionJSON) string { return s.ID })
}

func (h handler) endSession(c *fiber.Ctx) error {
	id := c.Params("id")
	if id == "" || len(id) > 64 {
		return ErrSessionNotFound
	}
	if err := h.svc.EndSession(c.UserContext(), actorOf(c), id); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// deviceOf summarises a user agent for people: "Firefox on Linux", "curl", "" when unknown.
func deviceOf(ua string) string {
	if ua == "" {
		return ""
	}
	l := strings.ToLower(ua)
	pick := func(pairs ...string) string {
		for i := 0; i < len(pairs); i += 2 {
			if strings.Contains(l, pairs[i]) {
				return pairs[i+1]
			}
		}
		return ""
	}
	browser := pick("edg/", "Edge", "firefox/", "Firefox", "chrome/", "Chrome", "safari/", "Safari",
		"curl/", "curl", "python", "Python", "go-http-client", "Go client", "tamarack", "Tamarack CLI")
	system := pick("android", "Android", "iphone", "iOS", "ipad", "iPadOS", "windows", "Windows",
		"mac os x", "macOS", "cros", "ChromeOS", "linux", "Linux")
	switch {
	case browser != "" && system != "":
		return browser + " on " + system
	case browser != "":
		return browser
	case system != "":
		return system
	}
	if i := strings.IndexAny(ua, " /"); i > 0 {
		return ua[:i]
	}
	return ua
}
