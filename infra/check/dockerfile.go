package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// checkDockerfile parses the Dockerfile with BuildKit's own front end, runs its build checks (what
// `docker build --check` reports), and checks the .dockerignore keeps what the build copies and drops what
// it must not see.
func checkDockerfile(r *report, root string) {
	dt, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		r.fail("Dockerfile", "%v", err)
		return
	}
	ast, err := parser.Parse(bytes.NewReader(dt))
	if err != nil {
		r.fail("Dockerfile", "parse: %v", err)
		return
	}
	// The checks BuildKit runs while parsing (the parse-time half of `docker build --check`; the rest needs
	// the base images).
	var warnings []string
	lint := linter.New(&linter.Config{Warn: func(rule, _, _, msg string, loc []parser.Range) {
		line := 0
		if len(loc) > 0 {
			line = loc[0].Start.Line
		}
		warnings = append(warnings, fmt.Sprintf("line %d: %s: %s", line, rule, msg))
	}})
	for _, w := range ast.Warnings {
		warnings = append(warnings, fmt.Sprintf("line %d: %s", w.Location.Start.Line, w.Short))
	}
	stages, metaArgs, err := instructions.Parse(ast.AST, lint)
	if err != nil {
		r.fail("Dockerfile", "instructions: %v", err)
		return
	}
	for _, w := range warnings {
		r.fail("Dockerfile", "%s", w)
	}
	// Every COPY --from names an earlier stage; every ARG used in a stage is declared there.
	seen := map[string]bool{}
	var names []string
	for _, s := range stages {
		for _, c := range s.Commands {
			if cp, ok := c.(*instructions.CopyCommand); ok && cp.From != "" && !seen[cp.From] {
				r.fail("Dockerfile", "stage %s: COPY --from=%s names no earlier stage", s.Name, cp.From)
			}
		}
		seen[s.Name] = true
		names = append(names, s.BaseName+" AS "+s.Name)
	}
	global := map[string]bool{}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			global[kv.Key] = true
		}
	}
	for _, s := range stages {
		declared := map[string]bool{}
		for _, c := range s.Commands {
			switch x := c.(type) {
			case *instructions.ArgCommand:
				for _, kv := range x.Args {
					if !global[kv.Key] && kv.Value == nil {
						r.fail("Dockerfile", "stage %s: ARG %s has no default and no global ARG", s.Name, kv.Key)
					}
					declared[kv.Key] = true
				}
			case *instructions.RunCommand:
				line := strings.Join(x.CmdLine, " ")
				if strings.Contains(line, "${VERSION}") && !declared["VERSION"] {
					r.fail("Dockerfile", "stage %s uses ${VERSION} before ARG VERSION", s.Name)
				}
			}
		}
	}
	if len(warnings) == 0 {
		r.ok("Dockerfile", "parses; %d stages (%s); no parse-time build-check warnings", len(stages), strings.Join(names, "; "))
	}

	f, err := os.Open(filepath.Join(root, ".dockerignore"))
	if err != nil {
		r.fail(".dockerignore", "%v", err)
		return
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		r.fail(".dockerignore", "%v", err)
		return
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		r.fail(".dockerignore", "%v", err)
		return
	}
	for path, wantIn := range map[string]bool{
		"go.mod": true, "go.sum": true, "cmd/tamarack/main.go": true, "platform/web/health.go": true,
		"frontend/package.json": true, "frontend/src/main.tsx": true, "frontend/dist/.keep": true,
		".git/HEAD": false, "frontend/node_modules/react/index.js": false, "frontend/dist/index.html": false,
		"data/tamarack.db": false, "bin/tamarack": false, "infra/k8s/base/nats.yaml": false,
	} {
		ignored, err := pm.MatchesOrParentMatches(path)
		if err != nil {
			r.fail(".dockerignore", "%s: %v", path, err)
			continue
		}
		if ignored == wantIn {
			r.fail(".dockerignore", "%s is %s the build context", path, map[bool]string{true: "kept out of", false: "in"}[ignored])
		}
	}
	r.ok(".dockerignore", "%d patterns: sources in, .git, node_modules, local dist, data and infra out", len(patterns))
}
