package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/tamarack-ai/tamarack/services/identity/devicelogin"
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
			fmt.Fprintf(a.Out, "Signed in to %s as %s (profile %q, saved in %s).\n", base, me.JSON200.User.Email, name, a.path)
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
			u := r.JSON200.User
			staff := ""
			if u.IsStaff {
				staff = "yes"
			}
			_ = fields(a.Out, "User", u.Name+" <"+u.Email+">", "Platform", s.base, "Staff", staff)
			var rows [][]string
			for _, m := range r.JSON200.Memberships {
				o := m.Organization
				rows = append(rows, []string{o.Name, o.Kind, m.Role, o.Id})
			}
			fmt.Fprintln(a.Out)
			return table(a.Out, []string{"ORGANISATION", "KIND", "ROLE", "ID"}, rows)
		},
	}
}

// deviceLogin runs the device login (RFC 8628) that identity serves: it shows where to approve the code, then
// waits until the user did (services/identity/devicelogin polls at the server's interval, slower after slow_down).
func (a *app) deviceLogin(ctx context.Context, base string, p *Profile) error {
	f := &devicelogin.Flow{BaseURL: base, HTTP: a.httpClient(30 * time.Second), UserAgent: "tamarack-cli"}
	tok, err := f.Login(ctx, func(code, uri, complete string) {
		link := complete
		if link == "" {
			link = uri
		}
		fmt.Fprintf(a.Err, "To sign in, open %s\nand check that it shows the code %s.\n", link, code)
		if a.OpenBrowser != nil {
			_ = a.OpenBrowser(link)
		}
	})
	var pe *devicelogin.Error
	switch {
	case errors.Is(err, devicelogin.ErrExpired):
		return authErr("the code expired before it was approved: run `tamarack login` again")
	case errors.Is(err, devicelogin.ErrDenied):
		return authErr("the sign-in was denied in the browser")
	case errors.As(err, &pe):
		return &Problem{Status: pe.Status, Code: pe.Code, Title: pe.Title, Detail: pe.Detail}
	case err != nil:
		return err
	}
	p.AccessToken, p.RefreshToken = tok.AccessToken, tok.RefreshToken
	p.Expires = time.Now().Add(time.Duration(tok.ExpiresIn) * time.Second)
	return nil
}
