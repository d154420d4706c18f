package web_test

import (
	"slices"
	"testing"

	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/web"
)

type textInner struct {
	Region string `json:"region"`
}

type textEmbedded struct {
	Title string `json:"title"`
}

type textRequest struct {
	textEmbedded
	Name     string            `json:"name"`
	Bio      string            `json:"bio" text:"multiline"`
	Note     *string           `json:"note,omitempty" text:"multiline"`
	Password string            `json:"password" text:"secret"`
	Tags     []string          `json:"tags"`
	Settings map[string]string `json:"settings"`
	Inner    *textInner        `json:"inner"`
	Raw      []byte            `json:"raw"`
}

// Text refuses control characters wherever it sits (nested, in lists and maps, embedded), with one field error
// each; multi-line text keeps its line breaks and tabs but no other control character; secrets are not read.
func TestControlCharactersAreFieldErrors(t *testing.T) {
	t.Parallel()
	var req textRequest
	err := web.Decode([]byte(`{"title":"t\u0000","name":"a\u0000b","bio":"line one\r\nline\ttwo","note":"red \u001b[31m",
		"password":"p\u0000w","tags":["ok","b\u0007"],"settings":{"ok":"v\u0085","k\u0000":"v"},"inner":{"region":"ca\u007f"},"raw":"AAE="}`), &req)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := problem.From(web.Check(&req))
	if !ok || p.Code != "validation_failed" {
		t.Fatalf("got %v", p)
	}
	var got []string
	for _, f := range p.Fields {
		if f.Code != "control_characters" {
			t.Errorf("field %s: code %s", f.Field, f.Code)
		}
		got = append(got, f.Field)
	}
	want := []string{"inner.region", "name", "note", "settings", "settings.ok", "tags[1]", "title"}
	if !slices.Equal(got, want) {
		t.Fatalf("fields %v, want %v", got, want)
	}

	clean := textRequest{Name: "Ann Émilie", Bio: "two\nlines\twith a tab", Tags: []string{"ok"}, Settings: map[string]string{"k": "v"}}
	if err := web.Check(&clean); err != nil {
		t.Fatalf("clean text refused: %v", err)
	}
}
