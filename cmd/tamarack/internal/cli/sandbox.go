package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/tamarack-ai/tamarack/sdk"
)

func (a *app) sandboxCmd() *cobra.Command {
	cmd := group("sandbox", "GPU sandboxes: launch, list, show, logs, exec, stop, extend")
	cmd.AddCommand(a.sandboxLaunchCmd(), a.sandboxListCmd(), a.sandboxShowCmd(), a.sandboxLogsCmd(), a.sandboxExecCmd(), a.sandboxSSHCmd(),
		a.sandboxStopCmd(), a.sandboxExtendCmd())
	return cmd
}

func (a *app) sandboxLaunchCmd() *cobra.Command {
	var listing, image, gpuModel string
	var gpus int
	var hours float64
	var wait bool
	cmd := &cobra.Command{
		Use:     "launch --listing L [--gpus N] [--image shell] [--hours H] [--wait]",
		Short:   "Launch a sandbox on an accelerator-time listing; --wait shows progress until it runs",
		Example: "  tamarack sandbox launch --listing aurora-h100 --gpus 1 --image shell --hours 0.5 --wait",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if listing == "" {
				return usageErr("say which accelerator-time listing with --listing")
			}
			minutes := int(hours*60 + 0.5)
			if gpus < 1 || minutes < 1 {
				return usageErr("--gpus is at least 1 and --hours at least 1/60")
			}
			s, err := a.signedIn(cmd.Context())
			if err != nil {
				return err
			}
			l, err := a.getListing(cmd.Context(), s, listing)
			if err != nil {
				return err
			}
			r, err := s.api.PostTestbedSandboxesWithResponse(cmd.Context(), sdk.LaunchSandboxRequest{
				ListingId: l.Id, GpuCount: gpus, DurationMinutes: minutes, Template: opt(image), GpuModel: opt(gpuModel)})
			if err := check(r, err); err != nil {
				return err
			}
			sb := r.JSON202
			if wait {
				if sb, err = a.waitRunning(cmd.Context(), s, sb.Id); err != nil {
					return err
				}
			}
			if a.output == "json" {
				return printJSON(a.Out, sb)
			}
			fmt.Fprintf(a.Out, "Sandbox %s is %s.\n%s/sandboxes/%s\n", sb.Id, sb.State, s.base, sb.Id)
			if st := sb.State; st == "failed" || st == "stopped" {
				return fmt.Errorf("sandbox %s %s: %s", sb.Id, st, ptr(sb.StopReason)+" "+ptr(sb.Message))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&listing, "listing", "", "the accelerator-time listing (slug or ID)")
	f.IntVar(&gpus, "gpus", 1, "how many GPUs")
	f.StringVar(&gpuModel, "gpu-model", "", "the GPU model, when the listing offers several")
	f.StringVar(&image, "image", "", "the sandbox template: shell, pytorch, jupyterlab (default: the listing's)")
	f.Float64Var(&hours, "hours", 0.5, "how long, in hours (credits for it are held until it stops)")
	f.BoolVar(&wait, "wait", false, "wait until it runs (or fails), showing its progress")
	return cmd
}

// waitRunning long-polls the sandbox (GET ?wait_until=running) until it runs or ends, drawing its state
// and image-pull progress on a terminal.
func (a *app) waitRunning(ctx context.Context, s *session, id string) (*sdk.Sandbox, error) {
	live := isTerminal(a.Err)
	until, timeout := "running", 20
	var last string
	for {
		r, err := s.api.GetTestbedSandboxesIdWithResponse(ctx, id, &sdk.GetTestbedSandboxesIdParams{WaitUntil: &until, Timeout: &timeout})
		if err := check(r, err); err != nil {
			return nil, err
		}
		sb := r.JSON200
		line := sb.State
		if p := sb.Progress; p != nil {
			line += " " + progressLine(p)
		}
		if line != last {
			if live {
				fmt.Fprintf(a.Err, "\r\033[K%s: %s", id, line)
			} else if a.output != "json" {
				fmt.Fprintf(a.Err, "%s: %s\n", id, line)
			}
			last = line
		}
		switch sb.State {
		case "running", "stopping", "stopped", "failed":
			if live {
				fmt.Fprintln(a.Err)
			}
			return sb, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

func progressLine(p *sdk.Progress) string {
	line := p.Phase
	if t := p.TotalBytes; t > 0 {
		line += fmt.Sprintf(" %s/%s", size(int64(p.DoneBytes)), size(int64(t)))
	}
	return line
}

func (a *app) sandboxListCmd() *cobra.Command {
	var state string
	cmd := &cobra.Command{
		Use:   "list [--state running]",
		Short: "Your organisation's sandboxes, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.signedIn(cmd.Context())
			if err != nil {
				return err
			}
			r, err := s.api.GetTestbedSandboxesWithResponse(cmd.Context(), &sdk.GetTestbedSandboxesParams{State: opt(state)})
			if err := check(r, err); err != nil {
				return err
			}
			if a.output == "json" {
				return printJSON(a.Out, r.JSON200)
			}
			var rows [][]string
			for _, sb := range r.JSON200.Items {
				rows = append(rows, []string{sb.Id, sb.State, fmt.Sprintf("%d× %s", sb.GpuCount, sb.GpuModel),
					sb.Template, when(sb.ExpiresAt), credits(int64(sb.ChargeMicro))})
			}
			if len(rows) == 0 {
				fmt.Fprintln(a.Out, "No sandboxes.")
				return nil
			}
			return table(a.Out, []string{"ID", "STATE", "GPUS", "TEMPLATE", "EXPIRES", "CHARGE (credits)"}, rows)
		},
	}
	cmd.Flags().StringVar(&state, "state", "", "only sandboxes in this state")
	return cmd
}

func (a *app) getSandbox(ctx context.Context, s *session, id string) (*sdk.Sandbox, error) {
	r, err := s.api.GetTestbedSandboxesIdWithResponse(ctx, id, nil)
	if err := check(r, err); err != nil {
		return nil, err
	}
	return r.JSON200, nil
}

func (a *app) sandboxShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "A sandbox: state, GPUs, times, usage and charge so far",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.signedIn(cmd.Context())
			if err != nil {
				return err
			}
			sb, err := a.getSandbox(cmd.Context(), s, args[0])
			if err != nil {
				return err
			}
			if a.output == "json" {
				return printJSON(a.Out, sb)
			}
			return a.printSandbox(s, sb)
		},
	}
}

