package agent_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/clock"
	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/natstest"
	"github.com/tamarack-ai/tamarack/testbed/agent"
	"github.com/tamarack-ai/tamarack/testbed/backend"
	"github.com/tamarack-ai/tamarack/testbed/backend/sim"
)

// execer adds a non-pty Exec to the simulator: "cat" copies stdin to stdout, anything else writes its
// arguments to stdout and stderr and exits with 3.
type execer struct{ backend.Backend }

func (e execer) Exec(ctx context.Context, id string, cmd []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	if _, err := e.Inspect(ctx, id); err != nil {
		return -1, err
	}
	if cmd[0] == "cat" {
		_, err := io.Copy(stdout, stdin)
		return 0, err
	}
	fmt.Fprintf(stdout, "out %v", cmd)
	fmt.Fprintf(stderr, "err %v", cmd)
	return 3, nil
}

// Exec crosses NATS with separate, binary-clean streams and the exit code; a backend without it answers
// backend.ErrNotSupported.
func TestExecThroughAgent(t *testing.T) {
	natstest.Each(t, func(t *testing.T, bus *eventbus.Bus) {
		serve(t, bus, "pool-a", "agent-1", execer{sim.New(clock.System{})})
		c := agent.NewClient(bus, "pool-a", "agent-1", "simulator")
		ready(t, c)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := c.Start(ctx, backend.Spec{SandboxID: "s1", Command: []string{"sleep", "600"}}); err != nil {
			t.Fatal(err)
		}
		var out, errb bytes.Buffer
		code, err := c.Exec(ctx, "s1", []string{"echo", "hi"}, nil, &out, &errb)
		if err != nil || code != 3 || out.String() != "out [echo hi]" || errb.String() != "err [echo hi]" {
			t.Fatalf("exec: %d %v %q %q", code, err, out.String(), errb.String())
		}
		blob := make([]byte, 1<<20)
		_, _ = rand.Read(blob)
		out.Reset()
		code, err = c.Exec(ctx, "s1", []string{"cat"}, bytes.NewReader(blob), &out, &errb)
		if err != nil || code != 0 || !bytes.Equal(out.Bytes(), blob) {
			t.Fatalf("cat: %d %v, %d bytes of %d", code, err, out.Len(), len(blob))
		}
		if _, err := c.Exec(ctx, "nope", []string{"cat"}, nil, &out, &errb); !errors.Is(err, backend.ErrNotFound) {
			t.Fatalf("exec in an unknown sandbox: %v", err)
		}

		serve(t, bus, "pool-b", "agent-2", sim.New(clock.System{}))
		c2 := agent.NewClient(bus, "pool-b", "agent-2", "simulator")
		ready(t, c2)
		if _, err := c2.Start(ctx, backend.Spec{SandboxID: "s2", Command: []string{"sleep", "600"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := c2.Exec(ctx, "s2", []string{"true"}, nil, &out, &errb); !errors.Is(err, backend.ErrNotSupported) {
			t.Fatalf("exec on a backend without it: %v", err)
		}
		if _, err := c2.SFTP(ctx, "s2"); !errors.Is(err, backend.ErrNotSupported) {
			t.Fatalf("sftp on a backend without homes: %v", err)
		}
	})
}
