package identity

import (
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/tamarack-ai/tamarack/platform/openapi"
	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/web"
)

// HTTP of device login (device.go): the client's two anonymous endpoints and the signed-in /device page's three.

// DeviceGrantType is RFC 8628's grant type; a client may send it in the token request.
const DeviceGrantType = "urn:ietf:params:oauth:grant-type:device_code"

func (h handler) deviceRoutes(r fiber.Router) {
	// A user code in a path is a short-lived secret: logs show the pattern.
	web.SecretPath(Base + "/device/:user_code")
	web.SecretPath(Base + "/device/:user_code/approve")
	web.SecretPath(Base + "/device/:user_code/deny")
	r.Post("/device/code", h.deviceCode)
	r.Post("/device/token", h.deviceToken)
	r.Get("/device/:user_code", web.RequireAuth, h.deviceRequest)
	r.Post("/device/:user_code/approve", web.RequireAuth, web.RequireVerifiedEmail, h.deviceApprove)
	r.Post("/device/:user_code/deny", web.RequireAuth, h.deviceDeny)
}

type deviceCodeRequest struct {
	ClientName string `json:"client_name,omitempty" doc:"what is asking, shown to the user and naming the session: e.g. \"tamarack CLI on build-01\" (at most 100 characters)"`
}

type deviceCodeJSON struct {
	DeviceCode              string `json:"device_code" doc:"the client's secret for POST /device/token"`
	UserCode                string `json:"user_code" doc:"XXXX-XXXX; typed case-insensitively, with or without the dash"`
	VerificationURI         string `json:"verification_uri" doc:"the web UI's /device page"`
	VerificationURIComplete string `json:"verification_uri_complete" doc:"the same page with ?code= prefilled"`
	ExpiresIn               int    `json:"expires_in" doc:"seconds (600)"`
	Interval                int    `json:"interval" doc:"seconds to wait between polls (5)"`
}

type deviceTokenRequest struct {
	DeviceCode string `json:"device_code" openapi:"required"`
	GrantType  string `json:"grant_type,omitempty" doc:"optional; urn:ietf:params:oauth:grant-type:device_code when given"`
}

func (r *deviceTokenRequest) Validate() error {
	var f problem.Fields
	f.Check(r.DeviceCode != "", "device_code", "required", "is required")
	f.Check(len(r.DeviceCode) <= 200, "device_code", "max", "is too long")
	f.CheckMsg(r.GrantType == "" || r.GrantType == DeviceGrantType, "grant_type", "oneof", "field.text.must_be", problem.Args{"Value": DeviceGrantType})
	return f.Err()
}

type deviceRequestJSON struct {
	UserCode   string    `json:"user_code"`
	ClientName string    `json:"client_name" doc:"as the client named itself; may be empty"`
	Device     string    `json:"device" doc:"the client's program and system, from its user agent"`
	IP         string    `json:"ip" doc:"the address the request came from"`
	Status     string    `json:"status" doc:"pending, approved or denied"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at"`
}

func toDeviceRequestJSON(d DeviceRequest) deviceRequestJSON {
	return deviceRequestJSON{UserCode: d.UserCode, ClientName: d.ClientName, Device: deviceOf(d.UserAgent), IP: d.IP,
		Status: d.Status, CreatedAt: d.CreatedAt, ExpiresAt: d.ExpiresAt}
}

func (h handler) deviceCode(c *fiber.Ctx) error {
	var req deviceCodeRequest
	if len(strings.TrimSpace(string(c.Body()))) > 0 {
		if err := web.Bind(c, &req); err != nil {
			return err
		}
	}
	a, err := h.svc.RequestDeviceCode(c.UserContext(), DeviceCodeInput{ClientName: req.ClientName,
		UserAgent: c.Get(fiber.HeaderUserAgent), Meta: Meta{IP: web.ClientIP(c)}})
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(deviceCodeJSON{DeviceCode: a.DeviceCode, UserCode: a.UserCode, VerificationURI: a.VerificationURI,
		VerificationURIComplete: a.VerificationURIComplete, ExpiresIn: a.ExpiresIn, Interval: a.Interval})
}

