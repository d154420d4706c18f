package slurm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tamarack-ai/tamarack/testbed/backend"
	"github.com/tamarack-ai/tamarack/testbed/backend/slurm/slurmrest"
)

// Pool settings a Slurm pool may set (staff edit them on the pool); each overrides the agent's flag of the
// same name for that pool's sandboxes.
const (
	SettingPartition = "slurm.partition"
	SettingAccount   = "slurm.account"
	SettingQOS       = "slurm.qos"
)

// Options configure a Slurm Backend.
type Options struct {
	// URL is slurmrestd's base URL, e.g. http://login1:6820. Required.
	URL string
	// User is the Slurm user the agent submits as (never root: slurmctld refuses root's tokens). Required.
	User string
	// Token returns the user's JWT (`scontrol token`); called for every request, so a token the site
	// refreshes in a file is picked up without a restart. Required.
	Token func() (string, error)
	// Dir holds one job directory per sandbox (layout.go) on a filesystem the compute nodes share. Required.
	Dir string
	// Partition, Account and QOS are the job's; empty leaves Slurm's defaults. Pool settings override them.
	Partition, Account, QOS string
	// GRES maps the testbed's GPU models to Slurm GRES types (h100-80gb → h100). A model without an entry
	// is asked for by its own name.
	GRES map[string]string
	// StepCommand runs `tamarack` as root on a compute node: the job's script and srun run
	// `<StepCommand…> slurm-step …`. Default: sudo -n /usr/local/bin/tamarack.
	StepCommand []string
	// Srun is srun's path on the login node. Default: srun, looked up in PATH.
	Srun string
	// SlurmConf is the slurm.conf srun reads. Empty: srun's own default (SLURM_CONF in the agent's
	// environment, else /etc/slurm/slurm.conf or the controller's configless answer).
	SlurmConf string
	// Grace is added to a sandbox's booked duration for the job's time limit, so that the testbed's own
	// stop comes first. Default 5 minutes.
	Grace time.Duration
	// StopMargin is how long Stop waits, past the grace, for the step to stop the sandbox before it has
	// Slurm kill the job. Default 10 seconds.
	StopMargin time.Duration
	// StartWait is how long Start waits for the job to run its sandbox before it answers pending (and the
	// agent's watch takes over): long enough for an idle partition to schedule and start it, so the common
	// case answers running at once. Default 5 seconds.
	StartWait time.Duration
	// ReconcileEvery is the period of the sweep for jobs of this agent that no sandbox owns (at the first
	// List, then at most this often). Default one minute.
	ReconcileEvery time.Duration
	Logger         *slog.Logger
}

// Backend runs sandboxes as Slurm jobs. Safe for concurrent use.
type Backend struct {
	opts Options
	log  *slog.Logger
	api  *slurmrest.ClientWithResponses
	uid  int // the job user's uid and gid, to own job directories when the agent runs as root; -1 otherwise
	gid  int

	mu           sync.Mutex
	reconciledAt time.Time
}

var _ backend.Backend = (*Backend)(nil)

// New checks the options. It does not call slurmrestd: Check does.
func New(opts Options) (*Backend, error) {
	var errs []error
	if opts.URL == "" {
		errs = append(errs, errors.New("slurmrestd URL is required"))
	}
	if opts.User == "" || opts.User == "root" {
		errs = append(errs, errors.New("a Slurm user other than root is required (slurmctld refuses root's tokens)"))
	}
	if opts.Token == nil {
		errs = append(errs, errors.New("a token source is required"))
	}
	if opts.Dir == "" || !filepath.IsAbs(opts.Dir) {
		errs = append(errs, fmt.Errorf("job directory %q: want an absolute path on a filesystem the compute nodes share", opts.Dir))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("slurm backend: %w", err)
	}
	opts.Dir = filepath.Clean(opts.Dir)
	if len(opts.StepCommand) == 0 {
		opts.StepCommand = []string{"sudo", "-n", "/usr/local/bin/tamarack"}
	}
	if opts.Srun == "" {
		opts.Srun = "srun"
	}
	if opts.Grace <= 0 {
		opts.Grace = 5 * time.Minute
	}
	if opts.StopMargin <= 0 {
		opts.StopMargin = 10 * time.Second
	}
	if opts.StartWait <= 0 {
		opts.StartWait = 5 * time.Second
	}
	if opts.ReconcileEvery <= 0 {
		opts.ReconcileEvery = time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	api, err := slurmrest.NewClientWithResponses(opts.URL, slurmrest.WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
		tok, err := opts.Token()
		if err != nil {
			return fmt.Errorf("%w: Slurm token: %w", backend.ErrUnavailable, err)
		}
		r.Header.Set("X-SLURM-USER-NAME", opts.User)
		r.Header.Set("X-SLURM-USER-TOKEN", tok)
		return nil
	}))
	if err != nil {
		return nil, fmt.Errorf("slurm backend: %w", err)
	}
	b := &Backend{opts: opts, log: opts.Logger.With("backend", "slurm"), api: api, uid: -1, gid: -1}
	if os.Geteuid() == 0 {
		// Slurm writes the job's output as the job's user, into its job directory.
		u, err := user.Lookup(opts.User)
		if err != nil {
			return nil, fmt.Errorf("slurm backend: user %q: %w", opts.User, err)
		}
		b.uid, _ = strconv.Atoi(u.Uid)
		b.gid, _ = strconv.Atoi(u.Gid)
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("slurm backend: %w", err)
	}
	return b, nil
}

