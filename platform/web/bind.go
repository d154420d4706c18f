package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"unicode"

	"github.com/go-playground/validator/v10"
	"github.com/gofiber/fiber/v2"

	"github.com/tamarack-ai/tamarack/platform/problem"
)

// Validatable inputs check themselves and return problem.Fields.Err() listing every bad field.
type Validatable interface {
	Validate() error
}

// Bind decodes the JSON body into dst, refusing malformed JSON, unknown fields and trailing data with a
// problem that says where, then runs dst's validation (struct tags, then Validate() when dst has it).
func Bind(c *fiber.Ctx, dst any) error {
	if err := Decode(c.Body(), dst); err != nil {
		return err
	}
	return Check(dst)
}

// Decode is Bind's decoding step alone, for fuzzing and non-HTTP callers.
func Decode(body []byte, dst any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return problem.ErrMalformed.WithDetailMsg("problem.malformed_json.empty", nil)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeProblem(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return problem.ErrMalformed.WithDetailMsg("problem.malformed_json.trailing", nil)
	}
	return nil
}

func decodeProblem(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return problem.ErrMalformed.WithDetailMsg("problem.malformed_json.syntax", problem.Args{"Offset": syn.Offset})
	case errors.As(err, &typ):
		var f problem.Fields
		field := typ.Field
		if field == "" {
			field = "(body)"
		}
		f.AddMsg(field, "wrong_type", "field.wrong_type."+jsonKind(typ.Type), nil)
		return f.Err()
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		var f problem.Fields
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		f.AddMsg(name, "unknown_field", "field.unknown_field", nil)
		return f.Err()
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return problem.ErrMalformed.WithDetailMsg("problem.malformed_json.eof", nil)
	}
	return problem.ErrMalformed.WithDetail("%v", err)
}

func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array"
	}
	return "object"
}

var validate = newValidator()

func newValidator() *validator.Validate {
	v := validator.New(validator.WithRequiredStructEnabled())
	v.RegisterTagNameFunc(func(f reflect.StructField) string {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			return ""
		}
		if name == "" {
			return f.Name
		}
		return name
	})
	return v
}

// Check runs struct-tag validation, refuses control characters in text (see controlChars), and then runs
// Validate() when v has it, merging all field errors.
func Check(v any) error {
	var fields problem.Fields
	controlChars(reflect.ValueOf(v), "", "", &fields)
	if err := validate.Struct(v); err != nil {
		var ves validator.ValidationErrors
		if !errors.As(err, &ves) {
			var inv *validator.InvalidValidationError
			if errors.As(err, &inv) {
				goto custom // not a struct: only its own Validate applies
			}
			return err
		}
		for _, fe := range ves {
			ns := fe.Namespace()
			if i := strings.IndexByte(ns, '.'); i >= 0 {
				ns = ns[i+1:]
			}
			key, args := tagMessage(fe)
			fields.AddMsg(ns, fe.Tag(), key, args)
		}
	}
custom:
	if vv, ok := v.(Validatable); ok {
		if err := vv.Validate(); err != nil {
			p, isProblem := problem.From(err)
			if !isProblem || p.Code != problem.ErrValidation.Code {
				return err
			}
			fields = append(fields, p.Fields...)
		}
	}
	return fields.Err()
}

// tagMessage names the catalogue message of a failed validation tag, with the tag's parameter.
func tagMessage(fe validator.FieldError) (string, problem.Args) {
	param := problem.Args{"Param": fe.Param()}
	switch fe.Tag() {
	case "required", "email", "url", "http_url", "uuid":
		return "field." + strings.TrimPrefix(fe.Tag(), "http_"), nil
	case "min", "max":
		return "field." + fe.Tag() + lenUnit(fe), param
	case "oneof":
		return "field.oneof", problem.Args{"Param": strings.ReplaceAll(fe.Param(), " ", ", ")}
	case "gte", "lte", "gt":
		return "field." + fe.Tag(), param
	}
	return "field.invalid_tag", problem.Args{"Tag": fe.Tag()}
}

func lenUnit(fe validator.FieldError) string {
	switch fe.Kind() {
	case reflect.String:
		return "_chars"
	case reflect.Slice, reflect.Map, reflect.Array:
		return "_items"
	}
	return ""
}

// controlChars adds a control_characters field error for every string in v holding a control character (NUL,
// escape sequences, C1 codes): text ends up in names, logs, terminals and other systems' files. A field
// tagged text:"multiline" (descriptions, comments, markdown) may hold newlines, carriage returns and tabs;
// text:"secret" (passwords) is not looked at. The tag covers the field's strings, slices and map values, not
// the fields of a struct under it.
func controlChars(v reflect.Value, path, mode string, f *problem.Fields) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			controlChars(v.Elem(), path, mode, f)
		}
	case reflect.String:
		if mode == "secret" {
			return
		}
		allowed := ""
		if mode == "multiline" {
			allowed = "\n\r\t"
		}
		if strings.ContainsFunc(v.String(), func(r rune) bool { return unicode.IsControl(r) && !strings.ContainsRune(allowed, r) }) {
			key := "field.control_characters"
			if allowed != "" {
				key += "_multiline"
			}
			f.AddMsg(fieldPath(path), "control_characters", key, nil)
		}
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return // raw bytes (json.RawMessage), not text
		}
		for i := range v.Len() {
			controlChars(v.Index(i), fmt.Sprintf("%s[%d]", path, i), mode, f)
		}
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			k := iter.Key()
			if k.Kind() == reflect.String {
				controlChars(k, path, "", f) // a key is a name: never multi-line
				controlChars(iter.Value(), join(path, k.String()), mode, f)
			}
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			sf := t.Field(i)
			if !sf.IsExported() && !(sf.Anonymous && derefType(sf.Type).Kind() == reflect.Struct) {
				continue // as encoding/json: only an embedded struct's fields are decoded through an unexported field
			}
			name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
			switch {
			case name == "-":
				continue
			case name == "" && sf.Anonymous:
				controlChars(v.Field(i), path, "", f) // embedded: its fields are this object's
				continue
			case name == "":
				name = sf.Name
			}
			controlChars(v.Field(i), join(path, name), sf.Tag.Get("text"), f)
		}
	}
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func fieldPath(path string) string {
	if path == "" {
		return "(body)"
	}
	return path
}

func derefType(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}
