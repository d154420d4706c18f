package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/text/language"

	"github.com/tamarack-ai/tamarack/billing"
	"github.com/tamarack-ai/tamarack/marketplace"
	"github.com/tamarack-ai/tamarack/platform/i18n"
	"github.com/tamarack-ai/tamarack/platform/problem/problemtest"
	"github.com/tamarack-ai/tamarack/testbed"
)

// Every problem code the platform can answer (each declared in the repository's source, and each an operation
// of the served OpenAPI document lists) has an English and a French title, and each declared title and
// default detail is one the English catalogue holds, so that the error handler can translate it.
func TestEveryProblemCodeHasEnglishAndFrenchTitles(t *testing.T) {
	cat := i18n.Default()
	declared, err := problemtest.Declared("../..")
	if err != nil {
		t.Fatal(err)
	}
	if len(declared) < 100 {
		t.Fatalf("found %d problem declarations: is the walk reading the repository?", len(declared))
	}
	codes := map[string]string{}
	for _, s := range declared {
		codes[s.Code] = s.Pos
		if s.Title != "" {
			if _, ok := cat.KeyOf("problem."+s.Code+".title", s.Title); !ok {
				t.Errorf("%s: title %q of %s is not in catalog/en.json (problem.%s.title or a _N variant)", s.Pos, s.Title, s.Code, s.Code)
			}
		}
		if s.Detail != "" {
			if _, ok := cat.KeyOf("problem."+s.Code+".detail", s.Detail); !ok {
				t.Errorf("%s: detail %q of %s is not in catalog/en.json (problem.%s.detail or a _N variant)", s.Pos, s.Detail, s.Code, s.Code)
			}
		}
	}

	srv := newTestServer(t)
	res, err := srv.e.app.Test(httptest.NewRequest("GET", "/api/openapi.json", nil), -1)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	served := 0
	for _, m := range regexp.MustCompile(`codes: ([a-z0-9_, ]+)`).FindAllStringSubmatch(string(raw), -1) {
		for _, code := range strings.Split(m[1], ", ") {
			if _, ok := codes[code]; !ok {
				codes[code] = "the served OpenAPI document"
			}
			served++
		}
	}
	if served == 0 {
		t.Fatal("the served OpenAPI document lists no problem codes: has its format changed?")
	}
	for code, where := range codes {
		for _, tag := range i18n.Languages {
			if _, ok := cat.Text(tag, "problem."+code+".title", nil); !ok {
				t.Errorf("%s (%s) has no %s title: add problem.%s.title to platform/i18n/catalog", code, where, tag, code)
			}
		}
	}
}

// The built-in templates' descriptions and notes are catalogued with the same English as testbed declares,
// so that GET /templates answers them in French, not a stale translation of an older text.
func TestTemplateTextsAreCatalogued(t *testing.T) {
	cat := i18n.Default()
	for _, tpl := range testbed.Templates() {
		for key, english := range map[string]string{"description": tpl.Description, "notes": tpl.Notes} {
			k := "template." + tpl.Name + "." + key
			if got, ok := cat.Text(language.English, k, nil); !ok || got != english {
				t.Errorf("%s: catalogued English %q, testbed says %q", k, got, english)
			}
		}
	}
}

