package identity

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/text/language"

	"github.com/tamarack-ai/tamarack/platform/i18n"
	"github.com/tamarack-ai/tamarack/platform/openapi"
	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/web"
)

// Base is where identity's routes are mounted.
const Base = "/api/v1/identity"

type handler struct{ svc *Service }

// Routes mounts identity's routes on r (the /api/v1/identity group, behind the auth middleware).
func (s *Service) Routes(r fiber.Router) {
	h := handler{s}
	// The invitation token is a secret: no log line carries it, even when auth refuses the request first.
	web.SecretPath(Base + "/invitations/:token/accept")
	r.Use(web.LimitBody(MaxBody), clientMeta)
	write := web.RequireScope(ScopeWrite)
	read := web.RequireScope(ScopeRead)
	r.Post("/signup", h.signup)
	r.Post("/login", h.login)
	r.Post("/refresh", h.refresh)
	r.Post("/logout", h.logout)
	r.Get("/me", web.RequireAuth, h.me)
	r.Get("/.well-known/jwks.json", h.jwks)
	r.Get("/organizations", web.RequireStaff, read, h.organizations)
	r.Post("/organizations/:org_id/verify", web.RequireStaff, write, h.verify)
	r.Get("/organizations/:org_id/members", web.RequireAuth, read, h.members)
	r.Post("/organizations/:org_id/members", web.RequireAuth, write, h.invite)
	r.Patch("/organizations/:org_id/members/:user_id", web.RequireAuth, write, h.changeRole)
	r.Delete("/organizations/:org_id/members/:user_id", web.RequireAuth, write, h.removeMember)
	r.Post("/invitations/:token/accept", h.accept)
	r.Get("/tokens", web.RequireAuth, h.tokens)
	r.Post("/tokens", web.RequireAuth, h.createToken)
	r.Delete("/tokens/:id", web.RequireAuth, write, h.revokeToken)
	r.Get("/audit", web.RequireAuth, read, h.audit)
	r.Get("/sessions", web.RequireAuth, read, h.sessions)
	r.Delete("/sessions/:id", web.RequireAuth, write, h.endSession)
	h.mfaRoutes(r, write)
	h.sshKeyRoutes(r, read, write) // sshkeys.go
	s.oidcRoutes(r)
	h.mailRoutes(r) // mailflows_http.go
	h.deviceRoutes(r)
}

// MaxBody caps identity's request bodies, below the server's default.
const MaxBody = 64 << 10

// JSON shapes (fixed: the web UI codes against them).

type signupOrgRequest struct {
	Name string `json:"name" openapi:"required"`
	Kind string `json:"kind" openapi:"required" doc:"sme, vendor or partner"`
}

type signupRequest struct {
	Email        string           `json:"email" openapi:"required"`
	Password     string           `json:"password" text:"secret" openapi:"required" doc:"at least 12 characters, not the e-mail"`
	Name         string           `json:"name" openapi:"required"`
	Organization signupOrgRequest `json:"organization" openapi:"required"`
}

func (r *signupRequest) input(ip string) SignupInput {
	return SignupInput{Email: r.Email, Password: r.Password, Name: r.Name, OrgName: r.Organization.Name,
		OrgKind: r.Organization.Kind, Meta: Meta{IP: ip}}
}

// Validate lists every bad field (the struct tags above only document required fields; see below).
func (r *signupRequest) Validate() error {
	in := r.input("")
	return in.Validate()
}

type loginRequest struct {
	Email          string `json:"email" openapi:"required"`
	Password       string `json:"password" text:"secret" openapi:"required"`
	OrganizationID string `json:"organization_id,omitempty" doc:"act for this organisation (default: the oldest membership)"`
}

func (r *loginRequest) Validate() error {
	var f problem.Fields
	f.Check(strings.TrimSpace(r.Email) != "", "email", "required", "is required")
	f.Check(r.Password != "", "password", "required", "is required")
	f.Check(len(r.Password) <= 1024, "password", "max", "must be at most 1024 bytes")
	return f.Err()
}

type refreshRequest struct {
	RefreshToken   string `json:"refresh_token" openapi:"required"`
	OrganizationID string `json:"organization_id,omitempty" doc:"switch to this organisation"`
}