// Kind returns "slurm".
func (b *Backend) Kind() string { return "slurm" }

// Check asks slurmctld (through slurmrestd) whether it is up, checks that the partition exists and is up,
// and that srun and the job directory are usable. Each failure wraps backend.ErrUnavailable.
func (b *Backend) Check(ctx context.Context) error {
	var errs []error
	r, err := b.api.SlurmV0038PingWithResponse(ctx)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("slurmrestd at %s: %w", b.opts.URL, err))
	case r.StatusCode() != http.StatusOK || r.JSON200 == nil || r.JSON200.Pings == nil || len(*r.JSON200.Pings) == 0:
		errs = append(errs, fmt.Errorf("slurmrestd at %s: %s", b.opts.URL, slurmError(r.StatusCode(), r.Body)))
	default:
		if p := (*r.JSON200.Pings)[0]; p.Ping == nil || *p.Ping != slurmrest.UP {
			errs = append(errs, fmt.Errorf("slurmctld is not up (%s)", deref(p.Hostname)))
		}
	}
	if err == nil && b.opts.Partition != "" {
		if err := b.checkPartition(ctx, b.opts.Partition); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := exec.LookPath(b.opts.Srun); err != nil {
		errs = append(errs, fmt.Errorf("srun not found (terminals need it): install slurm-client: %w", err))
	}
	if f, err := os.CreateTemp(b.opts.Dir, ".check-*"); err != nil {
		errs = append(errs, fmt.Errorf("job directory %s not writable: %w", b.opts.Dir, err))
	} else {
		f.Close()
		os.Remove(f.Name())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", backend.ErrUnavailable, err)
	}
	return nil
}

func (b *Backend) checkPartition(ctx context.Context, name string) error {
	r, err := b.api.SlurmV0038GetPartitionWithResponse(ctx, name, nil)
	if err != nil {
		return fmt.Errorf("partition %s: %w", name, err)
	}
	if r.StatusCode() != http.StatusOK || r.JSON200 == nil || r.JSON200.Partitions == nil || len(*r.JSON200.Partitions) == 0 {
		return fmt.Errorf("partition %s: %s", name, slurmError(r.StatusCode(), r.Body))
	}
	if st := deref((*r.JSON200.Partitions)[0].State); st != "" && !strings.EqualFold(st, "UP") {
		return fmt.Errorf("partition %s is %s", name, st)
	}
	return nil
}

// apiError is what slurmrestd said when it refused a request: every refusal is an HTTP 500 whose body lists
// Slurm's error numbers.
type apiError struct {
	status int
	codes  []int
	text   string
}

func (e *apiError) Error() string { return e.text }

func (e *apiError) has(code int) bool {
	for _, c := range e.codes {
		if c == code {
			return true
		}
	}
	return false
}

// Slurm error numbers the backend acts on.
const (
	errInvalidJobID            = 2017 // ESLURM_INVALID_JOB_ID: unknown job, or one slurmctld forgot
	errAlreadyDone             = 2021 // ESLURM_ALREADY_DONE: the job already ended
	errRequestedNodeConfigNone = 2014 // ESLURM_REQUESTED_NODE_CONFIG_UNAVAILABLE: no node could ever run it
)

func slurmError(status int, body []byte) *apiError {
	e := &apiError{status: status}
	var parsed slurmrest.V0038Errors
	var texts []string
	if json.Unmarshal(body, &parsed) == nil && parsed.Errors != nil {
		for _, x := range *parsed.Errors {
			code := deref(x.ErrorNumber)
			if code == 0 {
				code = deref(x.ErrorCode)
			}
			e.codes = append(e.codes, code)
			msg := deref(x.Error)
			if d := deref(x.Description); d != "" {
				msg = d + ": " + msg
			}
			texts = append(texts, fmt.Sprintf("%s (Slurm error %d)", msg, code))
		}
	}
	if len(texts) == 0 {
		texts = append(texts, fmt.Sprintf("HTTP %d: %.200s", status, strings.TrimSpace(string(body))))
	}
	e.text = "slurmrestd: " + strings.Join(texts, "; ")
	return e
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
