package identity

import (
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/clock"
	"github.com/tamarack-ai/tamarack/platform/jwtauth"
)

// keyring holds the Ed25519 keys that sign and verify access tokens. Keys live in identity_signing_keys so
// that every identity process sharing the database signs with a key the others can verify: a kid this process
// has not seen is looked up in the database (misses are cached briefly so forged kids cannot flood it), and a
// background loop reloads everything to drop retired keys and pick up rotations.
//
// Private keys are sealed with AES-256-GCM under a key derived from the configured secret ("gcm:" prefix);
// without a secret they are stored base64-encoded ("raw:"), which is only as safe as the database. A process
// that cannot open the newest key (another secret) still verifies with its public key and signs with a key of
// its own, created on demand.
type keyring struct {
	db     *gorm.DB
	clock  clock.Clock
	log    *slog.Logger
	aead   cipher.AEAD // nil: keys stored unsealed
	maxAge time.Duration
	grace  time.Duration // how long a superseded key keeps verifying (access TTL + leeway)

	createMu sync.Mutex
	mu       sync.RWMutex
	public   map[string]ed25519.PublicKey
	signer   *signer
	missed   map[string]time.Time
	loadedAt time.Time
}

type signer struct {
	kid     string
	key     ed25519.PrivateKey
	created time.Time
}

func newKeyring(db *gorm.DB, clk clock.Clock, log *slog.Logger, secret []byte, maxAge, grace time.Duration) (*keyring, error) {
	k := &keyring{db: db, clock: clk, log: log, maxAge: maxAge, grace: grace,
		public: map[string]ed25519.PublicKey{}, missed: map[string]time.Time{}}
	if len(secret) > 0 {
		sum := sha256.Sum256(append([]byte("tamarack-identity-signing-keys\x00"), secret...))
		block, err := aes.NewCipher(sum[:])
		if err != nil {
			return nil, err
		}
		if k.aead, err = cipher.NewGCM(block); err != nil {
			return nil, err
		}
	}
	return k, nil
}

func (k *keyring) seal(priv ed25519.PrivateKey, kid string) (string, error) {
	seed := priv.Seed()
	if k.aead == nil {
		return "raw:" + base64.RawURLEncoding.EncodeToString(seed), nil
	}
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	ct := k.aead.Seal(nonce, nonce, seed, []byte(kid))
	return "gcm:" + base64.RawURLEncoding.EncodeToString(ct), nil
}

var errSealed = errors.New("signing key sealed with another secret")

func (k *keyring) open(sealed, kid string) (ed25519.PrivateKey, error) {
	kind, body, ok := strings.Cut(sealed, ":")
	if !ok {
		return nil, errors.New("bad sealed key")
	}
	b, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return nil, err
	}
	switch kind {
	case "raw":
	case "gcm":
		if k.aead == nil || len(b) < k.aead.NonceSize() {
			return nil, errSealed
		}
		ns := k.aead.NonceSize()
		if b, err = k.aead.Open(nil, b[:ns], b[ns:], []byte(kid)); err != nil {
			return nil, errSealed
		}
	default:
		return nil, fmt.Errorf("unknown key sealing %q", kind)
	}
	if len(b) != ed25519.SeedSize {
		return nil, errors.New("bad key seed")
	}
	return ed25519.NewKeyFromSeed(b), nil
}

// PublicKey implements jwtauth.KeySource.
func (k *keyring) PublicKey(ctx context.Context, kid string) (crypto.PublicKey, error) {
	k.mu.RLock()
	pub, ok := k.public[kid]
	missedAt, missed := k.missed[kid]
	k.mu.RUnlock()
	if ok {
		return pub, nil
	}
	now := k.clock.Now()
	if missed && now.Sub(missedAt) < 5*time.Second {
		return nil, jwtauth.ErrUnknownKey
	}
	var row SigningKey
	err := k.db.WithContext(ctx).Where("kid = ? AND retired_at IS NULL", kid).Take(&row).Error
	if err != nil {
		k.mu.Lock()
		if len(k.missed) > 4096 {
			k.missed = map[string]time.Time{}
		}
		k.missed[kid] = now
		k.mu.Unlock()
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, jwtauth.ErrUnknownKey
		}
		return nil, err
	}
	pub, err = decodePublic(row.PublicKey)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	k.public[kid] = pub
	k.mu.Unlock()
	return pub, nil
}

func decodePublic(s string) (ed25519.PublicKey, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, errors.New("bad public key")
	}
	return ed25519.PublicKey(b), nil
}

// reload reads every live key, picks the newest this process can open as its signer, and drops retired keys
// from the cache.
func (k *keyring) reload(ctx context.Context) error {
	var rows []SigningKey
	if err := k.db.WithContext(ctx).Where("retired_at IS NULL").Order("created_at DESC, kid DESC").Find(&rows).Error; err != nil {
		return err
	}
	public := make(map[string]ed25519.PublicKey, len(rows))
	var s *signer
	for _, r := range rows {
		pub, err := decodePublic(r.PublicKey)
		if err != nil {
			k.log.Warn("skipping a malformed signing key", "kid", r.Kid)
			continue
		}
		public[r.Kid] = pub
		if s == nil {
			if priv, err := k.open(r.PrivateKey, r.Kid); err == nil {
				s = &signer{kid: r.Kid, key: priv, created: r.CreatedAt}
			}
		}
	}
	k.mu.Lock()
	k.public, k.signer, k.loadedAt = public, s, k.clock.Now()
	k.missed = map[string]time.Time{}
	k.mu.Unlock()
	return nil
}

