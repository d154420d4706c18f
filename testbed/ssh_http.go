package testbed

import (
	"github.com/gofiber/fiber/v2"
)

// SSHEndpoint is where users reach the SSH gateway: what `GET /api/v1/testbed/ssh` tells clients such as
// `tamarack sandbox ssh`, so that nobody has to guess the operator's host and port.
type SSHEndpoint struct {
	Host               string // the host name users connect to (the public URL's host where there is one)
	Port               int
	HostKeyFingerprint string // SHA256:… of the gateway's host key, to check on first connection
}

// SetSSHEndpoint records where the running gateway is reached; the process that runs ServeSSH calls it.
func (s *Service) SetSSHEndpoint(e SSHEndpoint) { s.ssh.Store(&e) }

type sshEndpointJSON struct {
	Enabled            bool   `json:"enabled" doc:"false: this deployment runs no SSH gateway (--ssh-addr=off)"`
	Host               string `json:"host,omitempty"`
	Port               int    `json:"port,omitempty"`
	HostKeyFingerprint string `json:"host_key_fingerprint,omitempty" doc:"SHA256 fingerprint of the gateway's host key"`
	User               string `json:"user,omitempty" doc:"what to write as the SSH user: the sandbox's ID"`
}

func (sshEndpointJSON) SchemaName() string { return "SSHEndpoint" }

// sshEndpoint answers where the SSH gateway is (docs/ssh.md); it holds nothing secret.
func (h handler) sshEndpoint(c *fiber.Ctx) error {
	e := h.svc.ssh.Load()
	if e == nil {
		return c.JSON(sshEndpointJSON{})
	}
	return c.JSON(sshEndpointJSON{Enabled: true, Host: e.Host, Port: e.Port, HostKeyFingerprint: e.HostKeyFingerprint, User: "<sandbox id>"})
}