func (h handler) deviceToken(c *fiber.Ctx) error {
	var req deviceTokenRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	s, err := h.svc.ExchangeDeviceCode(c.UserContext(), DeviceTokenInput{DeviceCode: req.DeviceCode, Meta: Meta{IP: web.ClientIP(c)}})
	if err != nil {
		return err
	}
	return c.JSON(toTokensJSON(s))
}

func (h handler) deviceRequest(c *fiber.Ctx) error {
	d, err := h.svc.DeviceRequestOf(c.UserContext(), actorOf(c), c.Params("user_code"))
	if err != nil {
		return err
	}
	return c.JSON(toDeviceRequestJSON(d))
}

func (h handler) deviceApprove(c *fiber.Ctx) error {
	d, err := h.svc.DecideDevice(c.UserContext(), actorOf(c), c.Params("user_code"), true)
	if err != nil {
		return err
	}
	return c.JSON(toDeviceRequestJSON(d))
}

func (h handler) deviceDeny(c *fiber.Ctx) error {
	d, err := h.svc.DecideDevice(c.UserContext(), actorOf(c), c.Params("user_code"), false)
	if err != nil {
		return err
	}
	return c.JSON(toDeviceRequestJSON(d))
}

func (s *Service) deviceOpenAPI(d *openapi.Doc, tag string) {
	page := []string{"device_code_not_found", "device_code_expired", "session_required", "rate_limited"}
	d.Add(
		openapi.Op{Method: "POST", Path: Base + "/device/code", Summary: "Start a device login (RFC 8628) for a client without a browser: " +
			"show the user the user_code and verification_uri, then poll POST /device/token every interval seconds. Limited per client IP like sign-up", Tag: tag,
			Request: deviceCodeRequest{}, OptionalBody: true, Response: deviceCodeJSON{}, Problems: []string{"rate_limited"}},
		openapi.Op{Method: "POST", Path: Base + "/device/token", Summary: "Poll a device login: the session's tokens (as /login answers) once approved, once; " +
			"until then 400 authorization_pending, 400 slow_down (polled sooner than the interval, which grows by 5 s), 400 expired_token, " +
			"403 access_denied, 400 invalid_grant (unknown or already used)", Tag: tag,
			Request: deviceTokenRequest{}, Response: tokensJSON{},
			Problems: []string{"authorization_pending", "slow_down", "expired_token", "access_denied", "invalid_grant"}},
		openapi.Op{Method: "GET", Path: Base + "/device/:user_code", Summary: "What a user code would sign in: client name, device, address, times, status " +
			"(lookups limited per user)", Tag: tag, Auth: "user", Response: deviceRequestJSON{}, Problems: page},
		openapi.Op{Method: "POST", Path: Base + "/device/:user_code/approve", Summary: "Approve a device login: the client receives a new session of the caller's " +
			"(same organisation, MFA only when the caller's session has it). Needs a verified e-mail", Tag: tag, Auth: "user",
			Response: deviceRequestJSON{}, Problems: append([]string{"device_code_decided", "email_unverified"}, page...)},
		openapi.Op{Method: "POST", Path: Base + "/device/:user_code/deny", Summary: "Deny a device login: the client's poll answers access_denied", Tag: tag,
			Auth: "user", Response: deviceRequestJSON{}, Problems: append([]string{"device_code_decided"}, page...)},
	)
}

// Schema names a client sees.

func (deviceCodeRequest) SchemaName() string  { return "DeviceLoginCodeRequest" }
func (deviceCodeJSON) SchemaName() string     { return "DeviceLoginAuthorization" }
func (deviceTokenRequest) SchemaName() string { return "DeviceLoginTokenRequest" }
func (deviceRequestJSON) SchemaName() string  { return "DeviceLoginRequest" }
