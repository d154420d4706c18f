package identity

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/crypto/ssh"
	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/openapi"
	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/platform/web"
	"github.com/tamarack-ai/tamarack/services/events"
)

// SSH keys: public keys a user registers on their profile to reach their organisations' sandboxes through the
// testbed's SSH gateway (docs/ssh.md). Identity owns them; the gateway, which may run in another process, asks
// identity who a connecting key belongs to (events.SSHKeyLookup) on every connection, so a deleted key stops
// opening new connections at once. A key belongs to one user: its SHA256 fingerprint is unique.

// Audit actions of SSH keys.
const (
	AuditSSHKeyAdded   = "ssh_key_added"
	AuditSSHKeyDeleted = "ssh_key_deleted"
)

// MaxSSHKeys is the most keys one user may register.
const MaxSSHKeys = 50

// Problems of SSH keys.
var (
	ErrSSHKeyNotFound = problem.New(http.StatusNotFound, "ssh_key_not_found", "No such SSH key of yours.").
				WithDetail("GET /api/v1/identity/ssh-keys lists your SSH keys.")
	ErrSSHKeyExists = problem.New(http.StatusConflict, "ssh_key_exists", "This SSH key is already registered.").
			WithDetail("A key can belong to one account only; generate another key (ssh-keygen -t ed25519) for this one.")
	ErrTooManySSHKeys = problem.New(http.StatusConflict, "too_many_ssh_keys", "You have registered the most SSH keys allowed.").
				WithDetail("Delete a key you no longer use first.")
)

// SSHKey is a user's registered public key.
type SSHKey struct {
	ID          string `gorm:"primaryKey"`
	UserID      string
	Name        string
	KeyType     string
	PublicKey   string    // authorized_keys form, without the comment
	Fingerprint string    // SHA256:…, as ssh-keygen -l prints it
	CreatedAt   time.Time `gorm:"autoCreateTime:false"`
	LastUsedAt  *time.Time
}

func (SSHKey) TableName() string { return "identity_ssh_keys" }

// AddSSHKeyInput is a key to register: one authorized_keys line, and a name (default: the key's comment).
type AddSSHKeyInput struct {
	Name      string
	PublicKey string
}

// parsed is the validated key.
type parsedSSHKey struct {
	name, keyType, line, fingerprint string
}

// parse validates the input: all field errors at once.
func (in AddSSHKeyInput) parse() (parsedSSHKey, error) {
	var f problem.Fields
	var out parsedSSHKey
	line := strings.TrimSpace(in.PublicKey)
	pk, comment, _, rest, err := ssh.ParseAuthorizedKey([]byte(line))
	switch {
	case line == "":
		f.Add("public_key", "required", "paste one line of your public key file (~/.ssh/id_ed25519.pub)")
	case err != nil:
		f.Add("public_key", "invalid", "not an OpenSSH public key: paste one line such as \"ssh-ed25519 AAAA… you@host\"")
	case len(strings.TrimSpace(string(rest))) > 0:
		f.Add("public_key", "invalid", "one key only")
	default:
		if key, args := checkKeyType(pk); key != "" {
			f.AddMsg("public_key", "unsupported_key_type", key, args)
		}
		out.keyType = pk.Type()
		out.line = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pk)))
		out.fingerprint = ssh.FingerprintSHA256(pk)
	}
	name := strings.TrimSpace(in.Name)
	if name == "" {
		name = strings.TrimSpace(comment)
	}
	if name == "" {
		name = out.keyType
	}
	f.Check(utf8.RuneCountInString(name) <= 100, "name", "too_long", "at most 100 characters")
	out.name = name
	return out, f.Err()
}

// checkKeyType allows Ed25519, ECDSA and RSA of at least 2048 bits; it says why another is refused (the
// catalogue message and its values).
func checkKeyType(pk ssh.PublicKey) (string, problem.Args) {
	switch pk.Type() {
	case ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521:
		return "", nil
	case ssh.KeyAlgoRSA:
		cpk, ok := pk.(ssh.CryptoPublicKey)
		if !ok {
			return "field.text.ssh_rsa_unreadable", nil
		}
		if rk, ok := cpk.CryptoPublicKey().(*rsa.PublicKey); !ok || rk.N.BitLen() < 2048 {
			return "field.text.ssh_rsa_short", nil
		}
		return "", nil
	}
	return "field.text.ssh_key_type", problem.Args{"Type": pk.Type()}
}

