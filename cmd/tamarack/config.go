package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tamarack-ai/tamarack/billing"
	"github.com/tamarack-ai/tamarack/platform/money"
	"github.com/tamarack-ai/tamarack/platform/natsauth"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/platform/web"
	"github.com/tamarack-ai/tamarack/services/identity"
)

// config is every setting of every subcommand. Each has a flag and a TAMARACK_* variable; flags win.
type config struct {
	Addr       string
	Data       string
	DB         string
	NATS       string
	NATSListen string
	// AgentNATSURL is the NATS address site agents are told at enrolment (they connect out to it).
	AgentNATSURL string
	NATSCreds    string // the platform's user on an external server in operator mode
	NATSAuthDir  string // the operator keys of an external server: agents' credentials are issued with them
	Only         string
	LogLevel     string
	LogFormat    string
	PublicURL    string
	IdentityURL  string
	MetricsAddr  string
	Replicas     int
	// TrustedProxies (comma-separated IPs and CIDRs) are the peers whose X-Forwarded-For is believed.
	TrustedProxies string
	trustedProxies []netip.Prefix

	// Identity.
	AccessTTL    time.Duration
	RefreshTTL   time.Duration
	SMTPURL      string
	MailFrom     string
	SignupPerMin int    // --login-rate, named before sign-ins had their own throttle
	KeySecret    string // seals identity's signing keys in the database
	// OIDCProviders is a JSON file of OpenID Connect providers to sign in with (docs/identity.md).
	OIDCProviders string
	oidc          []identity.OIDCProvider

	// Testbed.
	SandboxBackend string
	Runsc          string
	UsageInterval  time.Duration
	CDIDirs        string // comma-separated
	RegistryListen string // the platform's image registry (read-only, loopback)
	Images         string // built-in images built by infra/images/build.sh, pushed by seed
	ImageCacheGB   int    // budget of <data>/images, past which unused images are pruned
	SSHAddr        string // the SSH gateway's listener; "off" (or empty) turns it off (docs/ssh.md)

	// Marketplace.
	BlobStore     string
	S3AccessKey   string
	S3SecretKey   string
	MaxArtifactMB int
	MaxVersionMB  int

	// Billing.
	StripeKey           string
	StripeWebhookSecret string
	StripeAPIBase       string
	// ProgrammeLegalName is printed on receipts and statements.
	ProgrammeLegalName string
	CreditValue        string // parsed into creditValue by validate
	creditValue        money.CreditValue
	// The sales tax included in credit prices (billing.Tax): none by default.
	TaxRateBP       int
	TaxName         string
	TaxRegistration string

	CheckConfig bool

	services []string
	fs       *flag.FlagSet
	// envErrs are TAMARACK_* values that did not parse, by flag name: errors unless the flag itself was given.
	envErrs map[string]error
}

// setting describes one for the help text, the env lookup and the masked print-out.
type setting struct {
	flag, env, help string
	secret          bool
}

func envStr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) (time.Duration, error) {
	v, ok := os.LookupEnv(name)
	if !ok {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return def, fmt.Errorf("%s=%q: not a duration (write it like 15m, 1h30m or 720h)", name, v)
	}
	return d, nil
}

func envInt(name string, def int) (int, error) {
	v, ok := os.LookupEnv(name)
	if !ok {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return def, fmt.Errorf("%s=%q: not a whole number", name, v)
	}
	return n, nil
}

var settings []setting