func (a *app) printSandbox(s *session, sb *sdk.Sandbox) error {
	return fields(a.Out, "ID", sb.Id, "State", sb.State, "GPUs", fmt.Sprintf("%d× %s", sb.GpuCount, sb.GpuModel),
		"Template", sb.Template, "Started", when(sb.StartedAt), "Expires", when(sb.ExpiresAt), "Ended", when(sb.EndedAt),
		"Usage", (time.Duration(sb.UsageMillis) * time.Millisecond).Round(time.Second).String(),
		"Charge", credits(int64(sb.ChargeMicro))+" credits", "Stop reason", ptr(sb.StopReason),
		"URL", s.base+"/sandboxes/"+sb.Id)
}

func (a *app) sandboxStopCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "stop ID",
		Short: "Stop a sandbox (its unused hold is released)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.signedIn(cmd.Context())
			if err != nil {
				return err
			}
			r, err := s.api.PostTestbedSandboxesIdStopWithResponse(cmd.Context(), args[0])
			if err := check(r, err); err != nil {
				return err
			}
			if a.output == "json" {
				return printJSON(a.Out, r.JSON202)
			}
			fmt.Fprintf(a.Out, "Sandbox %s is %s.\n", args[0], r.JSON202.State)
			return nil
		},
	}
}

func (a *app) sandboxExtendCmd() *cobra.Command {
	var minutes int
	cmd := &cobra.Command{
		Use:     "extend ID --minutes N",
		Short:   "Give a sandbox more time (more credits are held)",
		Example: "  tamarack sandbox extend 01J… --minutes 30",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if minutes < 1 {
				return usageErr("--minutes is at least 1")
			}
			s, err := a.signedIn(cmd.Context())
			if err != nil {
				return err
			}
			r, err := s.api.PostTestbedSandboxesIdExtendWithResponse(cmd.Context(), args[0], sdk.ExtendSandboxRequest{Minutes: minutes})
			if err := check(r, err); err != nil {
				return err
			}
			if a.output == "json" {
				return printJSON(a.Out, r.JSON200)
			}
			fmt.Fprintf(a.Out, "Sandbox %s now expires at %s.\n", args[0], when(r.JSON200.ExpiresAt))
			return nil
		},
	}
	cmd.Flags().IntVar(&minutes, "minutes", 0, "how many minutes more")
	return cmd
}

