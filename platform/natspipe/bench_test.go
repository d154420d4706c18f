package natspipe_test

import (
	"fmt"
	"io"
	"testing"

	"github.com/tamarack-ai/tamarack/platform/natspipe"
	"github.com/tamarack-ai/tamarack/platform/natstest"
)

// BenchmarkPipe measures one direction's throughput (MB/s, 32 KiB writes, default window) and the round trip
// of a 1-byte echo (ns/op), each end on its own TCP connection to the server, as the gateway and an agent are.
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
