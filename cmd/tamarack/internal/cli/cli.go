// Package cli is the `tamarack` binary's client side: commands that sign in to a remote platform and use its
// HTTP API through the generated SDK (package sdk), for developers and scripts. It owns the client's config
// file (profiles), human and JSON output, and the exit codes scripts rely on; it must not reach into any
// service's packages: everything goes over HTTP, exactly as for any other client.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tamarack-ai/tamarack/sdk"
)

// Commands are the top-level subcommands this package answers; cmd/tamarack hands them to Main.
var Commands = []string{"login", "logout", "whoami", "listings", "sandbox", "wallet", "usage", "access", "reviews", "completion"}

// Handles says whether a command line starting with arg is the client's: one of Commands, or one of the
// client's global flags before the command (tamarack --profile staging sandbox list).
func Handles(arg string) bool {
	if slices.Contains(Commands, arg) {
		return true
	}
	name, _, _ := strings.Cut(arg, "=")
	return slices.Contains([]string{"--url", "--profile", "--output", "-o"}, name)
}

// Usage is the lines cmd/tamarack's usage text lists for the client commands.
const Usage = `Client commands (against a remote platform; see docs/cli.md):
  tamarack login [--token tmk_…] --url U   sign in (device login in a browser without --token); saved per --profile
  tamarack logout | whoami                 forget the credentials | show who they sign in as
  tamarack listings search|show|download   the catalogue; download verifies each file's sha256
  tamarack listings create|submit          vendors: draft a listing and submit it for review
  tamarack reviews list|decide             staff: the review queue
  tamarack access request LISTING          ask for access to a gated listing
  tamarack sandbox launch|list|show|logs|exec|stop|extend   GPU sandboxes
  tamarack wallet | usage                  credits and metered usage
  tamarack completion bash|zsh|fish        shell completion
`

// Streams are the command's standard files.
type Streams struct {
	In          io.Reader
	Out, Err    io.Writer
	HTTPClient  *http.Client // nil: http.DefaultClient's settings with a timeout on non-streaming calls
	ConfigPath  string       // "": $TAMARACK_CONFIG or the user's config dir
	OpenBrowser func(url string) error
}

// app holds one invocation's settings.
type app struct {
	Streams
	url     string
	profile string
	output  string
	cfg     *Config
	path    string
}

// Main runs a client command and returns its exit code; its errors are printed on Err.
func Main(ctx context.Context, args []string, s Streams) int {
	a := &app{Streams: s}
	root := a.root()
	root.SetArgs(args)
	root.SetIn(s.In)
	root.SetOut(s.Out)
	root.SetErr(s.Err)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	code := exitCode(err)
	if code == ExitError && isUsage(err) {
		code = ExitUsage
	}
	if a.output == "json" {
		var p *Problem
		if errors.As(err, &p) {
			_ = printJSON(s.Err, map[string]any{"error": p, "exit_code": code})
			return code
		}
	}
	if e := (*exitError)(nil); errors.As(err, &e) && e.msg == "" {
		return code // a program the command ran (ssh) has said why on stderr itself
	}
	fmt.Fprintln(s.Err, "tamarack:", err)
	return code
}

// isUsage recognises cobra's own argument and flag errors, which it returns as plain errors.
func isUsage(err error) bool {
	m := err.Error()
	for _, s := range []string{"unknown flag", "unknown shorthand", "unknown command", "flag needs an argument",
		"invalid argument", "accepts ", "requires at least", "required flag", "arg(s)"} {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

func (a *app) root() *cobra.Command {
	root := &cobra.Command{
		Use:           "tamarack",
		Short:         "Tamarack's client: the marketplace, sandboxes and credits of a remote platform",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if a.output != "text" && a.output != "json" {
				return usageErr("--output is text or json, not %q", a.output)
			}
			return nil
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErr("%v", err) })
	pf := root.PersistentFlags()
	pf.StringVar(&a.url, "url", "", "the platform's URL, e.g. https://tamarack.example (default: the profile's, or $TAMARACK_URL)")
	pf.StringVar(&a.profile, "profile", "", "the saved profile to use (default: the current one, else \"default\"; $TAMARACK_PROFILE)")
	pf.StringVarP(&a.output, "output", "o", "text", "text for people, json for scripts")
	root.AddCommand(a.loginCmd(), a.logoutCmd(), a.whoamiCmd(), a.listingsCmd(), a.reviewsCmd(), a.accessCmd(),
		a.sandboxCmd(), a.walletCmd(), a.usageCmd(), a.completionCmd(root))
	return root
}

func (a *app) completionCmd(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:       "completion bash|zsh|fish",
		Short:     "Print a shell completion script (e.g. tamarack completion bash > /etc/bash_completion.d/tamarack)",
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"bash", "zsh", "fish"},
		RunE: func(cmd *cobra.Command, args []string) error {
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(a.Out, true)
			case "zsh":
				return root.GenZshCompletion(a.Out)
			case "fish":
				return root.GenFishCompletion(a.Out, true)
			}
			return usageErr("completion for bash, zsh or fish, not %q", args[0])
		},
	}
}

