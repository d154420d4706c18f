package identity

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tamarack-ai/tamarack/platform/mail"

	"github.com/alexedwards/argon2id"
	"github.com/golang-jwt/jwt/v5"
	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/jwtauth"
	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/platform/web"
	"github.com/tamarack-ai/tamarack/services/events"
)

// The service's rules. This is the only file that opens transactions and writes outbox events.

func (s *Service) tx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return sqldb.Tx(ctx, s.db, fn)
}

// hash and compare bound concurrent argon2id work (64 MiB each with the default parameters), so a burst of
// sign-ins queues instead of exhausting memory.
func (s *Service) hash(ctx context.Context, password string) (string, error) {
	if err := s.acquire(ctx); err != nil {
		return "", err
	}
	defer s.release()
	return argon2id.CreateHash(password, s.argon)
}

func (s *Service) compare(ctx context.Context, password, hash string) (bool, error) {
	if err := s.acquire(ctx); err != nil {
		return false, err
	}
	defer s.release()
	return argon2id.ComparePasswordAndHash(password, hash)
}

func (s *Service) acquire(ctx context.Context) error {
	select {
	case s.hashSlots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("password hashing: %w", ctx.Err())
	}
}

func (s *Service) release() { <-s.hashSlots }

// Signup creates a user as the owner of a new organisation and signs them in.
func (s *Service) Signup(ctx context.Context, in SignupInput) (Session, error) {
	if err := in.Validate(); err != nil {
		return Session{}, err
	}
	// Sign-ups cost a password hash: the same per-IP budget as sign-ins keeps them from burning the CPU.
	if ok, wait := s.limiter.allow(s.clock.Now(), "signup-ip:"+in.IP); !ok {
		return Session{}, ErrRateLimited.WithDetailMsg("problem.rate_limited.signups", nil).WithExtra("retry_after_seconds", retrySeconds(wait))
	}
	hash, err := s.hash(ctx, in.Password)
	if err != nil {
		return Session{}, err
	}
	now := s.clock.Now()
	u := User{ID: newID(), Email: in.Email, Name: in.Name, PasswordHash: hash, CreatedAt: now, UpdatedAt: now}
	o := Organization{ID: newID(), Name: in.OrgName, Kind: in.OrgKind, CreatedAt: now}
	var refresh string
	err = s.tx(ctx, func(tx *gorm.DB) error {
		if err := s.createUserOrg(tx, &u, &o); err != nil {
			return err
		}
		var err error
		if refresh, err = s.newRefresh(tx, u.ID, o.ID, ""); err != nil {
			return err
		}
		return s.writeAudit(tx, AuditEntry{Action: AuditSignup, ActorUserID: u.ID, ActorEmail: u.Email,
			OrganizationID: o.ID, Target: "organization:" + o.ID, IP: in.IP, Detail: details("kind", o.Kind)})
	})
	if err != nil {
		return Session{}, err
	}
	s.outbox.Kick()
	s.sendVerificationAfterSignup(ctx, u, in.IP) // verify.go
	return s.session(ctx, u, &o, RoleOwner, refresh)
}

// createUserOrg inserts a user, an organisation and the owner membership, with their events.
func (s *Service) createUserOrg(tx *gorm.DB, u *User, o *Organization) error {
	if err := tx.Create(u).Error; err != nil {
		if sqldb.IsDuplicate(err) {
			return fmt.Errorf("sign up %s: %w", u.Email, ErrEmailTaken)
		}
		return err
	}
	if err := s.createOrg(tx, o, u.ID); err != nil {
		return err
	}
	return s.addMember(tx, o.ID, u, RoleOwner, "added")
}

func (s *Service) createOrg(tx *gorm.DB, o *Organization, ownerID string) error {
	if err := tx.Create(o).Error; err != nil {
		return err
	}
	return eventbus.Write(tx, s.outbox, events.OrganizationCreated, newID(), events.OrganizationCreatedV1{
		OrganizationID: o.ID, Name: o.Name, Kind: o.Kind, OwnerUserID: ownerID, At: o.CreatedAt})
}

func (s *Service) addMember(tx *gorm.DB, orgID string, u *User, role, change string) error {
	now := s.clock.Now()
	if err := tx.Create(&Membership{OrganizationID: orgID, UserID: u.ID, Role: role, CreatedAt: now}).Error; err != nil {
		if sqldb.IsDuplicate(err) {
			return ErrAlreadyMember
		}
		return err
	}
	return s.membershipEvent(tx, orgID, u, role, change)
}

func (s *Service) membershipEvent(tx *gorm.DB, orgID string, u *User, role, change string) error {
	return eventbus.Write(tx, s.outbox, events.MembershipChanged, newID(), events.MembershipChangedV1{
		OrganizationID: orgID, UserID: u.ID, Email: u.Email, Role: role, Change: change, At: s.clock.Now()})
}

