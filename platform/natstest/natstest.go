// Package natstest gives tests a real NATS JetStream: an embedded server on a random port always, and the
// server named by TAMARACK_TEST_NATS when set. On a shared server each test gets its own subject and stream
// prefix and deletes its streams when it ends. An unreachable server fails the test, never skips it.
package natstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/eventbus"
)

// EnvNATS names the variable holding the URL of the test NATS server.
const EnvNATS = "TAMARACK_TEST_NATS"

// Kinds lists the servers tests run against here: "embedded" always, "server" when configured.
func Kinds() []string {
	if os.Getenv(EnvNATS) != "" {
		return []string{"embedded", "server"}
	}
	return []string{"embedded"}
}

// Each runs fn as a subtest against every kind of server in Kinds.
func Each(t *testing.T, fn func(t *testing.T, b *eventbus.Bus)) {
	t.Helper()
	for _, k := range Kinds() {
		t.Run("nats-"+k, func(t *testing.T) { fn(t, Connect(t, k)) })
	}
}

// Start returns a bus on a fresh embedded JetStream server listening on a random loopback port.
func Start(t testing.TB) *eventbus.Bus { return Connect(t, "embedded") }

// Connect returns a bus of the given kind ("embedded" or "server"), closed when the test ends.
func Connect(t testing.TB, kind string) *eventbus.Bus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opt := eventbus.Options{Prefix: "t" + randomHex(6), Name: "natstest"}
	switch kind {
	case "embedded":
		opt.DataDir = t.TempDir()
		opt.Listen = "127.0.0.1:0"
	case "server":
		opt.URL = os.Getenv(EnvNATS)
		if opt.URL == "" {
			t.Fatalf("natstest: a NATS server was requested but %s is not set", EnvNATS)
		}
	default:
		t.Fatalf("natstest: unknown kind %q", kind)
	}
	b, err := eventbus.Connect(ctx, opt)
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	t.Cleanup(func() {
		if kind == "server" {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			names := b.JetStream().StreamNames(ctx)
			prefix := b.StreamName("")
			var mine []string
			for n := range names.Name() {
				if strings.HasPrefix(n, prefix) {
					mine = append(mine, n)
				}
			}
			for _, n := range mine {
				_ = b.JetStream().DeleteStream(ctx, n)
			}
		}
		b.Close()
	})
	return b
}

func randomHex(n int) string {
	buf := make([]byte, n)
	_, _ = rand.Read(buf)
	return hex.EncodeToString(buf)
}
