package main

import (
	"io"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/text/language"

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
