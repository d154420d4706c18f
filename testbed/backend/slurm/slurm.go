package slurm

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/tamarack-ai/tamarack/services/events"
	"github.com/tamarack-ai/tamarack/testbed/backend"
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
	// Grace is added to a sandbox's booked duration for the job's time limit, so that the testbed's own
	// stop comes first. Default 5 minutes.
	Grace time.Duration
	Logger *slog.Logger
}

// Backend runs sandboxes as Slurm jobs. Safe for concurrent use.
type Backend struct {
	opts Options
	log  *slog.Logger
}

var _ backend.Backend = (*Backend)(nil)

// New checks the options. It does not call slurmrestd: Check does.
func New(opts Options) (*Backend, error) {
	return nil, errors.New("slurm backend: not written yet")
}

func (b *Backend) Kind() string { return "slurm" }

func (b *Backend) Check(ctx context.Context) error { return backend.ErrUnavailable }

// Nodes is the agent's inventory: the partition's nodes with their GPUs (GRES types mapped back to models),
// drained and down nodes marked so, for heartbeats.
func (b *Backend) Nodes(ctx context.Context) ([]events.AgentNodeV1, error) { return nil, backend.ErrUnavailable }

func (b *Backend) Start(ctx context.Context, s backend.Spec) (backend.Status, error) {
	return backend.Status{}, backend.ErrUnavailable
}
func (b *Backend) Stop(ctx context.Context, id string, grace time.Duration) (backend.Status, error) {
	return backend.Status{}, backend.ErrUnavailable
}
func (b *Backend) Remove(ctx context.Context, id string) error { return backend.ErrUnavailable }
func (b *Backend) Inspect(ctx context.Context, id string) (backend.Status, error) {
	return backend.Status{}, backend.ErrUnavailable
}
func (b *Backend) List(ctx context.Context) ([]backend.Status, error) { return nil, backend.ErrUnavailable }
func (b *Backend) Logs(ctx context.Context, id string, follow bool) (io.ReadCloser, error) {
	return nil, backend.ErrUnavailable
}
func (b *Backend) Terminal(ctx context.Context, id string, cmd []string) (backend.Terminal, error) {
	return nil, backend.ErrUnavailable
}
func (b *Backend) DialPort(ctx context.Context, id string, port int) (net.Conn, error) {
	return nil, backend.ErrUnavailable
}