// SSHKeys lists the actor's keys by ID.
func (s *Service) SSHKeys(ctx context.Context, a Actor, after string, limit int) ([]SSHKey, error) {
	q := s.db.WithContext(ctx).Where("user_id = ?", a.UserID)
	if after != "" {
		q = q.Where("id > ?", after)
	}
	var out []SSHKey
	return out, q.Order("id").Limit(limit + 1).Find(&out).Error
}

// AddSSHKey registers a key for the actor. A key registered by anyone already answers ssh_key_exists.
func (s *Service) AddSSHKey(ctx context.Context, a Actor, in AddSSHKeyInput) (SSHKey, error) {
	p, err := in.parse()
	if err != nil {
		return SSHKey{}, err
	}
	k := SSHKey{ID: newID(), UserID: a.UserID, Name: p.name, KeyType: p.keyType, PublicKey: p.line,
		Fingerprint: p.fingerprint, CreatedAt: s.clock.Now().UTC()}
	err = s.tx(ctx, func(tx *gorm.DB) error {
		var n int64
		if err := tx.Model(&SSHKey{}).Where("user_id = ?", a.UserID).Count(&n).Error; err != nil {
			return err
		}
		if n >= MaxSSHKeys {
			return ErrTooManySSHKeys
		}
		var dup int64
		if err := tx.Model(&SSHKey{}).Where("fingerprint = ?", k.Fingerprint).Count(&dup).Error; err != nil {
			return err
		}
		if dup > 0 {
			return ErrSSHKeyExists
		}
		if err := tx.Create(&k).Error; err != nil {
			if sqldb.IsDuplicate(err) {
				return ErrSSHKeyExists
			}
			return err
		}
		return s.writeAudit(tx, AuditEntry{Action: AuditSSHKeyAdded, ActorUserID: a.UserID, ActorEmail: a.Email,
			OrganizationID: a.OrgID, Target: "ssh_key:" + k.ID, IP: a.IP,
			Detail: details("fingerprint", k.Fingerprint, "name", k.Name)})
	})
	if err != nil {
		return SSHKey{}, fmt.Errorf("add ssh key: %w", err)
	}
	return k, nil
}

// DeleteSSHKey removes one of the actor's keys; new SSH connections with it are refused from then on.
func (s *Service) DeleteSSHKey(ctx context.Context, a Actor, id string) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		var k SSHKey
		err := tx.Where("id = ? AND user_id = ?", id, a.UserID).Take(&k).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return fmt.Errorf("delete ssh key %s: %w", id, ErrSSHKeyNotFound)
		}
		if err != nil {
			return err
		}
		if err := tx.Delete(&SSHKey{}, "id = ?", id).Error; err != nil {
			return err
		}
		return s.writeAudit(tx, AuditEntry{Action: AuditSSHKeyDeleted, ActorUserID: a.UserID, ActorEmail: a.Email,
			OrganizationID: a.OrgID, Target: "ssh_key:" + id, IP: a.IP, Detail: details("fingerprint", k.Fingerprint)})
	})
}

// LookupSSHKey answers events.SSHKeyLookup: who the key with this fingerprint belongs to, and their
// organisations, now. It records the key's use. An unknown key answers ssh_key_not_found.
func (s *Service) LookupSSHKey(ctx context.Context, req events.SSHKeyLookupV1) (events.SSHKeyOwnerV1, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	db := s.db.WithContext(ctx)
	var k SSHKey
	if err := db.Where("fingerprint = ?", req.Fingerprint).Take(&k).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return events.SSHKeyOwnerV1{}, ErrSSHKeyNotFound
		}
		return events.SSHKeyOwnerV1{}, err
	}
	u, err := userByID(db, k.UserID)
	if err != nil {
		return events.SSHKeyOwnerV1{}, err
	}
	ms, err := membershipsOf(db, u.ID)
	if err != nil {
		return events.SSHKeyOwnerV1{}, err
	}
	if !req.Probe {
		_ = db.Model(&SSHKey{}).Where("id = ?", k.ID).Update("last_used_at", s.clock.Now().UTC()).Error
	}
	out := events.SSHKeyOwnerV1{KeyID: k.ID, Fingerprint: k.Fingerprint, UserID: u.ID, Email: u.Email, Staff: u.IsStaff,
		EmailVerified: u.EmailVerifiedAt != nil, Memberships: make([]events.SSHKeyMembershipV1, 0, len(ms))}
	for _, m := range ms {
		out.Memberships = append(out.Memberships, events.SSHKeyMembershipV1{OrgID: m.Org.ID, OrgKind: m.Org.Kind, Role: m.Role})
	}
	return out, nil
}