func (r *refreshRequest) Validate() error {
	var f problem.Fields
	f.Check(r.RefreshToken != "", "refresh_token", "required", "is required")
	f.Check(len(r.RefreshToken) <= 200, "refresh_token", "max", "is too long")
	return f.Err()
}

type logoutRequest struct {
	RefreshToken string `json:"refresh_token" openapi:"required"`
}

func (r *logoutRequest) Validate() error {
	var f problem.Fields
	f.Check(r.RefreshToken != "", "refresh_token", "required", "is required")
	f.Check(len(r.RefreshToken) <= 200, "refresh_token", "max", "is too long")
	return f.Err()
}

type tokensJSON struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
}

type userJSON struct {
	ID      string `json:"id"`
	Email   string `json:"email"`
	Name    string `json:"name"`
	IsStaff bool   `json:"is_staff"`
}

type meUserJSON struct {
	userJSON
	CreatedAt     time.Time `json:"created_at"`
	EmailVerified bool      `json:"email_verified" doc:"false until the link of the verification e-mail is opened"`
}

type orgJSON struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Kind     string `json:"kind"`
	Verified bool   `json:"verified"`
}

type signupResponse struct {
	tokensJSON
	User         userJSON `json:"user"`
	Organization orgJSON  `json:"organization"`
}

type membershipJSON struct {
	Organization orgJSON `json:"organization"`
	Role         string  `json:"role"`
}

type meResponse struct {
	User                 meUserJSON       `json:"user"`
	Memberships          []membershipJSON `json:"memberships"`
	ActiveOrganizationID *string          `json:"active_organization_id" doc:"null when the user belongs to no organisation"`
}

type staffOrgJSON struct {
	orgJSON
	CreatedAt        time.Time  `json:"created_at"`
	VerifiedAt       *time.Time `json:"verified_at,omitempty"`
	VerifiedBy       string     `json:"verified_by,omitempty"`
	VerificationNote string     `json:"verification_note,omitempty"`
}

type verifyRequest struct {
	Verified *bool  `json:"verified" openapi:"required" doc:"an empty body verifies"`
	Note     string `json:"note" text:"multiline"`
}

func (r *verifyRequest) Validate() error {
	var f problem.Fields
	f.Check(r.Verified != nil, "verified", "required", "is required (true or false)")
	f.Check(len(r.Note) <= 2000, "note", "max", "must be at most 2000 characters")
	return f.Err()
}

type memberJSON struct {
	UserID   string    `json:"user_id"`
	Email    string    `json:"email"`
	Name     string    `json:"name"`
	Role     string    `json:"role"`
	JoinedAt time.Time `json:"joined_at"`
}

type inviteRequest struct {
	Email string `json:"email" openapi:"required"`
	Role  string `json:"role" openapi:"required" doc:"owner, admin or member"`
}

func (r *inviteRequest) Validate() error {
	in := InviteInput{Email: r.Email, Role: r.Role}
	return in.Validate()
}

type invitationJSON struct {
	ID             string    `json:"id"`
	OrganizationID string    `json:"organization_id"`
	Email          string    `json:"email"`
	Role           string    `json:"role"`
	CreatedAt      time.Time `json:"created_at"`
	ExpiresAt      time.Time `json:"expires_at"`
}

type roleRequest struct {
	Role string `json:"role" openapi:"required" doc:"owner, admin or member"`
}

func (r *roleRequest) Validate() error {
	var f problem.Fields
	checkRole(&f, r.Role)
	return f.Err()
}

type acceptRequest struct {
	Name     string `json:"name,omitempty" doc:"when not signed in: creates the account"`
	Password string `json:"password,omitempty" text:"secret" doc:"when not signed in: creates the account"`
}

type acceptResponse struct {
	Organization orgJSON     `json:"organization"`
	Role         string      `json:"role"`
	Session      *tokensJSON `json:"session,omitempty" doc:"tokens of the new account"`
}

type createTokenRequest struct {
	Name          string   `json:"name" openapi:"required"`
	Scopes        []string `json:"scopes" openapi:"required" doc:"read, write"`
	ExpiresAt     string   `json:"expires_at,omitempty" doc:"required unless expires_in_days is given: RFC 3339, at most one year ahead"`
	ExpiresInDays *int     `json:"expires_in_days,omitempty" doc:"1 to 366; or expires_at"`
}