// Login checks a password and opens a session. Unknown e-mail and wrong password answer the same problem
// after the same work (an argon2id comparison against a dummy hash for unknown users), and are throttled
// alike (throttle.go): the attempt is charged as a failure first and refunded when the password is right.
func (s *Service) Login(ctx context.Context, in LoginInput) (Session, error) {
	email := normalizeEmail(in.Email)
	ch, wait, by, err := s.chargeAttempt(ctx, newThrottleKeys(email, in.IP))
	if err != nil {
		return Session{}, err
	}
	if wait > 0 {
		secs := retrySeconds(wait)
		s.auditNow(ctx, AuditEntry{Action: AuditLoginRateLimited, ActorEmail: email, IP: in.IP,
			Detail: details("by", by, "retry_after_seconds", secs)})
		return Session{}, ErrTooManyAttempts.WithDetailMsg("problem.too_many_attempts.signins", problem.Args{"Seconds": secs, "MaxSeconds": retrySeconds(s.throttle.Max)}).
			WithExtra("retry_after_seconds", secs)
	}
	u, err := userByEmail(s.db.WithContext(ctx), email)
	if err != nil && !errors.Is(err, ErrUserNotFound) {
		return Session{}, err
	}
	hash := u.PasswordHash
	if err != nil {
		hash = s.dummyHash
	}
	match, cerr := s.compare(ctx, in.Password, hash)
	if cerr != nil && ctx.Err() != nil {
		return Session{}, cerr
	}
	if cerr != nil || !match || err != nil {
		s.auditNow(ctx, AuditEntry{Action: AuditLoginFailed, ActorUserID: u.ID, ActorEmail: email, IP: in.IP})
		return Session{}, ErrInvalidCredentials
	}
	if err := s.refund(ctx, ch); err != nil {
		return Session{}, err
	}
	org, role, err := s.actingOrg(s.db.WithContext(ctx), u.ID, in.OrgID)
	if err != nil {
		return Session{}, err
	}
	if tok, err := s.startMFA(ctx, u, orgIDOf(org)); err != nil || tok != "" {
		return Session{User: u, MFAToken: tok, ExpiresIn: int(mfaChallengeTTL / time.Second)}, err // second step: mfa.go
	}
	var refresh string
	err = s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		if refresh, err = s.newRefresh(tx, u.ID, orgIDOf(org), ""); err != nil {
			return err
		}
		return s.writeAudit(tx, AuditEntry{Action: AuditLoginOK, ActorUserID: u.ID, ActorEmail: u.Email,
			OrganizationID: orgIDOf(org), IP: in.IP})
	})
	if err != nil {
		return Session{}, err
	}
	return s.session(ctx, u, org, role, refresh)
}

func orgIDOf(o *Organization) string {
	if o == nil {
		return ""
	}
	return o.ID
}

// actingOrg picks the organisation a session acts for: the one asked for (which must be the user's), else
// the user's oldest membership; nil when the user belongs to none.
func (s *Service) actingOrg(db *gorm.DB, userID, want string) (*Organization, string, error) {
	ms, err := membershipsOf(db, userID)
	if err != nil {
		return nil, "", err
	}
	for _, m := range ms {
		if want == "" || m.Org.ID == want {
			o := m.Org
			return &o, m.Role, nil
		}
	}
	if want != "" {
		return nil, "", fmt.Errorf("act for %s: %w", want, ErrOrgNotFound)
	}
	return nil, "", nil
}

// newRefresh stores a refresh token of family (a new family when empty) and returns its secret.
func (s *Service) newRefresh(tx *gorm.DB, userID, orgID, family string) (string, error) {
	id := newID()
	if family == "" {
		family = id
	}
	sec := secret()
	now := s.clock.Now()
	err := tx.Create(&RefreshToken{ID: id, FamilyID: family, UserID: userID, OrganizationID: orgID,
		TokenHash: hashSecret(sec), CreatedAt: now, ExpiresAt: now.Add(s.refreshTTL)}).Error
	if err != nil {
		return "", err
	}
	return sec, s.trackSession(tx, family, userID, family == id, now, now.Add(s.refreshTTL))
}

// session signs an access token for u acting for org, in the session of refresh; amr says how they signed
// in (default: password).
func (s *Service) session(ctx context.Context, u User, org *Organization, role, refresh string, amr ...string) (Session, error) {
	sid, err := s.sessionIDOf(ctx, refresh)
	if err != nil {
		return Session{}, err
	}
	access, err := s.signAccess(ctx, u, org, role, sid, amr)
	if err != nil {
		return Session{}, err
	}
	return Session{AccessToken: access, RefreshToken: refresh, ExpiresIn: int(s.accessTTL / time.Second),
		User: u, Org: org, Role: role}, nil
}

