// Package slurm is the testbed's Slurm backend: it runs each sandbox as a Slurm job on a research-computing
// cluster, from the site agent on the cluster's login node, through slurmrestd (the generated client in
// package slurmrest; never hand-written HTTP). The platform never connects into the cluster.
//
// A sandbox is a batch job named for it, asking for its GPUs as GRES, its CPUs and memory, and a time limit
// of its booked duration plus a grace. The job's script runs `tamarack slurm-step run` as root on the
// compute node (sudo; package step), which starts the sandbox in the local runtime (testbed/backend/local:
// the same isolation as on a platform host) and copies its output to the job's output file. The job
// directory (layout.go), on a filesystem the login and compute nodes share, is how the two sides talk.
// Terminals and port connections are `srun --jobid --overlap` into the job, running the step there.
// Usage is the job's start and end as slurmctld records them.
//
// It owns the job directories under Options.Dir and the jobs it submitted (their comment names the sandbox
// and the directory). It must not place sandboxes on nodes: Slurm does, within the partition.
//
// What slurmrestd 22.05 (openapi/v0.0.38) actually does, pinned down by slurmrest_test.go, which the backend
// relies on:
//
//   - Job state is one string, job_state (PENDING, RUNNING, COMPLETING, COMPLETED, CANCELLED, FAILED, …),
//     with state_reason beside it; times (submit_time, start_time, end_time) are Unix seconds.
//   - RUNNING is reported before slurmstepd has started the script: a signal sent then is lost.
//   - DELETE /job/{id} cancels (CANCELLED) only with signal KILL or none; any other signal is merely
//     delivered, and a script that dies of it ends FAILED with reason JobLaunchFailure, never CANCELLED.
//   - GPUs are asked for with the job's gres field ("gpu:h100:1"); the job then reports tres_per_node
//     "gres:gpu:h100:1" and, once allocated, gres_detail ["gpu:h100:1(IDX:0)"]. A node reports gres
//     "gpu:h100:4" and gres_used "gpu:h100:0(IDX:N/A)". Without slurmdbd GPUs are not TRES: tres strings
//     carry cpu, mem and billing only.
//   - A job no node could ever hold is refused at submission (HTTP 500, error 2014, "Requested node
//     configuration is not available"), not left pending. Every error is an HTTP 500 with an errors list.
//   - A submission without an environment is refused (error 2127).
package slurm
