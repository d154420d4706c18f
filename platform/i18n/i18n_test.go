package i18n

import (
	"reflect"
	"regexp"
	"sort"
	"testing"

	"golang.org/x/text/language"
)

// Both catalogues hold the same keys, each with the same plural forms and the same placeholders: a message
// added in one language only fails here.
func TestCataloguesAreComplete(t *testing.T) {
	t.Parallel()
	en, err := Flat("en")
	if err != nil {
		t.Fatal(err)
	}
	fr, err := Flat("fr")
	if err != nil {
		t.Fatal(err)
	}
	if len(en) < 100 {
		t.Fatalf("the English catalogue holds %d messages: not the embedded one?", len(en))
	}
	for k, v := range en {
		w, ok := fr[k]
		if !ok {
			t.Errorf("fr.json lacks %q", k)
			continue
		}
		if got, want := placeholders(w), placeholders(v); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: French placeholders %v, English %v", k, got, want)
		}
		if reflect.TypeOf(v) != reflect.TypeOf(w) {
			t.Errorf("%s: plural forms in one language only", k)
		}
	}
	for k := range fr {
		if _, ok := en[k]; !ok {
			t.Errorf("en.json lacks %q", k)
		}
	}
	if _, err := load(); err != nil {
		t.Fatalf("go-i18n refuses the catalogues: %v", err)
	}
}

var placeholder = regexp.MustCompile(`{{\s*\.(\w+)\s*}}`)

func placeholders(v any) []string {
	var texts []string
	switch x := v.(type) {
	case string:
		texts = []string{x}
	case map[string]any:
		for _, s := range x {
			if str, ok := s.(string); ok {
				texts = append(texts, str)
			}
		}
	}
	seen := map[string]bool{}
	for _, s := range texts {
		for _, m := range placeholder.FindAllStringSubmatch(s, -1) {
			seen[m[1]] = true
		}
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestNegotiate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ header, want string }{
		{"", "en"},
		{"fr", "fr"},
		{"fr-CA,fr;q=0.9,en;q=0.8", "fr"},
		{"en-GB,en;q=0.9,fr;q=0.5", "en"},
		{"de-DE", "en"},          // a language the server does not speak reads English
		{"de-DE,fr;q=0.5", "fr"}, // …unless French is acceptable
		{"*", "en"},
		{"x;;q=bogus,,", "en"}, // malformed
		{"es, en;q=0.1", "en"},
	} {
		if got := Code(Negotiate(tc.header)); got != tc.want {
			t.Errorf("Negotiate(%q) = %s, want %s", tc.header, got, tc.want)
		}
	}
}

func TestTextRendersPlaceholdersPluralsAndSizes(t *testing.T) {
	t.Parallel()
	c := Default()
	for _, tc := range []struct {
		tag  language.Tag
		key  string
		args map[string]any
		want string
	}{
		{language.English, "problem.validation_failed.count", map[string]any{"Count": 1}, "1 invalid field"},
		{language.English, "problem.validation_failed.count", map[string]any{"Count": 3}, "3 invalid fields"},
		{language.French, "problem.validation_failed.count", map[string]any{"Count": 1}, "1 champ invalide"},
		{language.French, "problem.validation_failed.count", map[string]any{"Count": 2}, "2 champs invalides"},
		{language.English, "problem.payload_too_large.limit", map[string]any{"Limit": Size(1 << 20)}, "this route accepts at most 1 MiB"},
		{language.French, "problem.payload_too_large.limit", map[string]any{"Limit": Size(1 << 20)}, "cette route accepte au plus 1\u00a0Mo"},
		{language.French, "field.max_chars", map[string]any{"Param": "200"}, "doit compter au plus 200 caractères"},
	} {
		got, ok := c.Text(tc.tag, tc.key, tc.args)
		if !ok || got != tc.want {
			t.Errorf("Text(%s, %s) = %q, %v; want %q", tc.tag, tc.key, got, ok, tc.want)
		}
	}
	if _, ok := c.Text(language.French, "no.such.key", nil); ok {
		t.Error("an unknown key must not render")
	}
	if got := c.English("no.such.key", nil); got != "no.such.key" {
		t.Errorf("English of an unknown key = %q", got)
	}
	if k, ok := c.KeyOf("field.", "is required"); !ok || k != "field.required" {
		t.Errorf("KeyOf(is required) = %q, %v", k, ok)
	}
}

func TestFormatBytes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		tag  language.Tag
		n    int64
		want string
	}{
		{language.English, 512, "512 B"},
		{language.French, 512, "512\u00a0o"},
		{language.English, 1536, "1.5 KiB"},
		{language.French, 1536, "1,5\u00a0Ko"},
		{language.French, 16 << 20, "16\u00a0Mo"},
		{language.French, 5 << 30, "5\u00a0Go"},
		{language.English, 5 << 30, "5 GiB"},
	} {
		if got := FormatBytes(tc.tag, tc.n); got != tc.want {
			t.Errorf("FormatBytes(%s, %d) = %q, want %q", tc.tag, tc.n, got, tc.want)
		}
	}
}