func (s *Service) signAccess(ctx context.Context, u User, org *Organization, role, sid string, amr []string) (string, error) {
	k, err := s.keys.current(ctx)
	if err != nil {
		return "", err
	}
	now := s.clock.Now()
	c := jwtauth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: jwtauth.Issuer, Subject: u.ID, Audience: jwt.ClaimStrings{jwtauth.Audience},
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(s.accessTTL)), ID: newID(),
		},
		Role: role, Staff: u.IsStaff, Email: u.Email, SessionID: sid, AMR: amr, EmailVerified: u.EmailVerifiedAt != nil,
	}
	if len(c.AMR) == 0 {
		c.AMR = []string{jwtauth.AMRPassword}
	}
	if org != nil {
		c.Org, c.OrgKind, c.OrgMFA = org.ID, org.Kind, org.RequireMFA
	}
	return jwtauth.Sign(c, k.kid, k.key)
}

// Refresh rotates a refresh token. Presenting one that was already rotated means it was stolen or replayed:
// the whole family (every token of that sign-in) is revoked and the caller must sign in again.
func (s *Service) Refresh(ctx context.Context, token, orgID string, meta Meta) (Session, error) {
	now := s.clock.Now()
	var (
		next   string
		reused bool
		rt     RefreshToken
		org    *Organization
		role   string
	)
	err := s.tx(ctx, func(tx *gorm.DB) error {
		reused = false
		err := sqldb.ForUpdate(tx).Where("token_hash = ?", hashSecret(token)).Take(&rt).Error
		if sqldb.IsNotFound(err) {
			return ErrInvalidRefresh
		}
		if err != nil {
			return err
		}
		if rt.RevokedAt != nil || !now.Before(rt.ExpiresAt) {
			return ErrInvalidRefresh
		}
		if rt.UsedAt != nil {
			reused = true
			if err := s.endSessions(tx, now, rt.FamilyID); err != nil {
				return err
			}
			return s.writeAudit(tx, AuditEntry{Action: AuditRefreshReused, ActorUserID: rt.UserID,
				OrganizationID: rt.OrganizationID, Target: "session:" + rt.FamilyID, IP: meta.IP})
		}
		if err := tx.Model(&RefreshToken{}).Where("id = ?", rt.ID).Update("used_at", now).Error; err != nil {
			return err
		}
		want := orgID
		if want == "" {
			want = rt.OrganizationID
		}
		org, role, err = s.actingOrg(tx, rt.UserID, want)
		if errors.Is(err, ErrOrgNotFound) && orgID == "" {
			org, role, err = s.actingOrg(tx, rt.UserID, "") // removed from the session's organisation since
		}
		if err != nil {
			return err
		}
		next, err = s.newRefresh(tx, rt.UserID, orgIDOf(org), rt.FamilyID)
		return err
	})
	if err != nil {
		return Session{}, err
	}
	if reused {
		s.announce(ctx, now, rt.FamilyID)
		return Session{}, ErrRefreshReused
	}
	u, err := userByID(s.db.WithContext(ctx), rt.UserID)
	if err != nil {
		return Session{}, ErrInvalidRefresh
	}
	return s.session(ctx, u, org, role, next, s.familyAMR(ctx, rt.FamilyID)...)
}

// Logout revokes the session (refresh-token family) of token. Unknown tokens are ignored.
func (s *Service) Logout(ctx context.Context, token string, meta Meta) error {
	now := s.clock.Now()
	var family string
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var rt RefreshToken
		err := tx.Where("token_hash = ?", hashSecret(token)).Take(&rt).Error
		if sqldb.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		family = rt.FamilyID
		if err := s.endSessions(tx, now, rt.FamilyID); err != nil {
			return err
		}
		return s.writeAudit(tx, AuditEntry{Action: AuditLogout, ActorUserID: rt.UserID,
			OrganizationID: rt.OrganizationID, Target: "session:" + rt.FamilyID, IP: meta.IP})
	})
	if err == nil && family != "" {
		s.announce(ctx, now, family)
	}
	return err
}

// Me returns the user and their memberships.
func (s *Service) Me(ctx context.Context, userID string) (User, []MembershipView, error) {
	db := s.db.WithContext(ctx)
	u, err := userByID(db, userID)
	if err != nil {
		return User{}, nil, err
	}
	ms, err := membershipsOf(db, userID)
	return u, ms, err
}

// authorizeOrg checks that actor may act on orgID: it must be the organisation they act for (another
// organisation answers 404, like a missing one) and, when admin is set, they must be its owner or admin now.
// Staff may read every organisation. It returns the actor's current role ("" for staff outside it).
func (s *Service) authorizeOrg(db *gorm.DB, a Actor, orgID string, admin, write bool) (string, error) {
	if a.OrgID != orgID && !(a.Staff && !write) {
		return "", ErrOrgNotFound
	}
	if _, err := orgByID(db, orgID); err != nil {
		return "", err
	}
	m, err := membership(db, orgID, a.UserID)
	if errors.Is(err, ErrMemberNotFound) {
		if a.Staff && !write {
			return "", nil
		}
		return "", ErrOrgNotFound
	}
	if err != nil {
		return "", err
	}
	if admin && m.Role != RoleOwner && m.Role != RoleAdmin && !(a.Staff && !write) {
		return m.Role, problem.ErrForbidden.WithDetailMsg("problem.forbidden.owners_admins_only", nil)
	}
	return m.Role, nil
}