// HTTP.

type sshKeyJSON struct {
	ID          string     `json:"id"`
	Name        string     `json:"name"`
	KeyType     string     `json:"key_type" doc:"ssh-ed25519, ecdsa-sha2-nistp256/384/521 or ssh-rsa"`
	PublicKey   string     `json:"public_key"`
	Fingerprint string     `json:"fingerprint" doc:"SHA256:…, as ssh-keygen -l prints it"`
	CreatedAt   time.Time  `json:"created_at"`
	LastUsedAt  *time.Time `json:"last_used_at" doc:"the latest SSH connection with this key; null if never"`
}

type addSSHKeyRequest struct {
	Name      string `json:"name" validate:"max=400" doc:"default: the key's comment"`
	PublicKey string `json:"public_key" openapi:"required" validate:"max=16384" doc:"one line of an OpenSSH public key file"`
}

func toSSHKeyJSON(k SSHKey) sshKeyJSON {
	out := sshKeyJSON{ID: k.ID, Name: k.Name, KeyType: k.KeyType, PublicKey: k.PublicKey, Fingerprint: k.Fingerprint,
		CreatedAt: k.CreatedAt.UTC()}
	if k.LastUsedAt != nil {
		t := k.LastUsedAt.UTC()
		out.LastUsedAt = &t
	}
	return out
}

func (h handler) sshKeys(c *fiber.Ctx) error {
	return keyList(c, func(after string, limit int) ([]SSHKey, error) {
		return h.svc.SSHKeys(c.UserContext(), actorOf(c), after, limit)
	}, toSSHKeyJSON, func(k sshKeyJSON) string { return k.ID })
}

func (h handler) addSSHKey(c *fiber.Ctx) error {
	var req addSSHKeyRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	a := actorOf(c)
	if a.APIToken {
		return ErrAPITokenNotAllowed.WithDetailMsg("problem.session_required.ssh_keys", nil)
	}
	k, err := h.svc.AddSSHKey(c.UserContext(), a, AddSSHKeyInput{Name: req.Name, PublicKey: req.PublicKey})
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(toSSHKeyJSON(k))
}

func (h handler) deleteSSHKey(c *fiber.Ctx) error {
	id := c.Params("id")
	if id == "" || len(id) > 64 {
		return ErrSSHKeyNotFound
	}
	if err := h.svc.DeleteSSHKey(c.UserContext(), actorOf(c), id); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (h handler) sshKeyRoutes(r fiber.Router, read, write fiber.Handler) {
	r.Get("/ssh-keys", web.RequireAuth, read, h.sshKeys)
	r.Post("/ssh-keys", web.RequireAuth, write, h.addSSHKey)
	r.Delete("/ssh-keys/:id", web.RequireAuth, write, h.deleteSSHKey)
}

func sshKeyOpenAPI(d *openapi.Doc, tag string, page []openapi.Param) {
	d.Add(
		openapi.Op{Method: "GET", Path: Base + "/ssh-keys", Summary: "The caller's SSH public keys (for the testbed's SSH gateway)", Tag: tag, Auth: "user",
			Query: page, Response: web.List[sshKeyJSON]{}},
		openapi.Op{Method: "POST", Path: Base + "/ssh-keys", Summary: "Register an SSH public key (ed25519, ecdsa, or rsa of 2048 bits or more)", Tag: tag, Auth: "user",
			Request: addSSHKeyRequest{}, Response: sshKeyJSON{}, Status: 201, Problems: []string{"ssh_key_exists", "too_many_ssh_keys", "session_required"}},
		openapi.Op{Method: "DELETE", Path: Base + "/ssh-keys/:id", Summary: "Delete an SSH key: new SSH connections with it are refused at once", Tag: tag, Auth: "user", Status: 204,
			Problems: []string{"ssh_key_not_found"}},
	)
}
