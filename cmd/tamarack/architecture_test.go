package main

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
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

// pureCores are the leaf packages that hold a service's pure logic (STYLE.md, "Pure cores in leaf packages"):
// no database, bus, HTTP, files or logs, so their table tests need nothing but the package.
var pureCores = []string{"billing/charge", "platform/money", "testbed/placement"}

// ioPackages are the standard library's doors to the outside world (each with the packages under it).
var ioPackages = []string{"os", "net", "database", "syscall", "io/fs", "log", "plugin", "runtime/cgo"}

// A pure core imports the standard library (less its I/O) and other pure cores only.
func TestPureCoresDoNoIO(t *testing.T) {
	for _, pkg := range pureCores {
		files, err := filepath.Glob(filepath.Join("../..", pkg, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: no Go files (%v)", pkg, err)
		}
		for _, path := range files {
			if strings.HasSuffix(path, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range f.Imports {
				p, _ := strconv.Unquote(imp.Path.Value)
				if !pureImport(p) {
					t.Errorf("%s imports %s: a pure core does no I/O", filepath.ToSlash(path), p)
				}
			}
		}
	}
}

// The rule itself must refuse I/O and accept what a pure core needs.
func TestPureImportRule(t *testing.T) {
	for p, want := range map[string]bool{"slices": true, "sync": true, "math/bits": true, module + "platform/money": true,
		"os": false, "net/http": false, "database/sql": false, "log/slog": false, "gorm.io/gorm": false,
		"github.com/nats-io/nats.go": false, module + "platform/sqldb": false, module + "testbed": false} {
		if got := pureImport(p); got != want {
			t.Errorf("pureImport(%q) = %v, want %v", p, got, want)
		}
	}
}

func pureImport(p string) bool {
	if strings.HasPrefix(p, module) {
		return slices.Contains(pureCores, strings.TrimPrefix(p, module))
	}
	if first, _, _ := strings.Cut(p, "/"); strings.Contains(first, ".") {
		return false // another module
	}
	for _, io := range ioPackages {
		if p == io || strings.HasPrefix(p, io+"/") {
			return false
		}
	}
	return true
}
