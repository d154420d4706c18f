package main

import (
	"encoding/json"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/tamarack-ai/tamarack/platform/openapi"
)

// The served document is ready for client generators: every schema is named as a client would name the type
// (PascalCase, no underscore, no lower-case package prefix such as TestbedlaunchRequest or WebList_sandboxJSON),
// no two Go types share a name, and the bodies of POST and PUT operations mark their required fields.
func TestOpenAPISchemasAreClientReady(t *testing.T) {
	s := newTestServer(t)
	if l := openapi.Lint(s.e.doc); len(l) > 0 {
		t.Errorf("the OpenAPI document lints dirty:\n%s", strings.Join(l, "\n"))
	}
	resp, err := s.e.app.Test(httptest.NewRequest("GET", "/api/openapi.json", nil), -1)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Required []string `json:"required"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || resp.StatusCode != 200 {
		t.Fatalf("document: %d %v", resp.StatusCode, err)
	}
	pascal := regexp.MustCompile(`^[A-Z][A-Za-z0-9]*$`)
	prefix := regexp.MustCompile(`^(Billing|Identity|Marketplace|Testbed)[a-z]`)
	for name := range doc.Components.Schemas {
		if !pascal.MatchString(name) || prefix.MatchString(name) || strings.HasSuffix(name, "JSON") {
			t.Errorf("schema name %q is not one a client would use", name)
		}
	}
	for name, want := range map[string][]string{
		// template is required unless image_listing_id is given (its doc says so): not marked.
		"LaunchSandboxRequest": {"duration_minutes", "gpu_count", "listing_id"},
		"SandboxList":          nil,
		"ListingReviewRequest": {"stars"},
		"SignupRequest":        {"email", "name", "organization", "password"},
	} {
		got, ok := doc.Components.Schemas[name]
		if !ok {
			t.Errorf("no schema %s", name)
		} else if want != nil && !reflect.DeepEqual(got.Required, want) {
			t.Errorf("%s marks %v required, want %v", name, got.Required, want)
		}
	}
}
