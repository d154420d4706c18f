// Package openapi builds the OpenAPI 3.1 document served at /api/openapi.json from operations that each
// service declares beside its routes, deriving JSON Schemas from the Go request and response types, and lets a
// test compare the document with the routes an app really serves. It knows no service.
//
// Schema names are what a client generator turns into type names, so they are chosen for clients: a struct's
// Go name in PascalCase without a "JSON" suffix (sandboxJSON is Sandbox), a generic type's arguments before
// its own name (web.List[sandboxJSON] is SandboxList), or the name a type gives itself with a SchemaName()
// string method where its Go name is vague or taken (launchRequest names itself LaunchSandboxRequest). Two
// types under one name make JSON fail rather than merge silently.
//
// A request field is required when its tag says so: validate:"required" (web.Bind enforces it) or
// openapi:"required" (the service's own Validate enforces it, answering code "required" when it is left out).
// A schema that only answers use marks required every field encoding/json always writes (no omitempty), and a
// pointer without omitempty may be null (anyOf [X, null]): generated clients (sdk/, the web UI's schema.d.ts)
// may rely on both.
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
	// OptionalBody: the operation also works without a request body.
	OptionalBody bool
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
	types   map[string]reflect.Type // schema name → the Go type it was made from
	clashes map[string]bool         // "name: type, type" for types that want one name
}

// New returns an empty document.
func New(title, version string) *Doc {
	return &Doc{title: title, version: version, schemas: map[string]any{}, types: map[string]reflect.Type{}, clashes: map[string]bool{}}
}

// Add declares operations.
func (d *Doc) Add(ops ...Op) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ops = append(d.ops, ops...)
}

// Ops returns the declared operations, for tests that exercise them.
func (d *Doc) Ops() []Op {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Op(nil), d.ops...)
}

var param = regexp.MustCompile(`:([A-Za-z_][A-Za-z0-9_]*)[?]?`)

// OpenAPIPath converts a Fiber path to OpenAPI's template form.
func OpenAPIPath(p string) string { return param.ReplaceAllString(p, "{$1}") }

// JSON renders the document.
func (d *Doc) JSON() ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	paths := map[string]map[string]any{}
	var requests []any
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
			rs := d.schemaOf(reflect.TypeOf(op.Request))
			requests = append(requests, rs)
			o["requestBody"] = map[string]any{"required": !op.OptionalBody, "content": map[string]any{
				"application/json": map[string]any{"schema": rs}}}
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
			"schemas": markAnswered(d.withProblem(), requests),
		},
	}
	if len(d.clashes) > 0 {
		var c []string
		for k := range d.clashes {
			c = append(c, k)
		}
		sort.Strings(c)
		return nil, fmt.Errorf("openapi: one schema name for several types (give one a SchemaName method): %s", strings.Join(c, "; "))
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

var (
	timeType = reflect.TypeOf(time.Time{})
	// rawType is any JSON value as it is written (a diff's before and after), not base64 bytes.
	rawType = reflect.TypeOf(json.RawMessage(nil))
)

func (d *Doc) schemaOf(t reflect.Type) map[string]any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == timeType {
		return map[string]any{"type": "string", "format": "date-time"}
	}
	if t == rawType {
		return map[string]any{}
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
			if prev, ok := d.types[name]; ok && prev != t {
				d.clashes[name+": "+prev.String()+", "+t.String()] = true
			}
			if _, ok := d.schemas[name]; !ok {
				d.types[name] = t
				d.schemas[name] = map[string]any{} // breaks recursion
				d.schemas[name] = d.structSchema(t)
			}
			return map[string]any{"$ref": "#/components/schemas/" + name}
		}
		return d.structSchema(t)
	}
	return map[string]any{}
}

// Namer is implemented by types that choose their schema name (see the package comment).
type Namer interface {
	SchemaName() string
}

var namerType = reflect.TypeOf((*Namer)(nil)).Elem()

// schemaName names a struct type's schema; "" for an anonymous struct, which is inlined.
func schemaName(t reflect.Type) string {
	if t.Name() == "" {
		return ""
	}
	if n, ok := ownSchemaName(t); ok {
		return n
	}
	base, args, generic := strings.Cut(t.Name(), "[")
	if !generic {
		return pascal(base)
	}
	// List[github.com/…/testbed.sandboxJSON] is SandboxList: each argument by its own schema name (found
	// among the fields, so that its SchemaName counts), then the generic type's name.
	var b strings.Builder
	for _, a := range splitArgs(strings.TrimSuffix(args, "]")) {
		if at := findType(t, a, 0); at != nil && at.Kind() == reflect.Struct {
			b.WriteString(schemaName(at))
		} else {
			b.WriteString(pascal(a[strings.LastIndex(a, ".")+1:]))
		}
	}
	return b.String() + pascal(base)
}

