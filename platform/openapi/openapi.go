// Package openapi builds the OpenAPI 3.1 document served at /api/openapi.json from operations that each
// service declares beside its routes, deriving JSON Schemas from the Go request and response types, and lets a
// test compare the document with the routes an app really serves. It knows no service.
package openapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
)

// Op is one operation.
type Op struct {
	Method  string
	Path    string // Fiber style: /api/v1/x/:id
	Summary string
	Tag     string
	// Auth: "" anyone, "user" a signed-in caller, "staff", "org_admin", or free text.
	Auth     string
	Request  any // a value of the request body type, or nil
	Response any // a value of the success body type, or nil
	Status   int // success status; 200 when zero
	Query    []Param
	// Problems are the codes this operation may answer besides the common ones; an operation with a JSON
	// Request may also answer payload_too_large (413), added here.
	Problems []string
	// ContentType of the request when it is not JSON (uploads).
	ContentType string
}

// Param is a query parameter.
type Param struct {
	Name, Description string
	Type              string // string, integer, boolean
}

// Doc accumulates operations and schemas.
type Doc struct {
	mu      sync.Mutex
	title   string
	version string
	ops     []Op
	schemas map[string]any
}

// New returns an empty document.
func New(title, version string) *Doc {
	return &Doc{title: title, version: version, schemas: map[string]any{}}
}

// Add declares operations.
func (d *Doc) Add(ops ...Op) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ops = append(d.ops, ops...)
}

var param = regexp.MustCompile(`:([A-Za-z_][A-Za-z0-9_]*)[?]?`)

// OpenAPIPath converts a Fiber path to OpenAPI's template form.
func OpenAPIPath(p string) string { return param.ReplaceAllString(p, "{$1}") }

// JSON renders the document.
func (d *Doc) JSON() ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	paths := map[string]map[string]any{}
	for _, op := range d.ops {
		p := OpenAPIPath(op.Path)
		if paths[p] == nil {
			paths[p] = map[string]any{}
		}
		status := op.Status
		if status == 0 {
			status = http.StatusOK
		}
		o := map[string]any{
			"summary":     op.Summary,
			"operationId": operationID(op),
			"tags":        []string{op.Tag},
			"responses":   d.responses(op, status),
		}
		if op.Auth != "" {
			o["security"] = []map[string][]string{{"bearer": {}}}
			o["x-tamarack-auth"] = op.Auth
		}
		var params []map[string]any
		for _, m := range param.FindAllStringSubmatch(op.Path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		for _, q := range op.Query {
			t := q.Type
			if t == "" {
				t = "string"
			}
			params = append(params, map[string]any{"name": q.Name, "in": "query", "description": q.Description, "schema": map[string]any{"type": t}})
		}
		if params != nil {
			o["parameters"] = params
		}
		if op.Request != nil {
			o["requestBody"] = map[string]any{"required": true, "content": map[string]any{
				"application/json": map[string]any{"schema": d.schemaOf(reflect.TypeOf(op.Request))}}}
		} else if op.ContentType != "" {
			o["requestBody"] = map[string]any{"required": true, "content": map[string]any{
				op.ContentType: map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}}}}
		}
		paths[p][strings.ToLower(op.Method)] = o
	}
	doc := map[string]any{
		"openapi": "3.1.0",
		"info":    map[string]any{"title": d.title, "version": d.version},
		"paths":   paths,
		"components": map[string]any{
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer",
				"description": "An access JWT from /api/v1/identity/login or an API token (tmk_...)."}},
			"schemas": d.withProblem(),
		},
	}
	return json.MarshalIndent(doc, "", "  ")
}

func operationID(op Op) string {
	s := strings.ToLower(op.Method) + strings.NewReplacer("/api/v1/", "_", "/", "_", ":", "", "-", "_", ".", "_", "{", "", "}", "").Replace(op.Path)
	return strings.Trim(s, "_")
}

func (d *Doc) withProblem() map[string]any {
	out := map[string]any{}
	for k, v := range d.schemas {
		out[k] = v
	}
	out["Problem"] = map[string]any{
		"type": "object", "description": "RFC 9457 problem details with a stable code.",
		"required": []string{"type", "title", "status", "code"},
		"properties": map[string]any{
			"type": map[string]any{"type": "string"}, "title": map[string]any{"type": "string"},
			"status": map[string]any{"type": "integer"}, "detail": map[string]any{"type": "string"},
			"code": map[string]any{"type": "string"}, "request_id": map[string]any{"type": "string"},
			"fields": map[string]any{"type": "array", "items": map[string]any{"type": "object", "properties": map[string]any{
				"field": map[string]any{"type": "string"}, "code": map[string]any{"type": "string"}, "message": map[string]any{"type": "string"}}}},
		},
	}
	return out
}

