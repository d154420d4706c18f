// Command check validates Tamarack's deployment files on a machine without a cluster, Docker or Tilt:
//
//  1. it builds each kustomization (base and every overlay) in-process with the kustomize library;
//  2. it decodes every object strictly into its Kubernetes API type, so a misspelt or misplaced field, or a
//     value of the wrong type, fails here as it would at `kubectl apply`;
//  3. it cross-checks what the API server would not: every ConfigMap, Secret, ServiceAccount, Service,
//     port name, volume and selector a manifest names exists in the same build, pods in the `tamarack`
//     namespace meet the "restricted" Pod Security Standard that namespace enforces, and every TAMARACK_*
//     variable is one cmd/tamarack/config.go reads;
//  4. it runs every Deployment's `tamarack serve --only=...` with --check-config and exactly the environment
//     its pod gets, so the binary's own validation accepts each setting;
//  5. it parses the Dockerfile with BuildKit's front end and runs its build checks (`docker build --check`),
//     and checks .dockerignore keeps the sources in and .git, node_modules and local state out;
//  6. it runs the Tiltfile against stand-ins for the Tilt builtins it calls (same parameter names as Tilt's)
//     and checks the resources it declares: workloads and objects that exist, resource_deps that resolve
//     without cycles, distinct local ports, the built image used by the manifests.
//
// Run it from the repository root: `infra/check.sh` (or `cd infra/check && go run . -root ../..`). It is a
// module of its own so the platform's go.mod never carries the Kubernetes libraries.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// overlays and what each may reference without defining it (created out of band).
var builds = []struct {
	dir      string
	external []string // "Kind/namespace/name"
}{
	{"infra/k8s/base", []string{"Secret/tamarack/tamarack-db"}},
	{"infra/k8s/overlays/dev", nil},
	{"infra/k8s/overlays/prod", []string{"Secret/tamarack/tamarack-db"}},
}

func main() {
	root := flag.String("root", ".", "repository root")
	flag.Parse()
	r := &report{}
	known := knownSettings(r, filepath.Join(*root, "cmd/tamarack/config.go"))
	bin := buildTamarack(r, *root)
	for _, b := range builds {
		objs, err := buildKustomization(filepath.Join(*root, b.dir))
		if err != nil {
			r.fail(b.dir, "kustomize build: %v", err)
			continue
		}
		typed := decodeStrict(r, b.dir, objs)
		checkReferences(r, b.dir, typed, b.external, known)
		checkWithTools(r, b.dir, typed)
		checkConfigs(r, b.dir, bin, typed)
		r.ok(b.dir, "%d objects build, decode strictly and reference only what exists", len(objs))
	}
	checkTiltfile(r, *root)
	checkDockerfile(r, *root)
	r.print()
	if r.failed {
		os.Exit(1)
	}
}

// knownSettings reads the TAMARACK_* names cmd/tamarack/config.go declares.
func knownSettings(r *report, path string) map[string]bool {
	b, err := os.ReadFile(path)
	if err != nil {
		r.fail("config.go", "%v", err)
		return nil
	}
	known := map[string]bool{}
	for _, m := range regexp.MustCompile(`"(TAMARACK_[A-Z0-9_]+)"`).FindAllStringSubmatch(string(b), -1) {
		known[m[1]] = true
	}
	return known
}

type report struct {
	lines  []string
	failed bool
}

func (r *report) ok(where, format string, a ...any) {
	r.lines = append(r.lines, fmt.Sprintf("ok    %-26s %s", where, fmt.Sprintf(format, a...)))
}

func (r *report) note(where, format string, a ...any) {
	r.lines = append(r.lines, fmt.Sprintf("note  %-26s %s", where, fmt.Sprintf(format, a...)))
}

func (r *report) fail(where, format string, a ...any) {
	r.failed = true
	r.lines = append(r.lines, fmt.Sprintf("FAIL  %-26s %s", where, fmt.Sprintf(format, a...)))
}

func (r *report) print() {
	// Failures last, so they are what a terminal shows.
	sort.SliceStable(r.lines, func(i, j int) bool {
		return !strings.HasPrefix(r.lines[i], "FAIL") && strings.HasPrefix(r.lines[j], "FAIL")
	})
	for _, l := range r.lines {
		fmt.Println(l)
	}
	if r.failed {
		fmt.Println("infra check: FAILED")
	} else {
		fmt.Println("infra check: all good")
	}
}
