package agent_test

import (
	"bufio"
	"context"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/clock"
	"github.com/tamarack-ai/tamarack/platform/natstest"
	"github.com/tamarack-ai/tamarack/testbed/agent"
	"github.com/tamarack-ai/tamarack/testbed/backend"
	"github.com/tamarack-ai/tamarack/testbed/backend/sim"
)

// BenchmarkTerminalRoundTrip is a keystroke's round trip through a terminal: a line written, its echo read.
// "direct" is the backend in this process (the simulator's echo terminal: no runtime, so what remains is the
// path itself); "agent" crosses NATS both ways through an agent: the embedded server (an in-process
// connection, as `tamarack serve`'s own agent has) or the server of TAMARACK_TEST_NATS over loopback TCP (as a
// vendor's agent has, minus the network); the difference is what the agent adds to every keystroke.
func BenchmarkTerminalRoundTrip(b *testing.B) {
	run := func(b *testing.B, be backend.Backend) {
		ctx := context.Background()
		if _, err := be.Start(ctx, backend.Spec{SandboxID: "bench", Command: []string{"sh"}}); err != nil {
			b.Fatal(err)
		}
		term, err := be.Terminal(ctx, "bench", nil)
		if err != nil {
			b.Fatal(err)
		}
		defer term.Close()
		r := bufio.NewReader(term)
		b.ResetTimer()
		for range b.N {
			if _, err := term.Write([]byte("x\n")); err != nil {
				b.Fatal(err)
			}
			if _, err := r.ReadString('\n'); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/roundtrip")
	}
	b.Run("direct", func(b *testing.B) { run(b, sim.New(clock.System{})) })
	for _, kind := range natstest.Kinds() {
		b.Run("agent-nats-"+kind, func(b *testing.B) {
			bus := natstest.Connect(b, kind)
			serveTB(b, bus, "pool-b", "agent-b", sim.New(clock.System{}))
			c := agent.NewClient(bus, "pool-b", "agent-b", "simulator")
			deadline := time.Now().Add(10 * time.Second)
			for c.Check(context.Background()) != nil {
				if time.Now().After(deadline) {
					b.Fatal("agent never answered")
				}
				time.Sleep(10 * time.Millisecond)
			}
			run(b, c)
		})
	}
}