type tokenJSON struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Hint       string     `json:"hint"`
	Scopes     []string   `json:"scopes"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  time.Time  `json:"expires_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
}

type createdTokenJSON struct {
	tokenJSON
	Token string `json:"token" doc:"shown once"`
}

type auditJSON struct {
	ID             string         `json:"id"`
	At             time.Time      `json:"at"`
	Action         string         `json:"action"`
	ActionDisplay  string         `json:"action_display" doc:"the action named for people, in the language of Accept-Language (the action itself when no name is catalogued)"`
	ActorID        string         `json:"actor_id,omitempty"`
	ActorEmail     string         `json:"actor_email,omitempty"`
	OrganizationID string         `json:"organization_id,omitempty"`
	TargetType     string         `json:"target_type,omitempty" doc:"organization, user, email, api_token, session, kid"`
	TargetID       string         `json:"target_id,omitempty"`
	IP             string         `json:"ip,omitempty"`
	Detail         map[string]any `json:"detail,omitempty"`
}

// Converters.

func toTokensJSON(s Session) tokensJSON {
	return tokensJSON{AccessToken: s.AccessToken, RefreshToken: s.RefreshToken, TokenType: "Bearer", ExpiresIn: s.ExpiresIn}
}

func toUserJSON(u User) userJSON {
	return userJSON{ID: u.ID, Email: u.Email, Name: u.Name, IsStaff: u.IsStaff}
}

func toOrgJSON(o Organization) orgJSON {
	return orgJSON{ID: o.ID, Name: o.Name, Kind: o.Kind, Verified: o.Verified}
}

func toStaffOrgJSON(o Organization) staffOrgJSON {
	return staffOrgJSON{orgJSON: toOrgJSON(o), CreatedAt: o.CreatedAt, VerifiedAt: o.VerifiedAt,
		VerifiedBy: o.VerifiedBy, VerificationNote: o.VerificationNote}
}

func toTokenJSON(t APIToken) tokenJSON {
	return tokenJSON{ID: t.ID, Name: t.Name, Hint: t.Hint, Scopes: t.ScopeList(), CreatedAt: t.CreatedAt,
		ExpiresAt: t.ExpiresAt, LastUsedAt: t.LastUsedAt}
}

func toAuditJSON(e AuditEntry, lang language.Tag) auditJSON {
	typ, id, _ := strings.Cut(e.Target, ":")
	display, ok := i18n.Default().Text(lang, "audit."+e.Action, nil)
	if !ok {
		display = e.Action
	}
	out := auditJSON{ID: e.ID, At: e.CreatedAt, Action: e.Action, ActionDisplay: display, ActorID: e.ActorUserID, ActorEmail: e.ActorEmail,
		OrganizationID: e.OrganizationID, TargetType: typ, TargetID: id, IP: e.IP}
	if e.Detail != "" {
		_ = json.Unmarshal([]byte(e.Detail), &out.Detail)
	}
	return out
}

func actorOf(c *fiber.Ctx) Actor {
	return Actor{Principal: web.PrincipalOf(c), Meta: Meta{IP: web.ClientIP(c)}}
}

// Handlers.

func (h handler) signup(c *fiber.Ctx) error {
	var req signupRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	s, err := h.svc.Signup(c.UserContext(), req.input(web.ClientIP(c)))
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(signupResponse{tokensJSON: toTokensJSON(s), User: toUserJSON(s.User),
		Organization: toOrgJSON(*s.Org)})
}

func (h handler) login(c *fiber.Ctx) error {
	var req loginRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	s, err := h.svc.Login(c.UserContext(), LoginInput{Email: req.Email, Password: req.Password, OrgID: req.OrganizationID,
		Meta: Meta{IP: web.ClientIP(c)}})
	if err != nil {
		return err
	}
	if s.MFAToken != "" {
		return c.JSON(loginResponse{MFARequired: true, MFAToken: s.MFAToken, ExpiresIn: s.ExpiresIn})
	}
	t := toTokensJSON(s)
	return c.JSON(loginResponse{AccessToken: t.AccessToken, RefreshToken: t.RefreshToken, TokenType: t.TokenType, ExpiresIn: t.ExpiresIn})
}

