package natspipe_test

import (
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tamarack-ai/tamarack/platform/natspipe"
	"github.com/tamarack-ai/tamarack/platform/natstest"
)

// BenchmarkPipe measures one direction's throughput (MB/s, 32 KiB writes, default window) and the round trip
// of a 1-byte echo (ns/op), each end on its own TCP connection to the server, as the gateway and an agent are.
// nats-echo-1B is the same round trip in bare core NATS messages, the floor the pipe adds its cost to.
func BenchmarkPipe(b *testing.B) {
	for _, kind := range natstest.Kinds() {
		bus := natstest.Connect(b, kind)
		b.Run(kind+"/throughput", func(b *testing.B) {
			a, z := pair(b, bus, fmt.Sprintf("tp%d", b.N), natspipe.Options{}, natspipe.Options{})
			buf := make([]byte, 32<<10)
			done := make(chan error, 1)
			go func() {
				_, err := io.Copy(io.Discard, z.p)
				done <- err
			}()
			b.SetBytes(int64(len(buf)))
			b.ResetTimer()
			for range b.N {
				if _, err := a.p.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
			if err := a.p.CloseWrite(); err != nil {
				b.Fatal(err)
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		})
		b.Run(kind+"/nats-echo-1B", func(b *testing.B) {
			ping, pong := bus.Subject("bench.ping"), bus.Subject("bench.pong")
			ncA, ncZ := dial(b, bus), dial(b, bus)
			echo, err := ncZ.Subscribe(ping, func(m *nats.Msg) { _ = ncZ.Publish(pong, m.Data) })
			if err != nil {
				b.Fatal(err)
			}
			defer echo.Unsubscribe()
			back, err := ncA.SubscribeSync(pong)
			if err != nil {
				b.Fatal(err)
			}
			if err := ncZ.Flush(); err != nil {
				b.Fatal(err)
			}
			if err := ncA.Flush(); err != nil {
				b.Fatal(err)
			}
			one := []byte{1}
			b.ResetTimer()
			for range b.N {
				if err := ncA.Publish(ping, one); err != nil {
					b.Fatal(err)
				}
				if _, err := back.NextMsg(10 * time.Second); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(kind+"/echo-1B", func(b *testing.B) {
			a, z := pair(b, bus, fmt.Sprintf("echo%d", b.N), natspipe.Options{}, natspipe.Options{})
			go func() { _, _ = io.Copy(z.p, z.p) }()
			one := make([]byte, 1)
			b.ResetTimer()
			for range b.N {
				if _, err := a.p.Write(one); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(a.p, one); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
