// Command tamarack is the platform's only binary: `serve` runs every service in one process on embedded
// defaults, or any subset against Postgres and a NATS cluster; `migrate`, `seed`, `users` and `version` work on
// the same settings beside a running server.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/tamarack-ai/tamarack/cmd/tamarack/internal/cli"
	"github.com/tamarack-ai/tamarack/testbed/backend/slurm/step"
)

// Set by the linker: -ldflags "-X main.version=..."
var version = "dev"

const usage = `Tamarack: testbed and marketplace of an AI compute programme.

Usage:
  tamarack serve [flags]            run the platform (all services, or --only=...)
  tamarack migrate [flags]          apply database migrations and exit
  tamarack seed --demo [flags]      add demo organisations, users, a GPU pool and listings
  tamarack users promote EMAIL      make a user programme staff
  tamarack events --subject S       print a stream's events as JSON lines (--follow, --last N)
  tamarack agent enroll|run         the site agent a vendor runs next to its GPUs (see docs/sandbox-backends.md)
  tamarack doctor [flags]           check this host can run sandboxes (runtime, cgroups, GPUs…); exit 1 if not
  tamarack billing verify           recompute every ledger balance from its transfers (exit 1 on a difference)
  tamarack images build --from T    make an OCI image of a root filesystem tarball (infra/images/build.sh)
  tamarack images prune [flags]     remove cached sandbox images that no live sandbox uses (not built in, not pinned by a pool)
  tamarack nats-auth init --dir D   operator keys and config for an external NATS server (agents' isolation)
  tamarack version                  print the version
  tamarack slurm-step …             run by the Slurm backend's jobs on compute nodes, not by hand

Every subcommand above takes the same settings (flags or TAMARACK_* variables); see 'tamarack serve -h'.

` + cli.Usage

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return // -h asked for the help it got
		}
		var code exitStatus
		if errors.As(err, &code) {
			os.Exit(int(code)) // the subcommand said what it had to on stderr
		}
		fmt.Fprintln(os.Stderr, "tamarack:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	if preRun() {
		return nil
	}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no subcommand")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd, rest := args[0], args[1:]
	if cli.Handles(cmd) {
		// The client commands have exit codes of their own (docs/cli.md) and print their own errors.
		if code := cli.Main(ctx, args, cli.Streams{In: os.Stdin, Out: stdout, Err: stderr}); code != 0 {
			return exitStatus(code)
		}
		return nil
	}
	switch cmd {
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "tamarack", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	case "serve":
		c := newConfig("serve")
		c.fs.SetOutput(stderr)
		if err := c.parse(rest); err != nil {
			return configError(err)
		}
		if err := c.checkDataDir(); err != nil {
			return configError(err)
		}
		if c.CheckConfig {
			fmt.Fprintln(stdout, "configuration is valid")
			return nil
		}
		return serve(ctx, c, stdout)
	case "migrate":
		c := newConfig("migrate")
		c.fs.SetOutput(stderr)
		c.usageFor("migrate [flags]", storeFlags...)
		if err := c.parseStore(rest); err != nil {
			return err
		}
		return migrateOnly(ctx, c, stdout)
	case "seed":
		c := newConfig("seed")
		demo := c.fs.Bool("demo", false, "add the demo data set")
		c.fs.SetOutput(stderr)
		c.usageFor("seed --demo [flags]", append([]string{"demo", "nats", "nats-creds", "nats-auth-dir", "blob-store", "s3-access-key", "s3-secret-key", "key-secret", "images"}, storeFlags...)...)
		if err := c.parseStore(rest); err != nil {
			return err
		}
		if !*demo {
			return errors.New("seed: say --demo to add the demo data set")
		}
		return seed(ctx, c, stdout)
	case "events":
		c := newConfig("events")
		stream := c.fs.String("stream", "", "stream to read (IDENTITY, MARKETPLACE, TESTBED, BILLING); default from --subject")
		subject := c.fs.String("subject", "", "only this subject, e.g. tamarack.testbed.sandbox.usage.v1")
		last := c.fs.Int("last", 0, "start with the last N events (default: all)")
		follow := c.fs.Bool("follow", false, "keep printing new events")
		c.fs.SetOutput(stderr)
		c.usageFor("events --subject S [--last N] [--follow] [flags]", "subject", "stream", "last", "follow", "nats", "nats-creds", "nats-auth-dir", "data", "log-level", "log-format")
		if err := c.parse(rest); err != nil {
			return configError(err)
		}
		return eventsCmd(ctx, c, *stream, *subject, *last, *follow, stdout)
	case "agent":
		return agentCmd(ctx, rest, stdout, stderr)
	case "doctor":
		c := newConfig("doctor")
		c.fs.SetOutput(stderr)
		c.usageFor("doctor [flags]", "data", "cdi-dirs", "runsc")
		if err := c.parse(rest); err != nil {
			return configError(err)
		}
		return doctor(ctx, c, stdout)
	case "billing":
		if len(rest) < 1 || rest[0] != "verify" {
			return errors.New("usage: tamarack billing verify [flags]")
		}
		c := newConfig("billing")
		c.fs.SetOutput(stderr)
		c.usageFor("billing verify [flags]", storeFlags...)
		if err := c.parseStore(rest[1:]); err != nil {
			return err
		}
		return billingVerify(ctx, c, stdout)
	case "images":
		if len(rest) > 0 && rest[0] == "prune" {
			return imagesPrune(ctx, rest[1:], stdout, stderr)
		}
		return imagesCmd(rest, stdout, stderr)
	case "slurm-step":
		if code := step.Main(ctx, rest, step.Stdio{Stdin: os.Stdin, Stdout: stdout, Stderr: stderr}); code != 0 {
			return exitStatus(code)
		}
		return nil
	case "nats-auth":
		return natsAuthCmd(rest, stdout, stderr)
	case "users":
		if len(rest) < 2 || rest[0] != "promote" {
			return errors.New("usage: tamarack users promote EMAIL [flags]")
		}
		c := newConfig("users")
		c.fs.SetOutput(stderr)
		c.usageFor("users promote EMAIL [flags]", append([]string{"nats", "nats-creds", "nats-auth-dir"}, storeFlags...)...)
		if err := c.parseStore(rest[2:]); err != nil {
			return err
		}
		return promote(ctx, c, rest[1], stdout)
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown subcommand %q", cmd)
}

// exitStatus is a subcommand's exit status other than 0, its reasons already printed: `slurm-step run`
// ends its Slurm job with the sandbox's exit code.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// storeFlags are the settings of every command that opens the database.
var storeFlags = []string{"data", "db", "only", "log-level", "log-format"}

// parseStore parses and validates the settings of a command that opens the database in the data directory.
func (c *config) parseStore(args []string) error {
	if err := c.parse(args); err != nil {
		return configError(err)
	}
	if err := c.checkDataDir(); err != nil {
		return configError(err)
	}
	return nil
}

func configError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return fmt.Errorf("invalid configuration:\n%w", err)
}
