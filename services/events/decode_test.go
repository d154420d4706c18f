package events_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	sjson "github.com/segmentio/encoding/json"

	"github.com/tamarack-ai/tamarack/services/events"
)

// The consumers decode with segmentio/encoding/json (platform/eventbus/event.go). These hold it to
// encoding/json, the reference the events' producers encode with: the same values from the same bytes, and a
// refusal where encoding/json refuses (a number out of its field's range included), so a poison event stays
// poison. goccy/go-json, tried first, wrapped {"seq":18446744073709551616} to 0 without an error. They live
// here, beside the payload types, because platform packages may not import services/events.

func sameDecode[T any](t *testing.T, body string) {
	t.Helper()
	var want, got T
	errWant := json.Unmarshal([]byte(body), &want)
	errGot := sjson.Unmarshal([]byte(body), &got)
	if (errWant == nil) != (errGot == nil) {
		t.Fatalf("%T from %s: encoding/json error %v, segmentio error %v", want, body, errWant, errGot)
	}
	if errWant == nil && !reflect.DeepEqual(want, got) {
		t.Fatalf("%T from %s:\nencoding/json %#v\nsegmentio     %#v", want, body, want, got)
	}
}

func TestDecodeMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 6, 10, 0, 0, 123456789, time.UTC)
	usage, _ := json.Marshal(events.SandboxUsageV1{SandboxID: "sbx_1", OrganizationID: "org_é\"<>&\u2028", ListingID: "lst", VendorOrgID: "ven",
		PoolID: "pool", GPUModel: "H100", DeviceCount: 8, Seq: 1<<64 - 1, Start: at, End: at.Add(time.Minute), Millis: 60_000, Final: true})
	for _, body := range []string{
		string(usage),
		`{"sandbox_id":"a","start":"2026-12-06T10:00:00+05:30","end":"2026-12-06T10:00:01.5-03:00","seq":3,"device_count":1}`,
		`{"SANDBOX_ID":"case-insensitive keys","Organization_Id":"o","unknown":{"deep":[1,2,{"x":null}]},"millis":-1}`,
		`{"sandbox_id":"dup","sandbox_id":"last wins","seq":1}`,
		`{"sandbox_id":null,"seq":null,"start":null}`,
		`{"gpu_model":"\ud83c\udf41 \u00e9 \\ \/ \b\f\n\r\t","final":false}`,
		`{"sandbox_id":"\ud800 lone surrogate"}`, "{\"sandbox_id\":\"raw invalid UTF-8 \xff\xfe\"}",
		// Refused by both: wrong types, overflow, a bad time, truncation, trailing data, not an object.
		`{"seq":-1}`, `{"seq":1.5}`, `{"device_count":"1"}`, `{"device_count":1e400}`, `{"seq":18446744073709551616}`,
		`{"start":"yesterday"}`, `{"start":"2026-13-01T00:00:00Z"}`, `{"final":"true"}`,
		`{"sandbox_id":"a"`, `{"sandbox_id":"a"} x`, `[]`, `"text"`, ``, `{"sandbox_id":"a",}`,
	} {
		sameDecode[events.SandboxUsageV1](t, body)
	}

	start, _ := json.Marshal(events.AgentStartV1{SandboxID: "sbx", Command: []string{"sh", "-c", "echo \"hi\""}, Env: map[string]string{"A": "1", "É": ""},
		Devices: []events.AgentDeviceRefV1{{Index: 0, UUID: "GPU-1", Paths: []string{"/dev/nvidia0"}}}, Ports: []int{22, 8888}, MemoryBytes: 1 << 40})
	for _, body := range []string{
		string(start),
		`{"sandbox_id":"s","env":{"A":"1","A":"2"},"ports":[],"devices":null}`,
		`{"sandbox_id":"s","ports":[1,"2"]}`, `{"sandbox_id":"s","env":{"A":1}}`,
	} {
		sameDecode[events.AgentStartV1](t, body)
	}

	exp := at.Add(48 * time.Hour)
	ent, _ := json.Marshal(events.EntitlementChangedV1{EntitlementID: "ent", ListingID: "lst", OrganizationID: "org", ExpiresAt: &exp, At: at})
	for _, body := range []string{string(ent), `{"entitlement_id":"e","expires_at":null,"at":"2026-12-06T10:00:00Z"}`} {
		sameDecode[events.EntitlementChangedV1](t, body)
	}
}

// BenchmarkDecode: one usage event (the metered stream's payload) decoded by encoding/json and by the library
// the consumers use.
func BenchmarkDecode(b *testing.B) {
	at := time.Date(2026, 12, 6, 10, 0, 0, 123456789, time.UTC)
	body, _ := json.Marshal(events.SandboxUsageV1{SandboxID: "sbx_01J9ZKQ3W8R7T6Y5X4V3B2N1M0", OrganizationID: "org_01J9ZKQ3W8R7T6Y5X4V3B2N1M0",
		ListingID: "lst_01J9ZKQ3W8R7T6Y5X4V3B2N1M0", VendorOrgID: "org_01J9ZKQ3W8R7T6Y5X4V3B2N1M9", PoolID: "pool_01J9ZKQ3W8R7T6Y5X4V3B2N1",
		GPUModel: "H100-80GB", DeviceCount: 2, Seq: 123, Start: at, End: at.Add(time.Minute), Millis: 60_000})
	for name, unmarshal := range map[string]func([]byte, any) error{"encoding-json": json.Unmarshal, "segmentio-encoding-json": sjson.Unmarshal} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var ev events.SandboxUsageV1
				if err := unmarshal(body, &ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