// Every problem detail and field message written in the services reaches a French reader in French: a
// detail given in a function body is a catalogue message (WithDetailMsg: its values are placeholders), never
// an English text built on the spot; a field message is either a catalogue key (AddMsg) or a fixed text the
// English catalogue holds under field.*; and every key the code names is in both catalogues.
func TestEveryProblemMessageIsCatalogued(t *testing.T) {
	msgs, err := problemtest.Messages("../..")
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, m := range msgs {
		kinds[m.Kind]++
	}
	if kinds["detail_key"] < 50 || kinds["field"]+kinds["field_key"] < 100 {
		t.Fatalf("found %v problem messages: is the walk reading the repository?", kinds)
	}
	en, err := i18n.Flat("en")
	if err != nil {
		t.Fatal(err)
	}
	fr, err := i18n.Flat("fr")
	if err != nil {
		t.Fatal(err)
	}
	cat := i18n.Default()
	hasKey := func(key string, prefix bool) bool {
		for _, m := range []map[string]any{en, fr} {
			found := false
			for k := range m {
				if k == key || (prefix && strings.HasPrefix(k, key)) {
					found = true
					break
				}
			}
			if !found {
				return false
			}
		}
		return true
	}
	for _, m := range msgs {
		switch m.Kind {
		case "detail":
			if m.Relay {
				// Another system's own message (a Go error, Stripe's answer) passed on as it came.
				continue
			}
			t.Errorf("%s: WithDetail(%q) writes an English-only detail: name a catalogue message with WithDetailMsg", m.Pos, m.Text)
		case "detail_key", "field_key":
			if m.Text == "" {
				// A key computed at run time (platform/web's validator tags) is checked by its own package.
				continue
			}
			if !hasKey(m.Text, m.Prefix) {
				t.Errorf("%s: message %q is not in both catalogues (platform/i18n/catalog/en.json and fr.json)", m.Pos, m.Text)
			}
		case "field":
			if m.Text == "" {
				t.Errorf("%s: a field message built at run time reads in English only: use Fields.AddMsg with a catalogue key", m.Pos)
			} else if _, ok := cat.KeyOf("field.", m.Text); !ok {
				t.Errorf("%s: field message %q is not in catalog/en.json under field.* (with its French in fr.json)", m.Pos, m.Text)
			}
		}
	}
}

// Each audit action marketplace, testbed and billing write has a name for people in English and French
// (audit.<service>.<action>), and each action their source writes is one of the service's AuditActions, so a
// new action without a name fails here rather than showing its raw code to a French reader.
func TestAuditActionsAreNamedInBothLanguages(t *testing.T) {
	action := regexp.MustCompile(`^[a-z_]+(\.[a-z_]*)*$`)
	for service, list := range map[string][]string{
		"marketplace": marketplace.AuditActions, "testbed": testbed.AuditActions, "billing": billing.AuditActions,
	} {
		for _, a := range list {
			for _, tag := range i18n.Languages {
				got := i18n.AuditAction(tag, service, a)
				if got == a {
					t.Errorf("%s: audit action %q has no %s name: add audit.%s.%s to platform/i18n/catalog", service, a, tag, service, a)
				}
			}
		}
		files, err := filepath.Glob(filepath.Join("../..", service, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: no source files (%v)", service, err)
		}
		written := 0
		for _, path := range files {
			if strings.HasSuffix(path, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(f, func(n ast.Node) bool {
				c, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				name := ""
				switch fn := c.Fun.(type) {
				case *ast.Ident:
					name = fn.Name
				case *ast.SelectorExpr:
					name = fn.Sel.Name
				}
				if name != "writeAudit" && name != "audit" {
					return true
				}
				for _, arg := range c.Args {
					lit, prefix := arg, false
					if b, isSum := arg.(*ast.BinaryExpr); isSum {
						lit, prefix = b.X, true
					}
					bl, isLit := lit.(*ast.BasicLit)
					if !isLit || bl.Kind != token.STRING {
						continue
					}
					s, _ := strconv.Unquote(bl.Value)
					if !action.MatchString(s) || !strings.ContainsAny(s, "._") {
						continue
					}
					written++
					found := false
					for _, a := range list {
						if a == s || (prefix && strings.HasPrefix(a, s)) {
							found = true
						}
					}
					if !found {
						t.Errorf("%s: audit action %q is not in %s.AuditActions", path, s, service)
					}
				}
				return true
			})
		}
		if written == 0 {
			t.Errorf("%s: no audit action found in its source: has writeAudit been renamed?", service)
		}
	}
}
