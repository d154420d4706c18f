// Package natsauthtest starts the real nats-server binary for tests, in operator mode with natsauth keys: the
// way an operator runs it with `tamarack nats-auth init`'s server.conf. A missing binary fails the test, never
// skips it.
package natsauthtest

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/natsauth"
)

// EnvServer names the nats-server binary to start; by default nats-server on PATH, else /usr/sbin's.
const EnvServer = "TAMARACK_TEST_NATS_SERVER"

// Start runs nats-server in operator mode trusting keys, with JetStream and the `full` resolver, both under
// dir (kept across a restart with the same dir), and returns its client URL and a function that stops it
// (also called when the test ends). It writes dir/server.conf (once, as `nats-auth init` does) and
// dir/nats.conf, which includes it.
func Start(t testing.TB, keys *natsauth.Keys, dir string, full bool) (url string, stop func()) {
	t.Helper()
	conf := filepath.Join(dir, "server.conf")
	if _, err := os.Stat(conf); err != nil {
		jwtDir := ""
		if full {
			jwtDir = filepath.Join(dir, "jwt")
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(conf, []byte(keys.ServerConfig(jwtDir)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	main := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(main, []byte("include \"server.conf\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return Run(t, main, filepath.Join(dir, "store"))
}

// Run starts nats-server with conf on a random loopback port and JetStream stored under store, and returns
// its client URL and a function that stops it (also called when the test ends; the server's log is printed
// when the test failed).
func Run(t testing.TB, conf, store string) (url string, stop func()) {
	t.Helper()
	bin := os.Getenv(EnvServer)
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("nats-server"); err != nil {
			bin = "/usr/sbin/nats-server"
		}
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("nats-server binary: %v (install nats-server or set %s)", err, EnvServer)
	}
	ports := t.TempDir()
	logFile := filepath.Join(t.TempDir(), "nats.log")
	cmd := exec.Command(bin, "-c", conf, "-a", "127.0.0.1", "-p", "-1", "-js", "-sd", store,
		"--ports_file_dir", ports, "-l", logFile)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop = func() {
		_ = cmd.Process.Kill()
		<-done
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			if b, err := os.ReadFile(logFile); err == nil {
				t.Logf("nats-server log:\n%s", b)
			}
		}
	})
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case <-done:
			b, _ := os.ReadFile(logFile)
			t.Fatalf("nats-server exited:\n%s", b)
		case <-deadline:
			t.Fatal("nats-server wrote no ports file")
		case <-tick.C:
		}
		if url, ok := readPorts(ports); ok {
			return url, stop
		}
	}
}

// readPorts reads the client URL from the ports file nats-server writes once it listens.
func readPorts(dir string) (string, bool) {
	files, _ := filepath.Glob(filepath.Join(dir, "*.ports"))
	if len(files) == 0 {
		return "", false
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		return "", false
	}
	var p struct {
		Nats []string `json:"nats"`
	}
	if json.Unmarshal(b, &p) != nil || len(p.Nats) == 0 {
		return "", false // being written
	}
	return p.Nats[0], true
}
