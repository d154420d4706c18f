// Package slurm will hold the testbed's Slurm backend (testbed.Backend on a research-computing cluster,
// driven through slurmrestd from the site agent). For now it holds only the tests that prove the generated
// client (package slurmrest) against a real Slurm started by infra/slurm/start.sh: they pin down what
// slurmrestd 22.05 actually does, which the backend will rely on.
package slurm