// load reads the config file once.
func (a *app) load() (*Config, error) {
	if a.cfg != nil {
		return a.cfg, nil
	}
	p := a.ConfigPath
	if p == "" {
		var err error
		if p, err = configPath(); err != nil {
			return nil, err
		}
	}
	c, err := loadConfig(p)
	if err != nil {
		return nil, err
	}
	a.cfg, a.path = c, p
	return c, nil
}

// profileName is the profile this invocation uses.
func (a *app) profileName(c *Config) string {
	switch {
	case a.profile != "":
		return a.profile
	case os.Getenv("TAMARACK_PROFILE") != "":
		return os.Getenv("TAMARACK_PROFILE")
	case c.Current != "":
		return c.Current
	}
	return "default"
}

// baseURL is the platform's URL: --url, the profile's, or $TAMARACK_URL.
func (a *app) baseURL(p *Profile) (string, error) {
	u := a.url
	if u == "" && p != nil {
		u = p.URL
	}
	if u == "" {
		u = os.Getenv("TAMARACK_URL")
	}
	if u == "" {
		return "", usageErr("which platform? say --url https://… (login saves it in the profile)")
	}
	if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		return "", usageErr("--url %q: an http:// or https:// URL", u)
	}
	return strings.TrimRight(u, "/"), nil
}

func (a *app) httpClient(timeout time.Duration) *http.Client {
	if a.HTTPClient != nil {
		c := *a.HTTPClient
		c.Timeout = timeout
		return &c
	}
	return &http.Client{Timeout: timeout}
}

// session is what a signed-in command works with.
type session struct {
	api   *sdk.ClientWithResponses
	base  string
	token string
	http  *http.Client // without a timeout: downloads, logs, exec
}

func (s *session) auth(_ context.Context, r *http.Request) error {
	r.Header.Set("Authorization", "Bearer "+s.token)
	return nil
}

// anonymous is a session without credentials, for the public catalogue and for signing in.
func (a *app) anonymous() (*session, error) {
	c, err := a.load()
	if err != nil {
		return nil, err
	}
	base, err := a.baseURL(c.Profiles[a.profileName(c)])
	if err != nil {
		return nil, err
	}
	return a.newSession(base, "")
}

func (a *app) newSession(base, token string) (*session, error) {
	s := &session{base: base, token: token, http: a.httpClient(0)}
	opts := []sdk.ClientOption{sdk.WithHTTPClient(a.httpClient(60 * time.Second))}
	if token != "" {
		opts = append(opts, sdk.WithRequestEditorFn(s.auth))
	}
	api, err := sdk.NewClientWithResponses(base, opts...)
	if err != nil {
		return nil, err
	}
	s.api = api
	return s, nil
}

// signedIn is a session with the profile's credentials ($TAMARACK_TOKEN when the profile has none),
// renewing a device login's access token when it has expired.
func (a *app) signedIn(ctx context.Context) (*session, error) {
	c, err := a.load()
	if err != nil {
		return nil, err
	}
	name := a.profileName(c)
	p := c.Profiles[name]
	base, err := a.baseURL(p)
	if err != nil {
		return nil, err
	}
	if !p.SignedIn() {
		if t := os.Getenv("TAMARACK_TOKEN"); t != "" {
			return a.newSession(base, t)
		}
		return nil, authErr("not signed in (profile %q): run `tamarack login --url %s`", name, base)
	}
	if p.Token != "" {
		return a.newSession(base, p.Token)
	}
	if p.RefreshToken != "" && (p.AccessToken == "" || time.Now().After(p.Expires.Add(-30*time.Second))) {
		if err := a.refresh(ctx, base, p); err != nil {
			return nil, err
		}
	}
	return a.newSession(base, p.AccessToken)
}

// refresh renews a device login's access token with its refresh token (which rotates) and saves both.
func (a *app) refresh(ctx context.Context, base string, p *Profile) error {
	s, err := a.newSession(base, "")
	if err != nil {
		return err
	}
	r, err := s.api.PostIdentityRefreshWithResponse(ctx, sdk.RefreshRequest{RefreshToken: p.RefreshToken})
	if err := check(r, err); err != nil {
		var pr *Problem
		if errors.As(err, &pr) && pr.Status < 500 {
			return authErr("the saved sign-in has expired or was revoked (%v): run `tamarack login` again", pr)
		}
		return err
	}
	p.AccessToken = r.JSON200.AccessToken
	if t := r.JSON200.RefreshToken; t != "" {
		p.RefreshToken = t
	}
	p.Expires = time.Now().Add(time.Duration(r.JSON200.ExpiresIn) * time.Second)
	return a.cfg.save(a.path)
}

// group is a command that only holds subcommands: without one, or with an unknown one, it is a usage error
// (exit 2), not a help page that exits 0.
func group(use, short string) *cobra.Command {
	return &cobra.Command{Use: use, Short: short, Args: cobra.ArbitraryArgs, RunE: func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			_ = cmd.Usage()
			return usageErr("%s: say which subcommand", use)
		}
		return usageErr("%s: unknown subcommand %q", use, args[0])
	}}
}