// Members lists an organisation's members.
func (s *Service) Members(ctx context.Context, a Actor, orgID, after string, limit int) ([]MemberView, error) {
	db := s.db.WithContext(ctx)
	if _, err := s.authorizeOrg(db, a, orgID, true, false); err != nil {
		return nil, err
	}
	return members(db, orgID, after, limit)
}

// Invite records an invitation and e-mails its token to the invitee.
func (s *Service) Invite(ctx context.Context, a Actor, in InviteInput) (Invitation, error) {
	if err := in.Validate(); err != nil {
		return Invitation{}, err
	}
	now := s.clock.Now()
	token := secret()
	inv := Invitation{ID: newID(), OrganizationID: in.OrgID, Email: in.Email, Role: in.Role,
		TokenHash: hashSecret(token), InvitedBy: a.UserID, CreatedAt: now, ExpiresAt: now.Add(s.inviteTTL)}
	var org Organization
	err := s.tx(ctx, func(tx *gorm.DB) error {
		role, err := s.authorizeOrg(tx, a, in.OrgID, true, true)
		if err != nil {
			return err
		}
		if in.Role == RoleOwner && role != RoleOwner {
			return ErrOwnersOnly
		}
		if org, err = orgByID(tx, in.OrgID); err != nil {
			return err
		}
		if u, err := userByEmail(tx, in.Email); err == nil {
			if _, err := membership(tx, in.OrgID, u.ID); err == nil {
				return ErrAlreadyMember
			}
		}
		// A new invitation replaces pending ones to the same address.
		if err := tx.Where("organization_id = ? AND email = ? AND accepted_at IS NULL AND revoked_at IS NULL", in.OrgID, in.Email).
			Delete(&Invitation{}).Error; err != nil {
			return err
		}
		if err := tx.Create(&inv).Error; err != nil {
			return err
		}
		return s.writeAudit(tx, AuditEntry{Action: AuditMemberInvited, ActorUserID: a.UserID, ActorEmail: a.Email,
			OrganizationID: in.OrgID, Target: "email:" + in.Email, IP: a.IP, Detail: details("role", in.Role)})
	})
	if err != nil {
		return Invitation{}, err
	}
	link := strings.TrimRight(s.publicURL, "/") + "/invitations/" + token
	body := fmt.Sprintf("Hello,\n\n%s invited you to join %q on Tamarack as %s.\n\nAccept the invitation: %s\n\n"+
		"Or through the API: POST %s/api/v1/identity/invitations/%s/accept\n\nThe invitation expires on %s.\n",
		a.Email, org.Name, in.Role, link, strings.TrimRight(s.publicURL, "/"), token, inv.ExpiresAt.Format(time.RFC1123))
	if err := s.mailer.Send(ctx, mail.Message{To: []string{in.Email}, Subject: "Invitation to join " + org.Name + " on Tamarack", Body: body}); err != nil {
		s.log.Error("invitation mail failed", "invitation", inv.ID, "err", err)
		return Invitation{}, ErrMailFailed
	}
	return inv, nil
}

