// Package slurm will hold the testbed's Slurm backend (testbed.Backend on a research-computing cluster,
// driven through slurmrestd from the site agent). For now it holds only the tests that prove the generated
// client (package slurmrest) against a real Slurm started by infra/slurm/start.sh: they pin down what
// slurmrestd 22.05 (openapi/v0.0.38) actually does, which the backend will rely on:
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
