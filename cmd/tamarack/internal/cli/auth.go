package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/spf13/cobra"
)

func (a *app) loginCmd() *cobra.Command {
	var token string
	cmd := &cobra.Command{
		Use:   "login [--token tmk_…] [--url URL] [--profile NAME]",
		Short: "Sign in and save the credentials in a profile (an API token, or a device login in a browser)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.load()
			if err != nil {
				return err
			}
			name := a.profileName(c)
			base, err := a.baseURL(c.Profiles[name])
			if err != nil {
				return err
			}
			p := &Profile{URL: base}
			if token != "" {
				p.Token = token
			} else if err := a.deviceLogin(cmd.Context(), base, p); err != nil {
				return err
			}
			// The credentials must work before they are saved.
			s, err := a.newSession(base, p.Token+p.AccessToken)
			if err != nil {
				return err
			}
			me, err := s.api.GetIdentityMeWithResponse(cmd.Context())
			if err := check(me, err); err != nil {
				return fmt.Errorf("these credentials do not sign in to %s: %w", base, err)
			}
			c.Profiles[name] = p
			c.Current = name
			if err := c.save(a.path); err != nil {
				return err
			}
			if a.output == "json" {
				return printJSON(a.Out, map[string]any{"profile": name, "url": base, "user": me.JSON200.User})
			}
			fmt.Fprintf(a.Out, "Signed in to %s as %s (profile %q, saved in %s).\n", base, ptr(me.JSON200.User.Email), name, a.path)
			return nil
		},
	}
	cmd.Flags().StringVar(&token, "token", "", "an API token (tmk_…) made on the web UI's API tokens page; without it, sign in in a browser")
	return cmd
}

func (a *app) logoutCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "Forget the profile's credentials (a device login's session is also ended on the platform)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.load()
			if err != nil {
				return err
			}
			name := a.profileName(c)
			p := c.Profiles[name]
			if !p.SignedIn() {
				fmt.Fprintf(a.Out, "Profile %q was not signed in.\n", name)
				return nil
			}
			if p.RefreshToken != "" {
				// Best effort: the local copy goes either way, and an unreachable platform must not keep it.
				if s, err := a.newSession(p.URL, ""); err == nil {
					body, _ := json.Marshal(map[string]string{"refresh_token": p.RefreshToken})
					_, _ = s.api.PostIdentityLogoutWithBody(cmd.Context(), "application/json", bytes.NewReader(body))
				}
			}
			c.Profiles[name] = &Profile{URL: p.URL}
			if err := c.save(a.path); err != nil {
				return err
			}
			fmt.Fprintf(a.Out, "Signed out of profile %q. An API token stays valid until it is revoked on the web UI.\n", name)
			return nil
		},
	}
}

func (a *app) whoamiCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Show the signed-in user, their organisations and roles",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.signedIn(cmd.Context())
			if err != nil {
				return err
			}
			r, err := s.api.GetIdentityMeWithResponse(cmd.Context())
			if err := check(r, err); err != nil {
				return err
			}
			if a.output == "json" {
				return printJSON(a.Out, r.JSON200)
			}
			u := ptr(r.JSON200.User)
			staff := ""
			if ptr(u.IsStaff) {
				staff = "yes"
			}
			_ = fields(a.Out, "User", ptr(u.Name)+" <"+ptr(u.Email)+">", "Platform", s.base, "Staff", staff)
			var rows [][]string
			for _, m := range ptr(r.JSON200.Memberships) {
				o := ptr(m.Organization)
				rows = append(rows, []string{ptr(o.Name), ptr(o.Kind), ptr(m.Role), ptr(o.Id)})
			}
			fmt.Fprintln(a.Out)
			return table(a.Out, []string{"ORGANISATION", "KIND", "ROLE", "ID"}, rows)
		},
	}
}

// The device login (RFC 8628) that identity serves.
type deviceCode struct {
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
	ExpiresIn               int    `json:"expires_in"`
	Interval                int    `json:"interval"`
}

type deviceTokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
}

// deviceLogin asks for a device code, shows where to approve it, and polls until the user did.
func (a *app) deviceLogin(ctx context.Context, base string, p *Profile) error {
	hc := a.httpClient(30 * time.Second)
	var dc deviceCode
	if status, body, err := postJSON(ctx, hc, base+"/api/v1/identity/device/code", map[string]any{}, &dc); err != nil {
		return err
	} else if status != http.StatusOK && status != http.StatusCreated {
		return problemOf(status, body)
	}
	link := dc.VerificationURIComplete
	if link == "" {
		link = dc.VerificationURI
	}
	fmt.Fprintf(a.Err, "To sign in, open %s\nand check that it shows the code %s.\n", link, dc.UserCode)
	if a.OpenBrowser != nil {
		_ = a.OpenBrowser(link)
	}
	tok, err := pollDevice(ctx, hc, base, dc, time.Sleep)
	if err != nil {
		return err
	}
	p.AccessToken, p.RefreshToken = tok.AccessToken, tok.RefreshToken
	p.Expires = time.Now().Add(time.Duration(tok.ExpiresIn) * time.Second)
	return nil
}

// pollDevice polls the token endpoint every interval seconds (5 when unsaid), 5 more after each slow_down
// (RFC 8628 §3.5), until the user approves, denies, or the code expires.
func pollDevice(ctx context.Context, hc *http.Client, base string, dc deviceCode, sleep func(time.Duration)) (deviceTokens, error) {
	interval := time.Duration(dc.Interval) * time.Second
	if interval <= 0 {
		interval = 5 * time.Second
	}
	deadline := time.Now().Add(time.Duration(dc.ExpiresIn) * time.Second)
	for {
		sleep(interval)
		if err := ctx.Err(); err != nil {
			return deviceTokens{}, err
		}
		var tok deviceTokens
		status, body, err := postJSON(ctx, hc, base+"/api/v1/identity/device/token", map[string]any{"device_code": dc.DeviceCode}, &tok)
		if err != nil {
			return deviceTokens{}, err
		}
		if status == http.StatusOK {
			return tok, nil
		}
		p := problemOf(status, body)
		switch p.Code {
		case "authorization_pending":
		case "slow_down":
			interval += 5 * time.Second
		case "expired_token":
			return deviceTokens{}, authErr("the code expired before it was approved: run `tamarack login` again")
		case "access_denied":
			return deviceTokens{}, authErr("the sign-in was denied in the browser")
		default:
			return deviceTokens{}, p
		}
		if dc.ExpiresIn > 0 && time.Now().After(deadline) {
			return deviceTokens{}, authErr("the code expired before it was approved: run `tamarack login` again")
		}
	}
}

// postJSON posts in as JSON and decodes a 2xx answer into out; it returns the status and the raw body.
func postJSON(ctx context.Context, hc *http.Client, url string, in, out any) (int, []byte, error) {
	b, err := json.Marshal(in)
	if err != nil {
		return 0, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return 0, nil, err
	}
	if resp.StatusCode/100 == 2 && out != nil {
		if err := json.Unmarshal(buf.Bytes(), out); err != nil {
			return 0, nil, fmt.Errorf("%s: %w", url, err)
		}
	}
	return resp.StatusCode, buf.Bytes(), nil
}