func (a *app) sandboxLogsCmd() *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "logs ID [-f]",
		Short: "The sandbox's output; -f follows it until the sandbox ends",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.signedIn(cmd.Context())
			if err != nil {
				return err
			}
			u := s.base + "/api/v1/testbed/sandboxes/" + url.PathEscape(args[0]) + "/logs?follow=" + fmt.Sprint(follow)
			req, err := http.NewRequestWithContext(cmd.Context(), http.MethodGet, u, nil)
			if err != nil {
				return err
			}
			req.Header.Set("Authorization", "Bearer "+s.token)
			req.Header.Set("Accept", "text/event-stream")
			resp, err := s.http.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
				return problemOf(resp.StatusCode, b)
			}
			return readEvents(resp.Body, func(event, data string) bool {
				if event == "end" {
					return false
				}
				if event == "" || event == "log" {
					fmt.Fprint(a.Out, data)
				}
				return true
			})
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing until the sandbox ends")
	return cmd
}

// readEvents reads Server-Sent Events, calling fn with each event's name and data (its data lines joined
// by newlines) until fn returns false or the stream ends.
func readEvents(r io.Reader, fn func(event, data string) bool) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var event string
	var data []string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data != nil && !fn(event, strings.Join(data, "\n")) {
				return nil
			}
			event, data = "", nil
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "event:"):
			event = strings.TrimSpace(line[len("event:"):])
		case strings.HasPrefix(line, "data:"):
			data = append(data, strings.TrimPrefix(line[len("data:"):], " "))
		}
	}
	return sc.Err()
}

func (a *app) sandboxExecCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "exec ID [-- COMMAND [ARG…]]",
		Short: "Run a command in a running sandbox (a login shell without one), on a pseudo-terminal",
		Example: "  tamarack sandbox exec 01J… -- nvidia-smi\n" +
			"  tamarack sandbox exec 01J…            # an interactive shell",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.signedIn(cmd.Context())
			if err != nil {
				return err
			}
			return a.exec(cmd.Context(), s, args[0], args[1:])
		},
	}
}

// exec opens the sandbox's terminal WebSocket with the command as ?cmd= parameters and copies its output
// to stdout until the command exits. Keystrokes go in only from a terminal (in raw mode).
func (a *app) exec(ctx context.Context, s *session, id string, command []string) error {
	u, err := url.Parse(s.base + "/api/v1/testbed/sandboxes/" + url.PathEscape(id) + "/terminal")
	if err != nil {
		return err
	}
	// Check first over plain HTTP: a missing sandbox or a forbidden token answers a problem, not a failed
	// handshake.
	if _, err := a.getSandbox(ctx, s, id); err != nil {
		return err
	}
	q := url.Values{}
	for _, c := range command {
		q.Add("cmd", c)
	}
	u.RawQuery = q.Encode()
	u.Scheme = strings.Replace(u.Scheme, "http", "ws", 1)
	d := websocket.Dialer{HandshakeTimeout: 30 * time.Second, Proxy: http.ProxyFromEnvironment}
	conn, resp, err := d.DialContext(ctx, u.String(), http.Header{"Authorization": {"Bearer " + s.token}})
	if err != nil {
		if resp != nil {
			defer resp.Body.Close()
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			return problemOf(resp.StatusCode, b)
		}
		return err
	}
	defer conn.Close()
	in, isTTY := a.In.(*os.File)
	interactive := isTTY && term.IsTerminal(int(in.Fd()))
	if interactive {
		if st, err := term.MakeRaw(int(in.Fd())); err == nil {
			defer term.Restore(int(in.Fd()), st)
		}
		if w, h, err := term.GetSize(int(in.Fd())); err == nil {
			_ = conn.WriteJSON(map[string]any{"type": "resize", "cols": w, "rows": h})
		}
		go func() {
			buf := make([]byte, 4096)
			for {
				n, err := in.Read(buf)
				if n > 0 && conn.WriteMessage(websocket.BinaryMessage, buf[:n]) != nil {
					return
				}
				if err != nil {
					return
				}
			}
		}()
	}
	// A pseudo-terminal ends lines with \r\n; a script reading a pipe wants \n.
	cooked := !isTerminal(a.Out)
	for {
		mt, msg, err := conn.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) && ce.Code != websocket.CloseNormalClosure {
				return fmt.Errorf("terminal: %s", ce.Text)
			}
			return nil
		}
		if mt != websocket.BinaryMessage {
			continue
		}
		if cooked {
			msg = bytes.ReplaceAll(msg, []byte("\r\n"), []byte("\n"))
		}
		if _, err := a.Out.Write(msg); err != nil {
			return err
		}
	}
}
