package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tamarack-ai/tamarack/sdk/sdkgen"
)

var updateSDK = flag.Bool("update-sdk", false, "rewrite sdk/openapi.json and sdk/sdk.gen.go from the wired services (go generate ./sdk/...)")

// The Go SDK is generated from the document the wired services serve: sdk/openapi.json is that document and
// sdk/sdk.gen.go what the generator makes of it. Either one stale fails, saying how to regenerate both.
func TestSDKIsCurrent(t *testing.T) {
	s := newTestServer(t)
	doc, err := s.e.doc.JSON()
	if err != nil {
		t.Fatal(err)
	}
	doc = append(doc, '\n')
	code, err := sdkgen.Generate(doc)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("..", "..", "sdk")
	for name, want := range map[string][]byte{sdkgen.DocFile: doc, sdkgen.CodeFile: code} {
		path := filepath.Join(dir, name)
		if *updateSDK {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%s: %v; run `%s` from the repository root", path, err, sdkgen.Regenerate)
		} else if !bytes.Equal(got, want) {
			t.Errorf("%s is stale (the served OpenAPI document or its generator changed): run `%s` from the repository root and commit the result", path, sdkgen.Regenerate)
		}
	}
}

// The usage text lists the client commands, and a client command's usage error is exit status 2 while the
// platform's own subcommands are untouched.
func TestClientCommandsAreRouted(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run([]string{"help"}, &out, &errb); err != nil || !strings.Contains(out.String(), "tamarack sandbox launch") {
		t.Errorf("help: %v\n%s", err, out.String())
	}
	err := run([]string{"sandbox", "launch", "--gpus", "many"}, &out, &errb)
	if code, ok := err.(exitStatus); !ok || code != 2 {
		t.Errorf("sandbox launch --gpus many: %v, want exit status 2", err)
	}
	if err := run([]string{"--profile", "p", "completion", "bash"}, &out, &errb); err != nil {
		t.Errorf("a global flag before the command: %v", err)
	}
}