// Accept joins the invitation's organisation: as the signed-in actor (whose e-mail must match), or, without
// an actor, by creating the account with in.Name and in.Password. A new account also gets a session.
func (s *Service) Accept(ctx context.Context, a *Actor, in AcceptInput) (Organization, string, *Session, error) {
	if a == nil {
		var f problem.Fields
		in.Name = strings.TrimSpace(in.Name)
		if in.Name == "" {
			f.Add("name", "required", "is required to create your account (or sign in first)")
		}
		if in.Password == "" {
			f.Add("password", "required", "is required to create your account (or sign in first)")
		}
		if err := f.Err(); err != nil {
			return Organization{}, "", nil, err
		}
	}
	now := s.clock.Now()
	var inv Invitation
	err := s.db.WithContext(ctx).Where("token_hash = ? AND accepted_at IS NULL AND revoked_at IS NULL", hashSecret(in.Token)).Take(&inv).Error
	if sqldb.IsNotFound(err) {
		return Organization{}, "", nil, ErrInvitationNotFound
	}
	if err != nil {
		return Organization{}, "", nil, err
	}
	if !now.Before(inv.ExpiresAt) {
		return Organization{}, "", nil, ErrInvitationExpired
	}
	var hash string
	if a == nil {
		var f problem.Fields
		checkPassword(&f, "password", in.Password, inv.Email)
		if err := f.Err(); err != nil {
			return Organization{}, "", nil, err
		}
		if hash, err = s.hash(ctx, in.Password); err != nil {
			return Organization{}, "", nil, err
		}
	} else if !strings.EqualFold(a.Email, inv.Email) {
		return Organization{}, "", nil, ErrInvitationMismatch
	}
	var (
		org     Organization
		u       User
		refresh string
		ip      = in.IP
	)
	err = s.tx(ctx, func(tx *gorm.DB) error {
		res := tx.Model(&Invitation{}).Where("id = ? AND accepted_at IS NULL AND revoked_at IS NULL", inv.ID).Update("accepted_at", now)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrInvitationNotFound // accepted concurrently
		}
		var err error
		if org, err = orgByID(tx, inv.OrganizationID); err != nil {
			return err
		}
		if a != nil {
			if u, err = userByID(tx, a.UserID); err != nil {
				return err
			}
		} else {
			// The invitation link reached this address: the account starts verified.
			u = User{ID: newID(), Email: inv.Email, Name: in.Name, PasswordHash: hash, CreatedAt: now, UpdatedAt: now, EmailVerifiedAt: &now}
			if err := tx.Create(&u).Error; err != nil {
				if sqldb.IsDuplicate(err) {
					return ErrEmailTaken.WithDetailMsg("problem.email_taken.accept", nil)
				}
				return err
			}
		}
		if err := tx.Model(&Invitation{}).Where("id = ?", inv.ID).Update("accepted_by", u.ID).Error; err != nil {
			return err
		}
		if err := markVerified(tx, &u, now); err != nil { // verify.go: the link proved the address
			return err
		}
		if err := s.addMember(tx, org.ID, &u, inv.Role, "added"); err != nil {
			return err
		}
		if a == nil {
			if refresh, err = s.newRefresh(tx, u.ID, org.ID, ""); err != nil {
				return err
			}
		}
		return s.writeAudit(tx, AuditEntry{Action: AuditInvitationAccepted, ActorUserID: u.ID, ActorEmail: u.Email,
			OrganizationID: org.ID, Target: "user:" + u.ID, IP: ip, Detail: details("role", inv.Role)})
	})
	if err != nil {
		return Organization{}, "", nil, err
	}
	s.outbox.Kick()
	if a != nil {
		return org, inv.Role, nil, nil
	}
	sess, err := s.session(ctx, u, &org, inv.Role, refresh)
	if err != nil {
		return Organization{}, "", nil, err
	}
	return org, inv.Role, &sess, nil
}

// ChangeRole sets a member's role. Only owners grant or take the owner role; the last owner stays.
func (s *Service) ChangeRole(ctx context.Context, a Actor, orgID, userID, role string) (MemberView, error) {
	var f problem.Fields
	checkRole(&f, role)
	if err := f.Err(); err != nil {
		return MemberView{}, err
	}
	var view MemberView
	err := s.tx(ctx, func(tx *gorm.DB) error {
		mine, err := s.authorizeOrg(tx, a, orgID, true, true)
		if err != nil {
			return err
		}
		if err := lockOrg(tx, orgID); err != nil {
			return err
		}
		m, err := membership(tx, orgID, userID)
		if err != nil {
			return err
		}
		if (role == RoleOwner || m.Role == RoleOwner) && mine != RoleOwner {
			return ErrOwnersOnly
		}
		if m.Role == RoleOwner && role != RoleOwner {
			if n, err := countOwners(tx, orgID); err != nil {
				return err
			} else if n <= 1 {
				return ErrLastOwner
			}
		}
		u, err := userByID(tx, userID)
		if err != nil {
			return err
		}
		view = MemberView{UserID: u.ID, Email: u.Email, Name: u.Name, Role: role, CreatedAt: m.CreatedAt}
		if m.Role == role {
			return nil
		}
		if err := tx.Model(&Membership{}).Where("organization_id = ? AND user_id = ?", orgID, userID).
			Update("role", role).Error; err != nil {
			return err
		}
		if err := s.membershipEvent(tx, orgID, &u, role, "role_changed"); err != nil {
			return err
		}
		return s.writeAudit(tx, AuditEntry{Action: AuditRoleChanged, ActorUserID: a.UserID, ActorEmail: a.Email,
			OrganizationID: orgID, Target: "user:" + userID, IP: a.IP, Detail: details("from", m.Role, "to", role)})
	})
	if err != nil {
		return MemberView{}, err
	}
	s.outbox.Kick()
	return view, nil
}

// lockOrg serialises membership changes of one organisation (Postgres row lock; SQLite's immediate
// transactions already serialise writers).
func lockOrg(tx *gorm.DB, orgID string) error {
	var o Organization
	err := sqldb.ForUpdate(tx).Where("id = ?", orgID).Take(&o).Error
	if sqldb.IsNotFound(err) {
		return ErrOrgNotFound
	}
	return err
}