func (h handler) refresh(c *fiber.Ctx) error {
	var req refreshRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	s, err := h.svc.Refresh(c.UserContext(), req.RefreshToken, req.OrganizationID, Meta{IP: web.ClientIP(c)})
	if err != nil {
		return err
	}
	return c.JSON(toTokensJSON(s))
}

func (h handler) logout(c *fiber.Ctx) error {
	var req logoutRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	if err := h.svc.Logout(c.UserContext(), req.RefreshToken, Meta{IP: web.ClientIP(c)}); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (h handler) me(c *fiber.Ctx) error {
	p := web.PrincipalOf(c)
	u, ms, err := h.svc.Me(c.UserContext(), p.UserID)
	if err != nil {
		return err
	}
	out := meResponse{User: meUserJSON{userJSON: toUserJSON(u), CreatedAt: u.CreatedAt, EmailVerified: u.EmailVerifiedAt != nil},
		Memberships: make([]membershipJSON, 0, len(ms))}
	if p.OrgID != "" {
		out.ActiveOrganizationID = &p.OrgID
	}
	for _, m := range ms {
		out.Memberships = append(out.Memberships, membershipJSON{Organization: toOrgJSON(m.Org), Role: m.Role})
	}
	return c.JSON(out)
}

func (h handler) jwks(c *fiber.Ctx) error {
	doc, err := h.svc.JWKS(c.UserContext())
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "public, max-age=60")
	return c.JSON(doc)
}

func (h handler) organizations(c *fiber.Ctx) error {
	page, err := web.PageOf(c)
	if err != nil {
		return err
	}
	var f problem.Fields
	filter := OrgFilter{Kind: c.Query("kind"), Limit: page.Limit}
	switch filter.Kind {
	case "", KindSME, KindVendor, KindPartner, KindProgramme:
	default:
		f.Add("kind", "oneof", "must be one of: sme, vendor, partner, programme")
	}
	if v := c.Query("verified"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			f.Add("verified", "wrong_type", "must be true or false")
		}
		filter.Verified = &b
	}
	if err := f.Err(); err != nil {
		return err
	}
	if page.Cursor != "" {
		if err := web.DecodeCursor(page.Cursor, &filter.After); err != nil {
			return err
		}
	}
	orgs, err := h.svc.Organizations(c.UserContext(), filter)
	if err != nil {
		return err
	}
	items := make([]staffOrgJSON, len(orgs))
	for i, o := range orgs {
		items[i] = toStaffOrgJSON(o)
	}
	return c.JSON(web.NewList(items, page.Limit, func(last staffOrgJSON) any { return last.ID }))
}

func (h handler) verify(c *fiber.Ctx) error {
	var req verifyRequest
	if len(strings.TrimSpace(string(c.Body()))) == 0 {
		yes := true // an empty body verifies
		req.Verified = &yes
	} else if err := web.Bind(c, &req); err != nil {
		return err
	}
	o, err := h.svc.Verify(c.UserContext(), actorOf(c), c.Params("org_id"), *req.Verified, strings.TrimSpace(req.Note))
	if err != nil {
		return err
	}
	return c.JSON(toStaffOrgJSON(o))
}

func (h handler) members(c *fiber.Ctx) error {
	return keyList(c, func(after string, limit int) ([]MemberView, error) {
		return h.svc.Members(c.UserContext(), actorOf(c), c.Params("org_id"), after, limit)
	}, func(m MemberView) memberJSON {
		return memberJSON{UserID: m.UserID, Email: m.Email, Name: m.Name, Role: m.Role, JoinedAt: m.CreatedAt}
	}, func(m memberJSON) string { return m.UserID })
}

func (h handler) invite(c *fiber.Ctx) error {
	var req inviteRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	inv, err := h.svc.Invite(c.UserContext(), actorOf(c), InviteInput{OrgID: c.Params("org_id"), Email: req.Email, Role: req.Role})
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(invitationJSON{ID: inv.ID, OrganizationID: inv.OrganizationID,
		Email: inv.Email, Role: inv.Role, CreatedAt: inv.CreatedAt, ExpiresAt: inv.ExpiresAt})
}