func newConfig(name string) *config {
	c := &config{fs: flag.NewFlagSet(name, flag.ContinueOnError), envErrs: map[string]error{}}
	fs := c.fs
	str := func(p *string, flagName, envName, def, help string, secret bool) {
		settings = appendOnce(settings, setting{flagName, envName, help, secret})
		fs.StringVar(p, flagName, envStr(envName, def), help+" ("+envName+")")
	}
	dur := func(p *time.Duration, flagName, envName string, def time.Duration, help string) {
		settings = appendOnce(settings, setting{flagName, envName, help, false})
		v, err := envDuration(envName, def)
		if err != nil {
			c.envErrs[flagName] = err
		}
		fs.DurationVar(p, flagName, v, help+" ("+envName+")")
	}
	num := func(p *int, flagName, envName string, def int, help string) {
		settings = appendOnce(settings, setting{flagName, envName, help, false})
		v, err := envInt(envName, def)
		if err != nil {
			c.envErrs[flagName] = err
		}
		fs.IntVar(p, flagName, v, help+" ("+envName+")")
	}
	str(&c.Addr, "addr", "TAMARACK_ADDR", "127.0.0.1:8080", "HTTP listen address (:8080 listens on every interface, as containers need)", false)
	str(&c.Data, "data", "TAMARACK_DATA", "./data", "data directory: SQLite file, embedded NATS store, blobs, sandboxes, mail", false)
	str(&c.DB, "db", "TAMARACK_DB", "", "database: a postgres:// URL, or empty for the SQLite file <data>/tamarack.db", true)
	str(&c.NATS, "nats", "TAMARACK_NATS", "", "NATS URL(s) of an external server or cluster; empty embeds JetStream under <data>/nats", true)
	str(&c.NATSListen, "nats-listen", "TAMARACK_NATS_LISTEN", "127.0.0.1:0", "client address of the embedded NATS server (\"\" for in-process only; port 0 picks one, written to <data>/nats.url)", false)
	str(&c.NATSCreds, "nats-creds", "TAMARACK_NATS_CREDS", "", "the platform's user credentials (.creds file) on an external NATS server in operator mode (`tamarack nats-auth init` writes platform.creds); default: issued with --nats-auth-dir's keys", false)
	str(&c.NATSAuthDir, "nats-auth-dir", "TAMARACK_NATS_AUTH_DIR", "", "operator keys of an external NATS server (`tamarack nats-auth init --dir`): site agents' credentials are issued and revoked with them; without it and --nats-creds agents cannot be isolated. The embedded server keeps its own in <data>/nats-auth", false)
	str(&c.Only, "only", "TAMARACK_ONLY", "", "comma-separated services to run: identity, marketplace, testbed, billing, ui (default: all)", false)
	str(&c.LogLevel, "log-level", "TAMARACK_LOG_LEVEL", "info", "debug, info, warn or error", false)
	str(&c.LogFormat, "log-format", "TAMARACK_LOG_FORMAT", "text", "text or json", false)
	str(&c.PublicURL, "public-url", "TAMARACK_PUBLIC_URL", "http://localhost:8080", "URL users reach the platform at (links in e-mails, Stripe redirects)", false)
	str(&c.IdentityURL, "identity-url", "TAMARACK_IDENTITY_URL", "", "base URL of the identity service when it runs in another process (its JWKS verifies tokens)", false)
	str(&c.MetricsAddr, "metrics-addr", "TAMARACK_METRICS_ADDR", "", "separate listener for /metrics (default: served on --addr)", false)
	str(&c.TrustedProxies, "trusted-proxies", "TAMARACK_TRUSTED_PROXIES", "", "comma-separated IPs and CIDRs of reverse proxies whose X-Forwarded-For names the client (rightmost untrusted entry); empty trusts none, so per-IP limits and audit entries see the peer's address", false)
	num(&c.Replicas, "stream-replicas", "TAMARACK_STREAM_REPLICAS", 1, "JetStream stream replicas (3 on a cluster)")
	dur(&c.AccessTTL, "access-ttl", "TAMARACK_ACCESS_TTL", 15*time.Minute, "lifetime of access tokens")
	dur(&c.RefreshTTL, "refresh-ttl", "TAMARACK_REFRESH_TTL", 30*24*time.Hour, "lifetime of refresh tokens")
	str(&c.SMTPURL, "smtp", "TAMARACK_SMTP", "", "smtp://user:pass@host:port for e-mail; empty writes mail to the log and <data>/outbox-mail", true)
	str(&c.MailFrom, "mail-from", "TAMARACK_MAIL_FROM", "Tamarack <noreply@tamarack.localhost>", "sender of e-mails", false)
	num(&c.SignupPerMin, "login-rate", "TAMARACK_LOGIN_RATE", 10, "sign-ups allowed per minute per client IP (sign-ins have their own database-backed throttle, docs/identity.md)")
	// Identity (added by the identity service).
	str(&c.KeySecret, "key-secret", "TAMARACK_KEY_SECRET", "", "secret sealing the JWT signing keys stored in the database (AES-256-GCM); empty stores them unsealed; every identity process needs the same one", true)
	str(&c.OIDCProviders, "oidc-providers", "TAMARACK_OIDC_PROVIDERS", "", "JSON file listing the OpenID Connect providers users may sign in with (issuer, client, redirect URL, e-mail domains → organisation IDs); empty: password sign-in only (docs/identity.md)", false)
	str(&c.SandboxBackend, "sandbox-backend", "TAMARACK_SANDBOX_BACKEND", "local", "default backend for new pools: local (runc), simulator (demos and tests only)", false)
	str(&c.Runsc, "runsc", "TAMARACK_RUNSC", "", "gVisor's runsc for local pools with settings runtime: runsc (build it with infra/gvisor/build.sh; never Debian's package); empty: such pools cannot launch", false)
	dur(&c.UsageInterval, "usage-interval", "TAMARACK_USAGE_INTERVAL", 15*time.Second, "how often running sandboxes publish usage samples")
	str(&c.CDIDirs, "cdi-dirs", "TAMARACK_CDI_DIRS", "/etc/cdi,/var/run/cdi", "comma-separated directories of the host's CDI specs (nvidia-ctk cdi generate), from which sandboxes get their GPUs", false)
	str(&c.AgentNATSURL, "agent-nats-url", "TAMARACK_AGENT_NATS_URL", "", "the NATS address site agents connect to, told them at enrolment (default: --nats, or the embedded server's --nats-listen address)", false)
	str(&c.SSHAddr, "ssh-addr", "TAMARACK_SSH_ADDR", "127.0.0.1:2222", "listen address of the SSH gateway to running sandboxes (docs/ssh.md); \"off\" turns it off; :2222 listens on every interface", false)
	str(&c.RegistryListen, "registry-listen", "TAMARACK_REGISTRY_LISTEN", "127.0.0.1:0", "loopback address of the platform's image registry (read-only; built-in sandbox images under <data>/registry; port 0 picks one, written to <data>/registry.url)", false)
	str(&c.Images, "images", "TAMARACK_IMAGES", "/var/cache/tamarack-images/current", "built-in sandbox images made by infra/images/build.sh; `tamarack seed` pushes them into the registry", false)
	num(&c.ImageCacheGB, "image-cache-gb", "TAMARACK_IMAGE_CACHE_GB", 32, "budget of this host's sandbox image cache (<data>/images) in GiB: past it, images that no live sandbox uses and no pool pins by digest are pruned (looked at every 10 minutes)")
	// Marketplace.
	str(&c.BlobStore, "blob-store", "TAMARACK_BLOB_STORE", "", "artifact storage: empty keeps files under <data>/blobs; s3://bucket[/prefix]?endpoint=host:port[&region=r][&insecure=true] uses S3-compatible storage", false)
	str(&c.S3AccessKey, "s3-access-key", "TAMARACK_S3_ACCESS_KEY", "", "access key of the S3-compatible blob store", true)
	str(&c.S3SecretKey, "s3-secret-key", "TAMARACK_S3_SECRET_KEY", "", "secret key of the S3-compatible blob store", true)
	num(&c.MaxArtifactMB, "max-artifact-mb", "TAMARACK_MAX_ARTIFACT_MB", 5120, "largest artifact file in MiB")
	num(&c.MaxVersionMB, "max-version-mb", "TAMARACK_MAX_VERSION_MB", 20480, "largest total of one listing version's artifacts in MiB")
	str(&c.StripeKey, "stripe-key", "TAMARACK_STRIPE_KEY", "", "Stripe secret key; empty disables card purchases (staff can record offline payments)", true)
	str(&c.StripeWebhookSecret, "stripe-webhook-secret", "TAMARACK_STRIPE_WEBHOOK_SECRET", "", "Stripe webhook signing secret (whsec_...)", true)
	str(&c.StripeAPIBase, "stripe-api", "TAMARACK_STRIPE_API", "", "Stripe API base URL (stripe-mock in tests); empty is Stripe itself", false)
	str(&c.ProgrammeLegalName, "programme-legal-name", "TAMARACK_PROGRAMME_LEGAL_NAME", billing.DefaultProgrammeLegalName, "the programme's legal name, printed on receipts and monthly statements", false)
	str(&c.CreditValue, "credit-value", "TAMARACK_CREDIT_VALUE", money.DefaultCreditValue.String(), "what one credit is worth: an amount and an ISO 4217 currency, e.g. \"1.00 CAD\" (card payments need CAD in whole cents)", false)
	num(&c.TaxRateBP, "tax-rate-bp", "TAMARACK_TAX_RATE_BP", 0, "sales tax included in credit prices, in basis points (1300 = 13%); 0: no tax applies (docs/billing.md)")
	str(&c.TaxName, "tax-name", "TAMARACK_TAX_NAME", "", "the tax's name on receipts, e.g. GST/HST (required with --tax-rate-bp)", false)
	str(&c.TaxRegistration, "tax-registration", "TAMARACK_TAX_REGISTRATION", "", "the programme's tax registration number, printed on receipts and statements", false)
	fs.BoolVar(&c.CheckConfig, "check-config", false, "validate every setting, list every error, and exit")
	return c
}

