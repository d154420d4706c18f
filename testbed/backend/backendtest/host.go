package backendtest

import (
	"fmt"
	"os"
	"testing"
)

// EnvSandbox names the variable that makes real-sandbox tests mandatory: with TAMARACK_TEST_SANDBOX=required
// (set by .ci/run) a host that cannot run local sandboxes fails them. Without it they run wherever the host
// can (root, runc, cgroups) and are skipped, saying so, where it cannot: `make test` then still passes
// on a machine with only Go, as Postgres-only tests do without TAMARACK_TEST_POSTGRES.
const EnvSandbox = "TAMARACK_TEST_SANDBOX"

// RequireHost takes the result of the local backend's Check and decides: run, fail, or skip loudly.
func RequireHost(t testing.TB, checkErr error) {
	t.Helper()
	if checkErr == nil {
		return
	}
	if os.Getenv(EnvSandbox) == "required" {
		t.Fatalf("this host cannot run local sandboxes, and %s=required: %v", EnvSandbox, checkErr)
	}
	fmt.Fprintf(os.Stderr, "!!! %s: real-sandbox test SKIPPED: %v (install runc and tini and run as root; CI sets %s=required)\n",
		t.Name(), checkErr, EnvSandbox)
	t.Skipf("this host cannot run local sandboxes: %v", checkErr)
}
