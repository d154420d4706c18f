package main

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/tamarack-ai/tamarack/"

// owner names the unit a package belongs to for DESIGN.md's import rule:
// platform ← services/events ← each service ← cmd/tamarack.
func owner(pkg string) string {
	switch {
	case strings.HasPrefix(pkg, "bench/"):
		// A load tool belongs to the service it measures.
		return owner(strings.TrimPrefix(pkg, "bench/"))
	case strings.HasPrefix(pkg, "platform/"):
		return "platform"
	case pkg == "services/events":
		return "events"
	case strings.HasPrefix(pkg, "services/identity"):
		return "identity"
	case strings.HasPrefix(pkg, "marketplace"):
		return "marketplace"
	case strings.HasPrefix(pkg, "testbed"):
		return "testbed"
	case strings.HasPrefix(pkg, "billing"):
		return "billing"
	case strings.HasPrefix(pkg, "cmd/"):
		return "cmd"
	}
	return "other"
}

func allowed(from, to, toPkg string) bool {
	if from == to {
		return true
	}
	switch from {
	case "platform":
		return to == "platform"
	case "events":
		return toPkg == "platform/eventbus"
	case "identity", "marketplace", "testbed", "billing":
		return to == "platform" || to == "events"
	case "cmd":
		return to != "cmd"
	}
	return to == "platform" || to == "events" || to == "other"
}

func TestImportRule(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if name == "node_modules" || name == "testdata" || (strings.HasPrefix(name, ".") && path != root) || name == "data" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		pkg := filepath.ToSlash(rel)
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		from := owner(pkg)
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if !strings.HasPrefix(p, module) {
				continue
			}
			toPkg := strings.TrimPrefix(p, module)
			if !allowed(from, owner(toPkg), toPkg) {
				t.Errorf("%s (%s) imports %s (%s): services talk through events and IDs only", pkg, from, toPkg, owner(toPkg))
			}
			checked++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked == 0 {
		t.Fatal("no imports checked: the walk found no code")
	}
}

// The rule itself must refuse what DESIGN.md forbids.
func TestImportRuleRefusesCrossServiceImports(t *testing.T) {
	for _, c := range []struct{ from, to string }{
		{"billing", "testbed"}, {"marketplace", "services/identity"}, {"testbed/backend/local", "billing/ledger"},
		{"platform/web", "services/events"}, {"services/events", "platform/web"}, {"bench/billing", "testbed"},
	} {
		if allowed(owner(c.from), owner(c.to), c.to) {
			t.Errorf("%s → %s allowed", c.from, c.to)
		}
	}
	if _, err := os.Stat("../../go.mod"); err != nil {
		t.Fatal("the test must run from cmd/tamarack")
	}
}