// RemoveMember takes a member out of an organisation; members may remove themselves. The user's API tokens
// for the organisation are revoked with it.
func (s *Service) RemoveMember(ctx context.Context, a Actor, orgID, userID string) error {
	now := s.clock.Now()
	err := s.tx(ctx, func(tx *gorm.DB) error {
		self := userID == a.UserID
		mine, err := s.authorizeOrg(tx, a, orgID, !self, true)
		if err != nil {
			return err
		}
		if err := lockOrg(tx, orgID); err != nil {
			return err
		}
		m, err := membership(tx, orgID, userID)
		if err != nil {
			return err
		}
		if m.Role == RoleOwner {
			if mine != RoleOwner {
				return ErrOwnersOnly
			}
			if n, err := countOwners(tx, orgID); err != nil {
				return err
			} else if n <= 1 {
				return ErrLastOwner
			}
		}
		u, err := userByID(tx, userID)
		if err != nil {
			return err
		}
		if err := tx.Where("organization_id = ? AND user_id = ?", orgID, userID).Delete(&Membership{}).Error; err != nil {
			return err
		}
		if err := tx.Model(&APIToken{}).Where("organization_id = ? AND user_id = ? AND revoked_at IS NULL", orgID, userID).
			Update("revoked_at", now).Error; err != nil {
			return err
		}
		if err := s.membershipEvent(tx, orgID, &u, "", "removed"); err != nil {
			return err
		}
		return s.writeAudit(tx, AuditEntry{Action: AuditMemberRemoved, ActorUserID: a.UserID, ActorEmail: a.Email,
			OrganizationID: orgID, Target: "user:" + userID, IP: a.IP, Detail: details("role", m.Role)})
	})
	if err != nil {
		return err
	}
	s.outbox.Kick()
	return nil
}

// CreateToken mints an API token for the actor's organisation; the secret is returned once and stored hashed.
func (s *Service) CreateToken(ctx context.Context, a Actor, in CreateTokenInput) (APIToken, string, error) {
	if a.APIToken {
		return APIToken{}, "", ErrAPITokenNotAllowed
	}
	now := s.clock.Now()
	if err := in.validate(now); err != nil {
		return APIToken{}, "", err
	}
	if a.OrgID == "" {
		return APIToken{}, "", problem.ErrForbidden.WithDetailMsg("problem.forbidden.tokens_need_org", nil)
	}
	token := web.APITokenPrefix + secret()
	t := APIToken{ID: newID(), UserID: a.UserID, OrganizationID: a.OrgID, Name: in.Name, TokenHash: hashSecret(token),
		Hint: token[:len(web.APITokenPrefix)+6], Scopes: strings.Join(in.Scopes, ","), CreatedAt: now,
		ExpiresAt: in.ExpiresAt.UTC()}
	err := s.tx(ctx, func(tx *gorm.DB) error {
		if _, err := membership(tx, a.OrgID, a.UserID); err != nil {
			return ErrOrgNotFound
		}
		if err := tx.Create(&t).Error; err != nil {
			return err
		}
		return s.writeAudit(tx, AuditEntry{Action: AuditTokenCreated, ActorUserID: a.UserID, ActorEmail: a.Email,
			OrganizationID: a.OrgID, Target: "api_token:" + t.ID, IP: a.IP, Detail: details("scopes", in.Scopes, "expires_at", t.ExpiresAt)})
	})
	if err != nil {
		return APIToken{}, "", err
	}
	return t, token, nil
}

// Tokens lists the actor's live API tokens in the acting organisation.
func (s *Service) Tokens(ctx context.Context, a Actor, after string, limit int) ([]APIToken, error) {
	return listTokens(s.db.WithContext(ctx), a.UserID, a.OrgID, after, limit)
}

// RevokeToken revokes one of the actor's tokens; another user's or organisation's answers 404.
func (s *Service) RevokeToken(ctx context.Context, a Actor, id string) error {
	now := s.clock.Now()
	return s.tx(ctx, func(tx *gorm.DB) error {
		res := tx.Model(&APIToken{}).Where("id = ? AND user_id = ? AND organization_id = ? AND revoked_at IS NULL",
			id, a.UserID, a.OrgID).Update("revoked_at", now)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrTokenNotFound
		}
		return s.writeAudit(tx, AuditEntry{Action: AuditTokenRevoked, ActorUserID: a.UserID, ActorEmail: a.Email,
			OrganizationID: a.OrgID, Target: "api_token:" + id, IP: a.IP})
	})
}