// ownSchemaName is the name t gives itself with a SchemaName method, not one promoted from an embedded field
// (createdTokenJSON embeds tokenJSON but is not an APIToken).
func ownSchemaName(t reflect.Type) (string, bool) {
	if !t.Implements(namerType) {
		return "", false
	}
	n := reflect.Zero(t).Interface().(Namer).SchemaName()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if ft := derefType(f.Type); f.Anonymous && ft.Implements(namerType) && reflect.Zero(ft).Interface().(Namer).SchemaName() == n {
			return "", false
		}
	}
	return n, true
}

// pascal is a Go type name as a schema name: exported, without a "JSON" suffix (sandboxJSON is Sandbox).
func pascal(n string) string {
	if s := strings.TrimSuffix(n, "JSON"); s != "" {
		n = s
	}
	n = strings.NewReplacer("*", "", "[", "", "]", "").Replace(n)
	if n == "" {
		return n
	}
	return strings.ToUpper(n[:1]) + n[1:]
}

// splitArgs splits a generic type's argument list at its top-level commas.
func splitArgs(s string) []string {
	var out []string
	depth, start := 0, 0
	for i, r := range s {
		switch r {
		case '[':
			depth++
		case ']':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

// findType looks through t's fields for the named type whose full name (import path, dot, name) is full.
func findType(t reflect.Type, full string, depth int) reflect.Type {
	if depth > 4 {
		return nil
	}
	if t.Name() != "" && t.PkgPath()+"."+t.Name() == full {
		return t
	}
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
		return findType(t.Elem(), full, depth+1)
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			if ft := findType(t.Field(i).Type, full, depth+1); ft != nil {
				return ft
			}
		}
	}
	return nil
}

func (d *Doc) structSchema(t reflect.Type) map[string]any {
	props := map[string]any{}
	var required, answered []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		// An embedded struct's fields are inlined, as encoding/json does, even when its type is unexported
		// (createdTokenJSON embeds tokenJSON); the embedding struct's own fields win.
		if f.Anonymous && name == "" && derefType(f.Type).Kind() == reflect.Struct {
			embedded := d.structSchema(derefType(f.Type))
			if p, ok := embedded["properties"].(map[string]any); ok {
				for k, v := range p {
					if _, shadowed := props[k]; !shadowed {
						props[k] = v
					}
				}
			}
			if r, ok := embedded["required"].([]string); ok {
				required = append(required, r...)
			}
			if a, ok := embedded[answeredKey].([]string); ok {
				answered = append(answered, a...)
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		s := d.schemaOf(f.Type)
		nullable := f.Type.Kind() == reflect.Pointer && !hasOpt(opts, "omitempty")
		if nullable { // encoding/json writes null for a nil pointer
			s = map[string]any{"anyOf": []any{s, map[string]any{"type": "null"}}}
		}
		if desc := f.Tag.Get("doc"); desc != "" {
			s = map[string]any{"allOf": []any{s}, "description": desc}
		}
		props[name] = s
		if requiredField(f, opts) {
			required = append(required, name)
		}
		if !hasOpt(opts, "omitempty") {
			answered = append(answered, name)
		}
	}
	sort.Strings(required)
	out := map[string]any{"type": "object", "properties": props}
	if len(required) > 0 {
		out["required"] = required
	}
	if len(answered) > 0 {
		out[answeredKey] = answered
	}
	return out
}

// answeredKey holds, while the document is built, the fields encoding/json always writes (no omitempty, not a
// pointer): JSON turns it into "required" for schemas only answers use (see markAnswered) and drops it.
const answeredKey = "x-tamarack-answered"

// markAnswered returns the schemas as the document shows them: a schema that no request body reaches lists the
// fields its answers always carry as required (clients, such as the web UI's generated types, may rely on
// them); a schema some request uses keeps only the fields its tags require, since a client may leave the
// others out. The build-time answeredKey goes either way. d.schemas is left as it is.
func markAnswered(schemas map[string]any, requests []any) map[string]any {
	inRequest := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if ref, ok := x["$ref"].(string); ok {
				name := strings.TrimPrefix(ref, "#/components/schemas/")
				if !inRequest[name] {
					inRequest[name] = true
					walk(schemas[name])
				}
			}
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	for _, r := range requests {
		walk(r)
	}
	var clean func(v any, answers bool) any
	clean = func(v any, answers bool) any {
		switch x := v.(type) {
		case map[string]any:
			out := make(map[string]any, len(x))
			for k, e := range x {
				if k != answeredKey {
					out[k] = clean(e, answers)
				}
			}
			if a, ok := x[answeredKey].([]string); ok && answers {
				req, _ := x["required"].([]string)
				req = append(slices.Clone(req), a...)
				sort.Strings(req)
				out["required"] = slices.Compact(req)
			}
			return out
		case []any:
			out := make([]any, len(x))
			for i, e := range x {
				out[i] = clean(e, answers)
			}
			return out
		}
		return v
	}
	out := make(map[string]any, len(schemas))
	for name, sc := range schemas {
		out[name] = clean(sc, !inRequest[name])
	}
	return out
}

// requiredField says whether a request field is required: validate:"required" (bound by web.Bind; not with
// omitempty, which says the field may be absent on the wire) or openapi:"required".
func requiredField(f reflect.StructField, jsonOpts string) bool {
	if hasOpt(f.Tag.Get("openapi"), "required") {
		return true
	}
	return hasOpt(f.Tag.Get("validate"), "required") && !hasOpt(jsonOpts, "omitempty")
}

func hasOpt(tag, opt string) bool {
	for _, o := range strings.Split(tag, ",") {
		if o == opt {
			return true
		}
	}
	return false
}

// Required lists the JSON names of the fields of v's struct type that the document marks required, sorted.
func Required(v any) []string {
	var out []string
	for name, f := range jsonFields(derefType(reflect.TypeOf(v))) {
		_, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if requiredField(f, opts) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// jsonFields maps the JSON names of t's fields to the fields, with embedded structs' fields inlined as
// encoding/json does.
func jsonFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" && derefType(f.Type).Kind() == reflect.Struct {
			for k, v := range jsonFields(derefType(f.Type)) {
				if _, shadowed := out[k]; !shadowed {
					out[k] = v
				}
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f
	}
	return out
}

// RequiredMismatch compares the top-level fields that a service's answer to an empty request body called
// "required" with what v's schema says, for tests that keep the two in step: each field the schema marks
// required must be answered so, and any other answered so must be documented as required in some cases (its
// doc tag says "required", as in "required unless approving"). It returns "" when they agree.
func RequiredMismatch(v any, answered []string) string {
	t := derefType(reflect.TypeOf(v))
	got := map[string]bool{}
	for _, a := range answered {
		top, _, _ := strings.Cut(a, ".")
		got[top] = true
	}
	var out []string
	for _, name := range Required(v) {
		if !got[name] {
			out = append(out, name+" is marked required but an empty body does not say so")
		}
		delete(got, name)
	}
	fields := jsonFields(t)
	for name := range got {
		if !strings.Contains(fields[name].Tag.Get("doc"), "required") {
			out = append(out, name+" is answered required but the schema neither marks nor documents it so")
		}
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
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

var schemaNameRE = regexp.MustCompile(`^[A-Z][A-Za-z0-9]*$`)

// Lint lists what would make the document awkward for a client generator: schema names that are not
// PascalCase identifiers or that start with their Go package's name (TestbedlaunchRequest), and JSON bodies of
// POST and PUT operations whose schema marks no field required (unless the operation says its body is
// optional). PATCH bodies are partial by nature and not checked.
func Lint(d *Doc) []string {
	if _, err := d.JSON(); err != nil {
		return []string{err.Error()}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for name, t := range d.types {
		pkg := t.PkgPath()[strings.LastIndex(t.PkgPath(), "/")+1:]
		switch {
		case !schemaNameRE.MatchString(name):
			out = append(out, fmt.Sprintf("schema %s (%s): not a PascalCase identifier", name, t))
		case pkg != "" && len(name) > len(pkg) && strings.EqualFold(name[:len(pkg)], pkg) &&
			strings.ToLower(name[len(pkg):len(pkg)+1]) == name[len(pkg):len(pkg)+1]:
			out = append(out, fmt.Sprintf("schema %s (%s): starts with its package prefix %q", name, t, pkg))
		}
	}
	for _, op := range d.ops {
		if m := strings.ToUpper(op.Method); op.Request == nil || op.OptionalBody || (m != http.MethodPost && m != http.MethodPut) {
			continue
		}
		if t := derefType(reflect.TypeOf(op.Request)); t.Kind() == reflect.Struct && len(Required(op.Request)) == 0 {
			out = append(out, fmt.Sprintf("%s %s: the request body %s marks no field required (tag the required ones, or set OptionalBody)", op.Method, op.Path, t))
		}
	}
	sort.Strings(out)
	return out
}
