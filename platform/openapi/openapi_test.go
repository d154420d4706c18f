package openapi

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

type sandboxJSON struct {
	ID string `json:"id"`
}

type launchRequest struct {
	ListingID string `json:"listing_id" openapi:"required"`
	GPUModel  string `json:"gpu_model" doc:"default: the listing's"`
	GPUCount  int    `json:"gpu_count" validate:"required,min=1"`
	Note      string `json:"note,omitempty" validate:"required"` // omitempty: not required on the wire
}

func (launchRequest) SchemaName() string { return "LaunchSandboxRequest" }

type page[T any] struct {
	Items []T `json:"items"`
}

type poolGPUJSON struct {
	Model string `json:"model"`
}

type extendRequest struct {
	Minutes int `json:"minutes"`
}

// named lets a test give a type any schema name.
type named struct{ A string }

var namedAs string

func (named) SchemaName() string { return namedAs }

func schemas(t *testing.T, d *Doc) map[string]map[string]any {
	t.Helper()
	b, err := d.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Components struct {
			Schemas map[string]map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Components.Schemas
}

// Schema names are what a client would call the types: the Go name in PascalCase without a JSON suffix, list
// wrappers after their item, or the name a type gives itself; required fields come from the tags.
func TestSchemaNamesAndRequiredFields(t *testing.T) {
	d := New("t", "v")
	d.Add(
		Op{Method: "POST", Path: "/sandboxes", Request: launchRequest{}, Response: sandboxJSON{}, Status: 202},
		Op{Method: "GET", Path: "/sandboxes", Response: page[sandboxJSON]{}},
		Op{Method: "GET", Path: "/gpus", Response: page[poolGPUJSON]{}},
	)
	s := schemas(t, d)
	var names []string
	for n := range s {
		names = append(names, n)
	}
	sort.Strings(names)
	want := []string{"LaunchSandboxRequest", "PoolGPU", "PoolGPUPage", "Problem", "Sandbox", "SandboxPage"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("schema names %v, want %v", names, want)
	}
	if got := s["LaunchSandboxRequest"]["required"]; !reflect.DeepEqual(got, []any{"gpu_count", "listing_id"}) {
		t.Errorf("required %v, want gpu_count and listing_id", got)
	}
	if got := Required(launchRequest{}); !reflect.DeepEqual(got, []string{"gpu_count", "listing_id"}) {
		t.Errorf("Required = %v", got)
	}
	if l := Lint(d); len(l) != 0 {
		t.Errorf("lint: %v", l)
	}
}

// Two types under one name would merge their schemas silently: the document refuses to render.
func TestSchemaNameCollisionFails(t *testing.T) {
	namedAs = "Sandbox"
	d := New("t", "v")
	d.Add(Op{Method: "GET", Path: "/a", Response: sandboxJSON{}}, Op{Method: "GET", Path: "/b", Response: named{}})
	if _, err := d.JSON(); err == nil || !strings.Contains(err.Error(), "Sandbox") {
		t.Fatalf("collision not reported: %v", err)
	}
}

// Lint reports names a client generator would trip on and POST bodies that mark nothing required.
func TestLint(t *testing.T) {
	for _, c := range []struct {
		name string
		want string
	}{{"Web_list", "Web_list"}, {"Openapiwhatever", "package prefix"}, {"lowerCase", "lowerCase"}} {
		namedAs = c.name
		d := New("t", "v")
		d.Add(Op{Method: "GET", Path: "/a", Response: named{}})
		if l := strings.Join(Lint(d), "\n"); !strings.Contains(l, c.want) {
			t.Errorf("name %q: lint says %q", c.name, l)
		}
	}
	d := New("t", "v")
	d.Add(Op{Method: "POST", Path: "/extend", Request: extendRequest{}},
		Op{Method: "POST", Path: "/versions", Request: extendRequest{}, OptionalBody: true},
		Op{Method: "PATCH", Path: "/extend", Request: extendRequest{}})
	l := Lint(d)
	if len(l) != 1 || !strings.Contains(l[0], "POST /extend") {
		t.Errorf("lint of bodies without required fields: %v", l)
	}
	b, _ := d.JSON()
	if !strings.Contains(string(b), `"required": false`) {
		t.Errorf("an optional body is not marked so: %s", b)
	}
}

type createdJSON struct {
	named
	Secret string `json:"secret"`
}

// A SchemaName promoted from an embedded type does not name the embedding one.
func TestEmbeddedSchemaNameIsNotPromoted(t *testing.T) {
	namedAs = "Token"
	d := New("t", "v")
	d.Add(Op{Method: "GET", Path: "/a", Response: named{}}, Op{Method: "POST", Path: "/a", Response: createdJSON{}})
	s := schemas(t, d)
	if s["Token"] == nil || s["Created"] == nil {
		t.Fatalf("schemas %v", s)
	}
}

type decideRequest struct {
	Decision string `json:"decision" openapi:"required"`
	Comment  string `json:"comment" doc:"required unless approving"`
	Note     string `json:"note"`
}

func TestRequiredMismatch(t *testing.T) {
	for _, c := range []struct {
		answered []string
		ok       bool
	}{
		{[]string{"decision"}, true},
		{[]string{"decision", "comment"}, true}, // documented as required in some cases
		{[]string{"comment"}, false},            // decision marked required, not answered so
		{[]string{"decision", "note"}, false},   // note neither marked nor documented
	} {
		if m := RequiredMismatch(decideRequest{}, c.answered); (m == "") != c.ok {
			t.Errorf("%v: %q", c.answered, m)
		}
	}
}

type base struct {
	ID   string `json:"id" openapi:"required"`
	Name string `json:"name"`
}

type withSecret struct {
	base
	Name   string `json:"name" doc:"shadows base's"`
	Secret string `json:"secret"`
}

// An embedded struct's fields are in the schema even when its type is unexported, as encoding/json writes them.
func TestEmbeddedUnexportedStructIsInlined(t *testing.T) {
	d := New("t", "v")
	d.Add(Op{Method: "POST", Path: "/a", Request: withSecret{}})
	s := schemas(t, d)["WithSecret"]
	props, _ := s["properties"].(map[string]any)
	if len(props) != 3 || props["id"] == nil || props["secret"] == nil || !strings.Contains(fmt.Sprint(props["name"]), "shadows") {
		t.Fatalf("schema %v", s)
	}
	if !reflect.DeepEqual(s["required"], []any{"id"}) || !reflect.DeepEqual(Required(withSecret{}), []string{"id"}) {
		t.Fatalf("required %v %v", s["required"], Required(withSecret{}))
	}
}

type diffJSON struct {
	From json.RawMessage `json:"from"`
	Blob []byte          `json:"blob"`
}

// A json.RawMessage is any JSON value on the wire (a client must not expect base64), unlike a []byte.
func TestRawMessageIsAnyValue(t *testing.T) {
	d := New("t", "1")
	d.Add(Op{Method: "GET", Path: "/x", Response: diffJSON{}})
	props := schemas(t, d)["Diff"]["properties"].(map[string]any)
	if from := props["from"].(map[string]any); len(from) != 0 {
		t.Errorf("from: %v, want the empty schema (any value)", from)
	}
	if blob := props["blob"].(map[string]any); blob["contentEncoding"] != "base64" {
		t.Errorf("blob: %v, want a base64 string", blob)
	}
}

type answerJSON struct {
	ID      string       `json:"id"`
	Note    string       `json:"note,omitempty"`
	Ended   *time.Time   `json:"ended_at"`
	Maybe   *poolGPUJSON `json:"maybe,omitempty"`
	Nested  poolGPUJSON  `json:"nested" doc:"always there"`
	Visible []string     `json:"visible"`
}

type sharedJSON struct {
	Name string `json:"name"`
}

type bothRequest struct {
	Shared sharedJSON `json:"shared" openapi:"required"`
}

type bothAnswer struct {
	Shared sharedJSON `json:"shared"`
}

// A schema only answers use requires the fields encoding/json always writes (a nil pointer as null); one a
// request reaches keeps only the fields its tags require, since a client may leave the others out.
func TestAnswersRequireWhatTheyAlwaysCarry(t *testing.T) {
	d := New("t", "1")
	d.Add(Op{Method: "GET", Path: "/a", Response: answerJSON{}},
		Op{Method: "POST", Path: "/b", Request: bothRequest{}, Response: bothAnswer{}})
	s := schemas(t, d)
	if got := fmt.Sprint(s["Answer"]["required"]); got != "[ended_at id nested visible]" {
		t.Errorf("Answer required %s, want [ended_at id nested visible]", got)
	}
	ended := s["Answer"]["properties"].(map[string]any)["ended_at"].(map[string]any)
	if alt, _ := ended["anyOf"].([]any); len(alt) != 2 || fmt.Sprint(alt[1]) != "map[type:null]" {
		t.Errorf("ended_at %v, want anyOf [date-time, null]", ended)
	}
	if _, ok := s["Answer"]["properties"].(map[string]any)["maybe"].(map[string]any)["anyOf"]; ok {
		t.Error("an omitempty pointer is left out when nil, never null")
	}
	if got := fmt.Sprint(s["Shared"]["required"]); got != "<nil>" {
		t.Errorf("Shared (reached by a request) required %s, want none", got)
	}
	if got := fmt.Sprint(s["BothAnswer"]["required"]); got != "[shared]" {
		t.Errorf("BothAnswer required %s, want [shared]", got)
	}
	if got := fmt.Sprint(s["BothRequest"]["required"]); got != "[shared]" {
		t.Errorf("BothRequest required %s, want [shared] (its tag)", got)
	}
	b, _ := d.JSON()
	if strings.Contains(string(b), answeredKey) {
		t.Errorf("the document still holds %s", answeredKey)
	}
}
