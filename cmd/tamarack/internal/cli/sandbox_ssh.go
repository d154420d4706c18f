package cli

import (
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

// sandboxSSHCmd opens an SSH session to a running sandbox through the platform's SSH gateway (docs/ssh.md), with
// the user's own OpenSSH client: the gateway's host and port come from GET /testbed/ssh, the key is one the user
// registered on their profile.
func (a *app) sandboxSSHCmd() *cobra.Command {
	var identity, sshPath string
	var options []string
	var print bool
	cmd := &cobra.Command{
		Use:   "ssh ID [-- COMMAND [ARG…]]",
		Short: "Open an SSH session in a running sandbox (OpenSSH's ssh, with a key registered on your profile)",
		Example: "  tamarack sandbox ssh 01J…\n" +
			"  tamarack sandbox ssh 01J… -i ~/.ssh/id_ed25519 -- nvidia-smi\n" +
			"  tamarack sandbox ssh 01J… --print     # the ssh command line, for scripts and ~/.ssh/config",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.signedIn(cmd.Context())
			if err != nil {
				return err
			}
			r, err := s.api.GetTestbedSshWithResponse(cmd.Context())
			if err := check(r, err); err != nil {
				return err
			}
			gw := r.JSON200
			if !gw.Enabled {
				return &exitError{code: ExitError, msg: "this platform runs no SSH gateway (its operator set --ssh-addr=off); use `tamarack sandbox exec` instead"}
			}
			sb, err := a.getSandbox(cmd.Context(), s, args[0])
			if err != nil {
				return err
			}
			if st := sb.State; st != "running" {
				return &exitError{code: ExitConflict, msg: fmt.Sprintf("sandbox %s is %s: SSH reaches running sandboxes only", args[0], st)}
			}
			line := []string{"-p", strconv.Itoa(ptr(gw.Port))}
			if identity != "" {
				line = append(line, "-i", identity, "-o", "IdentitiesOnly=yes")
			}
			for _, o := range options {
				line = append(line, "-o", o)
			}
			if len(args) == 1 && !print {
				line = append(line, "-t") // a shell: on a pseudo-terminal, as the browser terminal
			}
			line = append(line, args[0]+"@"+ptr(gw.Host))
			line = append(line, args[1:]...)
			if print {
				if a.output == "json" {
					return printJSON(a.Out, map[string]any{"argv": append([]string{"ssh"}, line...), "host_key_fingerprint": ptr(gw.HostKeyFingerprint)})
				}
				fmt.Fprintln(a.Out, "ssh "+shellJoin(line))
				return nil
			}
			if fp := ptr(gw.HostKeyFingerprint); fp != "" {
				fmt.Fprintf(a.Err, "The gateway's host key is %s: check it if ssh asks.\n", fp)
			}
			c := exec.CommandContext(cmd.Context(), sshPath, line...)
			// A person's streams are the terminal's files, which exec hands to ssh as they are.
			c.Stdin, c.Stdout, c.Stderr = a.In, a.Out, a.Err
			err = c.Run()
			var ee *exec.ExitError
			switch {
			case errors.As(err, &ee):
				return &exitError{code: ee.ExitCode()} // ssh's own status (255: it could not connect), said by ssh
			case errors.Is(err, exec.ErrNotFound):
				return &exitError{code: ExitError, msg: "ssh not found: install OpenSSH's client (Debian: openssh-client), or name it with --ssh"}
			}
			return err
		},
	}
	cmd.Flags().StringVarP(&identity, "identity", "i", "", "the private key to use (one registered on your profile)")
	cmd.Flags().StringArrayVar(&options, "ssh-option", nil, "an ssh -o option, e.g. --ssh-option StrictHostKeyChecking=accept-new (repeatable)")
	cmd.Flags().BoolVar(&print, "print", false, "print the ssh command line instead of running it")
	cmd.Flags().StringVar(&sshPath, "ssh", "ssh", "the ssh program")
	return cmd
}

// shellJoin quotes words for a POSIX shell where they need it.
func shellJoin(words []string) string {
	out := make([]string, len(words))
	for i, w := range words {
		if w != "" && strings.Trim(w, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@,+%") == "" {
			out[i] = w
			continue
		}
		out[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}
