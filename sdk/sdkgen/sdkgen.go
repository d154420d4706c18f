// Package sdkgen turns the platform's served OpenAPI document into the Go SDK's source (package sdk), with
// oapi-codegen used as a library so that regenerating and checking for staleness need no network and no
// installed tool. It is used by cmd/tamarack's TestSDKIsCurrent (which also writes the files with
// -update-sdk, run by `go generate ./sdk/...`); nothing at run time imports it.
//
// The served document is OpenAPI 3.1; oapi-codegen reads 3.0. ForGenerator rewrites the few 3.1 spellings
// platform/openapi emits into their 3.0 equivalents on a copy: the served document stays 3.1.
package sdkgen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/format"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/oapi-codegen/oapi-codegen/v2/pkg/codegen"
)

// Files of the sdk package, relative to its directory.
const (
	DocFile  = "openapi.json" // the served document, exactly as GET /api/openapi.json answers it (indented)
	CodeFile = "sdk.gen.go"   // the generated client and types
)

// Regenerate is the command that rewrites both files, for messages that say a file is stale.
const Regenerate = "go generate ./sdk/..."

// ForGenerator returns a 3.0.3 copy of a 3.1 document from platform/openapi: "openapi" says 3.0.3, and a
// string with contentEncoding base64 (a []byte field) becomes format byte, and a nullable field (anyOf [X,
// null]) becomes X, optional (a Go pointer). platform/openapi emits no other 3.1-only keyword (no type
// arrays, no $ref siblings), which Generate checks by loading the result with kin-openapi's validation.
func ForGenerator(doc []byte) ([]byte, error) {
	var d map[string]any
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("sdkgen: read the document: %w", err)
	}
	if v, _ := d["openapi"].(string); v != "3.1.0" {
		return nil, fmt.Errorf("sdkgen: the document says openapi %q, want 3.1.0", v)
	}
	d["openapi"] = "3.0.3"
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if x["contentEncoding"] == "base64" {
				delete(x, "contentEncoding")
				x["format"] = "byte"
			}
			// A field that may be null (a nil pointer) stays an optional pointer in Go: not required, and its
			// anyOf [X, null] is X.
			if props, ok := x["properties"].(map[string]any); ok {
				if req, ok := x["required"].([]any); ok {
					var keep []any
					for _, r := range req {
						if name, _ := r.(string); !orNull(props[name]) {
							keep = append(keep, r)
						}
					}
					x["required"] = keep
					if len(keep) == 0 {
						delete(x, "required")
					}
				}
			}
			if alt, ok := x["anyOf"].([]any); ok && len(alt) == 2 && isNull(alt[1]) {
				delete(x, "anyOf")
				for k, v := range alt[0].(map[string]any) {
					x[k] = v
				}
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(d)
	return json.MarshalIndent(d, "", "  ")
}

// orNull says whether a property's schema is anyOf [X, null], bare or under a description's allOf.
func orNull(v any) bool {
	m, _ := v.(map[string]any)
	if all, ok := m["allOf"].([]any); ok && len(all) == 1 {
		m, _ = all[0].(map[string]any)
	}
	alt, ok := m["anyOf"].([]any)
	return ok && len(alt) == 2 && isNull(alt[1])
}

func isNull(v any) bool {
	m, _ := v.(map[string]any)
	return len(m) == 1 && m["type"] == "null"
}

// Generate returns the sdk package's generated source for a served (3.1) document: models, and a client
// with typed responses (ClientWithResponses).
func Generate(doc []byte) ([]byte, error) {
	v30, err := ForGenerator(doc)
	if err != nil {
		return nil, err
	}
	loader := openapi3.NewLoader()
	spec, err := loader.LoadFromData(v30)
	if err != nil {
		return nil, fmt.Errorf("sdkgen: load the 3.0 copy: %w", err)
	}
	if err := spec.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("sdkgen: the 3.0 copy is not valid 3.0 (a 3.1 keyword ForGenerator does not rewrite?): %w", err)
	}
	noVCS := "v2.8.2"
	cfg := codegen.Configuration{
		PackageName: "sdk",
		Generate:    codegen.GenerateOptions{Models: true, Client: true},
		// The header names the generator's version; without VCS information (a test binary) it would say
		// "(devel)" in one build and a version in another.
		NoVCSVersionOverride: &noVCS,
		AllowRemoteRefsFrom:  []string{},
	}.UpdateDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	code, err := codegen.Generate(spec, cfg)
	if err != nil {
		return nil, fmt.Errorf("sdkgen: generate: %w", err)
	}
	return format.Source([]byte(code))
}