// TooLarge is the problem code of a body over its route's limit (platform/web's LimitBody).
const TooLarge = "payload_too_large"

func (d *Doc) responses(op Op, status int) map[string]any {
	if op.Request != nil && !slices.Contains(op.Problems, TooLarge) {
		op.Problems = append(slices.Clip(op.Problems), TooLarge)
	}
	ok := map[string]any{"description": http.StatusText(status)}
	if op.Response != nil {
		ok["content"] = map[string]any{"application/json": map[string]any{"schema": d.schemaOf(reflect.TypeOf(op.Response))}}
	}
	prob := map[string]any{"description": "Problem", "content": map[string]any{
		"application/problem+json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Problem"}}}}
	out := map[string]any{fmt.Sprint(status): ok, "default": prob}
	if len(op.Problems) > 0 {
		p := map[string]any{}
		for k, v := range prob {
			p[k] = v
		}
		p["description"] = "Problem; codes: " + strings.Join(op.Problems, ", ")
		out["default"] = p
	}
	if slices.Contains(op.Problems, TooLarge) {
		out["413"] = map[string]any{"description": "payload_too_large: the body is over this route's limit (limit_bytes says it); it was not read",
			"content": prob["content"]}
	}
	return out
}

var timeType = reflect.TypeOf(time.Time{})

func (d *Doc) schemaOf(t reflect.Type) map[string]any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == timeType {
		return map[string]any{"type": "string", "format": "date-time"}
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": "string", "contentEncoding": "base64"}
		}
		return map[string]any{"type": "array", "items": d.schemaOf(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": d.schemaOf(t.Elem())}
	case reflect.Interface:
		return map[string]any{}
	case reflect.Struct:
		name := schemaName(t)
		if name != "" {
			if _, ok := d.schemas[name]; !ok {
				d.schemas[name] = map[string]any{} // breaks recursion
				d.schemas[name] = d.structSchema(t)
			}
			return map[string]any{"$ref": "#/components/schemas/" + name}
		}
		return d.structSchema(t)
	}
	return map[string]any{}
}

func schemaName(t reflect.Type) string {
	if t.Name() == "" {
		return ""
	}
	pkg := t.PkgPath()
	if i := strings.LastIndex(pkg, "/"); i >= 0 {
		pkg = pkg[i+1:]
	}
	n := t.Name()
	n = strings.NewReplacer("[", "_", "]", "", "/", "_", ".", "_", "*", "").Replace(n)
	// Generic instantiations carry the full import path of their argument; keep it short.
	if i := strings.Index(n, "_github"); i >= 0 {
		if j := strings.LastIndex(n, "_"); j > i {
			n = n[:i] + "_" + n[j+1:]
		}
	}
	return strings.ToUpper(pkg[:1]) + pkg[1:] + n
}

func (d *Doc) structSchema(t reflect.Type) map[string]any {
	props := map[string]any{}
	var required []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" {
			embedded := d.structSchema(derefType(f.Type))
			if p, ok := embedded["properties"].(map[string]any); ok {
				for k, v := range p {
					props[k] = v
				}
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		s := d.schemaOf(f.Type)
		if desc := f.Tag.Get("doc"); desc != "" {
			s = map[string]any{"allOf": []any{s}, "description": desc}
		}
		props[name] = s
		if strings.Contains(f.Tag.Get("validate"), "required") && !strings.Contains(opts, "omitempty") {
			required = append(required, name)
		}
	}
	sort.Strings(required)
	out := map[string]any{"type": "object", "properties": props}
	if len(required) > 0 {
		out["required"] = required
	}
	return out
}

func derefType(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// Missing lists the routes app serves under /api/ (and the health and meta routes) that the document does not
// describe, as "METHOD /path".
func Missing(app *fiber.App, d *Doc) []string {
	d.mu.Lock()
	have := map[string]bool{}
	for _, op := range d.ops {
		have[strings.ToUpper(op.Method)+" "+OpenAPIPath(op.Path)] = true
	}
	d.mu.Unlock()
	var missing []string
	seen := map[string]bool{}
	for _, r := range app.GetRoutes(true) {
		if r.Method == http.MethodHead || r.Method == http.MethodOptions || r.Method == "CONNECT" || r.Method == "TRACE" {
			continue
		}
		if r.Path == "/" || strings.HasSuffix(r.Path, "*") || (!strings.HasPrefix(r.Path, "/api/") &&
			r.Path != "/healthz" && r.Path != "/readyz" && r.Path != "/metrics") {
			continue
		}
		key := r.Method + " " + OpenAPIPath(r.Path)
		if !have[key] && !seen[key] {
			missing = append(missing, key)
			seen[key] = true
		}
	}
	sort.Strings(missing)
	return missing
}