// AuthenticateToken resolves an API token to its principal: live, unexpired, and its user still a member.
func (s *Service) AuthenticateToken(ctx context.Context, token string) (web.Principal, error) {
	if !strings.HasPrefix(token, web.APITokenPrefix) || len(token) > 200 {
		return web.Principal{}, ErrBadToken
	}
	db := s.db.WithContext(ctx)
	now := s.clock.Now()
	var t APIToken
	if err := db.Where("token_hash = ?", hashSecret(token)).Take(&t).Error; err != nil {
		if sqldb.IsNotFound(err) {
			return web.Principal{}, ErrBadToken
		}
		return web.Principal{}, err
	}
	if t.RevokedAt != nil || !now.Before(t.ExpiresAt) {
		return web.Principal{}, ErrBadToken
	}
	m, err := membership(db, t.OrganizationID, t.UserID)
	if err != nil {
		return web.Principal{}, ErrBadToken
	}
	u, err := userByID(db, t.UserID)
	if err != nil {
		return web.Principal{}, ErrBadToken
	}
	o, err := orgByID(db, t.OrganizationID)
	if err != nil {
		return web.Principal{}, ErrBadToken
	}
	// Last use is kept to the minute: one write per token a minute, not one per request.
	if t.LastUsedAt == nil || now.Sub(*t.LastUsedAt) > time.Minute {
		if err := db.Model(&APIToken{}).Where("id = ?", t.ID).Update("last_used_at", now).Error; err != nil {
			s.log.Warn("api token last use not recorded", "token_id", t.ID, "err", err)
		}
	}
	// An API token has no second factor of its own: it is as strong as its user's sign-in (mfa.go).
	mfa, err := mfaEnabled(db, u.ID)
	if err != nil {
		return web.Principal{}, err
	}
	return web.Principal{UserID: u.ID, Email: u.Email, OrgID: o.ID, OrgKind: o.Kind, Role: m.Role, Staff: u.IsStaff && mfa,
		TokenID: t.ID, APIToken: true, Scopes: t.ScopeList(), MFA: mfa, StaffNeedsMFA: u.IsStaff && !mfa, OrgRequiresMFA: o.RequireMFA,
		EmailVerified: u.EmailVerifiedAt != nil}, nil
}

type apiTokenAuth struct{ s *Service }

func (a apiTokenAuth) Authenticate(ctx context.Context, token string) (web.Principal, error) {
	return a.s.AuthenticateToken(ctx, token)
}

// verifyTokenRequest answers events.TokenVerify for services in other processes.
func (s *Service) verifyTokenRequest(ctx context.Context, req events.TokenVerifyV1) (events.TokenPrincipalV1, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	p, err := s.AuthenticateToken(ctx, req.Token)
	if err != nil {
		if _, ok := problem.From(err); ok {
			return events.TokenPrincipalV1{}, ErrBadToken
		}
		return events.TokenPrincipalV1{}, err
	}
	return events.TokenPrincipalV1{UserID: p.UserID, Email: p.Email, OrgID: p.OrgID, OrgKind: p.OrgKind, Role: p.Role,
		Staff: p.Staff, TokenID: p.TokenID, Scopes: p.Scopes, EmailVerified: p.EmailVerified}, nil
}

// Organizations lists organisations for staff.
func (s *Service) Organizations(ctx context.Context, f OrgFilter) ([]Organization, error) {
	return listOrgs(s.db.WithContext(ctx), f)
}

// Verify marks an organisation verified (or not) by staff, with a note, announcing it.
func (s *Service) Verify(ctx context.Context, a Actor, orgID string, verified bool, note string) (Organization, error) {
	if !a.Staff {
		return Organization{}, problem.ErrForbidden.WithDetailMsg("problem.forbidden.staff_only", nil)
	}
	now := s.clock.Now()
	var o Organization
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		if o, err = orgByID(sqldb.ForUpdate(tx), orgID); err != nil {
			return err
		}
		o.Verified, o.VerifiedAt, o.VerifiedBy, o.VerificationNote = verified, &now, a.UserID, note
		if err := tx.Model(&Organization{}).Where("id = ?", orgID).Updates(map[string]any{
			"verified": verified, "verified_at": now, "verified_by": a.UserID, "verification_note": note}).Error; err != nil {
			return err
		}
		if err := eventbus.Write(tx, s.outbox, events.OrganizationVerified, newID(), events.OrganizationVerifiedV1{
			OrganizationID: orgID, Verified: verified, ByUserID: a.UserID, At: now}); err != nil {
			return err
		}
		return s.writeAudit(tx, AuditEntry{Action: AuditOrgVerified, ActorUserID: a.UserID, ActorEmail: a.Email,
			OrganizationID: orgID, Target: "organization:" + orgID, IP: a.IP,
			Detail: details("verified", verified, "note", note)})
	})
	if err != nil {
		return Organization{}, err
	}
	s.outbox.Kick()
	return o, nil
}

// Audit lists audit entries: staff see all (optionally one organisation), org admins their organisation.
func (s *Service) Audit(ctx context.Context, a Actor, f AuditFilter) ([]AuditEntry, error) {
	db := s.db.WithContext(ctx)
	if !a.Staff {
		if f.OrgID != "" && f.OrgID != a.OrgID {
			return nil, ErrOrgNotFound
		}
		if a.OrgID == "" {
			return nil, problem.ErrForbidden.WithDetailMsg("problem.forbidden.owners_admins_only", nil)
		}
		if _, err := s.authorizeOrg(db, a, a.OrgID, true, false); err != nil {
			return nil, err
		}
		f.OrgID = a.OrgID
	}
	return listAudit(db, f)
}

