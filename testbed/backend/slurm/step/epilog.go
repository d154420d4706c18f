package step

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Epilog ends the sandbox Slurm job job left on this node, if any: the step's sandbox runs under a
// detached shim that outlives a step Slurm killed (time limit, KillWait run out, node trouble). Run by
// Slurm's Epilog as root after every job; a job without a sandbox record is not the testbed's, or ended
// cleanly. The caller reports the error and still exits 0.
func Epilog(ctx context.Context, c Config, job string) error {
	if job == "" {
		return errors.New("SLURM_JOB_ID is not set")
	}
	if err := checkJob(job); err != nil {
		return err
	}
	record := c.jobRecord(job)
	b, err := os.ReadFile(record)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	id := strings.TrimSpace(string(b))
	lb, err := c.backend()
	if err != nil {
		return err
	}
	defer lb.Close()
	if err := clearLeftover(ctx, lb, id, io.Discard); err != nil {
		return fmt.Errorf("job %s, sandbox %s: %w", job, id, err)
	}
	return os.Remove(record)
}