func (h handler) changeRole(c *fiber.Ctx) error {
	var req roleRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	m, err := h.svc.ChangeRole(c.UserContext(), actorOf(c), c.Params("org_id"), c.Params("user_id"), req.Role)
	if err != nil {
		return err
	}
	return c.JSON(memberJSON{UserID: m.UserID, Email: m.Email, Name: m.Name, Role: m.Role, JoinedAt: m.CreatedAt})
}

func (h handler) removeMember(c *fiber.Ctx) error {
	if err := h.svc.RemoveMember(c.UserContext(), actorOf(c), c.Params("org_id"), c.Params("user_id")); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (h handler) accept(c *fiber.Ctx) error {
	// The token is a secret: the access log gets the route pattern, not the path.
	web.SetLogPath(c, Base+"/invitations/:token/accept")
	// Joining an organisation is a write: a read-only API token may not (checked here, after the log path).
	if p := web.PrincipalOf(c); p.Authenticated() && !p.HasScope(ScopeWrite) {
		return problem.ErrForbidden.WithDetailMsg("problem.forbidden.scope", problem.Args{"Scope": ScopeWrite})
	}
	var req acceptRequest
	if len(strings.TrimSpace(string(c.Body()))) > 0 {
		if err := web.Bind(c, &req); err != nil {
			return err
		}
	}
	var actor *Actor
	if web.PrincipalOf(c).Authenticated() {
		a := actorOf(c)
		actor = &a
	}
	org, role, sess, err := h.svc.Accept(c.UserContext(), actor, AcceptInput{Token: c.Params("token"), Name: req.Name,
		Password: req.Password, Meta: Meta{IP: web.ClientIP(c)}})
	if err != nil {
		return err
	}
	out := acceptResponse{Organization: toOrgJSON(org), Role: role}
	if sess != nil {
		t := toTokensJSON(*sess)
		out.Session = &t
	}
	return c.JSON(out)
}

// keyList answers one page of a list whose cursor holds the last key of the previous page: fetch reads up to
// limit+1 records after that key ("" on the first page), toJSON converts each, and key is an item's key.
func keyList[T, J any](c *fiber.Ctx, fetch func(after string, limit int) ([]T, error), toJSON func(T) J, key func(J) string) error {
	page, err := web.PageOf(c)
	if err != nil {
		return err
	}
	var after string
	if page.Cursor != "" {
		if err := web.DecodeCursor(page.Cursor, &after); err != nil {
			return err
		}
	}
	rs, err := fetch(after, page.Limit)
	if err != nil {
		return err
	}
	items := make([]J, len(rs))
	for i, r := range rs {
		items[i] = toJSON(r)
	}
	return c.JSON(web.NewList(items, page.Limit, func(last J) any { return key(last) }))
}

func (h handler) tokens(c *fiber.Ctx) error {
	return keyList(c, func(after string, limit int) ([]APIToken, error) {
		return h.svc.Tokens(c.UserContext(), actorOf(c), after, limit)
	}, toTokenJSON, func(t tokenJSON) string { return t.ID })
}

func (h handler) createToken(c *fiber.Ctx) error {
	var req createTokenRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	in := CreateTokenInput{Name: req.Name, Scopes: req.Scopes}
	var f problem.Fields
	switch {
	case req.ExpiresAt != "" && req.ExpiresInDays != nil:
		f.Add("expires_in_days", "conflict", "give expires_at or expires_in_days, not both")
	case req.ExpiresInDays != nil:
		if d := *req.ExpiresInDays; d < 1 || d > 366 {
			f.Add("expires_in_days", "out_of_range", "must be from 1 to 366")
		} else {
			in.ExpiresAt = h.svc.clock.Now().Add(time.Duration(d) * 24 * time.Hour)
		}
	case req.ExpiresAt != "":
		t, err := time.Parse(time.RFC3339, req.ExpiresAt)
		if err != nil {
			f.Add("expires_at", "format", "must be an RFC 3339 time, e.g. 2027-01-31T00:00:00Z")
		}
		in.ExpiresAt = t
	}
	if err := f.Err(); err != nil {
		return err
	}
	t, token, err := h.svc.CreateToken(c.UserContext(), actorOf(c), in)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(createdTokenJSON{tokenJSON: toTokenJSON(t), Token: token})
}

func (h handler) revokeToken(c *fiber.Ctx) error {
	if err := h.svc.RevokeToken(c.UserContext(), actorOf(c), c.Params("id")); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (h handler) audit(c *fiber.Ctx) error {
	page, err := web.PageOf(c)
	if err != nil {
		return err
	}
	f := AuditFilter{OrgID: c.Query("organization_id"), Action: c.Query("action"), Actor: c.Query("actor_id"), Limit: page.Limit}
	if page.Cursor != "" {
		if err := web.DecodeCursor(page.Cursor, &f.Before); err != nil {
			return err
		}
	}
	entries, err := h.svc.Audit(c.UserContext(), actorOf(c), f)
	if err != nil {
		return err
	}
	items := make([]auditJSON, len(entries))
	lang := web.Lang(c)
	for i, e := range entries {
		items[i] = toAuditJSON(e, lang)
	}
	return c.JSON(web.NewList(items, page.Limit, func(last auditJSON) any { return last.ID }))
}

// OpenAPI declares identity's operations.
func (s *Service) OpenAPI(d *openapi.Doc) {
	const tag = "identity"
	page := []openapi.Param{{Name: "limit", Type: "integer", Description: "1 to 200, default 50"}, {Name: "cursor", Description: "from next_cursor"}}
	d.Add(
		openapi.Op{Method: "POST", Path: Base + "/signup", Summary: "Create a user as owner of a new organisation", Tag: tag,
			Request: signupRequest{}, Response: signupResponse{}, Status: 201, Problems: []string{"email_taken", "validation_failed"}},
		openapi.Op{Method: "POST", Path: Base + "/login", Summary: "Sign in (failures throttled per account and client IP, and per client IP)", Tag: tag,
			Request: loginRequest{}, Response: loginResponse{}, Problems: []string{"invalid_credentials", "too_many_attempts", "organization_not_found"}},
		openapi.Op{Method: "POST", Path: Base + "/refresh", Summary: "Rotate a refresh token; reuse revokes the session", Tag: tag,
			Request: refreshRequest{}, Response: tokensJSON{}, Problems: []string{"invalid_refresh_token", "refresh_reused", "organization_not_found"}},
		openapi.Op{Method: "POST", Path: Base + "/logout", Summary: "Revoke the session of a refresh token", Tag: tag,
			Request: logoutRequest{}, Status: 204},
		openapi.Op{Method: "GET", Path: Base + "/me", Summary: "The signed-in user and their memberships", Tag: tag, Auth: "user",
			Response: meResponse{}},
		openapi.Op{Method: "GET", Path: Base + "/.well-known/jwks.json", Summary: "Public keys verifying access tokens", Tag: tag,
			Response: jwksDoc{}},
		openapi.Op{Method: "GET", Path: Base + "/organizations", Summary: "Organisations (staff)", Tag: tag, Auth: "staff",
			Query:    append([]openapi.Param{{Name: "kind", Description: "sme, vendor, partner, programme"}, {Name: "verified", Type: "boolean"}}, page...),
			Response: web.List[staffOrgJSON]{}},
		openapi.Op{Method: "POST", Path: Base + "/organizations/:org_id/verify", Summary: "Mark an organisation verified or not (staff)", Tag: tag,
			Auth: "staff", Request: verifyRequest{}, OptionalBody: true, Response: staffOrgJSON{}, Problems: []string{"organization_not_found"}},
		openapi.Op{Method: "GET", Path: Base + "/organizations/:org_id/members", Summary: "Members of the organisation (org admin)", Tag: tag,
			Auth: "org_admin", Query: page, Response: web.List[memberJSON]{}, Problems: []string{"organization_not_found"}},
		openapi.Op{Method: "POST", Path: Base + "/organizations/:org_id/members", Summary: "Invite by e-mail with a role (org admin)", Tag: tag,
			Auth: "org_admin", Request: inviteRequest{}, Response: invitationJSON{}, Status: 201,
			Problems: []string{"organization_not_found", "already_member", "owners_only", "mail_failed"}},
		openapi.Op{Method: "PATCH", Path: Base + "/organizations/:org_id/members/:user_id", Summary: "Change a member's role (org admin)", Tag: tag,
			Auth: "org_admin", Request: roleRequest{}, Response: memberJSON{},
			Problems: []string{"organization_not_found", "member_not_found", "owners_only", "last_owner"}},
		openapi.Op{Method: "DELETE", Path: Base + "/organizations/:org_id/members/:user_id", Summary: "Remove a member (org admin, or oneself)", Tag: tag,
			Auth: "org_admin", Status: 204, Problems: []string{"organization_not_found", "member_not_found", "owners_only", "last_owner"}},
		openapi.Op{Method: "POST", Path: Base + "/invitations/:token/accept", Summary: "Accept an invitation (signed in with the invited e-mail, or creating the account)", Tag: tag,
			Request: acceptRequest{}, OptionalBody: true, Response: acceptResponse{},
			Problems: []string{"invitation_not_found", "invitation_expired", "invitation_email_mismatch", "already_member", "email_taken"}},
		openapi.Op{Method: "GET", Path: Base + "/tokens", Summary: "The caller's API tokens in the acting organisation", Tag: tag, Auth: "user",
			Query: page, Response: web.List[tokenJSON]{}},
		openapi.Op{Method: "POST", Path: Base + "/tokens", Summary: "Create an API token (shown once)", Tag: tag, Auth: "user",
			Request: createTokenRequest{}, Response: createdTokenJSON{}, Status: 201, Problems: []string{"session_required"}},
		openapi.Op{Method: "DELETE", Path: Base + "/tokens/:id", Summary: "Revoke an API token", Tag: tag, Auth: "user", Status: 204,
			Problems: []string{"token_not_found"}},
		openapi.Op{Method: "GET", Path: Base + "/sessions", Summary: "The caller's live sessions (sign-ins): device, address, created, last use", Tag: tag, Auth: "user",
			Query: page, Response: web.List[sessionJSON]{}},
		openapi.Op{Method: "DELETE", Path: Base + "/sessions/:id", Summary: "End one of the caller's sessions: its refresh token stops working and its access tokens are refused (token_revoked) by every service within a second", Tag: tag, Auth: "user", Status: 204,
			Problems: []string{"session_not_found"}},
		openapi.Op{Method: "GET", Path: Base + "/audit", Summary: "Audit log (staff: all; org admins: their organisation)", Tag: tag, Auth: "org_admin",
			Query:    append([]openapi.Param{{Name: "action"}, {Name: "actor_id"}, {Name: "organization_id", Description: "staff only"}}, page...),
			Response: web.List[auditJSON]{}},
	)
	s.mfaOpenAPI(d)
	sshKeyOpenAPI(d, tag, page)
	s.oidcOpenAPI(d, tag)
	s.mailOpenAPI(d) // mailflows_http.go
	s.deviceOpenAPI(d, tag)
}

// jwksDoc mirrors jwtauth.JWKS for the document.
type jwksDoc struct {
	Keys []struct {
		Kty string `json:"kty"`
		Crv string `json:"crv"`
		X   string `json:"x"`
		Kid string `json:"kid"`
		Alg string `json:"alg"`
		Use string `json:"use"`
	} `json:"keys"`
}

// Schema names a client sees where the Go name is vague or taken by another service (see package openapi).

func (auditJSON) SchemaName() string          { return "IdentityAuditEntry" }
func (tokenJSON) SchemaName() string          { return "APIToken" }
func (createdTokenJSON) SchemaName() string   { return "CreatedAPIToken" }
func (createTokenRequest) SchemaName() string { return "CreateAPITokenRequest" }
func (tokensJSON) SchemaName() string         { return "SessionTokens" }
func (orgJSON) SchemaName() string            { return "Organization" }
func (staffOrgJSON) SchemaName() string       { return "StaffOrganization" }
func (signupOrgRequest) SchemaName() string   { return "SignupOrganization" }
func (jwksDoc) SchemaName() string            { return "JWKS" }
func (acceptRequest) SchemaName() string      { return "AcceptInvitationRequest" }
func (acceptResponse) SchemaName() string     { return "AcceptInvitationResponse" }
func (inviteRequest) SchemaName() string      { return "InviteMemberRequest" }
func (roleRequest) SchemaName() string        { return "ChangeRoleRequest" }
func (verifyRequest) SchemaName() string      { return "VerifyOrganizationRequest" }