// Promote makes a user programme staff (the `tamarack users promote` command).
func (s *Service) Promote(ctx context.Context, email, by string) (User, error) {
	email = normalizeEmail(email)
	var u User
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		if u, err = userByEmail(tx, email); err != nil {
			return err
		}
		if u.IsStaff {
			return nil
		}
		u.IsStaff = true
		if err := tx.Model(&User{}).Where("id = ?", u.ID).Updates(map[string]any{"is_staff": true, "updated_at": s.clock.Now()}).Error; err != nil {
			return err
		}
		return s.writeAudit(tx, AuditEntry{Action: AuditUserPromoted, ActorEmail: by, Target: "user:" + u.ID})
	})
	return u, err
}

// RotateSigningKey starts signing with a new key; tokens signed by older keys keep verifying until
// RetireSigningKey (or MaintainKeys, once they have all expired).
func (s *Service) RotateSigningKey(ctx context.Context) (string, error) {
	kid, err := s.keys.rotate(ctx)
	if err != nil {
		return "", err
	}
	s.auditNow(ctx, AuditEntry{Action: AuditKeyRotated, Target: "kid:" + kid})
	return kid, nil
}

// RetireSigningKey stops kid from verifying tokens.
func (s *Service) RetireSigningKey(ctx context.Context, kid string) error {
	if err := s.keys.retire(ctx, kid); err != nil {
		return err
	}
	s.auditNow(ctx, AuditEntry{Action: AuditKeyRetired, Target: "kid:" + kid})
	return nil
}

// MaintainKeys reloads the keys, rotates an old signer and retires keys whose tokens have all expired.
func (s *Service) MaintainKeys(ctx context.Context) error {
	rotated, retired, err := s.keys.maintain(ctx)
	if rotated != "" {
		s.auditNow(ctx, AuditEntry{Action: AuditKeyRotated, Target: "kid:" + rotated})
	}
	for _, kid := range retired {
		s.auditNow(ctx, AuditEntry{Action: AuditKeyRetired, Target: "kid:" + kid})
	}
	return err
}

// JWKS lists the public keys that verify access tokens.
func (s *Service) JWKS(ctx context.Context) (jwtauth.JWKS, error) { return s.keys.jwks(ctx) }

// DemoAccount describes one demo user and their organisation for EnsureDemo.
type DemoAccount struct {
	Email, Name, Password string
	OrgName, OrgKind      string
	Verified, Staff       bool
}

// EnsureDemo creates (or finds) a demo user as owner of an organisation, idempotently.
func (s *Service) EnsureDemo(ctx context.Context, d DemoAccount) (userID, orgID string, err error) {
	email := normalizeEmail(d.Email)
	hash, err := s.hash(ctx, d.Password)
	if err != nil {
		return "", "", err
	}
	now := s.clock.Now()
	err = s.tx(ctx, func(tx *gorm.DB) error {
		u, err := userByEmail(tx, email)
		if errors.Is(err, ErrUserNotFound) {
			u = User{ID: newID(), Email: email, Name: d.Name, PasswordHash: hash, IsStaff: d.Staff, CreatedAt: now, UpdatedAt: now, EmailVerifiedAt: &now}
			err = tx.Create(&u).Error
		}
		if err != nil {
			return err
		}
		if d.Staff && !u.IsStaff {
			if err := tx.Model(&User{}).Where("id = ?", u.ID).Update("is_staff", true).Error; err != nil {
				return err
			}
		}
		var o Organization
		err = tx.Where("name = ? AND kind = ?", d.OrgName, d.OrgKind).Order("id").Take(&o).Error
		if sqldb.IsNotFound(err) {
			o = Organization{ID: newID(), Name: d.OrgName, Kind: d.OrgKind, CreatedAt: now}
			err = s.createOrg(tx, &o, u.ID)
		}
		if err != nil {
			return err
		}
		if d.Verified && !o.Verified {
			if err := tx.Model(&Organization{}).Where("id = ?", o.ID).Updates(map[string]any{
				"verified": true, "verified_at": now, "verification_note": "demo data"}).Error; err != nil {
				return err
			}
			if err := eventbus.Write(tx, s.outbox, events.OrganizationVerified, newID(), events.OrganizationVerifiedV1{
				OrganizationID: o.ID, Verified: true, At: now}); err != nil {
				return err
			}
		}
		if _, err := membership(tx, o.ID, u.ID); errors.Is(err, ErrMemberNotFound) {
			if err := s.addMember(tx, o.ID, &u, RoleOwner, "added"); err != nil {
				return err
			}
		} else if err != nil {
			return err
		}
		userID, orgID = u.ID, o.ID
		return nil
	})
	if err == nil {
		s.outbox.Kick()
	}
	return userID, orgID, err
}