// current returns the key to sign with, creating one when there is none this process can use.
func (k *keyring) current(ctx context.Context) (*signer, error) {
	k.mu.RLock()
	s := k.signer
	k.mu.RUnlock()
	if s != nil {
		return s, nil
	}
	// One caller at a time finds or makes the signer, so a burst of sign-ins makes one key, not many.
	k.createMu.Lock()
	defer k.createMu.Unlock()
	k.mu.RLock()
	s = k.signer
	k.mu.RUnlock()
	if s != nil {
		return s, nil
	}
	if err := k.reload(ctx); err != nil {
		return nil, err
	}
	k.mu.RLock()
	s = k.signer
	k.mu.RUnlock()
	if s != nil {
		return s, nil
	}
	if _, err := k.rotate(ctx); err != nil {
		return nil, err
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.signer == nil {
		return nil, ErrNoSigningKey
	}
	return k.signer, nil
}

// rotate creates a new key and makes it this process's signer; older keys keep verifying until retired.
func (k *keyring) rotate(ctx context.Context) (string, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	kid := newKid(k.clock.Now())
	sealed, err := k.seal(priv, kid)
	if err != nil {
		return "", err
	}
	row := SigningKey{Kid: kid, PublicKey: base64.RawURLEncoding.EncodeToString(pub), PrivateKey: sealed, CreatedAt: k.clock.Now()}
	if err := k.db.WithContext(ctx).Create(&row).Error; err != nil {
		return "", fmt.Errorf("store signing key: %w", err)
	}
	k.mu.Lock()
	k.public[kid] = pub
	k.signer = &signer{kid: kid, key: priv, created: row.CreatedAt}
	k.mu.Unlock()
	k.log.Info("new signing key", "kid", kid)
	return kid, nil
}

func newKid(now time.Time) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return now.UTC().Format("20060102") + "-" + base64.RawURLEncoding.EncodeToString(b)
}

// retire stops kid from verifying anything, here at once and in other processes at their next reload.
func (k *keyring) retire(ctx context.Context, kid string) error {
	now := k.clock.Now()
	res := k.db.WithContext(ctx).Model(&SigningKey{}).Where("kid = ? AND retired_at IS NULL", kid).Update("retired_at", now)
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("retire %s: %w", kid, jwtauth.ErrUnknownKey)
	}
	k.mu.Lock()
	delete(k.public, kid)
	if k.signer != nil && k.signer.kid == kid {
		k.signer = nil
	}
	k.mu.Unlock()
	return nil
}

// maintain rotates when the newest key (of any process) is older than maxAge, and retires keys superseded
// for longer than grace, so that every token they signed has expired. It returns the kids it rotated in and
// retired. Processes sharing the database mostly agree, since each first reloads what the others did.
func (k *keyring) maintain(ctx context.Context) (rotated string, retired []string, err error) {
	if err := k.reload(ctx); err != nil {
		return "", nil, err
	}
	if _, err := k.current(ctx); err != nil {
		return "", nil, err
	}
	var rows []SigningKey
	if err := k.db.WithContext(ctx).Where("retired_at IS NULL").Order("created_at DESC, kid DESC").Find(&rows).Error; err != nil {
		return "", nil, err
	}
	now := k.clock.Now()
	if k.maxAge > 0 && len(rows) > 0 && now.Sub(rows[0].CreatedAt) > k.maxAge {
		if rotated, err = k.rotate(ctx); err != nil {
			return "", nil, err
		}
		return rotated, nil, nil // the keys it supersedes retire after the grace period
	}
	// rows[i] was superseded when rows[i-1] was created.
	for i := 1; i < len(rows); i++ {
		if now.Sub(rows[i-1].CreatedAt) > k.grace {
			if err := k.retire(ctx, rows[i].Kid); err == nil {
				retired = append(retired, rows[i].Kid)
			}
		}
	}
	return "", retired, k.reload(ctx)
}

// jwks lists the live public keys.
func (k *keyring) jwks(ctx context.Context) (jwtauth.JWKS, error) {
	var rows []SigningKey
	if err := k.db.WithContext(ctx).Where("retired_at IS NULL").Order("created_at DESC, kid DESC").Find(&rows).Error; err != nil {
		return jwtauth.JWKS{}, err
	}
	doc := jwtauth.JWKS{Keys: make([]jwtauth.JWK, 0, len(rows))}
	for _, r := range rows {
		pub, err := decodePublic(r.PublicKey)
		if err != nil {
			continue
		}
		doc.Keys = append(doc.Keys, jwtauth.NewJWK(r.Kid, pub))
	}
	return doc, nil
}