func appendOnce(s []setting, v setting) []setting {
	for _, x := range s {
		if x.flag == v.flag {
			return s
		}
	}
	return append(s, v)
}

// parse reads flags and validates the whole configuration, returning every error at once.
func (c *config) parse(args []string) error {
	if err := c.fs.Parse(args); err != nil {
		return err
	}
	return c.validate()
}

func (c *config) validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	given := map[string]bool{}
	c.fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, name := range slices.Sorted(maps.Keys(c.envErrs)) {
		if !given[name] {
			errs = append(errs, c.envErrs[name])
		}
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		bad("--addr %q: %v", c.Addr, err)
	}
	if c.Data == "" {
		bad("--data must not be empty")
	} else if abs, err := filepath.Abs(c.Data); err != nil {
		bad("--data %q: %v", c.Data, err)
	} else {
		// Absolute from here on: sandbox roots, runtime bundles and shims are handed paths under it, and they
		// run in other working directories (the default ./data would otherwise be an invalid sandbox spec).
		c.Data = abs
	}
	if c.DB != "" && !sqldb.IsPostgresDSN(c.DB) && !strings.HasSuffix(c.DB, ".db") {
		bad("--db %q: use a postgres:// URL or a path ending in .db", c.DB)
	}
	if c.NATS != "" {
		for _, u := range strings.Split(c.NATS, ",") {
			if pu, err := url.Parse(strings.TrimSpace(u)); err != nil || (pu.Scheme != "nats" && pu.Scheme != "tls") {
				bad("--nats %q: use nats://host:port (comma-separated for a cluster)", redactURL(u))
			}
		}
	}
	if c.NATSListen != "" {
		if _, _, err := net.SplitHostPort(c.NATSListen); err != nil {
			bad("--nats-listen %q: %v", c.NATSListen, err)
		}
	}
	if c.NATS == "" {
		if c.NATSCreds != "" {
			bad("--nats-creds is for an external server (--nats); the embedded one issues its own under <data>/nats-auth")
		}
		if c.NATSAuthDir != "" {
			bad("--nats-auth-dir is for an external server (--nats); the embedded one keeps its keys in <data>/nats-auth")
		}
	} else {
		if c.NATSCreds != "" {
			if b, err := os.ReadFile(c.NATSCreds); err != nil {
				bad("--nats-creds: %v", err)
			} else if _, err := natsauth.ParseCreds(b); err != nil {
				bad("--nats-creds %s: not a NATS .creds file (%v)", c.NATSCreds, err)
			}
		}
		if c.NATSAuthDir != "" {
			if _, err := natsauth.Load(c.NATSAuthDir); err != nil {
				bad("--nats-auth-dir: %v", err)
			}
		}
	}
	c.services = nil
	if strings.TrimSpace(c.Only) == "" {
		c.services = serviceNames()
	} else {
		for _, s := range strings.Split(c.Only, ",") {
			s = strings.TrimSpace(s)
			if !slices.Contains(serviceNames(), s) {
				bad("--only: unknown service %q (choose from %s)", s, strings.Join(serviceNames(), ", "))
				continue
			}
			if !slices.Contains(c.services, s) {
				c.services = append(c.services, s)
			}
		}
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		bad("--log-level %q: use debug, info, warn or error", c.LogLevel)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("--log-format %q: use text or json", c.LogFormat)
	}
	if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("--public-url %q: use an http(s) URL", c.PublicURL)
	}
	if c.IdentityURL != "" {
		if u, err := url.Parse(c.IdentityURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
			bad("--identity-url %q: use an http(s) URL", c.IdentityURL)
		}
	}
	if !c.runs("identity") && c.IdentityURL == "" && len(c.services) > 0 && !(len(c.services) == 1 && c.services[0] == "ui") {
		bad("--identity-url is required when identity does not run in this process (tokens are verified with its JWKS)")
	}
	if c.SSHAddr != "" && c.SSHAddr != "off" {
		if _, _, err := net.SplitHostPort(c.SSHAddr); err != nil {
			bad("--ssh-addr %q: want host:port, or off: %v", c.SSHAddr, err)
		}
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			bad("--metrics-addr %q: %v", c.MetricsAddr, err)
		}
	}
	if p, err := web.ParseTrustedProxies(c.TrustedProxies); err != nil {
		bad("--trusted-proxies %q: %v", c.TrustedProxies, err)
	} else {
		c.trustedProxies = p
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		bad("--stream-replicas %d: use 1 to 5", c.Replicas)
	}
	if c.AccessTTL < time.Minute || c.AccessTTL > 24*time.Hour {
		bad("--access-ttl %s: use 1m to 24h", c.AccessTTL)
	}
	if c.RefreshTTL < time.Hour {
		bad("--refresh-ttl %s: use at least 1h", c.RefreshTTL)
	}
	if c.SMTPURL != "" {
		if u, err := url.Parse(c.SMTPURL); err != nil || (u.Scheme != "smtp" && u.Scheme != "smtps") || u.Host == "" {
			bad("--smtp: use smtp://user:pass@host:port")
		}
	}
	if c.SignupPerMin < 1 {
		bad("--login-rate %d: must be at least 1", c.SignupPerMin)
	}
	c.oidc = nil
	if c.OIDCProviders != "" {
		ps, err := identity.LoadOIDCProviders(c.OIDCProviders)
		if err != nil {
			bad("--oidc-providers: %v", err)
		} else {
			c.oidc = ps
		}
	}
	if c.SandboxBackend != "local" && c.SandboxBackend != "simulator" {
		bad("--sandbox-backend %q: use local or simulator (slurm and kubernetes are set per pool)", c.SandboxBackend)
	}
	if c.Runsc != "" && !filepath.IsAbs(c.Runsc) {
		bad("--runsc %q: give the absolute path infra/gvisor/build.sh prints", c.Runsc)
	}
	if h, _, err := net.SplitHostPort(c.RegistryListen); err != nil || !isLoopbackHost(h) {
		bad("--registry-listen %q: use a loopback host:port such as 127.0.0.1:5001 (sandbox runtimes pull from it without TLS)", c.RegistryListen)
	}
	if c.UsageInterval < time.Second || c.UsageInterval > 5*time.Minute {
		bad("--usage-interval %s: use 1s to 5m", c.UsageInterval)
	}
	for _, d := range c.cdiDirs() {
		if !filepath.IsAbs(d) {
			bad("--cdi-dirs: %q is not an absolute path", d)
		}
	}
	if c.BlobStore != "" && !strings.HasPrefix(c.BlobStore, "s3://") {
		bad("--blob-store %q: use an s3:// URL, or leave it empty for <data>/blobs", c.BlobStore)
	}
	if c.ImageCacheGB < 1 {
		bad("--image-cache-gb %d: at least 1 (GiB)", c.ImageCacheGB)
	}
	if c.MaxArtifactMB < 1 || c.MaxVersionMB < c.MaxArtifactMB {
		bad("--max-artifact-mb %d / --max-version-mb %d: use at least 1, and a version limit no smaller than the file limit", c.MaxArtifactMB, c.MaxVersionMB)
	}
	if c.StripeKey != "" && !strings.HasPrefix(c.StripeKey, "sk_") && !strings.HasPrefix(c.StripeKey, "rk_") {
		bad("--stripe-key: a Stripe secret key starts with sk_ or rk_")
	}
	if c.StripeKey != "" && c.StripeWebhookSecret == "" {
		bad("--stripe-webhook-secret is required with --stripe-key (webhooks credit purchases)")
	}
	if n := strings.TrimSpace(c.ProgrammeLegalName); n == "" || len(n) > 200 {
		bad("--programme-legal-name: 1 to 200 characters")
	}
	if err := c.tax().Validate(); err != nil {
		bad("--tax-rate-bp %d / --tax-name %q / --tax-registration: %v", c.TaxRateBP, c.TaxName, strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	if v, err := money.ParseCreditValue(c.CreditValue); err != nil {
		bad("--credit-value %q: %v", c.CreditValue, err)
	} else {
		c.creditValue = v
		if _, whole := v.Cents(); c.StripeKey != "" && (v.Currency != "CAD" || !whole) {
			bad("--credit-value %q: card payments (--stripe-key) charge whole Canadian cents: use a CAD value such as \"1.00 CAD\"", c.CreditValue)
		}
	}
	return errors.Join(errs...)
}

// cdiDirs are --cdi-dirs as a list.
func (c *config) cdiDirs() []string {
	var out []string
	for _, d := range strings.Split(c.CDIDirs, ",") {
		if d = strings.TrimSpace(d); d != "" {
			out = append(out, d)
		}
	}
	return out
}

// checkDataDir makes sure the data directory exists and this process can write in it, so that a wrong
// --data fails with a sentence rather than the database's "out of memory (14)".
func (c *config) checkDataDir() error {
	fix := "choose another with --data or TAMARACK_DATA, or give this user write access"
	// o+x (traverse, not list): sandboxes reach their unpacked images in it (see reachableImages).
	if err := os.MkdirAll(c.Data, 0o751); err != nil {
		return fmt.Errorf("data directory %s cannot be created: %w (%s)", c.Data, err, fix)
	}
	f, err := os.CreateTemp(c.Data, ".write-check-*")
	if err != nil {
		return fmt.Errorf("data directory %s is not writable: %w (%s)", c.Data, err, fix)
	}
	name := f.Name()
	_ = f.Close()
	return os.Remove(name)
}

// usageFor makes `tamarack CMD -h` list only the settings CMD uses (every subcommand parses them all, so a
// TAMARACK_* variable meant for serve never breaks a tool).
func (c *config) usageFor(synopsis string, names ...string) {
	c.fs.Usage = func() {
		out := c.fs.Output()
		fmt.Fprintf(out, "Usage: tamarack %s\n\nFlags:\n", synopsis)
		sub := flag.NewFlagSet(c.fs.Name(), flag.ContinueOnError)
		sub.SetOutput(out)
		for _, n := range names {
			if f := c.fs.Lookup(n); f != nil {
				sub.Var(f.Value, f.Name, f.Usage)
			}
		}
		sub.PrintDefaults()
	}
}

func isLoopbackHost(h string) bool {
	ip := net.ParseIP(h)
	return h == "localhost" || (ip != nil && ip.IsLoopback())
}

// runs reports whether service runs in this process.
func (c *config) runs(service string) bool { return slices.Contains(c.services, service) }

// dsn is the database to open.
func (c *config) dsn() string {
	if c.DB != "" {
		return c.DB
	}
	return filepath.Join(c.Data, "tamarack.db")
}

// logValues lists every setting for the start-up log, secrets masked.
func (c *config) logValues() []any {
	var out []any
	secret := map[string]bool{}
	for _, s := range settings {
		secret[s.flag] = s.secret
	}
	var names []string
	c.fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	sort.Strings(names)
	for _, n := range names {
		v := c.fs.Lookup(n).Value.String()
		if secret[n] && v != "" {
			v = mask(v)
		}
		out = append(out, n, v)
	}
	return out
}

// mask keeps a URL's shape without its password, and hides other secrets whole.
func mask(v string) string {
	if u, err := url.Parse(v); err == nil && u.Scheme != "" && u.Host != "" {
		return u.Redacted()
	}
	return "********"
}

func redactURL(s string) string { return mask(strings.TrimSpace(s)) }

func newLogger(c *config) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.LogLevel))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// tax is the billing tax setting of the flags.
func (c *config) tax() billing.Tax {
	return billing.Tax{RateBP: int64(c.TaxRateBP), Name: strings.TrimSpace(c.TaxName), Registration: strings.TrimSpace(c.TaxRegistration)}
}
